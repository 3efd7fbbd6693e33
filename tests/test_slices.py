import numpy as np
import pandas as pd
import pytest

from scn import slices
from scn.store import RunReader


def truth_rows() -> pd.DataFrame:
    """Four faces whose slices are known by construction."""
    return pd.DataFrame({
        "id_skin": ["#603c2a", "#f5ceb6", "#c88c68", "#966042"],  # luminance 66, 212, 150, 106
        "scene_brightness": [0.8, 0.95, 1.1, 0.9],
        "occlusion": ["none", "hand", "none", None],
        "pose_yaw": [-3.0, 20.0, 9.5, -17.0],
        "intensity": [0.2, 0.5, 0.7, 0.95],
    })


def test_luminance_of_hex_colours():
    np.testing.assert_allclose(slices.luminance(["#000000", "#ffffff", "#ff0000"]), [0, 255, 0.2126 * 255])


def test_slice_columns_bin_each_dimension():
    columns = slices.slice_columns(truth_rows())
    assert list(columns) == list(slices.DIMENSIONS)
    assert columns["skin tone"].tolist() == ["luminance < 100", "≥ 180", "140–180", "100–140"]
    assert columns["lighting"].tolist() == ["brightness < 0.87", "0.87–1.0", "≥ 1.0", "0.87–1.0"]
    assert columns["occluder"].tolist() == ["none", "hand", "none", "none"]
    assert columns["pose"].tolist() == ["|yaw| < 8°", "≥ 16°", "8–16°", "≥ 16°"]
    assert columns["intensity"].tolist() == ["intensity < 0.35", "0.35–0.6", "0.6–0.85", "> 0.85"]


def test_dimensions_the_truth_lacks_are_left_out():
    columns = slices.slice_columns(truth_rows().drop(columns=["scene_brightness", "occlusion"]))
    assert list(columns) == ["skin tone", "pose", "intensity"]


def test_slice_scores_per_slice():
    train = pd.DataFrame({"true_label": [0, 1, 2, 3], "alpha": [0.2, 0.4, 0.6, 0.8],
                          "predicted": [0, 1, 0, 0], "occluder": ["none", "hand", "none", "none"]})
    test = pd.DataFrame({"true_label": [1, 1, 1], "predicted": [1, 0, 1], "occluder": ["hand", "hand", "none"]})
    # Sample 0 relabelled right then wrong, sample 1 (the hand) right; sample 2 wrong.
    events = pd.DataFrame({"idx": [0, 0, 1, 2], "new": [0, 5, 1, 4]})
    scores = slices.slice_scores(train, test=test, events=events).set_index("slice")
    assert list(scores.columns) == [c for c in slices.SCORE_COLUMNS if c != "slice"]
    none, hand = scores.loc["none"], scores.loc["hand"]
    assert (none["train_images"], hand["train_images"]) == (3, 1)
    assert none["mean_alpha"] == pytest.approx(np.mean([0.2, 0.6, 0.8]))
    assert none["train_accuracy"] == pytest.approx(1 / 3) and hand["train_accuracy"] == 1.0
    assert (none["test_images"], none["test_accuracy"]) == (1, 1.0)
    assert (hand["test_images"], hand["test_accuracy"]) == (2, 0.5)
    assert (none["relabels"], none["relabel_precision"]) == (3, pytest.approx(1 / 3))
    assert (hand["relabels"], hand["relabel_precision"]) == (1, 1.0)


def test_scores_without_predictions_alpha_or_events_are_nan():
    train = pd.DataFrame({"true_label": [0, 1], "pose": ["|yaw| < 8°", "8–16°"]})
    scores = slices.slice_scores(train)
    assert scores["train_images"].tolist() == [1, 1] and scores["relabels"].tolist() == [0, 0]
    assert scores[["mean_alpha", "train_accuracy", "test_accuracy", "relabel_precision"]].isna().all().all()


def test_run_slices_of_a_real_run(finished_runs):
    reader = RunReader(finished_runs["scn_dir"])
    predictions = slices.run_predictions(reader)
    train, test = reader.samples("train"), reader.samples("test")
    assert len(predictions["train"]) == len(train) and len(predictions["test"]) == len(test)
    # The test split's accuracy from these predictions is the one the trainer logged last.
    truth = reader.groundtruth().set_index("image")["true_label"] - 1
    assert (truth[test["name"]].to_numpy() == test["label"].to_numpy()).all()
    # The trainer evaluated in bfloat16 where the CPU has it, these are float32: a face or two of
    # the 21 may tip to another class.
    logged = reader.epoch_metrics()["test_accuracy"].iloc[-1]
    assert (predictions["test"] == test["label"].to_numpy()).mean() == pytest.approx(logged, abs=0.1)
    scores = slices.run_slices(reader, predictions=predictions)
    assert set(scores["dimension"]) == set(slices.DIMENSIONS)
    for dimension, rows in scores.groupby("dimension"):
        assert rows["train_images"].sum() == len(train), dimension
        assert rows["test_images"].sum() == len(test), dimension
        assert rows["relabels"].sum() == len(reader.relabels(kind="scn")), dimension


def test_a_run_without_ground_truth_is_refused_plainly(finished_runs, monkeypatch):
    reader = RunReader(finished_runs["scn_dir"])
    monkeypatch.setattr(RunReader, "groundtruth", lambda self: None)
    with pytest.raises(slices.NoGroundTruthError, match="no ground truth"):
        slices.run_slices(reader)
