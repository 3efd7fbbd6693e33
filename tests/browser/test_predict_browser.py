"""The predict page in a real browser: upload a photo, see numbered boxes, probabilities, Grad-CAM."""
import io

import numpy as np
import pytest
from PIL import Image

from bench.app_server import CHROMIUM, chromium, serve_app
from tests.helpers import copy_run

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def predict_url(tmp_path_factory, trained_runs):
    """The Predict page of a live app whose runs root holds one trained run."""
    runs = tmp_path_factory.mktemp("runs")
    copy_run(trained_runs["scn"], runs)
    with serve_app(runs) as url:
        yield url + "/Predict"


@pytest.fixture
def browser_page():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    with chromium() as browser:
        yield browser.new_page(viewport={"width": 1400, "height": 1000})


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
