"""The Relabels page through AppTest on a real SCN run: rows picked in the table, paging through
every event, reviews of relabels, of images and of a whole filter, review events kept apart from
SCN's, and the button that trains on with the reviewed labels."""
from scn import runs
from scn.labels import RelabelEvent
from scn.store import AppWriter, RunReader, RunWriter
from tests.test_app_pages import elements, lock_held, render, texts

PAGE = "pages/3_Relabels.py"


def events_table(at):
    (table,) = [d for d in at.dataframe if (d.key or "").startswith("relabel_table_")]
    return table


def select_rows(at, rows: list):
    """What clicking rows of the events table does: its selection state, then a rerun."""
    at.session_state[events_table(at).key] = {"selection": {"rows": rows, "columns": [], "cells": []}}
    return at.run()


def test_relabels_page_scores_filters_and_reviews_selected_rows(finished_runs):
    at = render(PAGE)
    reader = RunReader(finished_runs["scn_dir"])
    events = reader.relabels()
    assert elements(at)["plotly_chart"] == 3
    assert [m.value for m in at.metric] == [str(len(events)), "0"]
    quality, table = at.dataframe[0].value, events_table(at).value
    assert quality["epoch"].tolist() == [1, 2, 3, 4]
    # Epoch 1, before relabelling starts, has no precision: blank, as st.dataframe draws None raw.
    assert quality["precision"].iloc[0] == "" and quality.notna().all().all()
    assert table["id"].tolist() == events["id"].tolist() and table["kind"].eq("scn").all()
    # The decision first: a narrow window cuts off the details, not the verdict.
    assert list(table.columns)[:8] == ["id", "image", "name", "epoch", "old", "new", "verdict", "review"]
    assert table["image"].str.startswith("data:image/jpeg;base64,").all()
    truth = reader.groundtruth().set_index("image")["true_label"] - 1
    names = reader.samples("train").set_index("idx")["name"]
    right = [truth[names[i]] == new for i, new in zip(events["idx"], events["new"])]
    assert table["verdict"].tolist() == ["✓ true class" if r else "✗ wrong" for r in right]
    assert table["sample"].tolist() == [f"Sample?run={reader.name}&split=train&sample={i}" for i in events["idx"]]
    assert [b.proto.label for b in at.get("download_button")] == [
        "Download corrected labels (RAF-DB format)", "Download per-sample table (CSV)"]
    epoch = int(events["epoch"].iloc[-1])
    at.selectbox(key="relabel_epoch_filter").set_value(epoch).run()
    assert events_table(at).value["epoch"].eq(epoch).all() and len(events_table(at).value)
    assert at.button(key="revert_selected").disabled
    first, second = events_table(at).value["id"].iloc[:2]
    select_rows(at, [0, 1])
    assert at.button(key="revert_selected").label == "Revert 2 selected"
    at.button(key="revert_selected").click().run()
    assert reader.reviews()[["event_id", "decision"]].values.tolist() == [[first, "revert"], [second, "revert"]]
    assert "Marked 2 relabel(s) as reverted" in texts(at.success)
    assert events_table(at).value.set_index("id").loc[[first, second], "review"].eq("revert").all()
    # The review cleared the selection: the next action does not act on those rows again.
    assert at.button(key="accept_selected").disabled and at.button(key="accept_selected").label == "Accept 0 selected"


def test_bulk_review_of_everything_a_filter_shows(finished_runs):
    at = render(PAGE)
    reader = RunReader(finished_runs["scn_dir"])
    events = reader.relabels()
    old = int(events["old"].mode()[0])
    at.selectbox(key="relabel_old").set_value(old).run()
    shown = reader.relabels(old=old)["id"].tolist()
    at.button(key="accept_shown").click().run()
    assert f"marks **{len(shown)}** relabel(s) as accepted" in texts(at.markdown) and reader.reviews().empty
    at.button(key="all_shown_confirmed").click().run()
    assert reader.reviews()["event_id"].tolist() == shown and reader.reviews()["decision"].eq("accept").all()
    at.selectbox(key="relabel_old").set_value("any").run()
    at.button(key="revert_shown").click().run()
    at.button(key="all_shown_cancelled").click().run()
    assert reader.reviews()["decision"].eq("accept").all()
    at.button(key="revert_shown").click().run()
    at.button(key="all_shown_confirmed").click().run()
    assert reader.reviews()["event_id"].tolist() == events["id"].tolist()
    assert reader.reviews()["decision"].eq("revert").all()


