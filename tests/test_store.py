import os
import sqlite3

import numpy as np
import pandas as pd
import pytest

from scn import lock
from scn.labels import RelabelEvent
from scn.store import RunNotFoundError, RunReader, RunWriter, list_runs


def make_run(run_dir, *, epochs=3, n=10):
    writer = RunWriter(run_dir)
    writer.write_config({"epochs": epochs, "method": "scn", "method_label": "SCN", "class_names": ["a", "b"],
                         "dataset_description": "toy"})
    writer.set_status("running", pid=os.getpid(), started=100.0, total_epochs=epochs)
    writer.add_samples("train", [f"train_{i:05d}.jpg" for i in range(n)], [i % 2 for i in range(n)])
    for epoch in range(1, epochs + 1):
        for step in range(2):
            writer.log_step({"global_step": (epoch - 1) * 2 + step, "epoch": epoch, "step": step, "loss": 1.0})
        writer.log_attention(epoch, alpha=np.linspace(0, 1, n) * epoch / epochs, is_high=np.arange(n) >= 3,
                             labels=[i % 2 for i in range(n)])
        writer.log_relabels([RelabelEvent(epoch, 1, epoch, epoch % 2, 1 - epoch % 2, 0.8, 0.1 * epoch, 0.2, "low")])
        writer.log_confusion(epoch, "test", [[3, 1], [epoch, 2]])
        writer.log_epoch({"epoch": epoch, "test_accuracy": 0.5 + epoch / 10})
    return writer


def test_reads_back_what_was_written(tmp_path):
    make_run(tmp_path / "r").set_status("finished")
    reader = RunReader(tmp_path / "r")
    attention = reader.attention(2)
    assert len(attention) == 10 and attention["alpha"].iloc[-1] == pytest.approx(2 / 3)
    assert attention["is_high"].sum() == 7 and attention["original_label"].tolist()[:3] == [0, 1, 0]
    assert reader.attention_epochs() == [1, 2, 3]
    assert reader.attention()["alpha"].iloc[-1] == pytest.approx(1.0)  # default: latest epoch
    assert reader.confusion(3).tolist() == [[3, 1], [3, 2]] and reader.confusion(9) is None
    assert reader.summary()["best_test_accuracy"] == pytest.approx(0.8)
    assert reader.summary()["epoch"] == 3


def test_relabel_filters(tmp_path):
    make_run(tmp_path / "r")
    reader = RunReader(tmp_path / "r")
    assert len(reader.relabels()) == 3
    assert reader.relabels(epoch=2)["idx"].tolist() == [2]
    assert reader.relabels(old=1)["epoch"].tolist() == [1, 3]
    assert reader.relabels(min_margin=0.55)["epoch"].tolist() == [1, 2]  # margins 0.7, 0.6, 0.5
    assert reader.relabel_counts()["count"].sum() == 3


def test_status_is_interrupted_when_no_trainer_holds_the_lock(tmp_path):
    make_run(tmp_path / "r")
    reader = RunReader(tmp_path / "r")
    assert reader.status()["state"] == "interrupted"
    fd = lock.acquire(tmp_path / "r")
    try:
        assert reader.status()["state"] == "running" and reader.status()["alive"]
    finally:
        os.close(fd)


def test_discard_from_drops_a_partial_epoch(tmp_path):
    writer = make_run(tmp_path / "r")
    writer.discard_from(epoch=3, step=1)
    reader = RunReader(tmp_path / "r")
    assert reader.step_metrics()["global_step"].tolist() == [0, 1, 2, 3, 4]
    assert reader.attention_epochs() == [1, 2] and reader.epoch_metrics()["epoch"].max() == 2
    assert reader.relabels()["epoch"].max() == 2  # epoch 3's event came at step 1, after the checkpoint
    assert reader.confusion_epochs() == [1, 2]


def test_reviews_are_stored_and_validated(tmp_path):
    make_run(tmp_path / "r")
    reader = RunReader(tmp_path / "r")
    reader.write_review(event_id=2, decision="revert")
    reader.write_review(event_id=2, decision="accept")
    reviews = reader.reviews()
    assert reviews[["event_id", "idx", "decision"]].values.tolist() == [[2, 2, "accept"]]
    with pytest.raises(KeyError, match="no relabel event 99"):
        reader.write_review(event_id=99, decision="accept")


def test_groundtruth_is_kept_inside_the_run(tmp_path):
    writer = make_run(tmp_path / "r")
    assert RunReader(tmp_path / "r").groundtruth() is None
    writer.add_groundtruth(pd.DataFrame({"image": ["train_00001.jpg"], "is_noisy": [True]}))
    assert RunReader(tmp_path / "r").groundtruth()["is_noisy"].tolist() == [1]


