"""A run's training images for galleries and tables: found on disk and shrunk.

A run stores sample names, not absolute paths, so a moved run folder still opens; its images are
found through config['data'] and the dataset's layout, and may simply be unreachable.
"""
import base64
import io
from pathlib import Path

from scn.data import rafdb_image_path
from scn.formats import affectnet
from scn.images import ImageLoadError, load_image


def image_path(*, data, format: str, name: str) -> Path:
    """The file of training sample `name` in the dataset at `data`: RAF-DB keeps aligned faces as
    Image/aligned/<name without .jpg>_aligned.jpg; ImageFolder names are relative paths, AffectNet's
    relative to its image folder (the whole photo, not the face box). FER2013 and FERPlus faces
    live in a csv, not a file, so their path leads nowhere and they have no thumbnail."""
    root = Path(str(data)).expanduser()
    if format == "rafdb":
        return rafdb_image_path(root, name)
    return (affectnet.image_dir(root) if format == "affectnet" else root) / name


def thumbnail(path, *, size: int = 96) -> bytes | None:
    """A JPEG of the image at `path` at most `size` pixels on a side; None when it is missing or
    cannot be decoded (scn.images turns every odd format into upright RGB or refuses it)."""
    try:
        image = load_image(path)
    except ImageLoadError:
        return None
    image.thumbnail((size, size))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


def data_uri(jpeg: bytes | None) -> str | None:
    """A data: URI for an inline image (table cells), or None."""
    return None if jpeg is None else "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
