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
    with pytest.raises(CheckpointError, match="not a readable PyTorch weights file"):
        load_model(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_model(tmp_path / "absent.pt")


def full_disk(error):
    """torch.save that writes part of the file, then fails as a full disk makes it fail."""
    def save(obj, path):
        open(path, "wb").write(b"partial")
        raise error
    return save


@pytest.mark.parametrize("error", [
    OSError(28, "No space left on device"),
    RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1234 vs 1200"),
])
def test_a_full_disk_keeps_the_old_checkpoint_and_says_why(tmp_path, monkeypatch, error):
    from scn.checkpoint import CheckpointWriteError

    path = tmp_path / "last.pt"
    save_checkpoint(path, {"model": {}, "model_config": MODEL_CONFIG, "epoch": 1})
    monkeypatch.setattr(torch, "save", full_disk(error))
    with pytest.raises(CheckpointWriteError, match="no space left on device"):
        save_checkpoint(path, {"model": {}, "model_config": MODEL_CONFIG, "epoch": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["epoch"] == 1
