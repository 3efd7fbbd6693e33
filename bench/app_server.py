"""`streamlit run app.py` on a free localhost port and the system Chromium, for the browser test
and the live-latency benchmark."""
import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_app(runs_dir):
    """Yield the URL of the app serving `runs_dir` (SCN_RUNS_DIR), once its health check answers."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1"],
        cwd=ROOT, env=dict(os.environ, SCN_RUNS_DIR=str(runs_dir)),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("streamlit did not come up") from None
                time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


@contextmanager
def chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


# st.dataframe's header row, in CSS pixels, whatever row_height the rows are given.
TABLE_HEADER_HEIGHT = 35


def click_table_row(table, row: int, *, row_height: int) -> None:
    """Click the selection box of a visible `row` (0-based) of an st.dataframe shown with
    `on_select`: the table is one canvas, so rows are reached by position."""
    table.click(position={"x": 20, "y": TABLE_HEADER_HEIGHT + row_height * row + row_height // 2})