def test_images_are_reviewed_by_their_final_label(finished_runs):
    at = render(PAGE)
    reader = RunReader(finished_runs["scn_dir"])
    events = reader.relabels()
    select_rows(at, [0])
    idx = int(events["idx"].iloc[0])
    final = int(events.loc[events["idx"] == idx, "new"].iloc[-1])
    at.button(key="image_accept").click().run()
    assert reader.image_reviews()[["idx", "decision", "label"]].values.tolist() == [[idx, "accept", final]]
    assert "0 training label(s) differ" in texts(at.caption)
    select_rows(at, [0])
    label = (final + 1) % 7
    at.selectbox(key="image_label").set_value(label).run()
    at.button(key="image_set").click().run()
    assert reader.image_reviews()[["idx", "decision", "label"]].values.tolist() == [[idx, "set", label]]
    assert events_table(at).value["image review"].iloc[0] == f"set: {reader.class_names()[label]}"
    assert "1 training label(s) differ" in texts(at.caption)
    select_rows(at, [0])
    at.button(key="image_revert").click().run()
    original = int(reader.original_labels()[idx])
    assert reader.image_reviews()[["decision", "label"]].values.tolist() == [["revert", original]]


def test_pages_reach_every_event(finished_runs):
    run_dir = finished_runs["scn_dir"]
    writer = RunWriter(run_dir)
    writer.log_relabels([RelabelEvent(4, 9, i % 70, 0, 1, 0.9, 0.1, 0.5, "low") for i in range(120)])
    writer.close()
    every = RunReader(run_dir).relabels()["id"].tolist()
    at = render(PAGE)
    assert "Page (of 3)" == at.number_input(key="relabel_page").label
    seen = []
    for page in (1, 2, 3):
        at.number_input(key="relabel_page").set_value(page).run()
        seen += events_table(at).value["id"].tolist()
    assert seen == every
    assert f"Events 101–{len(every)} of {len(every)}" in texts(at.caption)
    # A filter with fewer pages starts again at its first.
    at.selectbox(key="relabel_epoch_filter").set_value(2).run()
    assert at.number_input(key="relabel_page").value == 1 and len(events_table(at).value)


def test_review_events_are_counted_and_filtered_apart(finished_runs):
    writer = RunWriter(finished_runs["scn_dir"])
    writer.log_relabels([RelabelEvent(5, 0, 3, 0, 2, float("nan"), float("nan"), float("nan"), "",
                                      kind="review")])
    writer.close()
    at = render(PAGE)
    scn_count = len(RunReader(finished_runs["scn_dir"]).relabels(kind="scn"))
    assert [m.label for m in at.metric] == ["SCN relabels", "Review changes"]
    assert [m.value for m in at.metric] == [str(scn_count), "1"]
    at.selectbox(key="relabel_kind").set_value("review").run()
    table = events_table(at).value
    assert table["kind"].tolist() == ["review"] and table["epoch"].tolist() == [5]
    # A review event has no margin, alpha or group: blank cells, not a raw "None".
    assert table[["margin", "alpha", "group"]].values.tolist() == [["", "", ""]] and not table.isna().any().any()


def test_resume_with_reviewed_labels_button(finished_runs, monkeypatch):
    calls = []
    monkeypatch.setattr(runs, "resume_run", lambda run_dir, **options: calls.append((run_dir, options)) or 4242)
    at = render(PAGE)
    assert "4 of 4 epochs are done" in texts(at.caption)
    assert at.number_input(key="review_more_epochs").value == 1
    at.number_input(key="review_more_epochs").set_value(2).run()
    at.button(key="resume_reviewed").click().run()
    assert calls == [(str(finished_runs["scn_dir"]), {"reviewed_labels": True, "epochs": 6})]
    reader = RunReader(finished_runs["scn_dir"])
    assert (f"Resumed {reader.name} from its last checkpoint with 0 reviewed label(s), 0 of them changed "
            "by review: trainer pid 4242.") in texts(at.success)
    at.number_input(key="review_more_epochs").set_value(0).run()
    assert at.button(key="resume_reviewed").disabled  # nothing left to train


def test_the_page_confirms_the_resume_while_its_trainer_runs(finished_runs, monkeypatch):
    import os

    run_dir = finished_runs["scn_dir"]
    reader = RunReader(run_dir)
    events = reader.relabels(kind="scn")
    event = events[~events["idx"].duplicated(keep=False)].iloc[0]  # its image's only relabel
    AppWriter(reader.run_dir).write_review(event_id=int(event["id"]), decision="revert")
    monkeypatch.setattr(runs, "resume_run", lambda run_dir, **options: os.getpid())
    at = render(PAGE)
    at.button(key="resume_reviewed").click().run()
    confirmation = (f"Resumed {reader.name} from its last checkpoint with 1 reviewed label(s), 1 of them "
                    f"changed by review: trainer pid {os.getpid()}.")
    with lock_held(run_dir):  # the trainer it started, as far as the page can tell
        at.run()
        assert confirmation in texts(at.success) and "still training" not in texts(at.info)


def test_resume_with_reviewed_labels_is_refused_while_training_or_without_a_checkpoint(finished_runs):
    run_dir = finished_runs["scn_dir"]
    with lock_held(run_dir):
        at = render(PAGE)
        assert "still training" in texts(at.info)
        assert not [b for b in at.button if b.key == "resume_reviewed"]
    RunReader(run_dir).checkpoint_path("last").unlink()  # a hard link: the session's run keeps its file
    at = render(PAGE)
    assert "no last checkpoint" in texts(at.info)
    assert not [b for b in at.button if b.key == "resume_reviewed"]
