import os
import sqlite3

import numpy as np
import pandas as pd
import pytest

from scn import lock
from scn.labels import RelabelEvent
from scn.store import AppWriter, RunNotFoundError, RunReader, RunWriter, list_runs


def make_run(run_dir, *, epochs=3, n=10):
    writer = RunWriter(run_dir)
    writer.write_config({"epochs": epochs, "method": "scn", "method_label": "SCN", "class_names": ["a", "b"],
                         "dataset_description": "toy"})
    writer.set_status("running", pid=os.getpid(), started=100.0, total_epochs=epochs)
    writer.add_samples("train", [f"train_{i:05d}.jpg" for i in range(n)], [i % 2 for i in range(n)])
    writer.add_samples("test", [f"test_{i:05d}.jpg" for i in range(3)], [0, 0, 1])
    for epoch in range(1, epochs + 1):
        for step in range(2):
            writer.log_step({"global_step": (epoch - 1) * 2 + step, "epoch": epoch, "step": step, "loss": 1.0})
        writer.log_attention(epoch, alpha=np.linspace(0, 1, n) * epoch / epochs, is_high=np.arange(n) >= 3,
                             labels=[i % 2 for i in range(n)])
        writer.log_history(epoch, pred=(np.arange(n) + epoch) % 2, p_given=np.full(n, 0.1 * epoch),
                           p_max=np.full(n, 0.9))
        writer.log_predictions(epoch, "test", pred=[0, 1, 1], probs=[[0.75, 0.25], [0.5, 0.5], [0.125, 0.875]])
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
    # No validation accuracy recorded: the last epoch is reported.
    assert (reader.summary()["selected_test_accuracy"], reader.summary()["selected_by"]) == \
        (pytest.approx(0.8), "last epoch")
    assert reader.summary()["epoch"] == 3


def test_summary_reports_the_validation_selected_test_accuracy(tmp_path):
    writer = RunWriter(tmp_path / "r")
    writer.write_config({"epochs": 3, "method": "scn"})
    for epoch, val, test in ((1, 0.5, 0.6), (2, 0.8, 0.7), (3, 0.7, 0.9)):
        writer.log_epoch({"epoch": epoch, "val_accuracy": val, "test_accuracy": test})
    writer.close()
    summary = RunReader(tmp_path / "r").summary()
    assert (summary["selected_test_accuracy"], summary["selected_by"]) == (pytest.approx(0.7), "validation")
    listed = list_runs(tmp_path).iloc[0]
    assert listed["selected_test_accuracy"] == pytest.approx(0.7) and "best_test_accuracy" not in listed


def test_per_sample_history_and_test_predictions(tmp_path):
    make_run(tmp_path / "r").close()
    reader = RunReader(tmp_path / "r")
    attention = reader.attention(2)
    assert attention["pred"].tolist()[:3] == [0, 1, 0] and attention["p_given"].iloc[0] == pytest.approx(0.2, abs=1e-3)
    history = reader.sample_history(9)
    assert history["epoch"].tolist() == [1, 2, 3] and history["pred"].tolist() == [0, 1, 0]
    assert history["alpha"].tolist() == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert history["label"].tolist() == [1, 1, 1] and history["is_high"].all()
    assert history["p_given"].tolist() == pytest.approx([0.1, 0.2, 0.3], abs=1e-3)
    with pytest.raises(IndexError, match="has no training sample 10 \\(it has 10\\)"):
        reader.sample_history(10)
    predictions = reader.predictions(2)
    assert predictions.columns.tolist() == ["idx", "name", "label", "pred", "a", "b"]
    assert predictions["pred"].tolist() == [0, 1, 1] and predictions["b"].tolist() == [0.25, 0.5, 0.875]
    assert reader.predictions(9) is None and reader.prediction_epochs() == [1, 2, 3]


