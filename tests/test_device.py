"""Device and precision choices. The CUDA tests run only where PyTorch sees a GPU (CI has none; they
were run on a lent GPU machine, see docs/gpu.md); the CPU-side messages are checked everywhere."""
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


@needs_cuda
def test_device_augmentation_on_cuda_matches_its_cpu_contract():
    from scn import augment
    from scn.config import IMAGENET_MEAN, IMAGENET_STD

    images = torch.randint(0, 256, (512, 3, 32, 32), dtype=torch.uint8, device="cuda")
    norm = dict(mean=IMAGENET_MEAN, std=IMAGENET_STD)
    a = augment.device_train_batch(images, generator=torch.Generator("cuda").manual_seed(0), **norm)
    b = augment.device_train_batch(images, generator=torch.Generator("cuda").manual_seed(0), **norm)
    assert a.device.type == "cuda" and a.dtype == torch.float32 and a.shape == images.shape
    assert torch.equal(a, b)
    erased = (a == 0).all(dim=1).any(dim=(1, 2)).float().mean().item()
    assert 0.4 < erased < 0.6


@needs_cuda
def test_cuda_prefetcher_copies_the_batches_asked_for():
    from scn.pipeline import Prefetcher, pin

    device = torch.device("cuda")
    images = pin(torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8), device)
    assert images.is_pinned()
    batches = list(torch.split(torch.randperm(40), 16))
    for step, got in Prefetcher(images, batches, device=device, rows=lambda total: slice(0, total // 2)).iterate():
        assert got.device.type == "cuda"
        assert torch.equal(got.cpu(), images[batches[step][:len(batches[step]) // 2]])


@needs_cuda
def test_cuda_steps_between_metric_rows_do_not_wait_for_the_gpu(tiny_rafdb, tmp_path, monkeypatch):
    """Under torch's sync debug mode, a training step (augmentation, forward, backward, Adam,
    rank regularization, relabeling) makes no host sync; rows and the epoch end may."""
    import warnings

    from scn.train import Trainer

    original, syncs = Trainer._train_step, []

    def step(self, *args, **kwargs):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                result = original(self, *args, **kwargs)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        syncs.append([str(w.message) for w in caught if "synchroniz" in str(w.message)])
        return result

    monkeypatch.setattr(Trainer, "_train_step", step)
    config = tiny_config(tiny_rafdb, device="cuda", precision="bf16", batch_size=4, relabel_epoch=1,
                         log_every=100)
    assert train(config, run_dir=tmp_path / "r", progress=False) == "finished"
    # The first steps build cached constants and optimizer state once.
    assert len(syncs) > 10 and not any(syncs[3:]), syncs[3:]


@needs_cuda
def test_decoded_images_on_disk_feed_a_cuda_run_as_memory_does(tiny_rafdb, tmp_path, monkeypatch):
    # The disk cache is gathered into the pinned buffer batch by batch; the file itself is never pinned.
    monkeypatch.setenv("SCN_STUDIO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    runs = {mode: tmp_path / mode for mode in ("disk", "memory")}
    for mode, run_dir in runs.items():
        config = tiny_config(tiny_rafdb, device="cuda", precision="fp32", epochs=1, relabel_epoch=1,
                             decoded_cache=mode)
        assert train(config, run_dir=run_dir, progress=False) == "finished"
    assert "decoded images on disk" in (runs["disk"] / "train.log").read_text()
    disk, memory = (RunReader(runs[mode]).step_metrics() for mode in ("disk", "memory"))
    assert len(disk) == len(memory) > 0
    assert disk["loss"].to_numpy() == pytest.approx(memory["loss"].to_numpy(), rel=1e-4)
