"""Relabel events: how many per epoch and between which classes, whether they were right (ground
truth), a filterable table with thumbnails, accept/revert review, and the corrected label file."""
import numpy as np
import pandas as pd
import streamlit as st

import studio_ui as ui
from scn import analysis, charts, metrics, thumbnails
from scn.export import sample_csv
from scn.review import corrected_label_file

TABLE_ROWS = 200

ui.page("Relabels")
reader = ui.pick_run()


def no_events_message(config: dict) -> None:
    relabel_epoch, margin_2 = config.get("relabel_epoch"), config.get("margin_2")
    done = reader.epoch_metrics()["epoch"].max() if len(reader.epoch_metrics()) else 0
    if relabel_epoch and done < relabel_epoch:
        st.info(f"Relabelling starts at epoch {relabel_epoch}; {done} epoch(s) done so far.")
    else:
        st.info(f"No relabels so far: no sample's top probability beat its given label's by more "
                f"than margin_2 = {margin_2}.")


def overview(class_names: list, truth: pd.DataFrame | None) -> None:
    with ui.run_guard(reader):
        ui.collapse_banner(reader)
        counts = reader.relabel_counts()
        if not len(counts):
            no_events_message(reader.config())
            return
        st.metric("Relabel events", int(counts["count"].sum()))
        left, right = st.columns(2)
        with left:
            ui.plotly(charts.relabels_per_epoch(counts, class_names=class_names))
        with right:
            ui.plotly(charts.class_pair_matrix(counts, class_names=class_names))
        if truth is None:
            st.info("No ground truth for this dataset: whether relabels were right cannot be scored.")
            return
        epochs = reader.epoch_metrics()["epoch"].tolist() or sorted(counts["epoch"].unique())
        original = reader.original_labels()
        quality = metrics.relabel_quality(
            original=original, true=truth["true_label"].reindex(range(len(original))).to_numpy(),
            events=reader.relabels(), epochs=epochs)
        ui.plotly(charts.relabel_quality_figure(quality))
        st.dataframe(quality, hide_index=True, width="stretch", column_config={
            "precision": st.column_config.NumberColumn(format="percent"),
            "recall": st.column_config.NumberColumn(format="percent"),
            "damage": st.column_config.NumberColumn(format="percent"),
            "noisy_fixed": "noisy labels fixed", "noisy_total": "noisy labels",
            "clean_broken": "clean labels broken"})


def record_review(event_ids: list, decision: str) -> None:
    for event_id in event_ids:
        reader.write_review(event_id=int(event_id), decision=decision)
    ui.flash(f"Marked {len(event_ids)} relabel(s) as {decision}ed.")


def event_table(events: pd.DataFrame, class_names: list, truth, names: pd.Series) -> pd.DataFrame:
    decisions = reader.reviews().set_index("event_id")["decision"]
    shown = events.head(TABLE_ROWS)
    shots = ui.sample_thumbnails(reader, names.iloc[shown["idx"]].tolist(), size=64)
    table = pd.DataFrame({
        "id": shown["id"],
        "image": [thumbnails.data_uri(s) for s in shots] if shots is not None else None,
        "name": names.iloc[shown["idx"]].to_numpy(),
        "epoch": shown["epoch"],
        "old": shown["old"].map(dict(enumerate(class_names))),
        "new": shown["new"].map(dict(enumerate(class_names))),
        "margin": shown["margin"],
        "alpha": shown["alpha"],
        "group": shown["grp"],
        "review": [decisions.get(i, "") for i in shown["id"]],
        "sample": [ui.sample_url(reader, i) for i in shown["idx"]],
    })
    if truth is not None:
        table["verdict"] = np.where(shown["right"], "✓ true class", "✗ wrong")
    if shots is None:
        table = table.drop(columns="image")
    return table


@st.fragment
def events_view(class_names: list, truth: pd.DataFrame | None) -> None:
    with ui.run_guard(reader):
        ui.show_flash()
        all_events = reader.relabels()
        if not len(all_events):
            return
        st.subheader("Events")
        columns = st.columns(5)
        epochs = ["all"] + sorted(all_events["epoch"].unique().tolist())
        epoch = columns[0].selectbox("Epoch", epochs, key="relabel_epoch_filter")
        classes = ["any"] + list(range(len(class_names)))
        name_of = {"any": "any", **dict(enumerate(class_names))}.get
        old = columns[1].selectbox("Old class", classes, format_func=name_of, key="relabel_old")
        new = columns[2].selectbox("New class", classes, format_func=name_of, key="relabel_new")
        min_margin = columns[3].slider("Min margin p_max − p_given", 0.0, 1.0, 0.0, 0.01,
                                       key="relabel_margin")
        verdicts = ("all", "right", "wrong") if truth is not None else ("all",)
        verdict = columns[4].selectbox("Verdict", verdicts, key="relabel_verdict",
                                       disabled=truth is None)
        events = reader.relabels(epoch=None if epoch == "all" else epoch,
                                 old=None if old == "any" else old,
                                 new=None if new == "any" else new, min_margin=min_margin or None)
        if truth is not None:
            events = analysis.mark_events(events, truth)
            if verdict != "all":
                events = events[events["right"] == (verdict == "right")]
        st.caption(f"{len(events)} of {len(all_events)} events match"
                   + (f"; the first {TABLE_ROWS} are shown" if len(events) > TABLE_ROWS else ""))
        names = ui.sample_names(reader)
        table = event_table(events, class_names, truth, names)
        st.dataframe(table, hide_index=True, width="stretch", row_height=56, column_config={
            "image": st.column_config.ImageColumn("image", width="small"),
            "margin": st.column_config.NumberColumn(format="%.3f"),
            "alpha": st.column_config.NumberColumn(format="%.3f"),
            "sample": st.column_config.LinkColumn("sample", display_text="open",
                                                  help="The sample across epochs, on the Sample page")})
        st.markdown("**Review**: accept a relabel, or revert it so the sample keeps its original "
                    "label in the exported file.")
        labels = dict(zip(table["id"], table["name"] + ": " + table["old"] + " → " + table["new"]))
        chosen = st.multiselect("Relabels to review", list(labels), key="relabel_review_ids",
                                format_func=lambda i: f"#{i} {labels[i]}")
        left, right, _ = st.columns([1, 1, 4])
        left.button("Accept", on_click=record_review, args=(chosen, "accept"), disabled=not chosen)
        right.button("Revert", on_click=record_review, args=(chosen, "revert"), disabled=not chosen)
        export()


def export() -> None:
    reverted = int((reader.reviews()["decision"] == "revert").sum())
    left, right = st.columns(2)
    left.download_button("Download corrected labels (RAF-DB format)",
                         lambda: corrected_label_file(reader),
                         file_name=f"{reader.name}_list_patition_label.txt", mime="text/plain",
                         help=f"Relabelled training labels, with the {reverted} reverted relabel(s) "
                              "back at their original label; test labels unchanged.")
    right.download_button("Download per-sample table (CSV)", lambda: sample_csv(reader),
                          file_name=f"{reader.name}_samples.csv", mime="text/csv", key="sample_csv",
                          help="One row per training sample: image, original, final and reviewed "
                               "label, last and mean alpha, last p(given label), relabel count.")


if reader is not None:
    config = reader.config()
    if config.get("method") == "baseline" or config.get("relabel") is False:
        st.info(f"{reader.name} trains without relabelling ({config.get('method_label') or config.get('method')}).")
    else:
        with ui.run_guard(reader):
            class_names = reader.class_names()
            truth = ui.ground_truth(reader)
            ui.live(overview, class_names, truth, readers=[reader])
            events_view(class_names, truth)
