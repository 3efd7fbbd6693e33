"""Plotly figures of a run: plain functions from frames/arrays to figures, no streamlit, so the app,
notebooks and benchmark reports draw the same charts."""
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

HIGH_LOW_COLORS = {"high": "#1f77b4", "low": "#d62728"}
CLEAN_NOISY_COLORS = {"clean": "#2ca02c", "noisy": "#d62728"}


def _layout(figure: go.Figure, *, title: str, x: str, y: str, height: int = 320) -> go.Figure:
    figure.update_layout(title=title, xaxis_title=x, yaxis_title=y, height=height,
                         margin=dict(l=50, r=20, t=50, b=45), legend=dict(orientation="h", y=-0.25))
    return figure


def _epoch_position(steps: pd.DataFrame) -> pd.Series:
    """Steps as fractional epochs (epoch 1 spans 0..1), so step and epoch curves share an axis."""
    per_epoch = steps.groupby("epoch")["step"].transform("max") + 1
    return steps["epoch"] - 1 + (steps["step"] + 1) / per_epoch


def loss_figure(steps: pd.DataFrame, epochs: pd.DataFrame) -> go.Figure:
    """Weighted cross-entropy and rank-regularisation loss: per logged step and per epoch mean."""
    figure = go.Figure()
    x = _epoch_position(steps) if len(steps) else []
    for column, name, color in (("loss_wce", "L_WCE", "#1f77b4"), ("loss_rr", "L_RR", "#ff7f0e")):
        if len(steps):
            figure.add_scatter(x=x, y=steps[column], name=f"{name} (step)", mode="lines",
                               line=dict(color=color, width=1), opacity=0.45)
        if len(epochs):
            figure.add_scatter(x=epochs["epoch"], y=epochs[f"train_{column}"], name=f"{name} (epoch)",
                               mode="lines+markers", line=dict(color=color, width=2.5))
    return _layout(figure, title="Training loss", x="epoch", y="loss")


def accuracy_figure(epochs: pd.DataFrame) -> go.Figure:
    figure = go.Figure()
    for column, name in (("train_accuracy", "train"), ("val_accuracy", "validation"),
                         ("test_accuracy", "test")):
        if len(epochs) and epochs[column].notna().any():
            figure.add_scatter(x=epochs["epoch"], y=epochs[column], name=name, mode="lines+markers")
    figure.update_yaxes(tickformat=".0%")
    return _layout(figure, title="Accuracy", x="epoch", y="accuracy")


def step_series_figure(steps: pd.DataFrame, *, column: str, title: str, y: str) -> go.Figure:
    """One per-step quantity (learning rate, images/s) against fractional epochs."""
    figure = go.Figure()
    if len(steps):
        figure.add_scatter(x=_epoch_position(steps), y=steps[column], mode="lines", name=y)
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


def gap_figure(epochs, gap, *, margin_1: float | None) -> go.Figure:
    """mean(alpha high) - mean(alpha low) per epoch against the rank-regularisation margin."""
    figure = go.Figure()
    figure.add_scatter(x=list(epochs), y=list(gap), mode="lines+markers", name="high - low mean")
    if margin_1 is not None:
        figure.add_hline(y=margin_1, line_dash="dash", annotation_text=f"margin_1 = {margin_1}")
    return _layout(figure, title="Gap between high and low group", x="epoch", y="alpha gap",
                   height=280)


def auroc_figure(frame: pd.DataFrame) -> go.Figure:
    """Per-epoch AUROC of "low alpha flags a noisy label" (0.5 = no better than chance)."""
    figure = go.Figure()
    figure.add_scatter(x=frame["epoch"], y=frame["auroc"], mode="lines+markers", name="AUROC")
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
                     height: int = 420) -> go.Figure:
    """A (row-normalised) confusion matrix, or with `diverging` a change between two of them."""
    text = np.vectorize(lambda v: f"{v:+.2f}" if diverging else f"{v:.2f}")(matrix)
    heatmap = go.Heatmap(z=matrix, x=list(class_names), y=list(class_names), text=text,
                         texttemplate="%{text}", colorscale="RdBu" if diverging else "Blues",
                         zmid=0 if diverging else None, zmin=None if diverging else 0,
                         zmax=None if diverging else 1)
    figure = go.Figure(heatmap)
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


def compare_figure(curves: dict, *, column: str, title: str, percent: bool = False) -> go.Figure:
    """One epoch-metric column of several runs overlaid; `curves` maps run name -> epoch_metrics."""
    figure = go.Figure()
    for name, epochs in curves.items():
        if len(epochs) and epochs[column].notna().any():
            figure.add_scatter(x=epochs["epoch"], y=epochs[column], name=name, mode="lines+markers")
    if percent:
        figure.update_yaxes(tickformat=".0%")
    return _layout(figure, title=title, x="epoch", y=title.split()[-1])
