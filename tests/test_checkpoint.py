import pytest
import torch
import torchvision

from scn.checkpoint import CheckpointError, load_model, save_checkpoint
from scn.model import SCN

MODEL_CONFIG = {"num_classes": 7, "class_names": list("abcdefg"), "method": "scn", "drop_rate": 0.0,
                "image_size": 64, "mean": [0.5] * 3, "std": [0.5] * 3}


def test_round_trip(tmp_path):
    model = SCN(7)
    save_checkpoint(tmp_path / "best.pt", {"model": model.state_dict(), "model_config": MODEL_CONFIG})
    loaded, meta = load_model(tmp_path / "best.pt")
    assert not loaded.training and meta["model_config"]["image_size"] == 64
    x = torch.randn(1, 3, 64, 64)
    assert torch.allclose(loaded(x)[1], model.eval()(x)[1])


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    foreign = torchvision.models.resnet50(weights=None).state_dict()
    save_checkpoint(tmp_path / "x.pt", {"model": foreign, "model_config": MODEL_CONFIG})
    with pytest.raises(CheckpointError, match="weights of another architecture"):
        load_model(tmp_path / "x.pt")


def test_foreign_and_corrupt_files_are_refused(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "official.pth")
    with pytest.raises(CheckpointError, match="not an SCN Studio checkpoint"):
        load_model(tmp_path / "official.pth")
    (tmp_path / "junk.pt").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_model(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_model(tmp_path / "absent.pt")
