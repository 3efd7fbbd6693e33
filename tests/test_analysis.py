import numpy as np
import pandas as pd
import pytest

from scn import analysis


def test_group_gap_and_histograms():
    alpha = np.array([[0.9, 0.7, 0.2, 0.4]])
    is_high = np.array([[1, 1, 0, 0]], bool)
    assert analysis.group_gap(alpha, is_high)[0] == pytest.approx(0.8 - 0.3)
    counts, edges = analysis.histograms(np.array([[0.1, 0.2, 0.9], [0.5, 0.5, 0.5]]), bins=4)
    assert counts.shape == (2, 4) and counts.sum(axis=1).tolist() == [3, 3]
    assert edges[0] == pytest.approx(0.1) and edges[-1] == pytest.approx(0.9)


def _samples(labels):
    return pd.DataFrame({"idx": range(len(labels)),
                         "name": [f"train_{i + 1:05d}.jpg" for i in range(len(labels))],
                         "label": labels})


def test_match_groundtruth_reads_the_benchmark_generators_table():
    samples = _samples([3, 5, 6])
    truth = pd.DataFrame({
        "image": ["train_00001.jpg", "train_00002.jpg", "train_00003.jpg", "test_00001.jpg"],
        "split": ["train", "train", "train", "test"],
        "true_class": ["happiness", "fear", "neutral", "fear"], "true_label": [4, 2, 7, 2],
        "given_label": [4, 6, 7, 2], "given_class": ["happiness", "anger", "neutral", "fear"],
        "is_noisy": [0, 1, 0, 0], "intensity": [0.5, 0.9, 0.1, 0.3],
        "occlusion": ["none", "sunglasses", "none", "hand"], "blur_sigma": [0.0, 0.0, 1.2, 0.0],
        "resolution_scale": [1.0, 0.5, 1.0, 1.0], "noise_sigma": [0.0, 0.0, 3.0, 0.0],
        "jpeg_quality": [90, 80, 30, 95]})
    matched = analysis.match_groundtruth(samples, truth)
    assert matched["true_label"].tolist() == [3, 1, 6]
    assert matched["is_noisy"].tolist() == [False, True, False]
    assert matched["degradation"].tolist() == ["none", "sunglasses+low-res", "blur+noise+jpeg"]
    assert matched["intensity"].tolist() == [0.5, 0.9, 0.1]


def test_match_groundtruth_without_usable_table():
    samples = _samples([0])
    assert analysis.match_groundtruth(samples, None) is None
    other = pd.DataFrame({"image": ["train_09999.jpg"], "true_label": [1]})
    with pytest.raises(ValueError, match="lacks training images"):
        analysis.match_groundtruth(samples, other)


def _events(rows):
    return pd.DataFrame(rows, columns=["id", "epoch", "idx", "old", "new"])


def test_mark_events():
    truth = pd.DataFrame({"true_label": [2, 1]}, index=[0, 1])
    marked = analysis.mark_events(_events([(1, 1, 0, 0, 2), (2, 1, 1, 1, 3)]), truth)
    assert marked["right"].tolist() == [True, False]
    assert marked["broke_clean"].tolist() == [False, True]


def test_per_class_metrics_and_normalise():
    matrix = np.array([[8, 2], [1, 9]])
    metrics = analysis.per_class_metrics(matrix, class_names=["a", "b"])
    assert metrics["precision"].tolist() == pytest.approx([8 / 9, 9 / 11])
    assert metrics["recall"].tolist() == pytest.approx([0.8, 0.9])
    assert metrics["f1"][0] == pytest.approx(2 * (8 / 9) * 0.8 / (8 / 9 + 0.8))
    assert metrics["support"].tolist() == [10, 10]
    assert analysis.normalise_rows(np.array([[1, 3], [0, 0]])).tolist() == [[0.25, 0.75], [0, 0]]


