import numpy as np
import pandas as pd
import pytest

from scn import analysis, charts
from scn.classes import CLASS_NAMES
from scn.store import RunReader


def test_training_figures_plot_steps_and_epochs(finished_runs):
    reader = RunReader(finished_runs["scn_dir"])
    steps, epochs = reader.step_metrics(), reader.epoch_metrics()
    loss = charts.loss_figure(steps, epochs)
    assert [t.name for t in loss.data] == ["L_WCE (step)", "L_WCE (epoch)", "L_RR (step)", "L_RR (epoch)"]
    # steps are laid out as fractional epochs: the last step of epoch 4 sits at 4.0
    assert loss.data[0].x[-1] == 4.0 and len(loss.data[0].x) == len(steps)
    accuracy = charts.accuracy_figure(epochs)
    assert [t.name for t in accuracy.data] == [
        "train accuracy (on current labels)", "train accuracy (on original labels)",
        "train accuracy (on true labels)", "validation", "test"]
    assert list(accuracy.data[4].y) == epochs["test_accuracy"].tolist()
    assert list(accuracy.data[2].y) == epochs["train_accuracy_truth"].tolist()
    # A store without ground truth (or from before these were recorded) draws what it has.
    plain = epochs.assign(train_accuracy_truth=np.nan)
    assert "train accuracy (on true labels)" not in [t.name for t in charts.accuracy_figure(plain).data]


def test_sample_history_figure_marks_relabels(finished_runs):
    reader = RunReader(finished_runs["scn_dir"])
    event = reader.relabels().iloc[-1]
    history = reader.sample_history(int(event["idx"]))
    figure = charts.sample_history_figure(history, reader.relabels().query(f"idx == {event['idx']}"),
                                          class_names=reader.class_names())
    assert [t.name for t in figure.data] == ["alpha", "p(given label)", "p_max", "given label (trained with)",
                                             "prediction"]
    assert list(figure.data[0].y) == pytest.approx(history["alpha"].tolist())
    names = reader.class_names()
    assert figure.data[4].y[int(event["epoch"]) - 1] == names[int(event["new"])]
    assert f"{names[int(event['old'])]} → {names[int(event['new'])]}" in [a.text for a in figure.layout.annotations]


def test_empty_frames_give_empty_figures():
    empty = pd.DataFrame(columns=["epoch", "step", "loss_wce", "loss_rr", "train_loss_wce",
                                  "train_loss_rr", "train_accuracy", "val_accuracy", "test_accuracy"])
    assert len(charts.loss_figure(empty, empty).data) == 0
    assert len(charts.accuracy_figure(empty).data) == 0


def test_attention_figures():
    values = pd.Series([0.1, 0.2, 0.8, 0.9])
    groups = pd.Series(["low", "low", "high", "high"])
    hist = charts.alpha_histogram(values, groups, title="t", colors=charts.HIGH_LOW_COLORS)
    assert [t.name for t in hist.data] == ["high", "low"]
    assert list(hist.data[1].x) == [0.1, 0.2]
    assert hist.data[0].xbins.size == hist.data[1].xbins.size == pytest.approx(0.8 / 40)
    box = charts.alpha_box(values, pd.Series(["b", "a", "c", "a"]), title="t", order=["c", "b", "a", "z"])
    assert [t.name for t in box.data] == ["c", "b", "a"]
    counts, edges = analysis.histograms(np.array([[0.1, 0.9], [0.5, 0.6]]), bins=5)
    heat = charts.alpha_heatmap([1, 2], counts, edges)
    assert np.allclose(np.asarray(heat.data[0].z).sum(axis=1), 1.0)
    gap = charts.gap_figure([1, 2], [0.05, 0.2], margin_1=0.15)
    assert gap.layout.shapes[0].y0 == 0.15


def test_relabel_figures_count_events():
    counts = pd.DataFrame({"epoch": [2, 2, 3], "old": [0, 1, 0], "new": [3, 3, 6], "count": [4, 1, 2]})
    stacked = charts.relabels_per_epoch(counts, class_names=CLASS_NAMES)
    assert {t.name: list(t.y) for t in stacked.data} == {"happiness": [5], "neutral": [2]}
    matrix = charts.class_pair_matrix(counts, class_names=CLASS_NAMES)
    z = np.asarray(matrix.data[0].z)
    assert z[0, 3] == 4 and z[1, 3] == 1 and z[0, 6] == 2 and z.sum() == 7


def test_confusion_figure_labels_and_delta_colours():
    matrix = analysis.normalise_rows(np.array([[3, 1], [0, 4]]))
    figure = charts.confusion_figure(matrix, class_names=["a", "b"], title="m")
    assert list(figure.data[0].x) == ["a", "b"] and figure.data[0].text[0][0] == "0.75"
    delta = charts.confusion_figure(matrix - 0.5, class_names=["a", "b"], title="d", diverging=True)
    assert delta.data[0].zmid == 0 and delta.data[0].text[0][0] == "+0.25"
    clickable = charts.confusion_figure(matrix, class_names=["a", "b"], title="m", clickable=True)
    cells = clickable.data[1]  # one marker per cell: x is the predicted class, y the true one
    assert list(zip(cells.y, cells.x, cells.text)) == [("a", "a", "0.75"), ("a", "b", "0.25"),
                                                       ("b", "a", "0.00"), ("b", "b", "1.00")]


def test_compare_figure_one_trace_per_run(finished_runs):
    curves = {d.name: RunReader(d).epoch_metrics()
              for d in (finished_runs["scn_dir"], finished_runs["baseline_dir"])}
    figure = charts.compare_figure(curves, column="test_accuracy", title="t", percent=True)
    assert [t.name for t in figure.data] == list(curves)


def test_probability_figure_highlights_the_top_class():
    figure = charts.probability_figure(np.array([0.1, 0.7, 0.2]), class_names=("a", "b", "c"), top="b")
    bar = figure.data[0]
    assert list(bar.y) == ["a", "b", "c"] and list(bar.x) == [0.1, 0.7, 0.2]
    assert [c == "#d62728" for c in bar.marker.color] == [False, True, False]
