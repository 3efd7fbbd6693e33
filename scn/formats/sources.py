"""What the csv formats share: DatasetError, a csv reader whose messages carry line numbers, and
the two image sources that are not a whole file (a pixel string in a csv row, a face box in a photo).

A source has `is_file()` (is it there at all, as Path has) and `decode(size=...)`, which gives a
(3, size, size) uint8 array or raises ImageLoadError; `str(source)` says where it lives for messages.
"""
import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from scn.images import ImageLoadError, load_image


class DatasetError(ValueError):
    """A dataset folder or label file that cannot be used as it is; the message says why and where."""


def read_csv(path: Path, *, columns) -> list:
    """[(line number, {column: cell})] of a csv with a header row, skipping blank lines. A missing
    file, a missing column, a row with the wrong number of fields (a truncated or damaged file) or
    a quoting error raise DatasetError naming the file and the line."""
    if not path.is_file():
        raise DatasetError(f"{path} not found")
    rows = []
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as handle:
        reader = csv.reader(handle)
        try:
            header = [cell.strip() for cell in next(reader, [])]
            missing = [c for c in columns if c not in header]
            if missing:
                raise DatasetError(f"{path}, line 1: no column {', '.join(map(repr, missing))} "
                                   f"(the header reads {','.join(header) or 'nothing'})")
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    raise DatasetError(f"{path}, line {reader.line_num}: {len(row)} fields where the header "
                                       f"has {len(header)} (a truncated or damaged file?)")
                rows.append((reader.line_num, {c: cell.strip() for c, cell in zip(header, row)}))
        except csv.Error as exc:
            raise DatasetError(f"{path}, line {reader.line_num}: {exc}") from None
    if not rows:
        raise DatasetError(f"{path} holds a header but no rows")
    return rows


def integer(cell: str, *, path: Path, line: int, column: str) -> int:
    """`cell` as an int, or DatasetError naming the file, line and column."""
    try:
        return int(cell)
    except ValueError:
        raise DatasetError(f"{path}, line {line}: {column} {cell[:40]!r} is not a whole number") from None


def inside(folder: Path, name: str, *, path: Path, line: int) -> Path:
    """`folder / name` for a file name a list gives, refused (DatasetError naming the line) when
    it is absolute or climbs out of `folder` with '..': a list must not read files elsewhere."""
    target = folder / name
    if Path(name).is_absolute() or not target.resolve().is_relative_to(folder.resolve()):
        raise DatasetError(f"{path}, line {line}: {name!r} lies outside the dataset folder {folder}; "
                           "paths in the list must be relative to it")
    return target


def group(items: list) -> dict:
    """{split: (names, labels, sources)} of (split, name, label, source) items, each split present."""
    splits = {}
    for split, name, label, source in items:
        names, labels, sources = splits.setdefault(split, ([], [], []))
        names.append(name)
        labels.append(label)
        sources.append(source)
    return splits


def _to_array(image: Image.Image, *, size: int) -> np.ndarray:
    image = image.convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1).copy()


@dataclass(frozen=True)
class PixelRow:
    """A square grey image kept as space-separated values 0–255 in a csv row (FER2013: 48×48)."""

    path: Path
    line: int
    pixels: str

    def __str__(self) -> str:
        return f"{self.path}, line {self.line}"

    def is_file(self) -> bool:
        return True

    def decode(self, *, size: int) -> np.ndarray:
        try:
            values = np.array(self.pixels.split(), dtype=np.int64)
        except ValueError:
            raise ImageLoadError(f"{self}: pixels hold something other than whole numbers") from None
        side = int(round(len(values) ** 0.5))
        if side * side != len(values) or side == 0:
            raise ImageLoadError(f"{self}: {len(values)} pixel values do not make a square image "
                                 "(FER2013 rows hold 2304 = 48×48; a truncated file?)")
        if values.min() < 0 or values.max() > 255:
            raise ImageLoadError(f"{self}: pixel values outside 0–255")
        return _to_array(Image.fromarray(values.astype(np.uint8).reshape(side, side)), size=size)


@dataclass(frozen=True)
class FaceCrop:
    """The face box (left, top, width, height in pixels) of a photo (AffectNet's face_x, face_y,
    face_width, face_height), cropped before resizing as the dataset's authors intend."""

    path: Path
    box: tuple

    def __str__(self) -> str:
        return str(self.path)

    def is_file(self) -> bool:
        return self.path.is_file()

    def decode(self, *, size: int) -> np.ndarray:
        image = load_image(self.path)
        left, top, width, height = self.box
        if left >= image.width or top >= image.height or left + width <= 0 or top + height <= 0:
            raise ImageLoadError(f"{self.path}: face box {self.box} lies outside the "
                                 f"{image.width}×{image.height} image")
        # PIL pads a box that overhangs the edge with black, as a detector's box often does.
        return _to_array(image.crop((left, top, left + width, top + height)), size=size)
