"""Datasets on disk → decoded once into uint8 tensors in memory.

Formats: RAF-DB basic (`EmoLabel/list_patition_label.txt` + `Image/aligned/*_aligned.jpg`), a
class-per-folder ImageFolder (`train/<class>/…` and `test/<class>/…`, or class folders alone, split
80/20 by a seeded draw), and FER2013, FERPlus and AffectNet (scn.formats: pixels in a csv, or a face
box per photo). Classes map to the canonical ones by name, never by position.

Decoding JPEGs every epoch would cost more than a small ResNet step on a CPU, so each image is
decoded and resized exactly once; augmentation then works on batches of tensors (scn.augment).
A dataset too large to hold decoded in memory (AffectNet) is decoded once into memory-mapped files
that later runs reuse (scn.decoded); its splits read their batches from there.
"""
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from scn import decoded
from scn.classes import CLASS_NAMES, CLASS_NAMES_WITH_CONTEMPT, RAFDB_LABELS, class_index
from scn.formats import FORMATS, affectnet, fer2013, ferplus
from scn.formats.sources import DatasetError
from scn.images import ImageLoadError, load_image
from scn.label_lines import read_name_labels
from scn.noise_files import NoiseFileError, match_names, read_noise_file

RAFDB_LABEL_FILE = Path("EmoLabel") / "list_patition_label.txt"
RAFDB_IMAGE_DIR = Path("Image") / "aligned"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


@dataclass
class Split:
    """One split of a dataset: file names (relative to the dataset root), labels and pixels: a
    uint8 tensor [N, 3, S, S] in memory, or scn.decoded.DiskImages, read from disk by the batch."""

    names: list
    labels: torch.Tensor
    images: "torch.Tensor | decoded.DiskImages | None" = None
    bad: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, positions) -> "Split":
        """The samples at `positions`; pixels on disk stay there (a view of the rows), pixels in
        memory are copied."""
        positions = torch.as_tensor(positions, dtype=torch.long)
        if self.images is None:
            images = None
        elif isinstance(self.images, decoded.DiskImages):
            images = self.images.take(positions)
        else:
            images = self.images[positions]
        return Split(names=[self.names[i] for i in positions.tolist()], labels=self.labels[positions],
                     images=images)


@dataclass
class Dataset:
    root: Path
    format: str
    class_names: tuple
    train: Split
    test: Split
    val: Split | None = None  # a dataset's own validation split (FER2013's PublicTest)
    decoded_cache: str = "memory"  # where the pixels are: memory, or disk (scn.decoded)
    # What about the data a user should hear before training on it (a noise file listing only part
    # of the training images), in sentences for the run's log.
    warnings: list = field(default_factory=list)


def rafdb_image_path(root: Path, name: str) -> Path:
    """`train_00001.jpg` → `Image/aligned/train_00001_aligned.jpg` (RAF-DB's aligned naming)."""
    stem, suffix = Path(name).stem, Path(name).suffix or ".jpg"
    return Path(root) / RAFDB_IMAGE_DIR / f"{stem}_aligned{suffix}"


def read_label_file(path: Path, *, valid=RAFDB_LABELS) -> dict:
    """Parse the `name label` lines of RAF-DB's label list (1-based) into {name: 0-based label}."""
    if not path.is_file():
        raise DatasetError(f"label file not found: {path}")
    labels = {}
    for number, name, label in read_name_labels(path, error=DatasetError):
        if label not in valid:
            raise DatasetError(
                f"{path}, line {number}: label {label} is outside {min(valid)}–{max(valid)} "
                f"(RAF-DB labels are 1-based: {', '.join(f'{k} {v}' for k, v in valid.items())})"
            )
        labels[name] = label - 1
    if not labels:
        raise DatasetError(f"label file {path} holds no labels")
    return labels


def _rafdb_splits(root: Path) -> tuple:
    labels = read_label_file(root / RAFDB_LABEL_FILE)
    splits = {}
    for split in ("train", "test"):
        names = sorted(n for n in labels if n.startswith(split))
        if not names:
            raise DatasetError(f"{root / RAFDB_LABEL_FILE} lists no {split} images (names start with '{split}_')")
        paths = [rafdb_image_path(root, n) for n in names]
        splits[split] = (names, [labels[n] for n in names], paths)
    return splits, CLASS_NAMES


def _class_folders(folder: Path) -> dict:
    return {d.name: d for d in sorted(folder.iterdir()) if d.is_dir()}


