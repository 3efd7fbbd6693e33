"""FER2013 (Kaggle's `fer2013.csv`): one row per 48×48 grey face.

Columns `emotion` (0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral), `pixels`
(2304 space-separated grey values) and `Usage` (Training, PublicTest, PrivateTest). Training trains,
PublicTest is the validation split and PrivateTest the test split, as the FER2013 and FERPlus papers
use them. Images are named `fer0000000.png` by their 0-based row, as FERPlus's `Image name` names
them, so a noise file written for either names the same images.
"""
from pathlib import Path

from scn.classes import CLASS_NAMES, class_index
from scn.formats.sources import DatasetError, PixelRow, group, integer, read_csv

CSV_NAME = "fer2013.csv"
EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
USAGES = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
PIXELS = 48 * 48


def image_name(row: int) -> str:
    """FERPlus's name of the image in 0-based csv row `row`."""
    return f"fer{row:07d}.png"


def read_rows(root: Path) -> list:
    """[(line, emotion or None, split, PixelRow)] of `root/fer2013.csv`, checked row by row. The
    emotion is FER2013's own 0–6, None where the csv has no emotion column (FERPlus needs none)."""
    path = root / CSV_NAME
    rows = []
    for line, row in read_csv(path, columns=("pixels", "Usage")):
        split = USAGES.get(row["Usage"])
        if split is None:
            raise DatasetError(f"{path}, line {line}: Usage {row['Usage'][:40]!r} is not one of "
                               f"{', '.join(USAGES)}")
        emotion = None
        if "emotion" in row:
            emotion = integer(row["emotion"], path=path, line=line, column="emotion")
            if not 0 <= emotion < len(EMOTIONS):
                raise DatasetError(f"{path}, line {line}: emotion {emotion} is outside 0–6 "
                                   f"({', '.join(f'{i} {n}' for i, n in enumerate(EMOTIONS))})")
        # Counting separators is cheap; a short row is what a truncated download leaves.
        count = row["pixels"].count(" ") + 1 if row["pixels"] else 0
        if count != PIXELS:
            raise DatasetError(f"{path}, line {line}: {count} pixel values where a 48×48 face has {PIXELS} "
                               "(a truncated or damaged file?)")
        rows.append((line, emotion, split, PixelRow(path=path, line=line, pixels=row["pixels"])))
    return rows


def splits(root: Path) -> tuple:
    """({split: (names, labels, sources)}, class names) of a FER2013 folder."""
    rows = read_rows(root)
    if rows[0][1] is None:
        raise DatasetError(f"{root / CSV_NAME}, line 1: no column 'emotion'")
    index = [class_index(name) for name in EMOTIONS]
    found = group([(split, image_name(i), index[emotion], source)
                   for i, (_, emotion, split, source) in enumerate(rows)])
    for split in ("train", "test"):
        if split not in found:
            usage = next(u for u, s in USAGES.items() if s == split)
            raise DatasetError(f"{root / CSV_NAME} has no {usage} rows")
    return found, CLASS_NAMES
