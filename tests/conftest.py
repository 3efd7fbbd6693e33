import os

import pytest
import torch

from tests.fake_run import write_fake_run

# Two cores shared by the suite: keep torch from oversubscribing them in every test process.
torch.set_num_threads(min(2, os.cpu_count() or 1))


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
