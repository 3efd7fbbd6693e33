"""Plotly figures of a run: plain functions from frames/arrays to figures, no streamlit, so the app,
notebooks and benchmark reports draw the same charts.

A run has one colour everywhere (`run_colors`); the series of one run are told apart by line
style. Empty charts get fixed axes and a message instead of plotly's default -1..4 range."""
import zlib

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

HIGH_LOW_COLORS = {"high": "#1f77b4", "low": "#d62728"}
CLEAN_NOISY_COLORS = {"clean": "#2ca02c", "noisy": "#d62728"}
# CARTO's "Safe" qualitative palette: 11 colours told apart with the common colour-vision deficiencies.
RUN_PALETTE = tuple(qualitative.Safe)
# Pixels under the x axis's title for one row of legend entries.
LEGEND_ROOM = 30
TRAIN_ACCURACY = "train accuracy (on current labels)"
# One run's series on one chart: (legend name, line dash, marker symbol).
ACCURACY_SERIES = (("train_accuracy", TRAIN_ACCURACY, "dot", "circle-open"),
                   ("train_accuracy_original", "train accuracy (on original labels)", "dashdot", "diamond-open"),
                   ("train_accuracy_truth", "train accuracy (on true labels)", "longdash", "triangle-up-open"),
                   ("val_accuracy", "validation", "dash", "square"),
                   ("test_accuracy", "test", "solid", "circle"))
LOSS_SERIES = (("loss_wce", "L_WCE", "solid"), ("loss_rr", "L_RR", "dash"))


def run_colors(names) -> dict:
    """Run name -> colour from RUN_PALETTE, the same on every page when every page passes the same
    names (all runs in the store).

    Each run takes the colour its name hashes to, or the next one no earlier run has taken; runs
    are taken in name order, which is start order for the app's time-stamped names, so a new run
    never changes an older run's colour. Beyond len(RUN_PALETTE) runs colours repeat.
    """
    colors, taken = {}, set()
    for name in sorted(set(names)):
        if len(taken) == len(RUN_PALETTE):
            taken.clear()
        start = zlib.crc32(str(name).encode())
        color = next(c for k in range(len(RUN_PALETTE))
                     if (c := RUN_PALETTE[(start + k) % len(RUN_PALETTE)]) not in taken)
        colors[name] = color
        taken.add(color)
    return colors


def _layout(figure: go.Figure, *, title: str, x: str, y: str, height: int = 320) -> go.Figure:
    """Title, axis titles and height; the legend in a row of its own at the foot of the figure
    (placed in pixels of the whole figure, `yref="container"`), below the x axis's title rather
    than over it whatever the figure's height."""
    figure.update_layout(title=title, xaxis_title=x, yaxis_title=y, height=height + LEGEND_ROOM,
                         margin=dict(l=50, r=20, t=50, b=45 + LEGEND_ROOM),
                         legend=dict(orientation="h", yref="container", y=0, yanchor="bottom", x=0, xanchor="left"))
    return figure