def test_a_store_from_before_the_history_is_read_and_migrated(tmp_path):
    import sqlite3

    make_run(tmp_path / "r").close()
    conn = sqlite3.connect(tmp_path / "r" / "run.db")  # back to the schema of older stores
    conn.executescript("DROP TABLE history; DROP TABLE predictions; "
                       "ALTER TABLE epoch_metrics DROP COLUMN train_accuracy_original; "
                       "ALTER TABLE epoch_metrics DROP COLUMN train_accuracy_truth; "
                       "ALTER TABLE epoch_metrics DROP COLUMN rr_active_share; "
                       "ALTER TABLE epoch_metrics DROP COLUMN rr_hinge_mean;")
    conn.close()
    reader = RunReader(tmp_path / "r")
    epochs = reader.epoch_metrics()
    assert epochs["test_accuracy"].tolist() == pytest.approx([0.6, 0.7, 0.8])
    assert epochs[["train_accuracy_original", "train_accuracy_truth", "rr_active_share",
                   "rr_hinge_mean"]].isna().all().all()
    attention = reader.attention(2)
    assert attention["alpha"].iloc[-1] == pytest.approx(2 / 3)
    assert attention["pred"].eq(-1).all() and attention["p_given"].isna().all()
    history = reader.sample_history(9)
    assert history["alpha"].tolist() == pytest.approx([1 / 3, 2 / 3, 1.0]) and history["pred"].eq(-1).all()
    assert reader.predictions(2) is None and reader.prediction_epochs() == []
    writer = RunWriter(tmp_path / "r")  # a resumed trainer brings the store up to date
    writer.log_epoch({"epoch": 4, "train_accuracy_original": 0.5, "train_accuracy_truth": 0.25,
                      "rr_active_share": 0.75})
    writer.log_history(4, pred=np.zeros(10), p_given=np.ones(10), p_max=np.ones(10))
    writer.close()
    assert reader.epoch_metrics()["train_accuracy_truth"].tolist()[-1] == 0.25
    assert reader.epoch_metrics()["rr_active_share"].tolist()[-1] == 0.75
    assert reader.sample_history(0)["pred"].tolist() == [-1, -1, -1]  # epoch 4 has no attention row


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
    assert reader.predictions(3) is None and reader.attention(2)["pred"].ge(0).all()
    conn = writer.conn
    assert conn.execute("SELECT MAX(epoch) FROM history").fetchone() == (2,)


def test_reviews_are_stored_and_validated(tmp_path):
    make_run(tmp_path / "r")
    reader = RunReader(tmp_path / "r")
    AppWriter(reader.run_dir).write_review(event_id=2, decision="revert")
    AppWriter(reader.run_dir).write_review(event_id=2, decision="accept")
    reviews = reader.reviews()
    assert reviews[["event_id", "idx", "decision"]].values.tolist() == [[2, 2, "accept"]]
    with pytest.raises(KeyError, match="no relabel event 99"):
        AppWriter(reader.run_dir).write_review(event_id=99, decision="accept")


def test_groundtruth_is_kept_inside_the_run(tmp_path):
    writer = make_run(tmp_path / "r")
    assert RunReader(tmp_path / "r").groundtruth() is None and not RunReader(tmp_path / "r").has_groundtruth()
    writer.add_groundtruth(pd.DataFrame({"image": ["train_00001.jpg"], "is_noisy": [True]}))
    assert RunReader(tmp_path / "r").groundtruth()["is_noisy"].tolist() == [1]
    assert RunReader(tmp_path / "r").has_groundtruth()


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


def test_notes_and_tags_are_kept_in_the_run_and_listed(run_dir):
    from scn.store import clean_tags

    reader = RunReader(run_dir)  # written before the annotations table existed
    assert reader.annotations() == {"note": "", "tags": []}
    assert list_runs(run_dir.parent).loc[0, "tags"] == []
    AppWriter(reader.run_dir).annotate(note="  lr too high?\nrerun with 1e-4 ", tags="noise30, demo ,, noise30")
    assert reader.annotations() == {"note": "lr too high?\nrerun with 1e-4", "tags": ["noise30", "demo"]}
    AppWriter(reader.run_dir).annotate(tags=["demo"])
    assert reader.annotations() == {"note": "lr too high?\nrerun with 1e-4", "tags": ["demo"]}
    row = list_runs(run_dir.parent).iloc[0]
    assert row["tags"] == ["demo"] and row["note"].startswith("lr too high?")
    assert clean_tags(" a ,b, a") == ["a", "b"]