def test_missing_runs_and_empty_roots(tmp_path):
    with pytest.raises(RunNotFoundError):
        RunReader(tmp_path / "absent")
    assert list_runs(tmp_path / "absent").empty
    make_run(tmp_path / "runs" / "one")
    (tmp_path / "runs" / "not-a-run").mkdir()
    assert list_runs(tmp_path / "runs")["name"].tolist() == ["one"]


def damage(db, how):
    if how == "truncated":
        os.truncate(db, 4096)  # the first page alone: the tables it names are gone
    else:
        os.truncate(db, 0)


@pytest.mark.parametrize("how, reason", [("truncated", "is truncated"), ("empty", "is empty (0 bytes)")])
def test_a_damaged_database_is_listed_as_damaged_with_the_reason(tmp_path, how, reason):
    make_run(tmp_path / "runs" / "good").close()
    writer = make_run(tmp_path / "runs" / "bad")
    writer.set_status("finished")
    writer.close()
    damage(tmp_path / "runs" / "bad" / "run.db", how)
    table = list_runs(tmp_path / "runs").set_index("name")
    assert table.loc["bad", "status"] == "damaged" and reason in table.loc["bad", "problem"]
    assert table.loc["bad", "method"] == "SCN"  # from config.json
    assert table.loc["good", "status"] == "interrupted" and pd.isna(table.loc["good", "problem"])
    status = RunReader(tmp_path / "runs" / "bad").status()
    assert status["state"] == "damaged" and reason in status["message"]
    if how == "empty":  # reading must not write a header into the empty file and so hide it
        assert (tmp_path / "runs" / "bad" / "run.db").stat().st_size == 0


def test_a_malformed_database_raises_run_damaged_error(tmp_path):
    from scn.store import RunDamagedError

    writer = make_run(tmp_path / "r")
    writer.close()
    db = tmp_path / "r" / "run.db"
    data = bytearray(db.read_bytes())
    data[4096:] = b"\xff" * (len(data) - 4096)  # same size, every page after the first garbage
    db.write_bytes(bytes(data))
    with pytest.raises(RunDamagedError, match="run.db is damaged"):
        RunReader(tmp_path / "r").epoch_metrics()
    assert list_runs(tmp_path).loc[0, "status"] == "damaged"


def test_the_empty_database_of_a_starting_trainer_is_not_damaged(tmp_path):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / "run.db").touch()
    fd = lock.acquire(run_dir)
    try:
        assert RunReader(run_dir).status()["state"] == "created"
    finally:
        os.close(fd)


def test_collapse_warnings_round_trip_and_are_discarded_on_resume(tmp_path):
    from scn.collapse import CollapseWarning

    writer = RunWriter(tmp_path)
    writer.log_warnings(2, [CollapseWarning("alpha_collapsed", "alpha near 0", {"alpha_mean": 0.01})])
    writer.log_warnings(3, [CollapseWarning("one_class", "all happiness", {"class": "happiness"})])
    frame = RunReader(tmp_path).warnings()
    assert frame["epoch"].tolist() == [2, 3] and frame["kind"].tolist() == ["alpha_collapsed", "one_class"]
    assert frame["figures"].iloc[0] == {"alpha_mean": 0.01}
    writer.discard_from(epoch=3, step=0)
    assert RunReader(tmp_path).warnings()["epoch"].tolist() == [2]
    writer.close()


def test_a_store_written_before_event_kinds_and_image_reviews_is_read_and_migrated(tmp_path):
    make_run(tmp_path / "r").close()
    conn = sqlite3.connect(tmp_path / "r" / "run.db")
    conn.executescript("ALTER TABLE relabels DROP COLUMN kind; DROP TABLE image_reviews;")
    conn.close()
    reader = RunReader(tmp_path / "r")
    assert reader.relabels()["kind"].tolist() == ["scn"] * 3 and len(reader.relabels(kind="scn")) == 3
    assert not len(reader.relabels(kind="review")) and not len(reader.image_reviews())
    assert reader.relabel_counts()["kind"].tolist() == ["scn"] * 3
    reader.write_image_reviews(labels={4: 1}, decision="set")
    assert reader.image_reviews()[["idx", "decision", "label"]].values.tolist() == [[4, "set", 1]]
    writer = RunWriter(tmp_path / "r")  # a resumed trainer opens it: the column is added
    writer.log_relabels([RelabelEvent(4, 0, 5, 0, 1, float("nan"), float("nan"), float("nan"), "",
                                      kind="review")])
    writer.close()
    assert reader.relabels()["kind"].tolist() == ["scn"] * 3 + ["review"]
    assert reader.relabels(kind="review")["margin"].isna().all()
    with pytest.raises(ValueError, match="kind must be one of scn, review"):
        reader.relabels(kind="user")
