"""Test-set confusion: normalised matrix at any epoch, per-class precision/recall/F1, the change
against the previous epoch, and a second run (e.g. SCN vs the baseline) side by side."""
import streamlit as st

import studio_ui as ui
from scn import analysis, charts

ui.page("Confusion")
reader = ui.pick_run()


def matrix_view(reader, epoch: int, *, title: str, key: str) -> None:
    class_names = reader.class_names()
    matrix = reader.confusion(epoch)
    ui.plotly(charts.confusion_figure(analysis.normalise_rows(matrix), class_names=class_names,
                                      title=title), key=key)
    metrics = analysis.per_class_metrics(matrix, class_names=class_names)
    accuracy = matrix.trace() / max(1, matrix.sum())
    st.caption(f"Accuracy {accuracy:.1%} · macro F1 {analysis.macro_f1(matrix):.3f}")
    st.dataframe(metrics, hide_index=True, width="stretch", column_config={
        name: st.column_config.NumberColumn(format="%.3f") for name in ("precision", "recall", "f1")})


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
            matrix_view(reader, epoch, title=f"{reader.name}, epoch {epoch}", key="confusion_a")
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
