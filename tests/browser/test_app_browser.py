"""The app in a real browser: start a tiny run from the form, watch the Training and Attention pages
(in two tabs) update as epochs land, then revert a relabel on the Relabels page.

Screenshots of every page go to $SCN_SCREENSHOT_DIR when it is set (for looking at the pages)."""
import os
import re
import time
from pathlib import Path

import pytest

from scn import lock, runs
from scn.store import RunReader
from bench.app_server import CHROMIUM, chromium, click_table_row, serve_app
from tests.helpers import write_rafdb

EPOCHS = 5

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs the system Chromium at /usr/bin/chromium"),
]


@pytest.fixture
def app_url(tmp_path):
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    with serve_app(runs_dir) as url:
        yield url, runs_dir
        for run_dir in runs_dir.iterdir():
            runs.stop_run(run_dir)


@pytest.fixture
def browser():
    with chromium() as browser:
        yield browser


def wait_for_exit(run_dir, *, limit_s: float = 60.0) -> None:
    deadline = time.monotonic() + limit_s
    while lock.is_held(run_dir):
        assert time.monotonic() < deadline, "the trainer did not exit after finishing"
        time.sleep(0.2)


def shot(page, name: str) -> None:
    folder = os.environ.get("SCN_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def set_number(page, label: str, value) -> None:
    field = page.get_by_label(label, exact=True)
    field.fill(str(value))
    field.press("Enter")
    page.wait_for_timeout(300)  # let the rerun that commits the value settle before the next input


def choose(page, label: str, option: str) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(option)  # the select box filters its options as one types; Enter takes the match
    box.press("Enter")
    page.wait_for_timeout(300)


def test_start_watch_and_review_a_run(app_url, browser, tmp_path):
    from playwright.sync_api import expect

    url, runs_dir = app_url
    data = write_rafdb(tmp_path / "rafdb", train=160, test=42, size=32)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    page.goto(url)
    page.get_by_text("No runs yet").wait_for()
    page.get_by_text("Dataset folder", exact=True).click()
    folder = page.get_by_label("Folder", exact=True)
    folder.fill(str(data))
    folder.press("Enter")
    page.get_by_text("Dataset folder looks right.").wait_for()
    for label, value in (("Epochs", EPOCHS), ("Relabel from epoch", 1), ("Image size", 32),
                         ("Batch size", 16), ("margin_2 (relabel)", 0.01)):
        set_number(page, label, value)
    choose(page, "Relabel scope", "all samples (official code)")
    shot(page, "home-form")
    page.get_by_role("button", name="Start", exact=True).click()
    page.get_by_text("it trains in the background").wait_for()
    (run_dir,) = list(runs_dir.iterdir())

    # Two tabs watch the same run while it trains: the pages must move on by themselves.
    training, attention = page, browser.new_page(viewport={"width": 1400, "height": 1000})
    attention.set_default_timeout(60_000)
    training.goto(f"{url}/Training")
    attention.goto(f"{url}/Attention")
    training.get_by_text(f"1 of {EPOCHS} epochs done").wait_for(timeout=120_000)
    # Whichever epoch is newest when the tab first renders (a loaded machine may show epoch 2 first).
    attention.get_by_role("heading", name=re.compile(r"^Epoch \d+$")).wait_for(timeout=60_000)
    expect(training.locator(".js-plotly-plot")).to_have_count(4)  # retried: reruns swap elements
    training.get_by_text(f"{EPOCHS} of {EPOCHS} epochs done (100%)").wait_for(timeout=180_000)
    attention.get_by_role("heading", name=f"Epoch {EPOCHS}", exact=True).wait_for(timeout=60_000)
    expect(attention.locator(".js-plotly-plot")).to_have_count(4)  # no ground truth for this folder
    shot(training, "training")
    shot(attention, "attention")

    # The pages rerun once when the trainer lets go of the run; review after that, not during it.
    wait_for_exit(run_dir)
    relabels = attention
    relabels.goto(f"{url}/Relabels")
    relabels.get_by_text("click rows to select them").wait_for()
    events = RunReader(run_dir).relabels()
    assert len(events) > 0
    click_table_row(relabels.get_by_test_id("stDataFrame").last, 0, row_height=56)
    relabels.get_by_role("button", name="Revert 1 selected").click()
    relabels.get_by_text("Marked 1 relabel(s) as reverted").wait_for()
    reviews = RunReader(run_dir).reviews()
    assert reviews[["event_id", "decision"]].values.tolist() == [[events["id"].iloc[0], "revert"]]
    shot(relabels, "relabels")
    for name in ("Confusion", "Compare"):
        training.goto(f"{url}/{name}")
        training.locator(".js-plotly-plot").first.wait_for()
        shot(training, name.lower())
    training.goto(url)
    training.get_by_text("finished").first.wait_for()
    training.get_by_role("button", name="Start the demo").wait_for()
    shot(training, "home")
