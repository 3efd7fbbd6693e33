import math

import numpy as np
import pandas as pd
import pytest

from scn.metrics import (attention_scores, auroc, labels_by_epoch, relabel_quality, run_scores,
                         truth_ambiguity, truth_table)
from scn.store import RunReader


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


def test_labels_by_epoch_are_those_trained_with_before_that_epochs_relabels():
    labels = labels_by_epoch([0, 1, 2], events([(2, 0, 0, 5), (2, 0, 5, 6), (3, 2, 2, 4)]), [1, 2, 3, 4])
    assert labels.tolist() == [[0, 1, 2], [0, 1, 2], [6, 1, 2], [6, 1, 4]]


def test_attention_scores_follow_the_labels_wrong_at_each_epoch():
    # Sample 0 is noisy and fixed in epoch 1; sample 2 is clean and broken in epoch 1.
    original, true = [1, 0, 2, 3], [0, 0, 2, 3]
    alpha = np.array([[0.1, 0.9, 0.8, 0.7],    # epoch 1: low alpha on the noisy sample 0
                      [0.9, 0.8, 0.1, 0.7]])   # epoch 2: low alpha on sample 2, wrong since epoch 1
    scores = attention_scores([1, 2], alpha, original=original, true=true, events=events([(1, 0, 1, 0),
                                                                                         (1, 2, 2, 1)]),
                              ambiguous=[False, False, True, False])
    assert scores["wrong_now"].tolist() == [1, 1]
    assert scores["auroc_wrong_now"].tolist() == [1.0, 1.0]
    assert scores["auroc_noisy"].tolist() == [1.0, 0.0]
    assert scores["auroc_ambiguous"].tolist() == [pytest.approx(1 / 3), 1.0]
    assert "auroc_ambiguous" not in attention_scores([1], alpha[:1], original=original, true=true,
                                                     events=events([]))


def test_truth_ambiguity_is_recomputed_for_tables_written_before_it_was_recorded():
    from scn.synth.expressions import ACTION_UNITS, prototype_vector

    row = {"true_class": "happiness", "occlusion": "none",
           **{f"au{au:02d}": v for au, v in zip(ACTION_UNITS, prototype_vector("happiness"))}}
    old = pd.DataFrame([row])
    assert truth_ambiguity(old) == pytest.approx([0.0], abs=0.01)
    assert truth_ambiguity(old.assign(ambiguity=[0.7])).tolist() == [0.7]
    assert np.isnan(truth_ambiguity(pd.DataFrame({"true_class": ["fear"]}))).all()


def test_labels_by_epoch_match_what_the_trainer_recorded(trained_runs):
    reader = RunReader(trained_runs["scn"])
    epochs = reader.attention_epochs()
    events_ = reader.relabels()
    assert len(events_)  # the fixture's SCN run relabels, so the check below means something
    expected = np.stack([reader.attention(epoch)["label"].to_numpy() for epoch in epochs])
    assert np.array_equal(labels_by_epoch(reader.original_labels(), events_, epochs), expected)


def test_run_scores_of_a_real_run(trained_runs):
    scores = run_scores(RunReader(trained_runs["scn"]))
    assert scores["epoch"].tolist() == [1, 2, 3, 4]
    assert scores[["auroc_wrong_now", "alpha_auroc"]].notna().all().all()
    assert scores["wrong_labels"].iloc[0] == scores["noisy_total"].iloc[0] - scores["noisy_fixed"].iloc[0] \
        + scores["clean_broken"].iloc[0]
