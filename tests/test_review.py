import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scn import analysis, lock, review, runs
from scn.checkpoint import load_checkpoint
from scn.cli import main
from scn.config import TrainConfig, make_config
from scn.review import corrected_label_file
from scn.store import AppWriter, RunReader
from scn.train import train


def test_corrected_label_file_keeps_relabels_and_undoes_reverted_ones(finished_runs):
    reader = RunReader(finished_runs["scn_dir"])
    events = reader.relabels()
    latest = events.groupby("idx").last()
    kept, reverted = latest.iloc[0], latest.iloc[1]
    AppWriter(reader.run_dir).write_review(event_id=int(reverted["id"]), decision="revert")
    AppWriter(reader.run_dir).write_review(event_id=int(kept["id"]), decision="accept")
    untouched = next(i for i in range(len(reader.original_labels())) if i not in latest.index)
    AppWriter(reader.run_dir).write_image_reviews(labels={untouched: 6}, decision="set")
    lines = corrected_label_file(reader).splitlines()
    samples, val, tests = reader.samples("train"), reader.samples("val"), reader.samples("test")
    assert len(val) > 0 and len(lines) == len(samples) + len(val) + len(tests)
    by_name = dict(line.split() for line in lines)
    # Every image of the dataset, the validation images carved from its training images included.
    dataset = (finished_runs["data"] / "EmoLabel" / "list_patition_label.txt").read_text().splitlines()
    assert set(by_name) == {line.split()[0] for line in dataset}
    assert by_name[val["name"][0]] == str(int(val["label"][0]) + 1)
    name = samples["name"]
    assert by_name[name[kept.name]] == str(int(kept["new"]) + 1)
    assert by_name[name[reverted.name]] == str(int(reader.original_labels()[reverted.name]) + 1)
    assert by_name[name[untouched]] == "7"
    other = next(i for i in range(len(samples)) if i not in latest.index and i != untouched)
    assert by_name[name[other]] == str(int(samples["label"][other]) + 1)
    assert by_name[tests["name"][0]] == str(int(tests["label"][0]) + 1)


def test_reviewed_labels_follow_the_latest_event_and_image_reviews_win():
    events = pd.DataFrame({"id": [1, 2, 3, 4], "idx": [0, 0, 1, 2], "new": [3, 4, 5, 6]})
    reviews = pd.DataFrame({"event_id": [1, 3], "decision": ["revert", "revert"]})
    image_reviews = pd.DataFrame({"idx": [2, 3], "label": [1, 2]})
    labels = analysis.reviewed_labels(original=[0, 0, 0, 0, 0], events=events, reviews=reviews,
                                      image_reviews=image_reviews)
    # Sample 0: its reverted first relabel was superseded; 1: reverted; 2, 3: set by image review.
    assert labels.tolist() == [4, 0, 1, 2, 0]


@pytest.mark.parametrize("last", ["event review", "image review"])
def test_the_later_of_an_event_review_and_an_image_review_wins(last):
    events = pd.DataFrame({"id": [1], "idx": [0], "new": [3]})
    event_time, image_time = (2.0, 1.0) if last == "event review" else (1.0, 2.0)
    reviews = pd.DataFrame({"event_id": [1], "idx": [0], "decision": ["revert"], "time": [event_time]})
    image_reviews = pd.DataFrame({"idx": [0], "decision": ["set"], "label": [5], "time": [image_time]})
    labels = analysis.reviewed_labels(original=[0, 0], events=events, reviews=reviews, image_reviews=image_reviews)
    assert labels.tolist() == ([0, 0] if last == "event review" else [5, 0])


def test_image_reviews_are_checked(finished_runs):
    reader = RunReader(finished_runs["scn_dir"])
    with pytest.raises(KeyError, match="no training image 9999"):
        AppWriter(reader.run_dir).write_image_reviews(labels={9999: 1}, decision="set")
    with pytest.raises(ValueError, match="label 7 is not a class"):
        AppWriter(reader.run_dir).write_image_reviews(labels={0: 7}, decision="set")
    with pytest.raises(ValueError, match="decision must be one of"):
        AppWriter(reader.run_dir).write_image_reviews(labels={0: 1}, decision="maybe")
    with pytest.raises(KeyError, match="no relabel event 99999"):
        AppWriter(reader.run_dir).write_reviews(event_ids=[99999], decision="revert")
    assert not len(reader.image_reviews()) and not len(reader.reviews())


