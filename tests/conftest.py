import os
import sys
from pathlib import Path

import pytest
import torch
from matplotlib.cbook import get_sample_data
from PIL import Image

from scn.store import RunReader
from tests.helpers import copy_run, write_rafdb

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
    return write_rafdb(tmp_path / "rafdb", train=48, test=21, size=32)


@pytest.fixture
def empty_root(tmp_path, monkeypatch):
    """SCN_RUNS_DIR pointing at an empty folder: the app's fresh-start state."""
    root = tmp_path / "runs"
    root.mkdir()
    monkeypatch.setenv("SCN_RUNS_DIR", str(root))
    return root


TRAINED = {"baseline": "20260101-110000-baseline", "scn": "20260101-120000-scn"}


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory) -> dict:
    """A real SCN run and a real baseline run, trained once per session by the trainer on a tiny
    built-in benchmark with 30% label noise and its ground truth: exactly what a user's runs hold.
    SCN (trained second, so it is the newest) relabels from epoch 2 with a tiny margin_2, so that
    its weak model relabels often, rightly and wrongly (the low-importance group only, as the paper:
    a few dozen events, fewer than a page of the Relabels table). 48 px is the smallest input whose last
    residual block has more than one cell (2x2), so Grad-CAM maps are maps."""
    from scn.config import make_config
    from scn.train import train

    root = tmp_path_factory.mktemp("trained")
    previous = os.environ.get("SCN_STUDIO_CACHE")
    os.environ["SCN_STUDIO_CACHE"] = str(root / "cache")
    try:
        for method in ("baseline", "scn"):
            config = make_config(synth_train=80, synth_test=21, synth_noise=0.3, method=method, epochs=4,
                                 pretrained="none", batch_size=16, image_size=48, relabel_epoch=2,
                                 margin_2=0.01, relabel_scope="low", val_fraction=0.125, log_every=1, seed=3,
                                 threads=2)
            train(config, run_dir=root / "runs" / TRAINED[method], progress=False)
    finally:
        if previous is None:
            os.environ.pop("SCN_STUDIO_CACHE")
        else:
            os.environ["SCN_STUDIO_CACHE"] = previous
    return {method: root / "runs" / name for method, name in TRAINED.items()}


@pytest.fixture
def finished_runs(empty_root, trained_runs):
    """Copies of the two trained runs in the app's runs folder, for a test to read or change."""
    copies = {method: copy_run(path, empty_root) for method, path in trained_runs.items()}
    return {"root": empty_root, "scn_dir": copies["scn"], "baseline_dir": copies["baseline"],
            "data": Path(RunReader(copies["scn"]).meta("dataset")["path"])}


@pytest.fixture
def run_dir(tmp_path, trained_runs):
    """A copy of the trained SCN run, alone in its runs folder."""
    return copy_run(trained_runs["scn"], tmp_path / "runs", name="demo")


@pytest.fixture(scope="session")
def grace_hopper_path() -> Path:
    """A real photograph of a face that ships with matplotlib."""
    return Path(get_sample_data("grace_hopper.jpg", asfileobj=False))


@pytest.fixture(scope="session")
def grace_hopper(grace_hopper_path) -> Image.Image:
    return Image.open(grace_hopper_path).convert("RGB")
