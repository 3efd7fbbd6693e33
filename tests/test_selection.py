"""Model selection: the validation split chooses the reported epoch, the test split never does."""
import pandas as pd

from scn.selection import BY_LAST_EPOCH, BY_VALIDATION, selected_epoch


def epochs(val, test):
    return pd.DataFrame({"epoch": range(1, len(test) + 1), "val_accuracy": val, "test_accuracy": test})


def test_the_epoch_of_highest_validation_accuracy_reports_its_test_accuracy():
    chosen = selected_epoch(epochs([0.5, 0.7, 0.7, 0.6], [0.4, 0.55, 0.9, 0.95]))
    # The first of equal validation accuracies, as the trainer keeps `best`; not the test maximum.
    assert chosen == {"epoch": 2, "test_accuracy": 0.55, "val_accuracy": 0.7, "by": BY_VALIDATION}


def test_without_a_validation_split_the_last_epoch_is_reported_not_the_test_maximum():
    chosen = selected_epoch(epochs([None, None, None], [0.4, 0.9, 0.6]))
    assert chosen == {"epoch": 3, "test_accuracy": 0.6, "val_accuracy": None, "by": BY_LAST_EPOCH}


def test_no_epoch_yet_selects_nothing():
    assert selected_epoch(epochs([], [])) is None
