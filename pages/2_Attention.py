"""Attention weights (alpha): their distribution per epoch and across epochs, by class and group,
against the ground truth where it is known, and the lowest- and highest-weight images."""
import numpy as np
import pandas as pd
import streamlit as st

from studio import ui
from scn import analysis, charts, metrics
from scn.synth.noise import AMBIGUOUS

GALLERY_SIZE = 12

ui.page("Attention weights")
reader = ui.pick_run()


def epoch_picker(epochs: list) -> int:
    """Follows the newest epoch while "follow" is ticked, so a live run's charts move on by
    themselves; unticked, the slider holds the chosen epoch."""
    follow = st.toggle("Follow the latest epoch", value=True, key="attention_follow")
    if follow or st.session_state.get("attention_epoch") not in epochs:
        st.session_state["attention_epoch"] = epochs[-1]
    if len(epochs) == 1:
        st.caption(f"Epoch {epochs[0]} (the only one recorded so far)")
        return epochs[0]
    return st.select_slider("Epoch", epochs, key="attention_epoch", disabled=follow)


def by_epoch(frame: pd.DataFrame, truth: pd.DataFrame | None, class_names: list) -> None:
    alpha = frame["alpha"]
    group = np.where(frame["is_high"], "high", "low")
    left, right = st.columns(2)
    with left:
        ui.plotly(charts.alpha_histogram(alpha, pd.Series(group), title="alpha by group",
                                         colors=charts.HIGH_LOW_COLORS))
    with right:
        classes = frame["label"].map(dict(enumerate(class_names)))
        ui.plotly(charts.alpha_box(alpha, classes, title="alpha by (current) class", order=class_names))
    if truth is None:
        return
    known = truth.reindex(frame["idx"])
    noisy = known["is_noisy"].map({True: "noisy", False: "clean"})
    left, right = st.columns(2)
    with left:
        score = metrics.auroc(-alpha.to_numpy(), known["is_noisy"].fillna(False).to_numpy(bool))
        ui.plotly(charts.alpha_histogram(alpha, noisy.reset_index(drop=True),
                                         title=f"alpha of clean vs noisy labels (AUROC {score:.2f})",
                                         colors=charts.CLEAN_NOISY_COLORS))
    with right:
        kinds = pd.DataFrame({"alpha": alpha.to_numpy(),
                              "kind": known["degradation"].str.split("+").to_numpy()}).explode("kind")
        ui.plotly(charts.alpha_box(kinds["alpha"], kinds["kind"],
                                   title="alpha by degradation (a sample counts under each it has)"))


def across_epochs(epochs: list, alpha: np.ndarray, is_high: np.ndarray, margin_1, relabel_epoch,
                  truth: pd.DataFrame | None) -> None:
    counts, edges = analysis.histograms(alpha)
    ui.plotly(charts.alpha_heatmap(epochs, counts, edges))
    left, right = st.columns(2)
    with left:
        ui.plotly(charts.gap_figure(epochs, analysis.group_gap(alpha, is_high), margin_1=margin_1,
                                    relabel_epoch=relabel_epoch))
    with right:
        if truth is None:
            st.info("No ground truth for this dataset, so whether low alpha marks noisy labels "
                    "cannot be scored (the built-in benchmark has it).")
        else:
            ui.plotly(charts.auroc_figure(attention_scores(epochs, alpha, truth)))
            ui.noise_model_caption(truth)


def attention_scores(epochs: list, alpha: np.ndarray, truth: pd.DataFrame) -> pd.DataFrame:
    """AUROC per epoch against the labels wrong then, the original flips and the ambiguous faces."""
    known = truth.reindex(np.arange(alpha.shape[1]))
    original = reader.original_labels()
    return metrics.attention_scores(
        epochs, alpha, original=original, true=known["true_label"].fillna(-1).to_numpy(np.int64),
        events=reader.relabels(), ambiguous=known["ambiguity"].to_numpy(np.float64) >= AMBIGUOUS)


def galleries(frame: pd.DataFrame, truth: pd.DataFrame | None, class_names: list) -> None:
    names = ui.sample_names(reader)
    ordered = frame.sort_values("alpha")
    for title, part in (("Lowest alpha", ordered.head(GALLERY_SIZE)),
                        ("Highest alpha", ordered.tail(GALLERY_SIZE)[::-1])):
        st.markdown(f"**{title}**")
        captions = []
        for row in part.itertuples():
            caption = f"{class_names[row.label]} · α {row.alpha:.2f}"
            if truth is not None and row.idx in truth.index:
                caption += " · noisy" if truth.at[row.idx, "is_noisy"] else " · clean"
            captions.append(caption)
        ui.gallery(reader, names.iloc[part["idx"]].tolist(), captions, samples=part["idx"].tolist())


def live() -> None:
    with ui.run_guard(reader):
        ui.collapse_banner(reader)
        options = reader.train_config()
        # The trainer records alpha = 1 for every sample of a baseline run: nothing to look at.
        if not options.uses_alpha:
            st.info("The attention weight alpha does not exist for baseline runs: a plain ResNet-18 "
                    "has no attention head, so this run has no alpha to show. Pick an SCN run.")
            return
        epochs, alpha, is_high = reader.attention_matrix()
        if not epochs:
            st.info("No epoch has finished yet: attention weights are recorded at the end of each epoch.")
            return
        class_names = reader.class_names()
        truth = ui.ground_truth(reader)
        epoch = epoch_picker(epochs)
        frame = reader.attention(epoch)
        st.subheader(f"Epoch {epoch}")
        by_epoch(frame, truth, class_names)
        st.subheader("Across epochs")
        across_epochs(epochs, alpha, is_high, options.margin_1, options.relabel_start, truth)
        st.subheader(f"Images at epoch {epoch}")
        galleries(frame, truth, class_names)


if reader is not None:
    ui.live(live, readers=[reader])
