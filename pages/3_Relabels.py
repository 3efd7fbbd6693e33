"""Relabel events: how many per epoch and between which classes, whether they were right (ground
truth), a paged table with thumbnails whose rows are selected by clicking, review of single
relabels, of images' final labels and of everything a filter shows, the corrected label file, and
training on with the reviewed labels."""
import hashlib
import math

import numpy as np
import pandas as pd
import streamlit as st

from studio import ui
from scn import analysis, charts, metrics, review, thumbnails
from scn.export import sample_csv
from scn.store import AppWriter, RunReadOnlyError

PAGE_ROWS = 50
KINDS = {"all": "all", "scn": "SCN relabels", "review": "review changes"}

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
        per_kind = counts.groupby("kind")["count"].sum()
        left, right, _ = st.columns([1, 1, 3])
        left.metric("SCN relabels", int(per_kind.get("scn", 0)))
        right.metric("Review changes", int(per_kind.get("review", 0)),
                     help="Labels changed by the user's review when the run resumed with its reviewed labels")
        counts = counts[counts["kind"] == "scn"]
        if not len(counts):
            return
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
            events=reader.relabels(kind="scn"), epochs=epochs)
        ui.plotly(charts.relabel_quality_figure(quality))
        ui.noise_model_caption(truth)
        # An epoch without relabels has no precision: a blank cell, not a raw "None".
        shares = {name: ui.blank_missing(quality[name], "{:.1%}") for name in ("precision", "recall", "damage")}
        st.dataframe(quality.assign(**shares), hide_index=True, width="stretch", column_config={
            "noisy_fixed": "noisy labels fixed", "noisy_total": "noisy labels",
            "clean_broken": "clean labels broken", "wrong_labels": "labels wrong after the epoch"})


def reviewed() -> None:
    """After a review, the table starts with nothing selected: the next action must not act on
    the rows the last one did."""
    st.session_state["relabel_reviews"] = st.session_state.get("relabel_reviews", 0) + 1
    st.session_state.pop("confirm_all_shown", None)


def save_reviews(write, *, done: str) -> None:
    """Run `write` and flash `done`, or why nothing was saved (a read-only run folder)."""
    try:
        write()
    except RunReadOnlyError as exc:
        ui.flash(f"Not saved: {exc}", kind="error")
    else:
        reviewed()
        ui.flash(done)


def record_event_reviews(event_ids: list, decision: str) -> None:
    save_reviews(lambda: AppWriter(reader.run_dir).write_reviews(event_ids=event_ids, decision=decision),
                 done=f"Marked {len(event_ids)} relabel(s) as {decision}ed.")


def record_image_reviews(labels: dict, decision: str) -> None:
    save_reviews(lambda: AppWriter(reader.run_dir).write_image_reviews(labels=labels, decision=decision),
                 done=f"Reviewed {len(labels)} image(s): {decision}.")


def ask_all_shown(decision: str, event_ids: list) -> None:
    st.session_state["confirm_all_shown"] = (decision, event_ids)


def cancel_all_shown() -> None:
    st.session_state.pop("confirm_all_shown", None)


# Opened from session state, as the home page's delete dialog, so it survives its own buttons' reruns.
# A button in a dialog reruns only the dialog: without a rerun of the page it would stay open.
@st.dialog("Review every event shown?", on_dismiss=cancel_all_shown)
def confirm_all_shown(decision: str, event_ids: list) -> None:
    st.markdown(f"This marks **{len(event_ids)}** relabel(s) as {decision}ed: every event the filters "
                "match, on every page of the table, not only the rows on screen.")
    yes, no = st.columns(2)
    if yes.button(f"{decision.capitalize()} {len(event_ids)}", type="primary", key="all_shown_confirmed"):
        record_event_reviews(event_ids, decision)
        st.rerun()
    if no.button("Cancel", key="all_shown_cancelled"):
        cancel_all_shown()
        st.rerun()