def _imagefolder_splits(root: Path, *, seed: int) -> tuple:
    top = _class_folders(root)
    split_roots = {s: top[s] for s in ("train", "test") if s in top}
    if len(split_roots) == 1:
        raise DatasetError(f"{root} has a '{next(iter(split_roots))}' folder but not both train/ and test/")
    groups = {s: _class_folders(d) for s, d in split_roots.items()} if split_roots else {"all": top}
    present = {name for folders in groups.values() for name in folders}
    if not present:
        raise DatasetError(f"{root} holds no class folders (expected e.g. happy/, sad/, … or train/ and test/)")
    class_names = CLASS_NAMES_WITH_CONTEMPT if any(
        name.lower().startswith("contempt") for name in present) else CLASS_NAMES
    try:
        index = {name: class_index(name, class_names=class_names) for name in present}
    except ValueError as exc:
        raise DatasetError(f"{root}: {exc}") from None
    collected = {}
    for split, folders in groups.items():
        items = [(str(p.relative_to(root)), index[name], p) for name, folder in folders.items()
                 for p in sorted(folder.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES]
        if not items:
            raise DatasetError(f"{split_roots.get(split, root)} holds no images")
        collected[split] = items
    if "all" in collected:
        items = collected.pop("all")
        order = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed)).tolist()
        cut = max(1, len(items) // 5)
        collected = {"test": [items[i] for i in sorted(order[:cut])],
                     "train": [items[i] for i in sorted(order[cut:])]}
    splits = {s: ([n for n, _, _ in it], [l for _, l, _ in it], [p for _, _, p in it])
              for s, it in collected.items()}
    return splits, class_names


def decode_image(path: Path, *, size: int) -> np.ndarray:
    """RGB uint8 array of shape (3, size, size), decoded by scn.images.load_image (EXIF
    orientation, 16-bit, CMYK, palette, alpha) so that training sees a photo as predict does."""
    image = load_image(path)
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1).copy()


def _decode_one(path, *, size: int) -> tuple:
    """(array, None) for an image that decodes, (None, the message naming it) for one that does not."""
    if not path.is_file():
        return None, f"{path}: missing"
    try:
        # Sources of scn.formats (csv pixel rows, face boxes) decode themselves.
        array = decode_image(path, size=size) if isinstance(path, Path) else path.decode(size=size)
        return array, None
    except ImageLoadError as exc:
        return None, f"{path}: unreadable ({str(exc).removeprefix(f'{path}: ')})"


def _decode_all(paths: list, *, size: int, workers: int) -> tuple:
    # PIL releases the GIL while decoding, so threads use every core without pickling pixels.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(partial(_decode_one, size=size), paths))
    return [r[0] for r in results], [r[1] for r in results]


