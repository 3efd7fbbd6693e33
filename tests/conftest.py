import os
import sys
from pathlib import Path

import pytest
import torch
from matplotlib.cbook import get_sample_data
from PIL import Image

from tests.fake_run import write_fake_run

# Two cores shared by the suite: keep torch from oversubscribing them in every test process.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def keep_main_module():
    """AppTest runs a page as `__main__` and leaves it there; a later spawn-started process would
    then re-run that page instead of the test. Restore the real `__main__` after every test."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


@pytest.fixture
def tiny_rafdb(tmp_path):
    from tests.helpers import write_rafdb

    return write_rafdb(tmp_path / "rafdb", train=48, test=21, size=32)


@pytest.fixture
def empty_root(tmp_path, monkeypatch):
    """SCN_RUNS_DIR pointing at an empty folder: the app's fresh-start state."""
    root = tmp_path / "runs"
    root.mkdir()
    monkeypatch.setenv("SCN_RUNS_DIR", str(root))
    return root


@pytest.fixture
def finished_runs(empty_root, tmp_path):
    """Two finished runs on the same fake benchmark: SCN (with relabels, ground truth and tiny
    RAF-DB JPEGs for thumbnails) and the baseline."""
    data = tmp_path / "rafdb"
    write_fake_run(empty_root / "20260101-110000-baseline", method="baseline", data_dir=data)
    scn = write_fake_run(empty_root / "20260101-120000-scn", data_dir=data)  # newest: picked first
    return {"root": empty_root, "data": data, "scn": scn,
            "scn_dir": empty_root / "20260101-120000-scn",
            "baseline_dir": empty_root / "20260101-110000-baseline"}


@pytest.fixture
def run_dir(tmp_path):
    from tests.fake_runs import make_run

    return make_run(tmp_path / "runs")


@pytest.fixture(scope="session")
def grace_hopper_path() -> Path:
    """A real photograph of a face that ships with matplotlib."""
    return Path(get_sample_data("grace_hopper.jpg", asfileobj=False))


@pytest.fixture(scope="session")
def grace_hopper(grace_hopper_path) -> Image.Image:
    return Image.open(grace_hopper_path).convert("RGB")
