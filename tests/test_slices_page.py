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
    at = render(PAGE)
    assert "needs the run's images, which cannot be read here" in texts(at.warning)
    scores = at.dataframe[0].value
    assert scores["train_accuracy"].isna().all() and scores["mean_alpha"].notna().all()
    assert elements(at)["plotly_chart"] == len(slices.DIMENSIONS)
