"""Stop in a real browser acts on the first click, on a page that refreshes itself every two
seconds while the trainer lives: one click writes stop.request and signals the trainer."""
import subprocess
import sys
import time

import pytest

from bench.app_server import CHROMIUM, ROOT, chromium, serve_app
from scn import lock, runs
from scn.store import RunWriter
from tests.helpers import copy_run

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs the system Chromium at /usr/bin/chromium"),
]

# A stand-in trainer: it holds the run's lock (so the app sees a live trainer) until it is signalled.
HOLD_THE_LOCK = "import sys, time\nfrom scn import lock\nlock.acquire(sys.argv[1])\ntime.sleep(600)\n"


@pytest.mark.parametrize("page_path", ["", "/Training"])
def test_one_click_of_stop_stops_the_trainer(tmp_path, trained_runs, page_path):
    runs_dir = tmp_path / "runs"
    run_dir = copy_run(trained_runs["scn"], runs_dir)
    writer = RunWriter(run_dir)
    writer.set_status("running", epoch=2)
    writer.close()
    trainer = subprocess.Popen([sys.executable, "-c", HOLD_THE_LOCK, str(run_dir)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 30
        while not lock.is_held(run_dir):
            assert time.monotonic() < deadline and trainer.poll() is None, "the stand-in trainer did not start"
            time.sleep(0.1)
        with serve_app(runs_dir) as url, chromium() as browser:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(url + page_path)
            stop = page.get_by_role("button", name="Stop", exact=True)
            stop.wait_for()
            page.wait_for_timeout(5_000)  # let the live views refresh a few times first
            stop.click()
            assert trainer.wait(timeout=30) != 0  # ended by the signal, not by its sleep
        assert (run_dir / runs.STOP_REQUEST_NAME).read_text() == str(trainer.pid)
    finally:
        if trainer.poll() is None:
            trainer.kill()
            trainer.wait()
