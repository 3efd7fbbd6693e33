"""Label-noise files, both ways, in the two formats the noisy-FER literature ships.

    scn   the official SCN repository's `0.1noise_train.txt`, `0.2noise_train.txt`: one line per
          training image, `<path>/train_00001_aligned.jpg 4`: the aligned image's path and a
          0-based label in RAF-DB's order (0 surprise ... 6 neutral);
    eac   EAC's (Erasing Attention Consistency) `EmoLabel/noise01.txt` ... `noise03.txt`: one line
          per training image, `train_00001.jpg 5`, as RAF-DB's `list_patition_label.txt`:
          the image name and a 1-based label (1 surprise ... 7 neutral).

Both list training images only and replace their labels; test labels stay clean. A file's format
is told by its names (SCN's are paths to `_aligned` images), else by its labels (a 0 exists only
in SCN's 0-based files); pass `format` where a file shows neither. The names of a file are matched
to a dataset's training images by `match_names`: RAF-DB names with or without `_aligned` and
folder, or an ImageFolder image's path relative to the dataset root (or any path ending in it).
"""
from pathlib import Path

from scn.label_lines import read_name_labels

FORMATS = ("scn", "eac")
ALIGNED = "_aligned"


class NoiseFileError(ValueError):
    """A noise file that cannot be read or applied; the message names the file and the line."""


def scn_file_name(noise: float) -> str:
    """The official SCN name of a noise file, e.g. `0.1noise_train.txt`."""
    return f"{noise:g}noise_train.txt"


def eac_file_name(noise: float) -> str:
    """EAC's name of a noise file, e.g. `noise01.txt` for 10% (tenths of the rate, two digits)."""
    return f"noise{noise * 10:02g}.txt"


def write_noise_file(path, names, labels, *, format: str, image_dir: str = "Image/aligned") -> Path:
    """Write training `names` (RAF-DB names such as `train_00001.jpg`, or relative paths) with
    0-based `labels` as a noise file in `format`; SCN lines name the aligned image under
    `image_dir`. Returns the path."""
    _check_format(format)
    path = Path(path)
    with open(path, "w") as f:
        for name, label in zip(names, labels):
            if any(c.isspace() for c in str(name)):
                raise NoiseFileError(f"image name {name!r} holds white space, which the format cannot carry")
            if format == "scn":
                stem, dot, suffix = str(name).rpartition(".")
                f.write(f"{image_dir}/{stem}{ALIGNED}{dot}{suffix} {int(label)}\n")
            else:
                f.write(f"{name} {int(label) + 1}\n")
    return path


def read_noise_file(path, *, format: str | None = None, num_classes: int = 7) -> tuple:
    """({name as written: 0-based label}, format) of a noise file; `format` None detects it.

    Raises NoiseFileError for a missing or empty file, a malformed line, a label outside the
    format's range, or an image listed twice, naming the line(s)."""
    if format is not None:
        _check_format(format)
    path = Path(path)
    if not path.is_file():
        raise NoiseFileError(f"noise file not found: {path}")
    entries = read_name_labels(path, error=NoiseFileError)
    if not entries:
        raise NoiseFileError(f"noise file {path} holds no labels")
    format = format or _detect(entries)
    low = 0 if format == "scn" else 1
    meaning = f"{low}-based: {low} surprise … {low + 6} neutral"
    labels = {}
    for number, name, label in entries:
        if not low <= label < low + num_classes:
            raise NoiseFileError(f"{path}, line {number}: label {label} is outside {low}–{low + num_classes - 1}, "
                                 f"the {format.upper()} format's range ({meaning})")
        labels[name] = label - low
    return labels, format


def _detect(entries) -> str:
    aligned = [Path(name).stem.endswith(ALIGNED) for _, name, _ in entries]
    if all(aligned):
        return "scn"
    if any(aligned):
        number = next(n for (n, _, _), a in zip(entries, aligned) if a != aligned[0])
        raise NoiseFileError(f"line {number} names an image {'without' if aligned[0] else 'with'} the "
                             "'_aligned' suffix, unlike line 1: one file, one format")
    return "scn" if any(label == 0 for _, _, label in entries) else "eac"


def match_names(noisy: dict, train_names, *, test_names=()) -> dict:
    """{training image name: 0-based label} for every entry of a noise file. An entry matches a
    training name that equals it, or that its path ends with, once '_aligned' is dropped from its
    file name. Raises NoiseFileError naming entries that are test images or no image at all."""
    train = {str(name): str(name) for name in train_names}
    by_file_name = {}
    for name in train:
        by_file_name.setdefault(Path(name).name, []).append(name)
    # A bare file name matches only where no two training images share it.
    train |= {base: names[0] for base, names in by_file_name.items() if len(names) == 1 and base not in train}
    test = {str(n) for n in test_names} | {Path(str(n)).name for n in test_names}
    matched, in_test, unknown = {}, [], []
    for entry, label in noisy.items():
        parts = entry.replace("\\", "/").split("/")
        parts[-1] = parts[-1].replace(ALIGNED + ".", ".")
        candidates = ["/".join(parts[i:]) for i in range(len(parts))]
        found = next((train[c] for c in candidates if c in train), None)
        if found is not None:
            matched[found] = label
        elif any(c in test for c in candidates):
            in_test.append(entry)
        else:
            unknown.append(entry)
    if in_test:
        raise NoiseFileError(f"the noise file lists test images ({', '.join(in_test[:3])}): noise files "
                             "change training labels only, and the test set stays clean")
    if unknown:
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise NoiseFileError(f"the noise file names images that are not in the training set: "
                             f"{', '.join(unknown[:5])}{more}")
    return matched


def _check_format(format: str) -> None:
    if format not in FORMATS:
        raise NoiseFileError(f"noise file format must be one of {', '.join(FORMATS)}, got {format!r}")
