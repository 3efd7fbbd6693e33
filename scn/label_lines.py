"""The `NAME LABEL` line format shared by RAF-DB's label list and the label-noise files: one image
name and one whole-number label a line, blank lines ignored, each image listed once."""
from pathlib import Path


def read_name_labels(path, *, error: type) -> list:
    """[(line number, name, label as written)] of the file at `path`. Raises `error` naming the
    line for a line that is not NAME LABEL, and both lines for an image listed twice."""
    path = Path(path)
    entries, first_seen = [], {}
    # utf-8-sig: a byte-order mark (Windows editors write one) would otherwise stick to the first
    # name, and that image would silently match nothing.
    for number, line in enumerate(path.read_text(encoding="utf-8-sig", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise error(f"{path}, line {number}: expected 'NAME LABEL', found {line.strip()!r}")
        if parts[0] in first_seen:
            raise error(f"{path}, lines {first_seen[parts[0]]} and {number}: {parts[0]} is listed "
                        "twice; keep one line per image")
        first_seen[parts[0]] = number
        entries.append((number, parts[0], int(parts[1])))
    return entries
