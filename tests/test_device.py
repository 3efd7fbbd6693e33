"""Device and precision choices. The CUDA tests run only where PyTorch sees a GPU (CI has none; they
were run on a lent GPU machine, see the README); the CPU-side messages are checked everywhere."""
import math

import pytest
import torch

from scn.checkpoint import load_checkpoint
from scn.cli import main
from scn.device import resolve_device, resolve_precision
from scn.store import RunReader
from scn.train import train
from tests.helpers import interrupt_after, tiny_config

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_fp16_on_the_cpu_is_refused_with_a_reason(tiny_rafdb, tmp_path, capsys):
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16", torch.device("cpu"))
    code = main(["train", "--data", str(tiny_rafdb), "--run-dir", str(tmp_path / "r"), "--device", "cpu",
                 "--precision", "fp16", "--epochs", "1", "--image-size", "32", "--no-progress"])
    assert code == 2 and "fp16 needs a CUDA device" in capsys.readouterr().err


def test_explicit_fp32_and_cpu_auto_choices():
    cpu = torch.device("cpu")
    assert resolve_precision("fp32", cpu) == "fp32"
    assert resolve_precision("bf16", cpu) == "bf16"
    assert resolve_device("cpu") == cpu


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_asking_for_cuda_without_one_says_so(tiny_rafdb, tmp_path, capsys):
    code = main(["train", "--data", str(tiny_rafdb), "--run-dir", str(tmp_path / "r"), "--device", "cuda",
                 "--epochs", "1", "--image-size", "32", "--no-progress"])
    assert code == 2 and "sees no CUDA device" in capsys.readouterr().err


@needs_cuda
def test_amp_run_on_cuda_fills_the_store_and_evaluates_on_the_cpu(tiny_rafdb, tmp_path, capsys):
    run_dir = tmp_path / "cuda"
    assert train(tiny_config(tiny_rafdb, device="cuda"), run_dir=run_dir, progress=False) == "finished"
    reader = RunReader(run_dir)
    epochs = reader.epoch_metrics()
    assert epochs["epoch"].tolist() == [1, 2]
    assert epochs[["test_accuracy", "alpha_mean", "train_loss_rr"]].notna().all().all()
    assert len(reader.attention(2)) == 42
    expected = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    assert f"cuda/{expected}" in (run_dir / "train.log").read_text()
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert all(t.device.type == "cpu" for t in checkpoint["model"].values())
    assert main(["eval", "--run", str(run_dir)]) == 0
    assert "test accuracy" in capsys.readouterr().out


@needs_cuda
def test_fp16_with_grad_scaler_stops_mid_epoch_and_resumes(tiny_rafdb, tmp_path, monkeypatch):
    run_dir = tmp_path / "fp16"
    config = tiny_config(tiny_rafdb, device="cuda", precision="fp16", epochs=3)
    interrupt_after(monkeypatch, 5, lambda trainer: setattr(trainer.stop, "requested", True))
    assert train(config, run_dir=run_dir, progress=False) == "stopped"
    stopped = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert stopped["scaler"]["scale"] > 0
    monkeypatch.undo()
    assert train(config, run_dir=run_dir, resume=True, progress=False) == "finished"
    reader = RunReader(run_dir)
    assert reader.epoch_metrics()["epoch"].tolist() == [1, 2, 3]
    assert reader.step_metrics()["global_step"].is_unique
    assert "cuda/fp16" in (run_dir / "train.log").read_text()
    final = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert all(math.isfinite(float(t.float().abs().sum())) for t in final["model"].values())
    assert len(reader.relabels()) == len(final["labels"]["history"])