def _epoch_axes(figure: go.Figure, *, total_epochs: int | None, percent: bool = False,
                steps: bool = False, message: str = "No epoch finished yet") -> go.Figure:
    """Accuracy from 0 to 100%; and for a chart with nothing to draw yet, epochs 1..total_epochs
    (0..total on a per-step axis) and `message`, rather than an autoscaled empty range."""
    if percent:
        figure.update_yaxes(range=[0, 1.0], tickformat=".0%")
    if not figure.data:
        last = max(int(total_epochs or 1), 2)
        figure.update_xaxes(range=[0 if steps else 1, last], dtick=max(1, last // 10))
        if not percent:
            figure.update_yaxes(range=[0, 1], showticklabels=False)
        figure.add_annotation(text=message, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5,
                              font=dict(size=14, color="#7f7f7f"))
    return figure


def _relabel_marker(figure: go.Figure, relabel_epoch: int | None, *, color: str = "#7f7f7f",
                    label: str | None = None) -> go.Figure:
    """A vertical line where relabeling starts: the start of epoch `relabel_epoch`, which is
    x = relabel_epoch - 1 on both the per-step axis (epoch 1 spans 0..1) and the per-epoch one
    (the point at x = e is the end of epoch e)."""
    if relabel_epoch is not None:
        figure.add_vline(x=relabel_epoch - 1, line_dash="dot", line_color=color,
                         annotation_text=label or f"relabeling from epoch {relabel_epoch}",
                         annotation_position="top right", annotation_font_color=color)
    return figure


def _epoch_position(steps: pd.DataFrame) -> pd.Series:
    """Steps as fractional epochs (epoch 1 spans 0..1), so step and epoch curves share an axis."""
    per_epoch = steps.groupby("epoch")["step"].transform("max") + 1
    return steps["epoch"] - 1 + (steps["step"] + 1) / per_epoch


def loss_figure(steps: pd.DataFrame, epochs: pd.DataFrame, *, color: str = RUN_PALETTE[0],
                rank_reg: bool = True, total_epochs: int | None = None,
                relabel_epoch: int | None = None) -> go.Figure:
    """Weighted cross-entropy and, where the run has rank regularisation (`rank_reg`; a baseline
    has none), the rank-regularisation loss: per logged step and per epoch mean, in the run's
    `color`, with the start of relabeling marked."""
    figure = go.Figure()
    x = _epoch_position(steps) if len(steps) else []
    for column, name, dash in LOSS_SERIES[: 2 if rank_reg else 1]:
        if len(steps):
            figure.add_scatter(x=x, y=steps[column], name=f"{name} (step)", mode="lines",
                               line=dict(color=color, width=1, dash=dash), opacity=0.45)
        if len(epochs):
            figure.add_scatter(x=epochs["epoch"], y=epochs[f"train_{column}"], name=f"{name} (epoch)",
                               mode="lines+markers", line=dict(color=color, width=2.5, dash=dash))
    _epoch_axes(figure, total_epochs=total_epochs, steps=True, message="No training step logged yet")
    _relabel_marker(figure, relabel_epoch)
    return _layout(figure, title="Training loss", x="epoch", y="loss")


def accuracy_figure(epochs: pd.DataFrame, *, color: str = RUN_PALETTE[0], total_epochs: int | None = None,
                    relabel_epoch: int | None = None) -> go.Figure:
    """Accuracy per epoch in the run's `color`, the series told apart by line style, on a 0-100%
    axis. Train accuracy is drawn against three label sets where known: the labels each sample was
    trained with (relabels included), the dataset's original labels, and the ground truth; on noisy
    labels the first flatters a model that relabels toward its own predictions."""
    figure = go.Figure()
    for column, name, dash, symbol in ACCURACY_SERIES:
        if len(epochs) and column in epochs and epochs[column].notna().any():
            figure.add_scatter(x=epochs["epoch"], y=epochs[column], name=name, mode="lines+markers",
                               line=dict(color=color, dash=dash), marker=dict(symbol=symbol, size=7))
    _epoch_axes(figure, total_epochs=total_epochs, percent=True)
    _relabel_marker(figure, relabel_epoch)
    return _layout(figure, title="Accuracy", x="epoch", y="accuracy")


def sample_history_figure(history: pd.DataFrame, events: pd.DataFrame, *, class_names) -> go.Figure:
    """One training sample across epochs (RunReader.sample_history): alpha, p(given label) and
    p_max above; the label it was trained with and the model's prediction below; each relabel event
    (RunReader.relabels rows of the sample) marked at its epoch."""
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.6, 0.4], vertical_spacing=0.08)
    for column, name, color in (("alpha", "alpha", "#1f77b4"), ("p_given", "p(given label)", "#2ca02c"),
                                ("p_max", "p_max", "#7f7f7f")):
        if history[column].notna().any():
            figure.add_scatter(x=history["epoch"], y=history[column], name=name, mode="lines+markers",
                               line=dict(color=color), row=1, col=1)
    names = dict(enumerate(class_names))
    for column, name, dash in (("label", "given label (trained with)", "solid"), ("pred", "prediction", "dot")):
        known = history[history[column] >= 0]
        if len(known):
            figure.add_scatter(x=known["epoch"], y=known[column].map(names), name=name, mode="lines+markers",
                               line=dict(dash=dash, shape="hv"), row=2, col=1)
    # One line and one caption per epoch with relabels (an epoch may relabel a sample more than
    # once), the captions of neighbouring epochs at staggered heights so that they do not overlap.
    for position, (epoch, group) in enumerate(events.groupby("epoch", sort=True)):
        for row in (1, 2):
            figure.add_vline(x=epoch, line_dash="dash", line_color="#d62728", row=row, col=1)
        text = "<br>".join(f"{names.get(e.old, e.old)} → {names.get(e.new, e.new)}" for e in group.itertuples())
        figure.add_annotation(x=epoch, y=1.0 - 0.14 * (position % 3), text=text, showarrow=False,
                              xanchor="left", yanchor="top", font=dict(color="#d62728", size=11),
                              bgcolor="rgba(255,255,255,0.8)", row=1, col=1)
    figure.update_yaxes(range=[0, 1.05], row=1, col=1)
    figure.update_yaxes(type="category", categoryorder="array", categoryarray=list(class_names),
                        title_text="class", row=2, col=1)
    figure.update_xaxes(title_text="epoch", dtick=1, row=2, col=1)
    return _layout(figure, title="Across epochs", x="", y="alpha / probability", height=480)


