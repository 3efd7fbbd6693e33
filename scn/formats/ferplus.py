"""FERPlus: FER2013's faces (`fer2013.csv`) relabelled by ten annotators (`fer2013new.csv`).

`fer2013new.csv` has one row per `fer2013.csv` row, in the same order: `Usage`, `Image name`
(`fer0000000.png`) and vote counts for neutral, happiness, surprise, sadness, anger, disgust, fear,
contempt, unknown and NF (not a face). The label is the FERPlus authors' majority mode: single votes
are dropped as outliers, then the top emotion needs more than half of the remaining votes; ties,
faces without such a majority and those whose majority is unknown or NF leave the dataset. Splits
are FER2013's: Training, PublicTest (validation) and PrivateTest (test).
"""
from pathlib import Path

from scn.classes import CLASS_NAMES, CLASS_NAMES_WITH_CONTEMPT, class_index
from scn.formats import fer2013
from scn.formats.sources import DatasetError, group, integer, read_csv

CSV_NAME = "fer2013new.csv"
EMOTIONS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
VOTES = EMOTIONS + ("unknown", "NF")


def majority(votes) -> int | None:
    """Index into VOTES of the majority of `votes` (FERPlus's 'majority' mode), None when there is none."""
    kept = [v if v > 1 else 0 for v in votes]
    top = max(kept)
    if top == 0 or top * 2 <= sum(kept):
        return None
    return kept.index(top)


def splits(root: Path, *, contempt: bool = True) -> tuple:
    """({split: (names, labels, sources)}, class names) of a folder holding fer2013.csv and
    fer2013new.csv: 8 classes with contempt, or 7 with contempt's faces dropped."""
    faces = fer2013.read_rows(root)
    path = root / CSV_NAME
    votes = read_csv(path, columns=("Usage", "Image name") + VOTES)
    if len(votes) != len(faces):
        raise DatasetError(f"{path} has {len(votes)} rows and {root / fer2013.CSV_NAME} {len(faces)}; "
                           "FERPlus rows follow FER2013's one for one (a truncated file?)")
    class_names = CLASS_NAMES_WITH_CONTEMPT if contempt else CLASS_NAMES
    index = {i: class_index(name, class_names=class_names)
             for i, name in enumerate(EMOTIONS) if contempt or name != "contempt"}
    items = []
    for row_number, ((line, row), (_, _, split, source)) in enumerate(zip(votes, faces)):
        if fer2013.USAGES.get(row["Usage"]) != split:
            raise DatasetError(f"{path}, line {line}: Usage {row['Usage']!r} where {fer2013.CSV_NAME} "
                               f"line {source.line} says another split; the two files must list the "
                               "same faces in the same order")
        label = majority([integer(row[c], path=path, line=line, column=c) for c in VOTES])
        if label in index:
            items.append((split, row["Image name"] or fer2013.image_name(row_number), index[label], source))
    found = group(items)
    for split in ("train", "test"):
        if split not in found:
            raise DatasetError(f"{path} leaves no {split} faces with a majority label")
    return found, class_names
