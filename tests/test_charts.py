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
    assert tuple(accuracy.layout.yaxis.range) == (0, 1.0) and accuracy.layout.yaxis.tickformat == ".0%"


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


def test_sample_history_relabel_captions_neither_stray_nor_overlap(finished_runs):
    reader = RunReader(finished_runs["scn_dir"])
    events = reader.relabels()
    idx = int(events["idx"].value_counts().index[0])
    many = pd.concat([events[events["idx"] == idx]] + [events.iloc[:1].assign(idx=idx, epoch=e) for e in (1, 2, 3)])
    figure = charts.sample_history_figure(reader.sample_history(idx), many, class_names=reader.class_names())
    captions = [a for a in figure.layout.annotations if a.text and "→" in a.text]
    assert all(a.text and a.text != "new text" for a in figure.layout.annotations)
    assert len(captions) == many["epoch"].nunique()  # one per epoch, several relabels on separate lines
    neighbours = sorted(captions, key=lambda a: a.x)
    assert all(a.y != b.y for a, b in zip(neighbours, neighbours[1:]))


def test_one_run_is_one_colour_told_apart_by_line_style(finished_runs):
    reader = RunReader(finished_runs["scn_dir"])
    steps, epochs = reader.step_metrics(), reader.epoch_metrics()
    for figure in (charts.loss_figure(steps, epochs, color="#112233"),
                   charts.accuracy_figure(epochs, color="#112233")):
        assert {t.line.color for t in figure.data} == {"#112233"}
        assert len({(t.name, t.line.dash) for t in figure.data}) == len(figure.data)
    assert [t.line.dash for t in charts.accuracy_figure(epochs).data] == ["dot", "dashdot", "longdash", "dash",
                                                                          "solid"]


def test_baseline_loss_has_no_rank_regularisation_line(finished_runs):
    reader = RunReader(finished_runs["baseline_dir"])
    figure = charts.loss_figure(reader.step_metrics(), reader.epoch_metrics(),
                                rank_reg=reader.train_config().uses_rank_reg)
    assert [t.name for t in figure.data] == ["L_WCE (step)", "L_WCE (epoch)"]


def test_relabel_start_is_marked_at_the_start_of_its_epoch(finished_runs):
    scn, baseline = (RunReader(finished_runs[k]) for k in ("scn_dir", "baseline_dir"))
    assert scn.train_config().relabel_start == 2 and baseline.train_config().relabel_start is None
    epochs = scn.epoch_metrics()
    for figure in (charts.accuracy_figure(epochs, relabel_epoch=2),
                   charts.loss_figure(scn.step_metrics(), epochs, relabel_epoch=2),
                   charts.gap_figure([1, 2, 3], [0.1, 0.2, 0.1], margin_1=0.15, relabel_epoch=2)):
        lines = [shape for shape in figure.layout.shapes if shape.x0 == shape.x1]
        assert [line.x0 for line in lines] == [1]
        assert "relabeling from epoch 2" in [a.text for a in figure.layout.annotations]
    assert not charts.accuracy_figure(epochs, relabel_epoch=None).layout.shapes


def test_empty_charts_have_sensible_axes_and_say_why():
    empty = pd.DataFrame(columns=["epoch", "step", "loss_wce", "loss_rr", "train_loss_wce",
                                  "train_loss_rr", "train_accuracy", "val_accuracy", "test_accuracy", "lr"])
    accuracy = charts.accuracy_figure(empty, total_epochs=12)
    assert len(accuracy.data) == 0
    assert tuple(accuracy.layout.yaxis.range) == (0, 1.0) and tuple(accuracy.layout.xaxis.range) == (1, 12)
    assert [a.text for a in accuracy.layout.annotations] == ["No epoch finished yet"]
    loss = charts.loss_figure(empty, empty, total_epochs=12)
    assert len(loss.data) == 0 and tuple(loss.layout.xaxis.range) == (0, 12)
    assert [a.text for a in loss.layout.annotations] == ["No training step logged yet"]
    lr = charts.step_series_figure(empty, column="lr", title="Learning rate", y="lr")
    assert tuple(lr.layout.xaxis.range) == (0, 2)
    compare = charts.compare_figure({}, column="test_accuracy", title="t", y="accuracy", colors={},
                                    percent=True, total_epochs=5)
    assert tuple(compare.layout.yaxis.range) == (0, 1.0) and tuple(compare.layout.xaxis.range) == (1, 5)


def test_run_colours_are_stable_distinct_and_colour_blind_safe():
    names = [f"20260101-{i:06d}-scn" for i in range(11)]
    colors = charts.run_colors(names)
    assert set(colors.values()) == set(charts.RUN_PALETTE) and len(charts.RUN_PALETTE) == 11
    assert charts.run_colors(list(reversed(names))) == colors
    # a newer run never changes the colour of an older one
    newer = charts.run_colors(names[:4] + ["20270101-000000-new"])
    assert {n: newer[n] for n in names[:4]} == {n: colors[n] for n in names[:4]}
    assert len(set(newer.values())) == 5
    assert charts.run_colors(names + ["20270101-000000-twelfth"])["20270101-000000-twelfth"] in charts.RUN_PALETTE


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
    colors = charts.run_colors(curves)
    figure = charts.compare_figure(curves, column="test_accuracy", title="t", y="accuracy", colors=colors,
                                   percent=True, relabel_epochs={finished_runs["scn_dir"].name: 2})
    assert [t.name for t in figure.data] == list(curves)
    assert [t.line.color for t in figure.data] == [colors[name] for name in curves]
    assert [(s.x0, s.line.color) for s in figure.layout.shapes] == [(1, colors[finished_runs["scn_dir"].name])]


def test_probability_figure_highlights_the_top_class():
    figure = charts.probability_figure(np.array([0.1, 0.7, 0.2]), class_names=("a", "b", "c"), top="b")
    bar = figure.data[0]
    assert list(bar.y) == ["a", "b", "c"] and list(bar.x) == [0.1, 0.7, 0.2]
    assert [c == "#d62728" for c in bar.marker.color] == [False, True, False]


def test_legends_sit_below_the_x_axis_title_not_over_it(finished_runs):
    reader = RunReader(finished_runs["scn_dir"])
    steps, epochs = reader.step_metrics(), reader.epoch_metrics()
    for figure in (charts.loss_figure(steps, epochs, rank_reg=True, relabel_epoch=2, total_epochs=4),
                   charts.accuracy_figure(epochs, relabel_epoch=2, total_epochs=4)):
        legend = figure.layout.legend
        assert (legend.yref, legend.y, legend.yanchor, legend.orientation) == ("container", 0, "bottom", "h")
        assert figure.layout.margin.b >= 45 + charts.LEGEND_ROOM