def step_series_figure(steps: pd.DataFrame, *, column: str, title: str, y: str,
                       color: str = RUN_PALETTE[0], total_epochs: int | None = None) -> go.Figure:
    """One per-step quantity (learning rate, images/s) against fractional epochs."""
    figure = go.Figure()
    if len(steps):
        figure.add_scatter(x=_epoch_position(steps), y=steps[column], mode="lines", name=y,
                           line=dict(color=color))
    _epoch_axes(figure, total_epochs=total_epochs, steps=True, message="No training step logged yet")
    return _layout(figure, title=title, x="epoch", y=y, height=260)


def _groups(groups: pd.Series, order) -> list:
    present = set(groups.dropna().unique())
    return [g for g in order if g in present] if order else sorted(present, key=str)


def alpha_histogram(values: pd.Series, groups: pd.Series, *, title: str, colors=None,
                    bins: int = 40) -> go.Figure:
    """Overlaid, normalised histograms of alpha, one per group (high/low, clean/noisy...), on
    shared bins so the groups compare bar for bar."""
    figure = go.Figure()
    lo, hi = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
    edges = dict(start=lo, end=hi + 1e-9, size=max(hi - lo, 1e-3) / bins)
    for group in _groups(groups, None):
        figure.add_histogram(x=values[groups == group], name=str(group), opacity=0.6,
                             histnorm="probability", xbins=edges, autobinx=False,
                             marker_color=(colors or {}).get(group))
    figure.update_layout(barmode="overlay")
    return _layout(figure, title=title, x="alpha (attention weight)", y="share of samples")


def alpha_box(values: pd.Series, groups: pd.Series, *, title: str, order=None) -> go.Figure:
    """Alpha per group as box plots: readable with many groups (classes, degradation kinds);
    `order` fixes the order of the groups (e.g. the class order), else they are sorted."""
    figure = go.Figure()
    for group in _groups(groups, order):
        figure.add_box(y=values[groups == group], name=str(group), boxpoints=False)
    figure.update_layout(showlegend=False)
    return _layout(figure, title=title, x="", y="alpha")


def alpha_heatmap(epochs, counts: np.ndarray, edges: np.ndarray) -> go.Figure:
    """Histograms of alpha across epochs as a heat map (epoch x alpha bin, share of samples)."""
    centers = (edges[:-1] + edges[1:]) / 2
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    figure = go.Figure(go.Heatmap(x=centers, y=list(epochs), z=shares, colorscale="Viridis",
                                  colorbar=dict(title="share")))
    return _layout(figure, title="Distribution of alpha across epochs", x="alpha", y="epoch",
                   height=360)


