"""The predict page in a real browser: upload a photo, see numbered boxes, probabilities, Grad-CAM."""
import io
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.fake_runs import make_run

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, *, log: Path, seconds: float = 90.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode}: {log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.read() == b"ok":
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"streamlit did not answer at {url} within {seconds:.0f} s")


@pytest.fixture(scope="module")
def predict_url(tmp_path_factory):
    """The Predict page of a live app whose runs root holds one fake run."""
    runs = tmp_path_factory.mktemp("runs")
    make_run(runs)
    # The multipage app serves this page at /Predict; without app.py the page runs on its own.
    script, path = ("app.py", "/Predict") if (REPO / "app.py").exists() else ("pages/6_Predict.py", "")
    port = free_port()
    log = runs / "streamlit.log"
    with open(log, "w") as output:
        # A file, not a pipe: nobody reads the server's output while the test runs, and a full
        # pipe would block the server.
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", script, "--server.headless", "true",
             "--server.port", str(port), "--server.fileWatcherType", "none",
             "--browser.gatherUsageStats", "false"],
            cwd=REPO, env={**os.environ, "SCN_RUNS_DIR": str(runs)}, stdout=output, stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, process, log=log)
        yield url + path
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture
def browser_page():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 1000})
        finally:
            browser.close()


def red_pixels(png: bytes) -> int:
    """Pixels of the box colour (255, 64, 64) in a screenshot."""
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return int(((pixels[..., 0] > 220) & (abs(pixels[..., 1] - 64) < 30) & (abs(pixels[..., 2] - 64) < 30)).sum())


def test_upload_a_photo_and_see_boxes_probabilities_and_cam(browser_page, predict_url, grace_hopper_path):
    page = browser_page
    page.goto(predict_url)
    page.get_by_text("the built-in synthetic benchmark").wait_for(timeout=60_000)
    page.locator('input[type="file"]').first.set_input_files(str(grace_hopper_path))

    page.get_by_text("Face 1", exact=False).wait_for(timeout=120_000)
    preview = page.locator('[data-testid="stImage"]').filter(has_text="numbered as listed below")
    preview.wait_for(timeout=30_000)
    assert red_pixels(preview.locator("img").screenshot()) > 200  # the numbered box is drawn
    page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)
    assert page.locator(".js-plotly-plot .bars .point").count() == 7
    assert page.get_by_text("attention weight alpha").count() == 1
    cam = page.locator('[data-testid="stImage"]').filter(has_text="Grad-CAM for")
    assert cam.count() == 1 and cam.locator("img").evaluate("img => img.naturalWidth") > 0
    assert page.get_by_text("Traceback").count() == 0
