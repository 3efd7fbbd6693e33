"""Every page through streamlit's AppTest: the fresh-start state, a finished run pair trained by the
real trainer (SCN and the baseline on a tiny built-in benchmark with ground truth and thumbnails),
and the edge states that must read as plain messages."""
import json
import os
import shutil
import sqlite3
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from scn import analysis, builds, charts, collapse, lock, runs
from scn.classes import CLASS_NAMES
from scn.config import PRESETS, make_config
from scn.store import RunReader, RunWriter
from scn.train import train
from tests.helpers import copy_run, train_collapsing_run, write_ferplus

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGES = ["pages/1_Training.py", "pages/2_Attention.py", "pages/3_Relabels.py",
         "pages/4_Confusion.py", "pages/5_Compare.py", "pages/7_Sample.py", "pages/8_Slices.py"]


def render(page: str = "app.py", *, session: dict | None = None, query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    if page != "app.py":
        at.switch_page(page)
    for key, value in (session or {}).items():
        at.session_state[key] = value
    at.query_params.update(query or {})
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@contextmanager
def lock_held(run_dir):
    """This process plays a live trainer of `run_dir`."""
    fd = lock.acquire(run_dir)
    try:
        yield
    finally:
        os.close(fd)


def elements(at: AppTest) -> Counter:
    counts = Counter()

    def walk(node):
        for child in getattr(node, "children", {}).values():
            counts[child.type] += 1
            walk(child)
    walk(at._tree)
    return counts


def texts(elements_list) -> str:
    return "\n".join(str(e.value) for e in elements_list)


@pytest.mark.parametrize("page", ["app.py"] + PAGES)
def test_fresh_start_shows_a_plain_message(empty_root, page):
    at = render(page)
    assert "No runs yet" in texts(at.info)
    if page == "app.py":
        assert len(at.info) == 1, texts(at.info)
    assert elements(at)["plotly_chart"] == 0


def test_home_lists_runs_with_status_and_progress(finished_runs):
    at = render()
    table = at.dataframe[0].value
    assert table["run"].tolist() == ["20260101-120000-scn", "20260101-110000-baseline"]
    assert table["epoch"].tolist() == ["4 of 4", "4 of 4"]
    assert table["method"].tolist() == ["SCN (relabel low group)", "Baseline"]
    columns = list(table.columns)
    assert columns.index("last test acc.") < columns.index("method") < columns.index("dataset")
    epochs = RunReader(finished_runs["scn_dir"]).epoch_metrics()
    chosen = epochs.loc[epochs["val_accuracy"].idxmax(), "test_accuracy"]
    assert table["test acc. (val-selected)"].iloc[0] == pytest.approx(100 * chosen)
    assert table["last test acc."].iloc[0] == pytest.approx(100 * epochs["test_accuracy"].iloc[-1])
    assert "best test acc." not in columns
    assert not table.isin(["None"]).any().any()
    assert "finished" in texts(at.markdown)
    assert [b.label for b in at.button] == ["Save notes and tags", "Delete this run…", "Start the demo", "Start"]


def test_demo_is_not_started_twice(empty_root, trained_runs):
    demo = copy_run(trained_runs["scn"], empty_root, name="20260101-120000-demo-scn")
    writer = RunWriter(demo)
    writer.set_status("running", epoch=2)
    writer.close()
    with lock_held(demo):
        at = render()
        at.button(key="start_demo").click().run()
    assert "already training (20260101-120000-demo-scn)" in texts(at.warning)
    assert [p.name for p in empty_root.iterdir() if p.is_dir()] == ["20260101-120000-demo-scn"]


def test_demo_button_starts_the_pair_through_the_detached_launcher(empty_root, monkeypatch):
    launched = []
    monkeypatch.setattr(runs, "launch_demo", lambda *, root: launched.append(root) or (
        0, "Started 20260101-120000-demo-scn (pid 11); it trains in the background."))
    at = render()
    at.button(key="start_demo").click().run()
    assert launched == [empty_root] and "Started 20260101-120000-demo-scn" in texts(at.success)


def test_home_form_refuses_a_missing_dataset_folder(empty_root, tmp_path):
    at = render()
    at.radio(key="dataset").set_value("Dataset folder").run()
    at.text_input(key="data_path").input(str(tmp_path / "nowhere")).run()
    assert "dataset folder not found" in texts(at.error)
    at.button(key="start_run").click().run()
    assert "Not started" in texts(at.error)
    assert list(empty_root.iterdir()) == []


def test_home_form_refuses_missing_pretrained_weights(empty_root, tmp_path):
    at = render()
    at.text_input(key="pretrained").input(str(tmp_path / "missing.pt")).run()
    assert "pretrained weights file not found" in texts(at.error)
    at.button(key="start_run").click().run()
    assert "Not started: pretrained weights file not found" in texts(at.error)
    assert list(empty_root.iterdir()) == []


def test_home_form_refuses_a_weights_file_it_cannot_load(empty_root, tmp_path):
    weights = tmp_path / "start.pt"
    weights.write_bytes(b"not a weights file")
    at = render()
    at.text_input(key="pretrained").input(str(weights)).run()
    at.button(key="start_run").click().run()
    assert f"Not started: {weights} is not a readable PyTorch weights file" in texts(at.error)
    assert list(empty_root.iterdir()) == []


def test_home_form_refuses_an_image_size_the_start_cannot_take(empty_root):
    at = render()
    at.number_input(key="image_size").set_value(64).run()
    at.button(key="start_run").click().run()
    assert "Not started: the dlib-face start needs --image-size 112 or more" in texts(at.error)
    assert list(empty_root.iterdir()) == []


@pytest.mark.parametrize("name", ["none", "synth-face", "dlib-face", "imagenet"])
def test_home_form_passes_start_names_to_the_trainer(empty_root, monkeypatch, name):
    started = {}
    monkeypatch.setattr(runs, "start_run", lambda *, run_dir, options: started.update(options) or 1)
    at = render()
    at.text_input(key="pretrained").input(name).run()
    assert not at.error
    at.button(key="start_run").click().run()
    assert started["pretrained"] == name


def test_home_form_passes_pretrained_weights_to_the_trainer(empty_root, tmp_path, monkeypatch):
    import torch

    from scn.model import SCN

    weights = tmp_path / "start.pt"
    torch.save(SCN(7).state_dict(), weights)
    started = {}
    monkeypatch.setattr(runs, "start_run", lambda *, run_dir, options: started.update(options) or 1)
    at = render()
    at.text_input(key="pretrained").input(str(weights)).run()
    at.selectbox(key="synth_noise_model").set_value("annotators").run()
    at.button(key="start_run").click().run()
    assert started["pretrained"] == str(weights.resolve()) and started["synth_noise"] is None
    assert started["synth_noise_model"] == "annotators" and started["preset"] == "demo"
    assert started["relabel_scope"] is None  # the preset's own


def test_the_new_run_forms_defaults_are_the_demos(empty_root, monkeypatch):
    """Left as it opens, the form trains SCN as the one-click demo does (but for the demo's one
    thread on the CPU), and each empty field shows the value it stands for."""
    started = {}
    monkeypatch.setattr(runs, "start_run", lambda *, run_dir, options: started.update(options) or 1)
    at = render()
    assert at.number_input(key="epochs").proto.placeholder == str(PRESETS["demo"]["epochs"])
    assert at.number_input(key="margin_2").proto.placeholder == f"{PRESETS['demo']['margin_2']:g}"
    at.button(key="start_run").click().run()
    form, demo = make_config(**started), make_config(**runs.DEMO_RUNS["scn"])
    assert {k for k, v in vars(form).items() if vars(demo)[k] != v} <= {"threads", "device", "preset"}
    at.selectbox(key="preset").set_value("official").run()
    assert at.number_input(key="epochs").proto.placeholder == str(PRESETS["official"]["epochs"])


@pytest.mark.parametrize("gpus", [0, 4])
def test_home_form_offers_several_processes_only_with_several_gpus(empty_root, monkeypatch, gpus):
    import torch

    started = {}
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setattr(runs, "start_run", lambda *, run_dir, options: started.update(options) or 1)
    at = render()
    offered = [n for n in at.number_input if n.key == "processes"]
    assert len(offered) == (gpus > 1)
    if offered:
        offered[0].set_value(3).run()
    at.button(key="start_run").click().run()
    assert started["processes"] == (3 if gpus else None)


def test_home_form_keeps_a_hostile_run_name_inside_the_runs_folder(tmp_path, monkeypatch):
    root = tmp_path / "x" / "runs" / "inner"
    root.mkdir(parents=True)
    monkeypatch.setenv("SCN_RUNS_DIR", str(root))
    started = []
    monkeypatch.setattr(runs, "start_run", lambda *, run_dir, options: started.append(run_dir) or 1)
    at = render()
    at.text_input(key="run_label").input("/../../../victim").run()
    at.button(key="start_run").click().run()
    assert [d.parent for d in started] == [root] and started[0].name.endswith("-victim")
    assert [p.name for p in root.iterdir()] == [started[0].name]
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["runs"]


def test_stop_is_offered_once_then_shows_stopping(empty_root, trained_runs, monkeypatch):
    run_dir = copy_run(trained_runs["scn"], empty_root)
    writer = RunWriter(run_dir)
    writer.set_status("running", epoch=2)
    writer.close()
    signalled = []
    monkeypatch.setattr(runs.os, "kill", lambda pid, sig: signalled.append((pid, sig)))
    with lock_held(run_dir):
        at = render()
        at.button(key="stop_home").click().run()
        assert signalled == [(os.getpid(), runs.signal.SIGTERM)]
        assert not [b for b in at.button if b.key == "stop_home"]
        assert "stopping…" in texts(at.markdown)
        at = render(session={"run_picker_choice": run_dir.name})
        assert not [b for b in at.button if b.key == "stop_home"]


def test_no_stop_for_a_finished_run_whose_trainer_still_keeps_its_predictions(finished_runs):
    with lock_held(finished_runs["scn_dir"]):
        for page, key in (("app.py", "stop_home"), ("pages/1_Training.py", "stop_training")):
            at = render(page)
            assert "finished" in texts(at.markdown)
            assert not [b for b in at.button if b.key == key]


def test_damaged_runs_are_listed_and_explained(finished_runs):
    os.truncate(finished_runs["baseline_dir"] / "run.db", 0)
    at = render()
    table = at.dataframe[0].value.set_index("run")
    assert table.loc["20260101-110000-baseline", "status"] == "damaged"
    assert "is empty (0 bytes)" in table.loc["20260101-110000-baseline", "problem"]
    at = render("pages/1_Training.py", session={"run_picker_choice": "20260101-110000-baseline"})
    assert "is empty (0 bytes)" in texts(at.error)
    assert "trainer is starting" not in texts(at.info)


def test_status_panel_shows_the_trainers_warnings(finished_runs):
    writer = RunWriter(finished_runs["scn_dir"])
    writer.log_warnings(0, [collapse.one_label([3, 3], class_names=CLASS_NAMES)])
    writer.close()
    for page in ("app.py", "pages/1_Training.py"):
        at = render(page)
        assert "**Every training label is one class** (before training): every training label is happiness" \
            in texts(at.warning)


def test_training_page_says_how_often_rank_regularization_acted(finished_runs):
    last = RunReader(finished_runs["scn_dir"]).epoch_metrics().iloc[-1]
    at = render("pages/1_Training.py")
    assert f"hinge above 0 on {last['rr_active_share']:.0%} of epoch 4's steps" in texts(at.caption)
    at = render("pages/1_Training.py", session={"run_picker_choice": "20260101-110000-baseline"})
    assert "rank regularization: off in this run" in texts(at.caption)


def test_home_form_accepts_a_rafdb_folder(finished_runs):
    at = render()
    at.radio(key="dataset").set_value("Dataset folder").run()
    at.text_input(key="data_path").input(str(finished_runs["data"])).run()
    assert "looks right" in texts(at.success)


def test_home_form_starts_a_ferplus_run_with_or_without_contempt(empty_root, tmp_path, monkeypatch):
    root = write_ferplus(tmp_path / "ferplus", splits=(("Training", 8), ("PublicTest", 2), ("PrivateTest", 2)))
    started = {}
    monkeypatch.setattr(runs, "start_run", lambda *, run_dir, options: started.update(options) or 1)
    at = render()
    at.radio(key="dataset").set_value("Dataset folder").run()
    assert at.checkbox(key="contempt").disabled  # RAF-DB, the default, has no contempt
    at.selectbox(key="data_format").set_value("ferplus").run()
    at.text_input(key="data_path").input(str(root)).run()
    assert "looks right" in texts(at.success) and not at.checkbox(key="contempt").disabled
    at.checkbox(key="contempt").uncheck().run()
    at.button(key="start_run").click().run()
    assert started["format"] == "ferplus" and started["contempt"] is False
    at.selectbox(key="data_format").set_value("affectnet").run()
    assert f"{root / 'training.csv'} not found" in texts(at.error)


def test_training_page_plots_losses_accuracy_lr_throughput(finished_runs):
    at = render("pages/1_Training.py")
    assert elements(at)["plotly_chart"] == 4
    accuracy = next(spec for spec in (json.loads(c.proto.spec) for c in at.get("plotly_chart"))
                    if spec["layout"]["title"]["text"] == "Accuracy")
    assert [t["name"] for t in accuracy["data"]][:3] == [
        "train accuracy (on current labels)", "train accuracy (on original labels)",
        "train accuracy (on true labels)"]
    metrics = {m.label: m.value for m in at.metric}
    last = RunReader(finished_runs["scn_dir"]).epoch_metrics().iloc[-1]
    assert metrics["Test accuracy"] == f"{last['test_accuracy']:.1%}"
    assert "4 of 4 epochs done (100%)" in at.get("progress")[0].proto.text


def test_attention_page_with_ground_truth_and_galleries(finished_runs):
    at = render("pages/2_Attention.py")
    counts = elements(at)
    # by group, by class, clean vs noisy, by degradation, heat map, gap, AUROC
    assert counts["plotly_chart"] == 7
    assert counts["image"] == counts["page_link"] == 24  # 12 lowest, 12 highest, each opens its sample
    lowest = RunReader(finished_runs["scn_dir"]).attention(4).sort_values("alpha")["idx"].iloc[0]
    link = at.get("page_link")[0].proto
    assert link.page == "Sample"
    assert link.query_string == f"run={finished_runs['scn_dir'].name}&split=train&sample={lowest}"
    assert "Lowest alpha" in texts(at.markdown) and "Highest alpha" in texts(at.markdown)
    assert [s.value for s in at.subheader] == ["Epoch 4", "Across epochs", "Images at epoch 4"]


def test_attention_page_holds_a_chosen_epoch(finished_runs):
    at = render("pages/2_Attention.py")
    at.toggle(key="attention_follow").set_value(False).run()
    at.select_slider(key="attention_epoch").set_value(2).run()
    assert at.subheader[0].value == "Epoch 2"


def test_attention_page_says_when_images_are_unreachable(finished_runs, tmp_path):
    writer = RunWriter(finished_runs["scn_dir"])  # as if the run folder came from another machine
    writer.set_meta("dataset", RunReader(finished_runs["scn_dir"]).meta("dataset") | {"path": str(tmp_path / "gone")})
    writer.close()
    at = render("pages/2_Attention.py")
    assert "not reachable" in texts(at.warning)
    assert elements(at)["image"] == 0


def test_attention_page_of_a_run_without_epochs(empty_root):
    writer = RunWriter(empty_root / "new")
    writer.write_config({"method": "scn"})
    writer.close()
    at = render("pages/2_Attention.py")
    assert "No epoch has finished yet" in texts(at.info)


def test_relabels_page_of_the_baseline_and_before_the_relabel_epoch(finished_runs):
    at = render("pages/3_Relabels.py", session={"run_picker_choice": "20260101-110000-baseline"})
    assert "trains without relabelling" in texts(at.info)
    tiny = dict(data=str(finished_runs["data"]), batch_size=16, image_size=32, threads=1, val_fraction=0.125)
    train(make_config(epochs=1, relabel_epoch=3, **tiny), run_dir=finished_runs["root"] / "20260102-early",
          progress=False)
    at = render("pages/3_Relabels.py", session={"run_picker_choice": "20260102-early"})
    assert "Relabelling starts at epoch 3; 1 epoch(s) done so far." in texts(at.info)
    train(make_config(epochs=1, relabel_epoch=1, margin_2=1.0, **tiny),
          run_dir=finished_runs["root"] / "20260103-quiet", progress=False)
    at = render("pages/3_Relabels.py", session={"run_picker_choice": "20260103-quiet"})
    assert "No relabels so far" in texts(at.info) and "margin_2 = 1.0" in texts(at.info)
    assert elements(at)["plotly_chart"] == 0


def test_confusion_page_epoch_change_and_side_by_side(finished_runs):
    at = render("pages/4_Confusion.py")
    assert elements(at)["plotly_chart"] == 4
    per_class = at.dataframe[0].value
    assert per_class["class"].tolist()[:2] == ["surprise", "fear"]
    # F1 of a class never hit is 0 and a missing precision blank: no cell st.dataframe draws as None.
    assert per_class.notna().all().all()
    assert "Both at epoch 4" in texts(at.caption)
    matrix = RunReader(finished_runs["scn_dir"]).confusion(4)
    assert f"macro F1 {analysis.macro_f1(matrix):.3f}" in texts(at.caption)
    at.select_slider(key="confusion_epoch").set_value(1).run()
    assert "Epoch 1 is the first recorded epoch" in texts(at.info)
    assert at.dataframe[0].value.notna().all().all()


def test_confusion_page_opens_a_cell(finished_runs):
    at = render("pages/4_Confusion.py")
    reader = RunReader(finished_runs["scn_dir"])
    predictions, names = reader.predictions(4), reader.class_names()
    true, pred = predictions[["label", "pred"]].value_counts().index[0]  # the fullest cell
    assert elements(at)["page_link"] == 0  # no cell chosen yet
    at.selectbox(key="drill_true").set_value(names[true])
    at.selectbox(key="drill_pred").set_value(names[pred]).run()
    cell = predictions[(predictions["label"] == true) & (predictions["pred"] == pred)]
    assert f"{len(cell)} test image(s) of {names[true]} predicted as {names[pred]}" in texts(at.caption)
    links = at.get("page_link")
    assert len(links) == len(cell) == elements(at)["image"]
    best = cell.sort_values(names[pred], ascending=False).iloc[0]
    assert links[0].proto.label == f"p({names[pred]}) {best[names[pred]]:.2f}"
    assert f"split=test&sample={best['idx']}&epoch=4" in links[0].proto.query_string


def test_sample_page_shows_a_training_sample_across_epochs(finished_runs):
    reader = RunReader(finished_runs["scn_dir"])
    event = reader.relabels().iloc[-1]
    idx, names = int(event["idx"]), reader.class_names()
    at = render("pages/7_Sample.py", session={"run_picker_choice": "20260101-110000-baseline"},
                query={"run": reader.name, "split": "train", "sample": str(idx)})
    assert at.selectbox(key="run_picker").value == reader.name  # the link's run, not the remembered one
    assert elements(at)["image"] == 1 and elements(at)["plotly_chart"] == 1
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Original label"] == names[reader.original_labels()[idx]]
    assert metrics["Relabels"] == str(int((reader.relabels()["idx"] == idx).sum()))
    history = reader.sample_history(idx)
    assert metrics["alpha (latest)"] == f"{history['alpha'].iloc[-1]:.3f}"
    assert metrics["Prediction"] == names[history["pred"].iloc[-1]]
    truth = analysis.match_groundtruth(reader.samples("train"), reader.groundtruth()).loc[idx]
    assert f"**Ground truth**: {names[truth['true_label']]}" in texts(at.markdown)
    assert event["id"] in at.dataframe[0].value["id"].tolist()
    # Found by its image name, whatever its index: the URL follows the choice.
    samples = reader.samples("train").set_index("name")["idx"]
    name = next(n for n, i in samples.items() if i != int(n.split(".")[0].rsplit("_", 1)[1]) - 1)
    at.text_input(key="sample_name").input(name.replace(".jpg", "_aligned.jpg")).run()
    assert at.query_params["sample"] == str(samples[name]) and at.get("image")[0].proto.imgs[0].caption == name
    part = name.split(".")[0][:-1]  # part of a name: the matches to choose from
    at.text_input(key="sample_name").input(part).run()
    assert at.selectbox(key="sample_match").options == [n for n in samples.index if part in n]
    at.text_input(key="sample_name").input("no_such_image").run()
    assert "No image of this set is named like 'no_such_image'" in texts(at.warning)


def test_sample_page_shows_a_test_image_with_its_probabilities(finished_runs):
    reader = RunReader(finished_runs["scn_dir"])
    row, names = reader.predictions(2).iloc[3], reader.class_names()
    at = render("pages/7_Sample.py", query={"run": reader.name, "split": "test", "sample": "3", "epoch": "2"})
    assert at.select_slider(key="sample_epoch").value == 2
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["True class"] == names[row["label"]] and metrics["Predicted"] == names[row["pred"]]
    assert metrics["p(predicted)"] == f"{row[names[row['pred']]]:.3f}"
    assert elements(at)["image"] == 1 and elements(at)["plotly_chart"] == 1


def test_a_run_recorded_before_the_per_sample_history_still_shows(finished_runs):
    import sqlite3

    conn = sqlite3.connect(finished_runs["scn_dir"] / "run.db")
    conn.executescript("DROP TABLE history; DROP TABLE predictions;")
    conn.close()
    at = render("pages/4_Confusion.py")
    assert "did not record per-sample test predictions" in texts(at.info)
    at = render("pages/7_Sample.py", query={"run": finished_runs["scn_dir"].name, "sample": "5"})
    assert "recorded before predictions and p(given label) were kept" in texts(at.caption)
    assert {m.label: m.value for m in at.metric}["Prediction"] == "–"
    at = render("pages/7_Sample.py", query={"run": finished_runs["scn_dir"].name, "split": "test", "sample": "5"})
    assert "No per-sample test predictions recorded" in texts(at.info)


def test_compare_page_overlays_runs(finished_runs):
    at = render("pages/5_Compare.py")
    assert elements(at)["plotly_chart"] == 4
    table = at.dataframe[0].value
    assert table["run"].tolist() == ["20260101-120000-scn", "20260101-110000-baseline"]
    best = [int(RunReader(finished_runs[k]).epoch_metrics().set_index("epoch")["val_accuracy"].idxmax())
            for k in ("scn_dir", "baseline_dir")]
    assert table["epoch (best val)"].tolist() == [str(e) for e in best]
    assert list(table.columns)[:3] == ["run", "last test acc.", "best val acc."]
    assert list(table.columns)[-1] == "dataset" and not table.isin(["None"]).any().any()
    differ = at.dataframe[2].value.set_index("option")  # after the verdict card's table
    assert list(differ.columns) == ["20260101-120000-scn", "20260101-110000-baseline"]
    assert differ.loc["method"].tolist() == ["scn", "baseline"] and "epochs" not in differ.index
    colors = charts.run_colors(p.name for p in finished_runs["root"].iterdir())
    accuracy = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert {t["name"]: t["line"]["color"] for t in accuracy["data"]} == colors
    assert [s["x0"] for s in accuracy["layout"]["shapes"]] == [1]  # SCN relabels from epoch 2
    at.multiselect(key="compare_runs").set_value(["20260101-120000-scn"]).run()
    assert "Choose two or more runs" in texts(at.info)


def test_interrupted_and_failed_runs_explain_themselves(empty_root):
    writer = RunWriter(empty_root / "killed")
    writer.write_config({"epochs": 3})
    writer.set_status("running", pid=999999, started=1.0)
    writer.close()
    (empty_root / "killed" / "train.log").write_text("epoch 1 step 3\nKilled\n")
    at = render("pages/1_Training.py")
    assert "died" in texts(at.warning)
    assert "Killed" in texts(at.code)
    assert "trainer not running" in texts(at.markdown) and "pid 999999" not in texts(at.markdown)
    writer = RunWriter(empty_root / "crashed")
    writer.write_config({"epochs": 3})
    writer.set_status("failed", started=2.0, message="Traceback ...\nValueError: bad image")
    writer.close()
    at = render("pages/1_Training.py", session={"run_picker_choice": "crashed"})
    assert "The trainer failed." in texts(at.error)
    assert "ValueError: bad image" in texts(at.code)


def test_a_run_folder_deleted_while_open(finished_runs):
    at = render("pages/2_Attention.py")
    shutil.rmtree(finished_runs["scn_dir"])
    at.run()
    assert not at.exception
    assert "does not exist for baseline runs" in texts(at.info)  # the picker moved on


def test_run_guard_turns_a_vanished_folder_into_a_message(finished_runs):
    def script():
        import shutil

        import streamlit as st

        from studio import ui
        from scn.store import RunReader, runs_root
        reader = RunReader(runs_root() / "20260101-120000-scn")
        shutil.rmtree(reader.run_dir)
        with ui.run_guard(reader):
            reader.epoch_metrics()
            st.write("not reached")
        st.write("page goes on")

    at = AppTest.from_function(script, default_timeout=30).run()
    assert not at.exception
    assert "no longer exists" in texts(at.warning)
    assert texts(at.markdown) == "page goes on"


@pytest.mark.parametrize("page", PAGES[:3])
def test_collapse_warnings_show_as_a_banner(finished_runs, page):
    from scn.collapse import ADVICE, CollapseWarning

    writer = RunWriter(finished_runs["scn_dir"])
    for epoch in (3, 4):
        writer.log_warnings(epoch, [CollapseWarning("relabel_one_class", f"90% of epoch {epoch}'s relabels are "
                                                    "to happiness", {"class": "happiness", "share": 0.9})])
    writer.close()
    banner = texts(render(page).warning)
    assert "Relabels flow into one class" in banner and "(epoch 3, 4)" in banner
    assert "90% of epoch 4's relabels are to happiness" in banner and ADVICE["relabel_one_class"] in banner


def test_the_banner_shows_exactly_the_warnings_the_trainer_recorded(empty_root, tmp_path):
    from scn.collapse import TITLES

    run_dir = train_collapsing_run(tmp_path / "data", empty_root / "20260101-130000-collapsing")
    recorded = set(RunReader(run_dir).warnings()["kind"])
    assert {"alpha_collapsed", "relabel_surge"} <= recorded
    shown = texts(render("pages/1_Training.py").warning)
    assert {kind for kind, title in TITLES.items() if title in shown} == recorded


def test_a_run_without_collapse_warnings_has_no_banner(empty_root, tmp_path):
    from bench.simulated_run import write_dataset, write_simulated_run
    from scn.collapse import TITLES

    write_simulated_run(empty_root / "20260101-120000-sim", data_dir=write_dataset(tmp_path / "d", train=40, test=14))
    assert RunReader(empty_root / "20260101-120000-sim").warnings().empty
    shown = texts(render("pages/1_Training.py").warning)
    assert not any(title in shown for title in TITLES.values())


def test_training_page_shows_the_backbone_build_before_the_first_step(empty_root):
    run_dir = empty_root / "20260101-120000-demo-scn"
    writer = RunWriter(run_dir)
    writer.write_config({"method": "scn", "epochs": 10, "pretrained": "synth-face"})
    writer.set_status("starting", total_epochs=10)
    writer.close()
    (run_dir / "train.log").write_text("INFO synth-face epoch 3/10: identity loss 3.1, held-out identity "
                                       "accuracy 41.0%, 120 s so far, about 280 s left\n")
    at = render("pages/1_Training.py")
    assert "synth-face backbone" in texts(at.info)
    assert "synth-face epoch 3/10" in texts(at.code)


def _figure_traces(at: AppTest) -> list:
    """The trace names of every plotly chart on the page, chart by chart."""
    return [[trace.get("name") for trace in json.loads(chart.proto.spec)["data"]]
            for chart in at.get("plotly_chart")]


def test_attention_and_relabels_pages_score_against_the_noise_model(finished_runs):
    at = render("pages/2_Attention.py")
    assert ["label wrong at that epoch", "original label noisy", "ambiguous face"] in _figure_traces(at)
    assert "Ground truth: **symmetric** label noise" in texts(at.caption)
    at = render("pages/3_Relabels.py")
    assert "Ground truth: **symmetric** label noise" in texts(at.caption)
    quality = at.dataframe[0].value
    assert (quality["wrong_labels"] == quality["noisy_total"] - quality["noisy_fixed"]
            + quality["clean_broken"]).all()


def test_ground_truth_written_before_noise_models_still_scores_ambiguity(finished_runs):
    reader = RunReader(finished_runs["scn_dir"])
    old = reader.groundtruth().drop(columns=["noise_model", "ambiguity", "votes"])
    writer = RunWriter(finished_runs["scn_dir"])
    writer.add_groundtruth(old)
    writer.close()
    at = render("pages/2_Attention.py")
    assert "label noise of an unrecorded model" in texts(at.caption)
    assert "ambiguous face" in sum(_figure_traces(at), [])


def test_the_home_page_has_a_title_and_the_pages_keep_their_addresses(empty_root):
    def script():
        import streamlit as st

        from studio import ui
        for page in ui.app_pages():
            st.text(f"{page.title}|{page.url_path}")

    at = AppTest.from_function(script, default_timeout=30).run()
    rows = [t.value.split("|") for t in at.text]
    assert rows[0][0] == "Home"
    assert [tuple(row) for row in rows[1:]] == [
        ("Training", "Training"), ("Attention", "Attention"), ("Relabels", "Relabels"),
        ("Confusion", "Confusion"), ("Compare", "Compare"), ("Predict", "Predict"), ("Sample", "Sample"),
        ("Slices", "Slices")]


def test_notes_and_tags_are_saved_shown_and_filter_the_runs(finished_runs):
    at = render()
    name = "20260101-120000-scn"
    at.text_area(key=f"note-{name}").input("relabels too early?\nsecond line")
    at.text_input(key=f"tags-{name}").input("noise30, keep")
    at.button(key=f"FormSubmitter:annotations-{name}-Save notes and tags").click().run()
    assert f"Saved the notes and tags of {name}" in texts(at.success)
    assert RunReader(finished_runs["scn_dir"]).annotations() == {
        "note": "relabels too early?\nsecond line", "tags": ["noise30", "keep"]}
    table = at.dataframe[0].value.set_index("run")
    assert list(table.loc[name, "tags"]) == ["noise30", "keep"] and table.loc[name, "note"] == "relabels too early?"
    at.multiselect(key="tag_filter").select("keep").run()
    assert at.dataframe[0].value["run"].tolist() == [name]
    at.text_input(key=f"tags-{name}").input("x" * 50)
    at.button(key=f"FormSubmitter:annotations-{name}-Save notes and tags").click().run()
    assert "Not saved: tag" in texts(at.error) and "at most 40" in texts(at.error)
    assert RunReader(finished_runs["scn_dir"]).annotations()["tags"] == ["noise30", "keep"]


def test_a_run_is_deleted_after_confirmation_and_not_while_it_trains(finished_runs):
    scn = finished_runs["scn_dir"]
    with lock_held(scn):
        at = render()
        assert at.button(key="delete_run").disabled
    at = render()
    at.button(key="delete_run").click().run()
    assert "cannot be undone" in texts(at.markdown) and scn.exists()
    at.button(key="delete_cancelled").click().run()
    assert scn.exists()
    at.button(key="delete_run").click().run()
    at.button(key="delete_confirmed").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert not scn.exists() and finished_runs["baseline_dir"].exists()
    assert f"Deleted {scn.name}" in texts(at.success)
    assert at.dataframe[0].value["run"].tolist() == ["20260101-110000-baseline"]


def test_training_charts_draw_the_run_in_its_colour_and_mark_relabeling(finished_runs):
    colors = charts.run_colors(p.name for p in finished_runs["root"].iterdir())
    for run, relabel_lines, losses in (("scn_dir", [1], {"L_WCE", "L_RR"}), ("baseline_dir", [], {"L_WCE"})):
        name = finished_runs[run].name
        at = render("pages/1_Training.py", session={"run_picker_choice": name})
        loss, _, accuracy, _ = (json.loads(c.proto.spec) for c in at.get("plotly_chart"))
        assert {t["name"].split(" (")[0] for t in loss["data"]} == losses
        assert {t["line"]["color"] for t in loss["data"] + accuracy["data"]} == {colors[name]}
        assert accuracy["data"][0]["name"] == "train accuracy (on current labels)"
        assert [s["x0"] for s in accuracy["layout"].get("shapes", [])] == relabel_lines


def make_newest(run_dir, *, by: float = 86_400.0) -> None:
    """Mark `run_dir` as started `by` seconds after every other run (the demo's baseline starts last)."""
    with sqlite3.connect(run_dir / "run.db") as db:
        db.execute("UPDATE status SET started = started + ?", (by,))


@pytest.mark.parametrize("page", ["app.py"] + [p for p in PAGES if p != "pages/5_Compare.py"])
def test_every_page_opens_on_the_newest_scn_run_not_the_newest_run(finished_runs, page):
    make_newest(finished_runs["baseline_dir"])
    at = render(page)
    picker = at.selectbox(key="run_picker")
    assert picker.options[0].startswith("20260101-110000-baseline")
    assert picker.value == "20260101-120000-scn"


def starting_run(root, name: str, config: dict):
    writer = RunWriter(root / name)
    writer.write_config(config)
    writer.set_status("starting", started=1.0, pid=os.getpid())
    writer.close()
    return root / name


def test_slices_of_a_starting_built_in_run_wait_for_its_ground_truth(empty_root):
    run_dir = starting_run(empty_root, "starting", {"data": None, "method": "scn", "epochs": 3})
    with lock_held(run_dir):
        at = render("pages/8_Slices.py")
    assert "recorded once the trainer has prepared the images" in texts(at.info)
    assert "has no ground truth" not in texts(at.info)


def test_a_starting_run_shows_the_shared_build_it_waits_for(empty_root, tmp_path, monkeypatch):
    monkeypatch.setenv("SCN_STUDIO_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache" / "backbones").mkdir(parents=True)
    lock_file = tmp_path / "cache" / "backbones" / "synth-face.lock"
    run_dir = starting_run(empty_root, "waiting", {"data": None, "method": "baseline", "epochs": 3})
    with lock_held(run_dir), builds.exclusive(lock_file), builds.progress(lock_file, what="the backbone") as line:
        line("synth-face epoch 3/16: held-out identity accuracy 41.0%")
        at = render("pages/1_Training.py")
    assert "Waiting for a shared build" in texts(at.info)
    assert "synth-face epoch 3/16" in texts(at.code) and "building the backbone" in texts(at.code)
    assert "(empty)" not in texts(at.code) and "heartbeat" not in texts(at.markdown)


@pytest.mark.parametrize("how", ["truncated", "malformed"])
@pytest.mark.parametrize("page", PAGES + ["pages/6_Predict.py"])
def test_every_page_explains_a_damaged_database(empty_root, page, how):
    run_dir = empty_root / "20260101-120000-scn"
    writer = RunWriter(run_dir)
    writer.write_config({"method": "scn", "epochs": 2, "class_names": ["a", "b"], "relabel_epoch": 1})
    writer.set_status("finished", started=100.0)
    writer.log_epoch({"epoch": 1, "test_accuracy": 0.5})
    writer.close()
    db = run_dir / "run.db"
    if how == "truncated":
        os.truncate(db, 4096)
    else:
        size = db.stat().st_size
        db.write_bytes(db.read_bytes()[:4096] + b"\xff" * (size - 4096))
    at = render(page, session={"run_picker_choice": run_dir.name})
    assert "damaged" in texts(at.error) or "truncated" in texts(at.error), texts(at.error)
