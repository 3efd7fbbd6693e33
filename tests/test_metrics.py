import math

import pandas as pd
import pytest

from scn.metrics import auroc, relabel_quality, truth_table


def test_auroc_perfect_inverse_and_ties():
    assert auroc([0.1, 0.2, 0.8, 0.9], [False, False, True, True]) == 1.0
    assert auroc([0.9, 0.8, 0.2, 0.1], [False, False, True, True]) == 0.0
    assert auroc([0.5, 0.5, 0.5, 0.5], [False, True, False, True]) == 0.5
    # one positive (0.6) above 2 of 3 negatives, tied with none: 2/3
    assert auroc([0.6, 0.1, 0.5, 0.7], [True, False, False, False]) == pytest.approx(2 / 3)
    assert math.isnan(auroc([0.1, 0.2], [True, True]))


def events(rows):
    return pd.DataFrame(rows, columns=["epoch", "idx", "old", "new"])


def test_relabel_quality_hand_made():
    original = [0, 1, 2, 3, 4, 5]
    true = [0, 1, 2, 0, 0, 5]  # samples 3 and 4 carry noisy labels
    quality = relabel_quality(original=original, true=true, events=events([
        (2, 3, 3, 0),  # fixes a noisy label
        (2, 1, 1, 2),  # breaks a clean label
        (3, 4, 4, 1),  # relabels a noisy sample, but to the wrong class
        (3, 1, 2, 1),  # restores the label broken in epoch 2
    ]), epochs=[1, 2, 3])
    rows = quality.set_index("epoch")
    assert rows.loc[1, "relabels"] == 0 and math.isnan(rows.loc[1, "precision"])
    assert rows.loc[2, "precision"] == 0.5 and rows.loc[2, "recall"] == 0.5
    assert rows.loc[2, "clean_broken"] == 1 and rows.loc[2, "damage"] == pytest.approx(1 / 4)
    assert rows.loc[3, "precision"] == 0.5 and rows.loc[3, "recall"] == 0.5
    assert rows.loc[3, "clean_broken"] == 0 and rows.loc[3, "noisy_total"] == 2


def test_relabel_quality_without_events():
    quality = relabel_quality(original=[0, 1], true=[0, 0], events=events([]), epochs=[1])
    assert quality["relabels"].tolist() == [0] and quality["recall"].tolist() == [0.0]


def test_truth_table_joins_by_name_and_flags_noise():
    samples = pd.DataFrame({"idx": [0, 1], "name": ["train_00002.jpg", "train_00001.jpg"], "label": [3, 4]})
    groundtruth = pd.DataFrame({"image": ["train_00001_aligned.jpg", "train_00002_aligned.jpg"],
                                "true_label": [5, 4], "occlusion": ["none", "hand"]})
    truth = truth_table(samples, groundtruth)
    assert truth["true_label"].tolist() == [3, 4]
    assert truth["is_noisy"].tolist() == [False, False]
    assert truth["occlusion"].tolist() == ["hand", "none"]
    with pytest.raises(ValueError, match="lacks training images"):
        truth_table(samples, groundtruth.iloc[:1])
