"""AffectNet: csv lists of photos with a face box and a manual expression label.

`training.csv` and `validation.csv` (in the folder or in `Manually_Annotated_file_lists/`) have the
columns subDirectory_filePath, face_x, face_y, face_width, face_height, facial_landmarks,
expression, valence, arousal. Photos lie under `Manually_Annotated_Images/` when the folder has
one, else under the folder itself. Expressions 0 neutral, 1 happy, 2 sad, 3 surprise, 4 fear,
5 disgust, 6 anger, 7 contempt are kept (contempt optionally); 8 none, 9 uncertain and 10 non-face
leave the dataset. Each face is cropped to its box; the validation list is the test split, as in
the papers (AffectNet's own test set is not public).
"""
from pathlib import Path

from scn.classes import CLASS_NAMES, CLASS_NAMES_WITH_CONTEMPT, class_index
from scn.formats.sources import DatasetError, FaceCrop, group, inside, integer, read_csv

LISTS = {"train": "training.csv", "test": "validation.csv"}
LIST_DIR = "Manually_Annotated_file_lists"
IMAGE_DIR = "Manually_Annotated_Images"
EXPRESSIONS = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt",
               "none", "uncertain", "non-face")
BOX = ("face_x", "face_y", "face_width", "face_height")


def image_dir(root: Path) -> Path:
    """The folder the csv's subDirectory_filePath values are relative to."""
    return root / IMAGE_DIR if (root / IMAGE_DIR).is_dir() else root


def list_path(root: Path, split: str) -> Path:
    """The csv list of `split`, where the AffectNet download or a flattened copy keeps it."""
    nested = root / LIST_DIR / LISTS[split]
    return nested if nested.is_file() else root / LISTS[split]


def splits(root: Path, *, contempt: bool = True) -> tuple:
    """({split: (names, labels, sources)}, class names) of an AffectNet folder: 8 classes with
    contempt, or 7 with contempt's faces dropped."""
    class_names = CLASS_NAMES_WITH_CONTEMPT if contempt else CLASS_NAMES
    index = {i: class_index(name, class_names=class_names)
             for i, name in enumerate(EXPRESSIONS[:8]) if contempt or name != "contempt"}
    images = image_dir(root)
    items = []
    for split in LISTS:
        path = list_path(root, split)
        for line, row in read_csv(path, columns=("subDirectory_filePath", "expression") + BOX):
            expression = integer(row["expression"], path=path, line=line, column="expression")
            if not 0 <= expression < len(EXPRESSIONS):
                raise DatasetError(f"{path}, line {line}: expression {expression} is outside 0–10 "
                                   f"({', '.join(f'{i} {n}' for i, n in enumerate(EXPRESSIONS))})")
            box = tuple(integer(row[c], path=path, line=line, column=c) for c in BOX)
            if box[2] <= 0 or box[3] <= 0:
                raise DatasetError(f"{path}, line {line}: face box {box} has no area")
            name = row["subDirectory_filePath"]
            if not name:
                raise DatasetError(f"{path}, line {line}: subDirectory_filePath is empty")
            if expression in index:
                source = FaceCrop(path=inside(images, name, path=path, line=line), box=box)
                items.append((split, name, index[expression], source))
    found = group(items)
    for split in LISTS:
        if split not in found:
            raise DatasetError(f"{list_path(root, split)} keeps no face with an expression 0–7")
    return found, class_names