def test_f1_of_a_class_that_occurs_but_is_never_hit_is_zero():
    # Class 1 occurs (3 images) and is predicted once, never rightly: precision and recall are 0,
    # so F1 = 2·TP / (2·TP + FP + FN) = 0, a number a table can show; class 2 never occurs at all.
    matrix = np.array([[5, 1, 0], [3, 0, 0], [0, 0, 0]])
    metrics = analysis.per_class_metrics(matrix, class_names="abc")
    assert metrics["f1"][:2].tolist() == pytest.approx([10 / 14, 0.0])
    assert np.isnan(metrics["f1"][2])


def test_macro_f1_counts_undefined_classes_as_zero():
    one_class = np.zeros((7, 7))
    one_class[:, 3] = [10, 2, 5, 40, 12, 6, 25]  # every test image predicted as class 3
    f1_of_class_3 = 2 * (40 / 100) * 1.0 / (40 / 100 + 1.0)
    assert analysis.macro_f1(one_class) == pytest.approx(f1_of_class_3 / 7)
    two_of_three = np.array([[5, 1, 0], [2, 6, 0], [0, 0, 0]])  # class 2 never occurs: not averaged
    metrics = analysis.per_class_metrics(two_of_three, class_names="abc")
    assert analysis.macro_f1(two_of_three) == pytest.approx(metrics["f1"][:2].mean())
    assert np.isnan(analysis.macro_f1(np.zeros((3, 3))))


def test_reviewed_labels_revert_returns_to_original():
    original = np.array([0, 1, 2])
    events = _events([(1, 1, 0, 0, 5), (2, 1, 1, 1, 4), (3, 2, 1, 4, 6)])
    reviews = pd.DataFrame({"event_id": [1, 2], "decision": ["revert", "revert"]})
    labels = analysis.reviewed_labels(original=original, events=events, reviews=reviews)
    # sample 0's only relabel was reverted; sample 1's latest relabel (event 3) stands
    assert labels.tolist() == [0, 6, 2]
    reviews = pd.DataFrame({"event_id": [3], "decision": ["revert"]})
    assert analysis.reviewed_labels(original=original, events=events,
                                    reviews=reviews).tolist() == [5, 1, 2]


def test_rafdb_label_file_is_one_based_by_name():
    text = analysis.rafdb_label_file(["train_00001_aligned.jpg", "train_00002.jpg", "happy/x.png"],
                                     [0, 3, 1], class_names=["surprise", "neutral", "happiness", "anger"])
    assert text == "train_00001.jpg 1\ntrain_00002.jpg 6\nhappy/x.png 7\n"


def test_progress_and_eta_from_recent_steps():
    steps = pd.DataFrame({"epoch": [1, 1, 2, 2], "step": [0, 1, 0, 1],
                          "time": [0.0, 10.0, 1000.0, 1010.0]})
    done, left = analysis.progress(steps.iloc[:2], total_epochs=4, steps_per_epoch=4)
    assert done == pytest.approx(2 / 16) and left == pytest.approx(14 * 10.0)
    done, _ = analysis.progress(steps, total_epochs=2, steps_per_epoch=2)
    assert done == 1.0
    assert analysis.progress(steps.iloc[:0], total_epochs=2, steps_per_epoch=2) == (0.0, None)


def test_rank_reg_activity_says_whether_the_hinge_acted():
    def epoch(share, mean):
        return pd.Series({"epoch": 3, "rr_active_share": share, "rr_hinge_mean": mean})

    assert analysis.rank_reg_activity(epoch(0.25, 0.01), rank_reg=True) == \
        "rank regularization: hinge above 0 on 25% of epoch 3's steps (mean hinge 0.0100)"
    assert "did not act" in analysis.rank_reg_activity(epoch(0.0, 0.0), rank_reg=True)
    assert "not recorded for epoch 3" in analysis.rank_reg_activity(epoch(np.nan, np.nan), rank_reg=True)
    assert analysis.rank_reg_activity(epoch(np.nan, np.nan), rank_reg=False) == \
        "rank regularization: off in this run"
