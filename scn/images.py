"""Where a run's training images are on disk: checking a dataset folder before training, and
finding (and shrinking) a sample's image for galleries and tables.

A run stores sample names, not absolute paths, so a moved run folder still opens; its images are
found through config['data'] and the dataset's layout, and may simply be unreachable.
"""
import base64
import io
from pathlib import Path

from PIL import Image

from scn.data import DatasetError, list_splits, rafdb_image_path


def check_dataset(path, *, format: str, noise_file=None) -> str | None:
    """None when `path` lists as a dataset in `format` (as the trainer will read it) and its first
    images exist, else a sentence saying what is wrong, for the new-run form to show before
    anything is spawned."""
    if not str(path).strip():
        return "Enter the dataset folder."
    try:
        splits, _ = list_splits(Path(str(path)).expanduser(), format=format, noise_file=noise_file)
    except DatasetError as exc:
        return str(exc)
    for split, (_, _, paths) in splits.items():
        missing = [p for p in paths[:20] if not p.is_file()]
        if missing:
            return f"{len(missing)} of the first {min(20, len(paths))} {split} images are missing, e.g. {missing[0]}."
    return None


def image_path(*, data, format: str, name: str) -> Path:
    """The file of training sample `name` in the dataset at `data`: RAF-DB keeps aligned faces as
    Image/aligned/<name without .jpg>_aligned.jpg; ImageFolder names are relative paths."""
    root = Path(str(data)).expanduser()
    return rafdb_image_path(root, name) if format == "rafdb" else root / name


def thumbnail(path, *, size: int = 96) -> bytes | None:
    """A JPEG of the image at `path` at most `size` pixels on a side; None when it is unreadable."""
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            image.thumbnail((size, size))
            out = io.BytesIO()
            image.save(out, format="JPEG", quality=85)
            return out.getvalue()
    except (OSError, ValueError):
        return None


def data_uri(jpeg: bytes | None) -> str | None:
    """A data: URI for an inline image (table cells), or None."""
    return None if jpeg is None else "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
