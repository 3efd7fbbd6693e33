"""The Relabels page in a real browser on a real tiny SCN run: rows picked by clicking the table,
reverted, then the run trained on with its reviewed labels by the page's button (the trainer runs
in the background) and the review events shown apart from SCN's relabels."""
import re
import time
from pathlib import Path

import pytest

from bench.app_server import CHROMIUM, chromium, click_table_row, serve_app
from scn import lock, review
from scn.store import RunReader

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs the system Chromium at /usr/bin/chromium"),
]


def wait_until_finished(reader: RunReader, *, epochs: int, limit_s: float = 600.0) -> None:
    deadline = time.monotonic() + limit_s
    while lock.is_held(reader.run_dir) or reader.status()["state"] != "finished" \
            or reader.epoch_metrics()["epoch"].max() != epochs:
        assert time.monotonic() < deadline, f"the resumed run did not finish: {reader.log_tail(lines=5)}"
        time.sleep(0.5)


def choose_until(page, label: str, option: str, *, shows: str, tries: int = 3) -> None:
    """Pick `option` in a select box until the page `shows` the text: the page's live refresh
    may rerun it while one types, and the rerun drops what was typed."""
    for attempt in range(tries):
        box = page.get_by_label(label, exact=True)
        box.click()
        box.press_sequentially(option.split()[0])  # the select box filters its options as one types
        try:
            page.get_by_role("option", name=option).click(timeout=20_000)
            page.get_by_text(shows).wait_for(timeout=20_000)
            return
        except Exception:
            if attempt == tries - 1:
                raise


def select_row_until(page, table, row: int, *, selected: int, tries: int = 3) -> None:
    """Click a table row until the page counts `selected` rows: a click that lands while the page
    is still rendering the table can be lost. A lost click leaves the count where it was, so a
    repeat never undoes a selection that took."""
    before = page.get_by_role("button", name=f"Revert {selected - 1} selected")
    for attempt in range(tries):
        click_table_row(table, row, row_height=56)
        try:
            page.get_by_role("button", name=f"Revert {selected} selected").wait_for(timeout=30_000)
            return
        except Exception:
            still_before = before.is_visible() if selected > 1 else \
                page.get_by_role("button", name=re.compile(r"Revert \d+ selected")).count() == 0
            if attempt == tries - 1 or not still_before:
                raise


def test_pick_rows_revert_and_train_on_with_reviewed_labels(finished_runs, monkeypatch):
    from playwright.sync_api import expect

    run_dir = finished_runs["scn_dir"]
    reader = RunReader(run_dir)
    # The spawned trainer must find the session's built-in benchmark, not generate it again.
    monkeypatch.setenv("SCN_STUDIO_CACHE", str(Path(reader.meta("dataset")["path"]).parents[1]))
    events = reader.relabels()
    with serve_app(finished_runs["root"]) as url, chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)  # the first render imports plotly and torch: slow on busy cores
        page.goto(f"{url}/Relabels?run={run_dir.name}")
        page.get_by_text("click rows to select them").wait_for()
        table = page.get_by_test_id("stDataFrame").last
        for row in (0, 1):
            select_row_until(page, table, row, selected=row + 1)
        page.get_by_role("button", name="Revert 2 selected").click()
        page.get_by_text("Marked 2 relabel(s) as reverted").wait_for()
        assert reader.reviews()[["event_id", "decision"]].values.tolist() == [
            [events["id"].iloc[0], "revert"], [events["id"].iloc[1], "revert"]]
        expected = review.pending_changes(reader)
        assert len(expected)
        page.get_by_text(f"{len(expected)} training label(s) differ").wait_for()

        page.get_by_role("button", name="Resume with reviewed labels").click()
        page.get_by_text("changed by review: trainer pid").first.wait_for()
        wait_until_finished(reader, epochs=5)
        applied = reader.relabels(kind="review")
        assert sorted(zip(applied["idx"], applied["old"], applied["new"])) == sorted(
            zip(expected["idx"], expected["current"], expected["reviewed"]))

        # No reload: the page reruns by itself when the trainer lets go of the run.
        metrics = page.get_by_test_id("stMetricValue")
        expect(metrics.nth(1)).to_have_text(str(len(expected)), timeout=60_000)
        expect(metrics.nth(0)).to_have_text(str(len(reader.relabels(kind="scn"))))
        choose_until(page, "Kind", "review changes",
                     shows=f"{len(expected)} of {len(reader.relabels())} events match")


def test_the_all_shown_confirmation_closes_on_cancel_and_on_confirm(finished_runs):
    from playwright.sync_api import expect

    run_dir = finished_runs["scn_dir"]
    reader = RunReader(run_dir)
    shown = len(reader.relabels())
    with serve_app(finished_runs["root"]) as url, chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)
        page.goto(f"{url}/Relabels?run={run_dir.name}")
        page.get_by_text("click rows to select them").wait_for()
        dialog = page.get_by_role("dialog")
        page.get_by_role("button", name=f"Revert all {shown} shown…").click()
        dialog.get_by_role("button", name="Cancel").click()
        expect(dialog).to_have_count(0, timeout=30_000)
        assert reader.reviews().empty
        page.get_by_role("button", name=f"Accept all {shown} shown…").click()
        dialog.get_by_role("button", name=f"Accept {shown}", exact=True).click()
        page.get_by_text(f"Marked {shown} relabel(s) as accepted").wait_for()
        expect(dialog).to_have_count(0, timeout=30_000)
        assert reader.reviews()["decision"].eq("accept").sum() == shown
