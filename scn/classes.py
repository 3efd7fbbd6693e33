"""Canonical expression classes and the label orders of the datasets people bring.

Every format maps to these names, never by position: the label orders of FER datasets differ.
"""
CLASS_NAMES = ("surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral")
CLASS_NAMES_WITH_CONTEMPT = CLASS_NAMES + ("contempt",)

# RAF-DB's list_patition_label.txt is 1-based in exactly the canonical order.
RAFDB_LABELS = {i + 1: name for i, name in enumerate(CLASS_NAMES)}

ALIASES = {
    "surprised": "surprise", "fearful": "fear", "afraid": "fear", "disgusted": "disgust",
    "happy": "happiness", "joy": "happiness", "sad": "sadness", "angry": "anger",
    "anger": "anger", "neutral": "neutral", "contemptuous": "contempt",
}


def canonical_name(name: str) -> str:
    """Map a dataset's class name (any case, common synonyms) to the canonical name."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in CLASS_NAMES_WITH_CONTEMPT:
        raise ValueError(
            f"unknown expression class {name!r}; expected one of {', '.join(CLASS_NAMES_WITH_CONTEMPT)}"
        )
    return key


def class_index(name: str, *, class_names=CLASS_NAMES) -> int:
    """Index of a class name in `class_names`, after canonicalising it."""
    canonical = canonical_name(name)
    if canonical not in class_names:
        raise ValueError(f"class {name!r} is not among this dataset's classes {list(class_names)}")
    return class_names.index(canonical)
