"""Model selection: which epoch of a run its reported test accuracy comes from.

The validation split chooses (the epoch of highest validation accuracy, the first of equals, as
the trainer writes the `best` checkpoint); the test split only reports. A run without a
validation split (--val-fraction 0) has nothing to choose with, so it reports its last epoch:
the maximum over the test epochs would choose the model on the test set and overstate it.
"""
import json
from pathlib import Path

import pandas as pd


BY_VALIDATION = "validation"
BY_LAST_EPOCH = "last epoch"


def selected_epoch(epochs: pd.DataFrame) -> dict | None:
    """The reported epoch of `epochs` (RunReader.epoch_metrics()): {"epoch", "test_accuracy",
    "val_accuracy", "by"}, with `by` BY_VALIDATION or BY_LAST_EPOCH; None before any epoch ends."""
    if not len(epochs):
        return None
    val = pd.to_numeric(epochs["val_accuracy"], errors="coerce")
    if val.notna().any():
        row, by = epochs.loc[val.idxmax()], BY_VALIDATION
    else:
        row, by = epochs.iloc[-1], BY_LAST_EPOCH
    test = row["test_accuracy"]
    return {"epoch": int(row["epoch"]), "test_accuracy": None if pd.isna(test) else float(test),
            "val_accuracy": None if by == BY_LAST_EPOCH else float(row["val_accuracy"]), "by": by}


def missing_best_reason(config_file) -> str:
    """Why the run whose config.json is `config_file` has no `best` checkpoint, as a clause for a message."""
    try:
        val_fraction = json.loads(Path(config_file).read_text()).get("val_fraction")
    except (OSError, ValueError):
        val_fraction = None
    if val_fraction == 0:
        return ("it trains without a validation split (--val-fraction 0), and the test split "
                "never chooses a checkpoint")
    return "the trainer writes it at the end of the first epoch"
