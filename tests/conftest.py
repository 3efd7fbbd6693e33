import os

import pytest
import torch

# Two cores shared by the suite: keep torch from oversubscribing them in every test process.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def tiny_rafdb(tmp_path):
    from tests.helpers import write_rafdb

    return write_rafdb(tmp_path / "rafdb", train=48, test=21, size=32)