@pytest.mark.parametrize("tags, message", [(["a,b"], "holds a comma"), (["x" * 41], "at most 40"),
                                          ([3], "must be text")])
def test_bad_tags_and_notes_are_refused_before_anything_is_written(run_dir, tags, message):
    reader = RunReader(run_dir)
    AppWriter(reader.run_dir).annotate(note="kept", tags=["kept"])
    with pytest.raises(ValueError, match=message):
        AppWriter(reader.run_dir).annotate(note="lost", tags=tags)
    with pytest.raises(ValueError, match="at most 20,000"):
        AppWriter(reader.run_dir).annotate(note="x" * 20_001)
    assert reader.annotations() == {"note": "kept", "tags": ["kept"]}


def test_a_store_written_before_event_kinds_and_image_reviews_is_read_and_migrated(tmp_path):
    make_run(tmp_path / "r").close()
    conn = sqlite3.connect(tmp_path / "r" / "run.db")
    conn.executescript("ALTER TABLE relabels DROP COLUMN kind; DROP TABLE image_reviews;")
    conn.close()
    reader = RunReader(tmp_path / "r")
    assert reader.relabels()["kind"].tolist() == ["scn"] * 3 and len(reader.relabels(kind="scn")) == 3
    assert not len(reader.relabels(kind="review")) and not len(reader.image_reviews())
    assert reader.relabel_counts()["kind"].tolist() == ["scn"] * 3
    AppWriter(reader.run_dir).write_image_reviews(labels={4: 1}, decision="set")
    assert reader.image_reviews()[["idx", "decision", "label"]].values.tolist() == [[4, "set", 1]]
    writer = RunWriter(tmp_path / "r")  # a resumed trainer opens it: the column is added
    writer.log_relabels([RelabelEvent(4, 0, 5, 0, 1, float("nan"), float("nan"), float("nan"), "",
                                      kind="review")])
    writer.close()
    assert reader.relabels()["kind"].tolist() == ["scn"] * 3 + ["review"]
    assert reader.relabels(kind="review")["margin"].isna().all()
    with pytest.raises(ValueError, match="kind must be one of scn, review"):
        reader.relabels(kind="user")


def test_a_database_whose_pages_sit_in_its_write_ahead_log_is_not_damaged(tmp_path):
    """As a full disk leaves it: the checkpoint that copies the log into run.db wrote the header
    of the grown database and no more, so run.db is shorter than its header says."""
    import shutil

    writer = RunWriter(tmp_path / "live")
    writer.conn.execute("PRAGMA wal_autocheckpoint=0")  # every page stays in run.db-wal
    writer.log_relabels([RelabelEvent(1, 0, i, 0, 1, 0.9, 0.1, 0.2, "low") for i in range(3000)])
    writer.set_status("failed", message="cannot write last.pt: no space left on device")
    copy = tmp_path / "runs" / "full"
    copy.mkdir(parents=True)
    for name in ("run.db", "run.db-wal"):
        shutil.copy(tmp_path / "live" / name, copy / name)
    writer.close()
    db = copy / "run.db"
    data = bytearray(db.read_bytes())
    assert len(data) == 4096 and (copy / "run.db-wal").stat().st_size > 100_000
    data[28:32] = (71).to_bytes(4, "big")  # 71 pages of 4,096 bytes: 290,816
    db.write_bytes(bytes(data))
    reader = RunReader(copy)
    assert reader.damage() is None
    assert reader.status()["state"] == "failed" and len(reader.relabels()) == 3000
    assert list_runs(tmp_path / "runs").loc[0, "status"] == "failed"
