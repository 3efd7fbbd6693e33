"""The confusion drill-down in a real browser: click a cell of the matrix of a real tiny run, see
that cell's test images, and open one on the Sample page."""
import pytest

from bench.app_server import CHROMIUM, chromium, serve_app
from scn.store import RunReader
from tests.helpers import copy_run

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs the system Chromium at /usr/bin/chromium"),
]


def test_click_a_confusion_cell_then_open_a_test_image(trained_runs, tmp_path):
    from playwright.sync_api import expect

    run_dir = copy_run(trained_runs["scn"], tmp_path / "runs")
    reader = RunReader(run_dir)
    predictions, names = reader.predictions(4), reader.class_names()
    true, pred = predictions[["label", "pred"]].value_counts().index[0]  # the fullest cell
    cell = predictions[(predictions["label"] == true) & (predictions["pred"] == pred)]
    with serve_app(run_dir.parent) as url, chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(f"{url}/Confusion")
        chart = page.locator(".js-plotly-plot").first
        chart.wait_for()
        # The plot area spans the matrix: n columns (predicted) by n rows (true, first class on top).
        area = chart.locator(".nsewdrag").first.bounding_box()
        n = len(names)
        page.mouse.click(area["x"] + (pred + 0.5) * area["width"] / n,
                         area["y"] + (true + 0.5) * area["height"] / n)
        page.get_by_text(f"{len(cell)} test image(s) of {names[true]} predicted as {names[pred]}").wait_for()
        links = page.get_by_role("link", name=f"p({names[pred]})")
        expect(links).to_have_count(len(cell))
        expect(page.locator("[data-testid='stImage']")).to_have_count(len(cell))
        best = cell.sort_values(names[pred], ascending=False).iloc[0]
        links.first.click()
        page.wait_for_url(f"**/Sample?*sample={best['idx']}*")
        page.get_by_text("True class", exact=True).wait_for()
        expect(page.locator("[data-testid='stMetricValue']").nth(1)).to_have_text(names[pred])
        expect(page.locator("[data-testid='stImage']")).to_have_count(1)
