"""Decode images as users have them into upright 8-bit RGB, or fail with a message naming the file.

Photos arrive rotated by their EXIF tag, in grayscale, 16-bit, CMYK, palette or with an alpha
channel, as animated GIF/WebP, truncated, empty, mislabelled, or as decompression bombs. Every
one of them either becomes an RGB `PIL.Image` or raises `ImageLoadError`, so one bad upload
never breaks the others.
"""
import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

BACKGROUND = (255, 255, 255)
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


class ImageLoadError(ValueError):
    """Raised for a file that cannot be decoded into an image; the message names the file."""


def load_image(source, *, name=None, max_pixels=None) -> Image.Image:
    """Decode `source` (bytes, a path or a binary file object) into an upright RGB image.

    `name` is what error messages call the file (defaults to the path, or "image").
    `max_pixels` caps width*height (default: Pillow's `Image.MAX_IMAGE_PIXELS`); larger images
    are refused before their pixels are decoded.
    """
    if isinstance(source, (str, Path)):
        name = name or str(source)
        try:
            source = Path(source).read_bytes()
        except OSError as exc:
            raise ImageLoadError(f"{name}: cannot read the file ({exc.strerror or exc})") from exc
    elif not isinstance(source, (bytes, bytearray, memoryview)):
        source = source.read()
    name = name or "image"
    if len(source) == 0:
        raise ImageLoadError(f"{name}: the file is empty")
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    try:
        # Pillow only warns between MAX_IMAGE_PIXELS and twice that; a bomb must be an error.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(source))
            if limit and image.width * image.height > limit:
                raise ImageLoadError(
                    f"{name}: {image.width}x{image.height} pixels is more than the limit of "
                    f"{limit:,} pixels (possible decompression bomb)"
                )
            image.seek(0)
            image.load()
            upright = ImageOps.exif_transpose(image)
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(f"{name}: too many pixels, possible decompression bomb ({exc})") from exc
    except Image.UnidentifiedImageError as exc:
        raise ImageLoadError(f"{name}: not an image file, or a format that cannot be read") from exc
    except Exception as exc:
        # Pillow's format plugins signal corrupt or truncated data with many exception types
        # (OSError, SyntaxError, ValueError, EOFError, struct.error...): all mean "bad file".
        raise ImageLoadError(f"{name}: corrupt or truncated image ({exc})") from exc
    return to_rgb(upright)


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB from any Pillow mode; transparency is flattened onto white."""
    if image.mode in SIXTEEN_BIT_MODES:
        # 16-bit grayscale (PNG/TIFF) opens as I;16 or I: keep absolute brightness, 65535 -> 255.
        array = np.asarray(image, dtype=np.float64) / 257.0
        image = Image.fromarray(np.clip(array, 0, 255).round().astype(np.uint8))
    elif image.mode == "F":
        # Floating-point images carry no agreed range: stretch what is there to 0..255.
        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        scaled = (array - low) / (high - low) * 255.0 if high > low else np.zeros_like(array)
        image = Image.fromarray(scaled.round().astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        flattened = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        flattened.alpha_composite(rgba)
        return flattened.convert("RGB")
    return image.convert("RGB")