@pytest.fixture
def dataset_cache(run_dir, monkeypatch):
    """Point the dataset cache at the one the session's runs were trained from, so a resume
    finds their built-in benchmark instead of generating it again."""
    dataset = Path(RunReader(run_dir).meta("dataset")["path"])
    monkeypatch.setenv("SCN_STUDIO_CACHE", str(dataset.parents[1]))


def test_resume_with_reviewed_labels_records_review_events(run_dir, dataset_cache):
    reader = RunReader(run_dir)
    original = reader.original_labels()
    latest = reader.relabels().groupby("idx").last()
    reverted = latest.iloc[0]
    AppWriter(reader.run_dir).write_review(event_id=int(reverted["id"]), decision="revert")
    untouched = next(i for i in range(len(original)) if i not in latest.index)
    AppWriter(reader.run_dir).write_image_reviews(labels={untouched: (original[untouched] + 1) % 7}, decision="set")
    expected = {(int(reverted.name), int(reverted["new"]), int(original[reverted.name])),
                (untouched, int(original[untouched]), int((original[untouched] + 1) % 7))}
    pending = review.pending_changes(reader)
    assert set(zip(pending["idx"], pending["current"], pending["reviewed"])) == expected

    assert train(TrainConfig(), run_dir=run_dir, resume=True, progress=False,
                 resume_changes={"epochs": 5, "reviewed_labels": True}) == "finished"
    applied = reader.relabels(kind="review")
    assert set(zip(applied["idx"], applied["old"], applied["new"])) == expected
    assert applied["epoch"].eq(5).all() and applied["margin"].isna().all()
    assert reader.relabel_counts().groupby("kind")["count"].sum()["review"] == 2
    epochs = reader.epoch_metrics()
    assert epochs["epoch"].tolist() == [1, 2, 3, 4, 5]
    assert epochs["relabels"].iloc[-1] == len(reader.relabels(kind="scn", epoch=5))
    assert reader.config()["reviewed_labels"] and reader.config()["epochs"] == 5
    # The store and the checkpoint agree on the labels training goes on with.
    current = load_checkpoint(reader.checkpoint_path("last"))["labels"]["current"].numpy()
    np.testing.assert_array_equal(review.current_labels(reader), current)
    assert "reviewed labels: 2 training label(s) changed by review" in reader.log_tail()


def test_resume_with_reviewed_labels_refuses_clearly(run_dir, tmp_path, capsys):
    with pytest.raises(ValueError, match="trained all its 4 epochs: give --epochs 5 or more"):
        train(TrainConfig(), run_dir=run_dir, resume=True, resume_changes={"reviewed_labels": True})
    with pytest.raises(ValueError, match="--epochs must be at least 4, not 2"):
        train(TrainConfig(), run_dir=run_dir, resume=True, resume_changes={"epochs": 2})
    reader = RunReader(run_dir)
    assert reader.status()["state"] == "finished"  # a refusal is not a failure of the run
    with pytest.raises(ValueError, match="applies to a resumed run"):
        train(make_config(reviewed_labels=True), run_dir=tmp_path / "new")
    assert not (tmp_path / "new").exists()
    # The command line refuses alike, with the same words.
    assert main(["train", "--run-dir", str(run_dir), "--resume", "--reviewed-labels"]) == 2
    assert "give --epochs 5 or more" in capsys.readouterr().err

    fd = lock.acquire(run_dir)  # this process plays a live trainer
    try:
        with pytest.raises(runs.CannotResumeError, match="is still training"):
            runs.resume_run(run_dir, reviewed_labels=True, epochs=5)
    finally:
        os.close(fd)
    reader.checkpoint_path("last").unlink()  # a hard link: the session's run keeps its file
    with pytest.raises(runs.CannotResumeError, match="has no last checkpoint"):
        runs.resume_run(run_dir, reviewed_labels=True, epochs=5)


def test_resume_command_passes_only_the_options_a_resume_may_change(tmp_path):
    argv = runs.train_command(run_dir=tmp_path, options={"epochs": 6, "reviewed_labels": True}, resume=True)
    assert argv[-4:] == ["--epochs", "6", "--reviewed-labels", "--resume"]
