"""Test-set confusion: normalised matrix at any epoch, per-class precision/recall/F1, the change
against the previous epoch, the test images of a clicked cell, and a second run (e.g. SCN vs the
baseline) side by side."""
import streamlit as st

from studio import ui
from scn import analysis, charts

CELL_IMAGES = 24

ui.page("Confusion")
reader = ui.pick_run()


def select_cell() -> None:
    """A click on a cell of the matrix chooses that cell for the drill-down below it."""
    points = st.session_state["confusion_a"].selection.points
    if points:
        st.session_state["drill_true"], st.session_state["drill_pred"] = points[0]["y"], points[0]["x"]


def matrix_view(reader, epoch: int, *, title: str, key: str, selectable: bool = False) -> None:
    class_names = reader.class_names()
    matrix = reader.confusion(epoch)
    clicks = {"on_select": select_cell, "selection_mode": "points"} if selectable else {}
    ui.plotly(charts.confusion_figure(analysis.normalise_rows(matrix), class_names=class_names,
                                      title=title, clickable=selectable), key=key, **clicks)
    metrics = analysis.per_class_metrics(matrix, class_names=class_names)
    accuracy = matrix.trace() / max(1, matrix.sum())
    st.caption(f"Accuracy {accuracy:.1%} · macro F1 {analysis.macro_f1(matrix):.3f}")
    # A class never predicted has no precision: a blank cell, not a raw "None".
    st.dataframe(metrics.assign(**{name: ui.blank_missing(metrics[name], "{:.3f}")
                                   for name in ("precision", "recall", "f1")}),
                 hide_index=True, width="stretch")


def live() -> None:
    with ui.run_guard(reader):
        epochs = reader.confusion_epochs()
        if not epochs:
            st.info("No confusion matrix yet: one is written at the end of each epoch.")
            return
        epoch = epochs[-1] if len(epochs) == 1 else st.select_slider(
            "Epoch", epochs, value=epochs[-1], key="confusion_epoch")
        left, right = st.columns(2)
        with left:
            matrix_view(reader, epoch, title=f"{reader.name}, epoch {epoch}", key="confusion_a",
                        selectable=True)
        with right:
            previous = [e for e in epochs if e < epoch]
            if previous:
                change = (analysis.normalise_rows(reader.confusion(epoch))
                          - analysis.normalise_rows(reader.confusion(previous[-1])))
                ui.plotly(charts.confusion_figure(change, class_names=reader.class_names(),
                                                  title=f"Change since epoch {previous[-1]}",
                                                  diverging=True), key="confusion_delta")
            else:
                st.info(f"Epoch {epoch} is the first recorded epoch: no change to show.")
        drill_down(epoch)


def drill_down(epoch: int) -> None:
    """The test images behind one cell of the matrix, most confident first, each opening on the
    Sample page with its probabilities."""
    st.subheader(f"Test images of a cell, epoch {epoch}")
    predictions = reader.predictions(epoch)
    if predictions is None:
        st.info("This run did not record per-sample test predictions (runs written before they were "
                "kept), so its cells cannot be opened.")
        return
    class_names = reader.class_names()
    left, right = st.columns(2)
    hint = "click a cell of the matrix, or choose"
    true = left.selectbox("True class", class_names, index=None, key="drill_true", placeholder=hint)
    pred = right.selectbox("Predicted class", class_names, index=None, key="drill_pred", placeholder=hint)
    if true is None or pred is None:
        return
    cell = predictions[(predictions["label"] == class_names.index(true))
                       & (predictions["pred"] == class_names.index(pred))].sort_values(pred, ascending=False)
    st.caption(f"{len(cell)} test image(s) of {true} predicted as {pred}"
               + (f"; the {CELL_IMAGES} most confident are shown" if len(cell) > CELL_IMAGES else ""))
    shown = cell.head(CELL_IMAGES)
    ui.gallery(reader, shown["name"].tolist(), [f"p({pred}) {p:.2f}" for p in shown[pred]],
               samples=shown["idx"].tolist(), split="test", epoch=epoch)


def side_by_side() -> None:
    other = ui.pick_run(label="Compare with", key="confusion_other", exclude=reader.name)
    if other is None:
        return
    with ui.run_guard(other), ui.run_guard(reader):
        mine, theirs = reader.confusion_epochs(), other.confusion_epochs()
        common = sorted(set(mine) & set(theirs))
        if not common:
            st.info("The two runs have no epoch with a confusion matrix in common yet.")
            return
        epoch = common[-1]
        st.caption(f"Both at epoch {epoch}, the latest they share.")
        left, right = st.columns(2)
        with left:
            matrix_view(reader, epoch, title=reader.name, key="side_a")
        with right:
            matrix_view(other, epoch, title=other.name, key="side_b")


if reader is not None:
    ui.live(live, readers=[reader])
    st.subheader("Side by side")
    ui.live(side_by_side, readers=[reader])