def event_table(shown: pd.DataFrame, class_names: list, truth, names: pd.Series) -> pd.DataFrame:
    decisions = reader.reviews().set_index("event_id")["decision"]
    images = reader.image_reviews().set_index("idx")
    name_of = dict(enumerate(class_names))
    shots = ui.sample_thumbnails(reader, names.iloc[shown["idx"]].tolist(), size=64)
    # What a reviewer decides on comes first (the verdict beside the new label), so that a narrow
    # window cuts off the details, not the decision; a review event has no margin, alpha or group.
    table = pd.DataFrame({
        "id": shown["id"],
        "image": [thumbnails.data_uri(s) for s in shots] if shots is not None else None,
        "name": names.iloc[shown["idx"]].to_numpy(),
        "epoch": shown["epoch"],
        "old": shown["old"].map(name_of),
        "new": shown["new"].map(name_of),
        "verdict": np.where(shown["right"], "✓ true class", "✗ wrong") if truth is not None else None,
        "review": [decisions.get(i, "") for i in shown["id"]],
        "image review": [f"{images.at[i, 'decision']}: {name_of.get(images.at[i, 'label'])}"
                         if i in images.index else "" for i in shown["idx"]],
        "margin": ui.blank_missing(shown["margin"], "{:.3f}"),
        "alpha": ui.blank_missing(shown["alpha"], "{:.3f}"),
        "group": shown["grp"].fillna(""),
        "kind": shown["kind"],
        "sample": [ui.sample_url(reader, i) for i in shown["idx"]],
    })
    return table.drop(columns=[c for c, absent in (("image", shots is None), ("verdict", truth is None)) if absent]
                      ).reset_index(drop=True)


def filtered_events(all_events: pd.DataFrame, class_names: list, truth) -> pd.DataFrame:
    columns = st.columns(6)
    epochs = ["all"] + sorted(all_events["epoch"].unique().tolist())
    epoch = columns[0].selectbox("Epoch", epochs, key="relabel_epoch_filter")
    classes = ["any"] + list(range(len(class_names)))
    name_of = {"any": "any", **dict(enumerate(class_names))}.get
    old = columns[1].selectbox("Old class", classes, format_func=name_of, key="relabel_old")
    new = columns[2].selectbox("New class", classes, format_func=name_of, key="relabel_new")
    min_margin = columns[3].slider("Min margin p_max − p_given", 0.0, 1.0, 0.0, 0.01, key="relabel_margin")
    verdicts = ("all", "right", "wrong") if truth is not None else ("all",)
    verdict = columns[4].selectbox("Verdict", verdicts, key="relabel_verdict", disabled=truth is None)
    kind = columns[5].selectbox("Kind", list(KINDS), format_func=KINDS.get, key="relabel_kind")
    events = reader.relabels(epoch=None if epoch == "all" else epoch, old=None if old == "any" else old,
                             new=None if new == "any" else new, min_margin=min_margin or None,
                             kind=None if kind == "all" else kind)
    if truth is not None:
        events = analysis.mark_events(events, truth)
        if verdict != "all":
            events = events[events["right"] == (verdict == "right")]
    return events


def one_page(events: pd.DataFrame) -> pd.DataFrame:
    """The rows of the page chosen in the page selector (every event is reachable)."""
    pages = max(1, math.ceil(len(events) / PAGE_ROWS))
    if st.session_state.get("relabel_page", 1) > pages:
        st.session_state["relabel_page"] = 1  # a narrower filter has fewer pages
    left, right = st.columns([1, 5])
    number = left.number_input(f"Page (of {pages})", min_value=1, max_value=pages, step=1,
                               key="relabel_page")
    start = (number - 1) * PAGE_ROWS
    right.caption(f"Events {start + 1 if len(events) else 0}–{min(start + PAGE_ROWS, len(events))} "
                  f"of {len(events)}; click rows to select them.")
    return events.iloc[start:start + PAGE_ROWS]


def review_controls(selected: pd.DataFrame, events: pd.DataFrame, class_names: list) -> None:
    st.markdown("**Review relabels**: accept one, or revert it so its sample goes back to its "
                "original label.")
    ids = selected["id"].tolist()
    shown = events["id"].tolist()
    columns = st.columns(4)
    columns[0].button(f"Accept {len(ids)} selected", on_click=record_event_reviews, args=(ids, "accept"),
                      disabled=not ids, key="accept_selected")
    columns[1].button(f"Revert {len(ids)} selected", on_click=record_event_reviews, args=(ids, "revert"),
                      disabled=not ids, key="revert_selected")
    columns[2].button(f"Accept all {len(shown)} shown…", on_click=ask_all_shown, args=("accept", shown),
                      disabled=not shown, key="accept_shown", help="Every event the filters match, on every page")
    columns[3].button(f"Revert all {len(shown)} shown…", on_click=ask_all_shown, args=("revert", shown),
                      disabled=not shown, key="revert_shown", help="Every event the filters match, on every page")
    if pending := st.session_state.get("confirm_all_shown"):
        confirm_all_shown(*pending)

    st.markdown("**Review images**: the final label of the selected events' images, whatever "
                "relabels led to it.")
    images = selected.drop_duplicates("idx")["idx"].tolist()
    current = review.current_labels(reader)
    original = reader.original_labels()
    columns = st.columns([1, 1, 1, 1])
    columns[0].button(f"Keep final label of {len(images)}", key="image_accept", disabled=not images,
                      on_click=record_image_reviews, args=({i: int(current[i]) for i in images}, "accept"))
    columns[1].button(f"Original label for {len(images)}", key="image_revert", disabled=not images,
                      on_click=record_image_reviews, args=({i: int(original[i]) for i in images}, "revert"))
    label = columns[2].selectbox("Label", range(len(class_names)), format_func=dict(enumerate(class_names)).get,
                                 key="image_label", label_visibility="collapsed")
    columns[3].button(f"Set {class_names[label]} for {len(images)}", key="image_set", disabled=not images,
                      on_click=record_image_reviews, args=({i: int(label) for i in images}, "set"))