def list_splits(root, *, format: str = "rafdb", noise_file=None, noise_format: str | None = None,
                seed: int = 0, contempt: bool = True, warnings: list | None = None) -> tuple:
    """({split: (names, labels, paths)}, class names) of a dataset folder, decoding nothing: what
    load_dataset will read, so a folder can be checked before a trainer is started on it. Splits
    are train and test, and val where the dataset has its own (FER2013, FERPlus). Paths are
    files, or scn.formats sources for csv pixels and face boxes. A `noise_file`
    (scn.noise_files: SCN or EAC format, detected unless `noise_format` says) replaces the labels
    of the training images it lists; `warnings`, a list, hears when it lists only some of them.
    `contempt=False` drops FERPlus's and AffectNet's contempt faces for 7 classes."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    if format == "rafdb":
        splits, class_names = _rafdb_splits(root)
    elif format == "imagefolder":
        splits, class_names = _imagefolder_splits(root, seed=seed)
    elif format == "fer2013":
        splits, class_names = fer2013.splits(root)
    elif format in ("ferplus", "affectnet"):
        splits, class_names = {"ferplus": ferplus, "affectnet": affectnet}[format].splits(root, contempt=contempt)
    else:
        raise DatasetError(f"unknown dataset format {format!r}; use one of {', '.join(FORMATS)}")
    if noise_file is not None:
        splits["train"], partial = _with_noise_file(splits, noise_file=noise_file, noise_format=noise_format,
                                                    num_classes=len(class_names))
        if partial and warnings is not None:
            warnings.append(partial)
    return splits, class_names


def _with_noise_file(splits: dict, *, noise_file, noise_format, num_classes: int) -> tuple:
    names, labels, paths = splits["train"]
    try:
        noisy, _ = read_noise_file(noise_file, format=noise_format, num_classes=num_classes)
        replaced = match_names(noisy, names, test_names=splits["test"][0])
    except NoiseFileError as exc:
        # Most messages name the file already; those about its contents as a whole do not.
        raise DatasetError(str(exc) if str(noise_file) in str(exc) else f"{noise_file}: {exc}") from None
    partial = None
    if len(replaced) < len(names):
        partial = (f"the noise file {noise_file} lists {len(replaced):,} of the {len(names):,} training "
                   f"images; the other {len(names) - len(replaced):,} keep the dataset's labels (a noise "
                   "file lists every training image: is this one cut short?)")
    return (names, [replaced.get(name, label) for name, label in zip(names, labels)], paths), partial


def check_dataset(path, *, format: str, noise_file=None, noise_format: str | None = None,
                  contempt: bool = True) -> str | None:
    """None when `path` lists as a dataset in `format` (as the trainer will read it) and its first
    images exist, else a sentence saying what is wrong, for the new-run form to show before
    anything is spawned."""
    if not str(path).strip():
        return "Enter the dataset folder."
    try:
        splits, _ = list_splits(Path(str(path)).expanduser(), format=format, noise_file=noise_file,
                                noise_format=noise_format, contempt=contempt)
    except DatasetError as exc:
        return str(exc)
    for split, (_, _, paths) in splits.items():
        missing = [p for p in paths[:20] if not p.is_file()]
        if missing:
            return f"{len(missing)} of the first {min(20, len(paths))} {split} images are missing, e.g. {missing[0]}."
    return None


def load_dataset(root, *, format: str = "rafdb", image_size: int, noise_file=None,
                 noise_format: str | None = None, skip_bad: bool = False, seed: int = 0,
                 workers: int = 2, contempt: bool = True, decoded_cache: str = "auto",
                 progress: bool = False, log=None) -> Dataset:
    """Read a dataset and decode every image once at `image_size`.

    `decoded_cache` (scn.config.DECODED_CACHES) keeps the pixels in memory, or on disk in files
    that later loads of the same files reuse (scn.decoded; `progress` shows a bar while they are
    built, `log` hears when a build starts and ends); `auto` chooses disk for a dataset over
    scn.decoded.AUTO_DISK_BYTES. Missing or corrupt
    images raise DatasetError naming them, unless `skip_bad`, which drops them and lists them in
    `Split.bad` for the run log.
    """
    root = Path(root)
    warnings = []
    splits, class_names = list_splits(root, format=format, noise_file=noise_file, noise_format=noise_format,
                                      seed=seed, contempt=contempt, warnings=warnings)
    mode = decoded.resolve_mode(decoded_cache, images=sum(len(paths) for _, _, paths in splits.values()),
                                size=image_size)
    loaded = {}
    for split, (names, labels, paths) in splits.items():
        if mode == "disk":
            images, errors = decoded.cached_split(paths, decode=partial(_decode_one, size=image_size), root=root,
                                                  format=format, size=image_size, split=split,
                                                  workers=workers, progress=progress, log=log)
        else:
            arrays, errors = _decode_all(paths, size=image_size, workers=workers)
        bad = [e for e in errors if e is not None]
        if bad and not skip_bad:
            shown = "\n  ".join(bad[:10])
            more = f"\n  … and {len(bad) - 10} more" if len(bad) > 10 else ""
            raise DatasetError(
                f"{len(bad)} of {len(paths)} {split} images could not be read "
                f"(use --skip-bad to train without them):\n  {shown}{more}"
            )
        keep = [i for i, e in enumerate(errors) if e is None]
        if not keep:
            raise DatasetError(f"none of the {len(paths)} {split} images in {root} could be read")
        loaded[split] = Split(
            names=[names[i] for i in keep],
            labels=torch.tensor([labels[i] for i in keep], dtype=torch.long),
            images=images.take(keep) if mode == "disk" else torch.from_numpy(np.stack([arrays[i] for i in keep])),
            bad=bad,
        )
    return Dataset(root=root, format=format, class_names=class_names, train=loaded["train"],
                   test=loaded["test"], val=loaded.get("val"), decoded_cache=mode, warnings=warnings)


def split_validation(train: Split, *, fraction: float, seed: int) -> tuple:
    """Hold out a seeded `fraction` of the training split for model selection (never the test set)."""
    if fraction <= 0:
        return train, None
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed + 7919))
    cut = max(1, int(round(fraction * len(train))))
    return train.subset(order[cut:].sort().values), train.subset(order[:cut].sort().values)
