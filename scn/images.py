"""Where a run's training images are on disk: checking a dataset folder before training, and
finding (and shrinking) a sample's image for galleries and tables.

A run stores sample names, not absolute paths, so a moved run folder still opens; its images are
found through config['data'] and the dataset's layout, and may simply be unreachable.
"""
import base64
import io
from pathlib import Path

from PIL import Image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
RAFDB_LABEL_FILE = Path("EmoLabel") / "list_patition_label.txt"
RAFDB_ALIGNED = Path("Image") / "aligned"


def check_dataset(path, *, format: str) -> str | None:
    """None when `path` looks trainable in `format` ('rafdb' or 'imagefolder'), else a sentence
    saying what is wrong, for the new-run form to show before anything is spawned."""
    root = Path(str(path)).expanduser()
    if not str(path).strip():
        return "Enter the dataset folder."
    if not root.is_dir():
        return f"The folder {root} does not exist."
    if format == "rafdb":
        if not (root / RAFDB_LABEL_FILE).is_file():
            return f"{root} has no {RAFDB_LABEL_FILE} (RAF-DB layout expected)."
        if not _has_images(root / RAFDB_ALIGNED):
            return f"{root / RAFDB_ALIGNED} holds no images."
        return None
    if format == "imagefolder":
        folders = [d for d in root.iterdir() if d.is_dir() and _has_images(d)]
        if not folders:
            return f"{root} has no class folders with images (one sub-folder per class expected)."
        return None
    return f"Unknown dataset format {format!r}."


def _has_images(folder: Path) -> bool:
    return folder.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir())


def image_path(*, data, format: str, name: str) -> Path:
    """The file of training sample `name` in the dataset at `data`: RAF-DB keeps aligned faces as
    Image/aligned/<name without .jpg>_aligned.jpg; ImageFolder names are relative paths."""
    root = Path(str(data)).expanduser()
    if format == "rafdb":
        stem = Path(name).stem
        if not stem.endswith("_aligned"):
            stem += "_aligned"
        return root / RAFDB_ALIGNED / f"{stem}.jpg"
    return root / name


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
