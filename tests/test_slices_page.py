"""The Slices page through AppTest on the session's real runs (built-in benchmark with ground
truth), and on a run whose dataset has none."""
import sqlite3

from scn import slices
from scn.store import RunReader, RunWriter
from tests.test_app_pages import elements, render, texts

PAGE = "pages/8_Slices.py"


def test_slices_of_an_scn_run(finished_runs):
    at = render(PAGE)
    assert elements(at)["plotly_chart"] == len(slices.DIMENSIONS)
    scores = at.dataframe[0].value
    reader = RunReader(finished_runs["scn_dir"])
    assert set(scores["dimension"]) == set(slices.DIMENSIONS)
    assert scores.groupby("dimension")["train_images"].sum().eq(len(reader.samples("train"))).all()
    assert scores["train_accuracy"].notna().all() and scores["mean_alpha"].notna().all()
    assert scores["relabels"].sum() == len(slices.DIMENSIONS) * len(reader.relabels(kind="scn"))
    assert at.radio(key="slices_checkpoint").options == ["last checkpoint", "best on validation"]
    at.radio(key="slices_checkpoint").set_value("best").run()
    assert not at.exception and len(at.dataframe[0].value) == len(scores)


def test_slices_of_the_baseline_leave_out_attention_and_relabels(finished_runs):
    at = render(PAGE, session={"run_picker_choice": "20260101-110000-baseline"})
    columns = set(at.dataframe[0].value.columns)
    assert {"train_accuracy", "test_accuracy"} <= columns
    assert not columns & {"mean_alpha", "relabels", "relabel_precision"}


def test_a_run_without_ground_truth_says_so(finished_runs):
    conn = sqlite3.connect(finished_runs["scn_dir"] / "run.db")
    conn.execute("DROP TABLE groundtruth")
    conn.commit()
    conn.close()
    at = render(PAGE)
    assert "has no ground truth" in texts(at.info)
    assert elements(at)["plotly_chart"] == 0


def test_unreachable_images_leave_accuracy_out_and_say_why(finished_runs, tmp_path):
    writer = RunWriter(finished_runs["scn_dir"])
    writer.set_meta("dataset", {"path": str(tmp_path / "moved"), "format": "rafdb"})
    writer.close()
    for kept in finished_runs["scn_dir"].glob("slice-predictions-*.npz"):
        kept.unlink()  # the predictions its trainer kept would make the images unnecessary
    at = render(PAGE)
    assert "needs the run's images, which cannot be read here" in texts(at.warning)
    scores = at.dataframe[0].value
    assert scores["train_accuracy"].isna().all() and scores["mean_alpha"].notna().all()
    assert elements(at)["plotly_chart"] == len(slices.DIMENSIONS)


def test_a_finished_run_keeps_its_checkpoints_predictions_for_the_first_visit(finished_runs, monkeypatch):
    import os
    import shutil

    import numpy as np

    reader = RunReader(finished_runs["scn_dir"])
    for which in ("last", "best"):
        saved, computed = slices.saved_predictions(reader, which=which), slices.run_predictions(reader, which=which)
        assert all(np.array_equal(saved[split], computed[split]) for split in ("train", "test"))

    def no_model(*args, **kwargs):
        raise AssertionError("the Slices page ran the model although the trainer kept its predictions")

    monkeypatch.setattr(slices, "run_predictions", no_model)
    at = render(PAGE)
    assert not at.exception and at.dataframe[0].value["train_accuracy"].notna().all()
    # A checkpoint rewritten since (a resumed run) has none kept: a new file, not the shared link.
    last = reader.checkpoint_path("last")
    shutil.copy(last, last.with_suffix(".new"))
    os.replace(last.with_suffix(".new"), last)
    os.utime(last, ns=(1, 1))
    assert slices.saved_predictions(reader, which="last") is None