def resume_controls() -> None:
    """Train on from `last` with the reviewed labels; refused (and why) while the run trains or
    when it has no last checkpoint."""
    st.subheader("Train on with the reviewed labels")
    changes = review.pending_changes(reader)
    epochs = reader.epoch_metrics()["epoch"]
    done = int(epochs.max()) if len(epochs) else 0
    total = int(reader.config().get("epochs") or done)
    st.caption(f"{len(changes)} training label(s) differ from the run's current labels after review. "
               "Resuming applies them to the training labels (recorded as review events) and trains "
               f"on from the last checkpoint; {done} of {total} epochs are done.")
    if reader.status()["alive"]:
        if resumed := ui.resumed_message(reader):
            st.success(resumed)
        else:
            st.info("The run is still training: stop it (or let it finish) to train on with reviewed labels.")
        return
    if "last" not in reader.checkpoints():
        st.info("The run has no last checkpoint (checkpoints/last.pt) to resume from.")
        return
    left, right, _ = st.columns([1, 2, 3])
    more = left.number_input("Epochs to add", min_value=0, value=1 if done >= total else 0, step=1,
                             key="review_more_epochs")
    right.button("Resume with reviewed labels", key="resume_reviewed", type="primary",
                 disabled=done >= total and not more, on_click=ui.resume, args=(str(reader.run_dir),),
                 kwargs={"reviewed_labels": True, "epochs": total + more if more else None})


@st.fragment
def events_view(class_names: list, truth: pd.DataFrame | None) -> None:
    with ui.run_guard(reader):
        ui.show_flash()
        all_events = reader.relabels()
        if not len(all_events):
            return
        st.subheader("Events")
        events = filtered_events(all_events, class_names, truth)
        st.caption(f"{len(events)} of {len(all_events)} events match")
        shown = one_page(events)
        table = event_table(shown, class_names, truth, ui.sample_names(reader))
        # Keyed by the rows it shows: another page or filter starts with nothing selected, instead
        # of the same row numbers now pointing at other events.
        # And by the reviews made, so that a review clears the selection it acted on.
        key = (f"relabel_table_{st.session_state.get('relabel_reviews', 0)}_"
               + hashlib.sha1(shown["id"].to_numpy().tobytes()).hexdigest()[:12])
        picked = st.dataframe(table, hide_index=True, width="stretch", row_height=56, key=key,
                              on_select="rerun", selection_mode="multi-row", column_config={
                                  "image": st.column_config.ImageColumn("image", width="small"),
                                  "verdict": st.column_config.TextColumn("verdict", width="medium"),
                                  "sample": st.column_config.LinkColumn(
                                      "sample", display_text="open",
                                      help="The sample across epochs, on the Sample page")})
        rows = [r for r in picked.selection.rows if r < len(shown)]
        review_controls(shown.iloc[rows], events, class_names)
        export()
        resume_controls()


def export() -> None:
    reverted = int((reader.reviews()["decision"] == "revert").sum())
    left, right = st.columns(2)
    left.download_button("Download corrected labels (RAF-DB format)",
                         lambda: review.corrected_label_file(reader),
                         file_name=f"{reader.name}_list_patition_label.txt", mime="text/plain",
                         help=f"Relabelled training labels, with the {reverted} reverted relabel(s) "
                              "back at their original label and reviewed images at their reviewed "
                              "label; validation and test labels unchanged: every image of the dataset.")
    right.download_button("Download per-sample table (CSV)", lambda: sample_csv(reader),
                          file_name=f"{reader.name}_samples.csv", mime="text/csv", key="sample_csv",
                          help="One row per training sample: image, original, final and reviewed "
                               "label, last and mean alpha, last p(given label), relabel count.")


if reader is not None:
    with ui.run_guard(reader):
        ui.refuse_damaged(reader)
        config = reader.config()
        if config.get("method") == "baseline" or config.get("relabel") is False:
            method = config.get("method_label") or config.get("method")
            st.info(f"{reader.name} trains without relabelling ({method}).")
        else:
            class_names = reader.class_names()
            truth = ui.ground_truth(reader)
            ui.live(overview, class_names, truth, readers=[reader])
            events_view(class_names, truth)