def gap_figure(epochs, gap, *, margin_1: float | None, relabel_epoch: int | None = None) -> go.Figure:
    """mean(alpha high) - mean(alpha low) per epoch against the rank-regularisation margin, with
    the start of relabeling marked."""
    figure = go.Figure()
    figure.add_scatter(x=list(epochs), y=list(gap), mode="lines+markers", name="high - low mean")
    if margin_1 is not None:
        figure.add_hline(y=margin_1, line_dash="dash", annotation_text=f"margin_1 = {margin_1}")
    _relabel_marker(figure, relabel_epoch)
    return _layout(figure, title="Gap between high and low group", x="epoch", y="alpha gap",
                   height=280)


AUROC_SERIES = {"auroc": "AUROC", "auroc_wrong_now": "label wrong at that epoch",
                "auroc_noisy": "original label noisy", "auroc_ambiguous": "ambiguous face"}


def auroc_figure(frame: pd.DataFrame) -> go.Figure:
    """Per-epoch AUROC of "low alpha flags a noisy label" (0.5 = no better than chance): one line per
    AUROC_SERIES column present (scn.metrics.attention_scores' targets)."""
    figure = go.Figure()
    for column, name in AUROC_SERIES.items():
        if column in frame:
            figure.add_scatter(x=frame["epoch"], y=frame[column], mode="lines+markers", name=name)
    figure.add_hline(y=0.5, line_dash="dot", annotation_text="chance")
    figure.update_yaxes(range=[0, 1])
    return _layout(figure, title="Does low alpha flag noisy labels? (AUROC)", x="epoch", y="AUROC",
                   height=280)


def relabels_per_epoch(counts: pd.DataFrame, *, class_names, by: str = "new") -> go.Figure:
    """Relabel events per epoch, stacked by the class (`by` = 'new' or 'old')."""
    figure = go.Figure()
    totals = counts.groupby(["epoch", by])["count"].sum().reset_index()
    for c, name in enumerate(class_names):
        part = totals[totals[by] == c]
        if len(part):
            figure.add_bar(x=part["epoch"], y=part["count"], name=name)
    figure.update_layout(barmode="stack")
    label = "new" if by == "new" else "old"
    return _layout(figure, title=f"Relabels per epoch, by {label} class", x="epoch", y="events")


def class_pair_matrix(counts: pd.DataFrame, *, class_names) -> go.Figure:
    """Relabel events as an old -> new class matrix."""
    n = len(class_names)
    matrix = np.zeros((n, n), dtype=np.int64)
    pairs = counts.groupby(["old", "new"])["count"].sum()
    for (old, new), value in pairs.items():
        matrix[int(old), int(new)] = value
    figure = go.Figure(go.Heatmap(z=matrix, x=list(class_names), y=list(class_names),
                                  colorscale="Blues", text=matrix, texttemplate="%{text}"))
    figure.update_yaxes(autorange="reversed")
    return _layout(figure, title="Relabels: given (old) class -> new class", x="new class",
                   y="old class", height=380)


def relabel_quality_figure(quality: pd.DataFrame) -> go.Figure:
    """Precision and recall of relabelling per epoch, with the clean labels broken on a 2nd axis."""
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    figure.add_scatter(x=quality["epoch"], y=quality["precision"], name="precision", mode="lines+markers")
    figure.add_scatter(x=quality["epoch"], y=quality["recall"], name="recall (noisy fixed)",
                       mode="lines+markers")
    figure.add_bar(x=quality["epoch"], y=quality["clean_broken"], name="clean labels broken",
                   opacity=0.35, marker_color="#d62728", secondary_y=True)
    figure.update_yaxes(range=[0, 1], tickformat=".0%", secondary_y=False)
    figure.update_yaxes(title_text="clean labels broken", rangemode="tozero", tickformat=",d",
                        secondary_y=True)
    return _layout(figure, title="Relabels against ground truth", x="epoch", y="share")


# Measure of a slice -> (label, the count it is taken over).
SLICE_MEASURES = {"mean_alpha": ("mean alpha", "train_images"), "train_accuracy": ("train accuracy", "train_images"),
                  "test_accuracy": ("test accuracy", "test_images"),
                  "relabel_precision": ("relabel precision", "relabels")}


