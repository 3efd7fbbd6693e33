import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from tests.helpers import encode
from scn.images import ImageLoadError, load_image


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height: a decompression bomb's shape."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
            + chunk(b"IEND", b""))


def test_rgb_jpeg_from_bytes_path_and_file_object(tmp_path, grace_hopper_path):
    data = grace_hopper_path.read_bytes()
    from_bytes = load_image(data)
    from_path = load_image(grace_hopper_path)
    from_file = load_image(io.BytesIO(data))
    assert from_bytes.mode == "RGB" and from_bytes.size == (512, 600)
    assert np.array_equal(np.asarray(from_bytes), np.asarray(from_path))
    assert np.array_equal(np.asarray(from_bytes), np.asarray(from_file))


def test_grayscale_becomes_three_equal_channels():
    gray = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8))
    rgb = np.asarray(load_image(encode(gray)))
    assert rgb.shape == (8, 8, 3)
    assert np.array_equal(rgb[..., 0], np.asarray(gray)) and np.array_equal(rgb[..., 0], rgb[..., 2])


def test_rgba_is_flattened_onto_white():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 255))
    rgba.putpixel((0, 0), (0, 0, 0, 0))
    rgb = load_image(encode(rgba))
    assert rgb.mode == "RGB"
    assert rgb.getpixel((0, 0)) == (255, 255, 255)
    assert rgb.getpixel((1, 1)) == (255, 0, 0)


def test_sixteen_bit_grayscale_keeps_brightness():
    values = np.array([[0, 257 * 100], [257 * 200, 65535]], dtype=np.uint16)
    image = Image.fromarray(values)
    rgb = np.asarray(load_image(encode(image)))
    assert rgb[..., 0].tolist() == [[0, 100], [200, 255]]


def test_thirty_two_bit_integer_mode_is_read_as_sixteen_bit():
    image = Image.fromarray(np.array([[0, 65535]], dtype=np.int32))
    assert np.asarray(load_image(encode(image, "TIFF")))[..., 0].tolist() == [[0, 255]]


def test_cmyk_jpeg_becomes_rgb():
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red ink mix
    rgb = load_image(encode(cmyk, "JPEG", quality=95))
    red, green, blue = rgb.getpixel((8, 8))
    assert rgb.mode == "RGB" and red > 200 and green < 60 and blue < 60


def test_palette_with_transparency():
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    palette.putpixel((0, 0), 0)
    palette.info["transparency"] = 0
    rgb = load_image(encode(palette))
    assert rgb.getpixel((0, 0)) == (255, 255, 255)
    assert rgb.getpixel((2, 2)) == (0, 0, 255)


def test_animated_gif_uses_first_frame():
    frames = [Image.new("RGB", (8, 8), color) for color in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert Image.open(io.BytesIO(data)).n_frames == 3
    assert load_image(data).getpixel((4, 4)) == (255, 0, 0)


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 20, 20))  # red on the left half as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    upright = load_image(encode(image, "JPEG", exif=exif, quality=95))
    assert upright.size == (20, 40)
    red, _, blue = upright.getpixel((10, 5))  # the stored left half is now on top
    assert red > 200 and blue < 60


@pytest.mark.parametrize("data, expected", [
    (b"", "the file is empty"),
    (b"name,label\nimg_1.jpg,3\n", "not an image"),
    (b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4, "not an image|corrupt"),
])
def test_unusable_bytes_are_refused_with_the_file_name(data, expected):
    with pytest.raises(ImageLoadError, match=rf"^upload\.jpg: ({expected})"):
        load_image(data, name="upload.jpg")


def test_truncated_jpeg(grace_hopper_path):
    data = grace_hopper_path.read_bytes()
    with pytest.raises(ImageLoadError, match=r"^hopper\.jpg: corrupt or truncated"):
        load_image(data[: len(data) // 2], name="hopper.jpg")


@pytest.mark.parametrize("width, height", [(10_000, 10_000), (20_000, 20_000)])
def test_decompression_bombs_are_refused_before_decoding(width, height):
    # 1e8 pixels only makes Pillow warn; 4e8 makes it raise: both must be refusals.
    with pytest.raises(ImageLoadError, match=r"^bomb\.png: .*decompression bomb"):
        load_image(png_header_only(width, height), name="bomb.png")


def test_pixel_limit_is_an_option():
    with pytest.raises(ImageLoadError, match="more than the limit of 100 pixels"):
        load_image(encode(Image.new("RGB", (20, 20))), name="small.png", max_pixels=100)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(ImageLoadError, match="missing.jpg: cannot read the file"):
        load_image(tmp_path / "missing.jpg")


def test_floating_point_image_is_stretched_to_full_range():
    image = Image.fromarray(np.array([[-1.0, 0.0, 1.0]], dtype=np.float32))
    assert np.asarray(load_image(encode(image, "TIFF")))[..., 0].tolist() == [[0, 128, 255]]