def slice_figure(scores: pd.DataFrame, *, dimension: str) -> go.Figure:
    """Grouped bars of one dimension's slices (scn.slices.slice_scores rows): each measure that
    has values, labelled with the number of images (or relabels) it is taken over."""
    rows = scores[scores["dimension"] == dimension]
    figure = go.Figure()
    for column, (name, count) in SLICE_MEASURES.items():
        if column in rows and rows[column].notna().any():
            figure.add_bar(x=rows["slice"], y=rows[column], name=name,
                           text=[f"n={n}" for n in rows[count]], textposition="outside",
                           hovertemplate=f"{name}: %{{y:.3f}} (%{{text}})<extra>%{{x}}</extra>")
    figure.update_layout(barmode="group", yaxis_range=[0, 1.15])
    return _layout(figure, title=dimension.capitalize(), x="", y="share / mean", height=340)


def confusion_figure(matrix: np.ndarray, *, class_names, title: str, diverging: bool = False,
                     height: int = 420, clickable: bool = False) -> go.Figure:
    """A (row-normalised) confusion matrix, or with `diverging` a change between two of them.

    With `clickable`, every cell also carries an invisible marker: plotly selects no heatmap cell
    on a click (so streamlit's on_select reports nothing), but it does select a scatter point, whose
    x (predicted) and y (true class) name the cell."""
    text = np.vectorize(lambda v: f"{v:+.2f}" if diverging else f"{v:.2f}")(matrix)
    heatmap = go.Heatmap(z=matrix, x=list(class_names), y=list(class_names), text=text,
                         texttemplate="%{text}", colorscale="RdBu" if diverging else "Blues",
                         zmid=0 if diverging else None, zmin=None if diverging else 0,
                         zmax=None if diverging else 1)
    figure = go.Figure(heatmap)
    if clickable:
        true, predicted = np.meshgrid(list(class_names), list(class_names), indexing="ij")
        figure.add_scatter(x=predicted.ravel(), y=true.ravel(), mode="markers", text=text.ravel(),
                           marker=dict(symbol="square", size=34, color="rgba(0,0,0,0)"), showlegend=False,
                           hovertemplate="true %{y}, predicted %{x}: %{text}<extra>click to list</extra>")
    figure.update_yaxes(autorange="reversed")
    return _layout(figure, title=title, x="predicted", y="true", height=height)


def probability_figure(probs, *, class_names, top: str) -> go.Figure:
    """One face's class probabilities as horizontal bars, its top class highlighted."""
    colors = ["#d62728" if name == top else "#7f7f7f" for name in class_names]
    figure = go.Figure(go.Bar(x=list(map(float, probs)), y=list(class_names), orientation="h",
                              marker_color=colors, text=[f"{p:.1%}" for p in probs], textposition="auto"))
    figure.update_layout(height=260, margin=dict(l=0, r=10, t=10, b=10),
                         xaxis=dict(range=[0, 1], title="probability"), yaxis=dict(autorange="reversed"))
    return figure


def compare_figure(curves: dict, *, column: str, title: str, y: str, colors: dict,
                   percent: bool = False, relabel_epochs: dict | None = None,
                   total_epochs: int | None = None) -> go.Figure:
    """One epoch-metric column of several runs overlaid, each in its colour (`colors`, from
    run_colors); `curves` maps run name -> epoch_metrics, `relabel_epochs` run name -> the epoch
    its relabeling starts (marked in the run's colour; absent or None: it never relabels)."""
    figure = go.Figure()
    for name, epochs in curves.items():
        if len(epochs) and epochs[column].notna().any():
            figure.add_scatter(x=epochs["epoch"], y=epochs[column], name=name, mode="lines+markers",
                               line=dict(color=colors[name]))
    _epoch_axes(figure, total_epochs=total_epochs, percent=percent)
    for name, epoch in (relabel_epochs or {}).items():
        _relabel_marker(figure, epoch, color=colors[name], label=f"{name}: relabeling from {epoch}")
    return _layout(figure, title=title, x="epoch", y=y)
