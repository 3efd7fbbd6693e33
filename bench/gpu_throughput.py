"""Training speed on a GPU against its ceiling, at RAF-DB size. `bench/gpu_check.sh`
runs it with the CUDA tests and the benchmark's generation; it runs alone too:

    python -m scn synth --out /tmp/rafdb --train 12271 --test 3068
    python -m bench.gpu_throughput --data /tmp/rafdb --json bench/results/gpu_check.json

For each image size and batch size it measures images/s of
  * the ceiling: a bare torchvision ResNet-18, forward + backward + Adam step on random tensors
    already on the GPU, bfloat16 autocast + channels_last;
  * a plain PyTorch loop: the decoded images in a Dataset, per-sample torchvision v2 transforms
    (the official recipe: flip or Gaussian noise, normalise, RandomErasing) in DataLoader workers,
    pinned memory, then the same model step;
  * our trainer (scn.train.Trainer, SCN and the baseline): a whole epoch, relabeling on, metric
    rows and heartbeats in SQLite, everything counted.

Imports only what `python -m scn train` needs (no streamlit, plotly or grad-cam). The JSON is
rewritten after every measurement, so a run cut short keeps what it measured.
"""
import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch
import torchvision
from torchvision.transforms import v2

from bench.results_io import write_results
from bench.train_throughput import optimizer_step, quiet_log
from scn.augment import NOISE_STD
from scn.config import IMAGENET_MEAN, IMAGENET_STD, make_config
from scn.data import load_dataset
from scn.device import resolve_precision
from scn.store import RunWriter
from scn.train import StopSignal, Trainer


def machine(device: torch.device) -> dict:
    info = {"torch": torch.__version__, "torchvision": torchvision.__version__, "python": platform.python_version(),
            "device": device.type}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info |= {"gpu": props.name, "gpu_memory_gib": round(props.total_memory / 2**30, 1),
                 "cuda": torch.version.cuda, "gpus": torch.cuda.device_count()}
    return info


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _model(device: torch.device):
    model = torchvision.models.resnet18(num_classes=7).to(device, memory_format=torch.channels_last)
    return model, torch.optim.Adam(model.parameters(), lr=1e-3)


def _timed(step, *, device, steps: int, warmup: int, batch: int) -> float:
    for _ in range(warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return batch * steps / (time.perf_counter() - start)


def ceiling(size: int, batch: int, *, device, precision: str, steps: int, warmup: int) -> float:
    """Forward, backward and Adam step of the bare model on tensors already on the device."""
    torch.manual_seed(0)
    model, optimizer = _model(device)
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 7, (batch,), device=device)

    def step():
        optimizer_step(model, optimizer, x, y, device=device, precision=precision)

    return _timed(step, device=device, steps=steps, warmup=warmup, batch=batch)


class _Augmented(torch.utils.data.Dataset):
    def __init__(self, images, labels):
        self.images, self.labels = images, labels
        flip_or_noise = v2.RandomApply([v2.RandomChoice([
            v2.RandomHorizontalFlip(p=1.0), v2.GaussianNoise(sigma=NOISE_STD / 255.0)])], p=0.5)
        self.transform = v2.Compose([
            v2.ToDtype(torch.float32, scale=True), flip_or_noise, v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
            v2.RandomErasing(p=0.5, scale=(0.02, 0.25), ratio=(0.3, 3.3)),
        ])

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.transform(self.images[i]), self.labels[i]


def plain_loop(images, labels, batch: int, *, device, precision: str, steps: int, warmup: int,
               workers: int) -> float:
    """The loop most training scripts are: per-sample transforms in DataLoader workers."""
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(_Augmented(images, labels), batch_size=batch, shuffle=True,
                                         drop_last=True, num_workers=workers, pin_memory=device.type == "cuda",
                                         persistent_workers=workers > 0)
    model, optimizer = _model(device)
    batches = iter(())

    def step():
        nonlocal batches
        try:
            x, y = next(batches)
        except StopIteration:
            batches = iter(loader)
            x, y = next(batches)
        x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        y = y.to(device, non_blocking=True)
        optimizer_step(model, optimizer, x, y, device=device, precision=precision)

    return _timed(step, device=device, steps=steps, warmup=warmup, batch=batch)


def trainer_epoch(data: Path, size: int, batch: int, *, method: str, device, tmp: Path) -> dict:
    """Our trainer's second epoch (the first warms kernels and cuDNN's choices), timed from outside."""
    config = make_config(data=str(data), image_size=size, batch_size=batch, method=method, epochs=1000,
                         relabel_epoch=1, val_fraction=0.0, seed=0, device=str(device))
    run_dir = tmp / f"{method}-{size}-{batch}"
    writer = RunWriter(run_dir)
    writer.write_config(config.to_dict())
    trainer = Trainer(config, run_dir=run_dir, writer=writer, log=quiet_log(), stop=StopSignal(),
                      checkpoint=None, progress=False)
    try:
        trainer.train_epoch(1)
        _sync(device)
        start = time.perf_counter()
        trainer.train_epoch(2)
        _sync(device)
        seconds = time.perf_counter() - start
        return {"images_per_s": len(trainer.train_split) / seconds, "precision": trainer.precision,
                "relabels_epoch_2": sum(e.epoch == 2 for e in trainer.labels.history)}
    finally:
        writer.close()


def measure(*, data: Path, sizes, batches, device: torch.device, steps: int, warmup: int, workers: int,
            report: dict, save) -> dict:
    """Fill report["sizes"][size][batch] one measurement at a time, calling save() after each."""
    precision = resolve_precision("auto", device)
    report |= {"machine": machine(device), "precision": precision, "sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for size in sizes:
            dataset = load_dataset(data, image_size=size, workers=max(1, torch.get_num_threads()))
            report["train_images"] = len(dataset.train)
            for batch in batches:
                row = report["sizes"].setdefault(str(size), {}).setdefault(str(batch), {})
                row["ceiling"] = ceiling(size, batch, device=device, precision=precision, steps=steps,
                                         warmup=warmup)
                save()
                row["plain_loop"] = plain_loop(dataset.train.images, dataset.train.labels, batch, device=device,
                                               precision=precision, steps=steps, warmup=warmup, workers=workers)
                save()
                for method in ("scn", "baseline"):
                    result = trainer_epoch(data, size, batch, method=method, device=device, tmp=tmp)
                    row[f"trainer_{method}"] = result["images_per_s"]
                    row[f"trainer_{method}_relabels_epoch_2"] = result["relabels_epoch_2"]
                    row[f"trainer_{method}_vs_ceiling"] = result["images_per_s"] / row["ceiling"]
                    save()
                row["plain_loop_vs_ceiling"] = row["plain_loop"] / row["ceiling"]
                save()
    return report


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a RAF-DB-layout folder, e.g. from `python -m scn synth`")
    # 224 px first: the figure to compare with the earlier measurement, kept if a run is cut short.
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 112])
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--steps", type=int, default=30, help="timed steps of the ceiling and the plain loop")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--workers", type=int, default=8, help="DataLoader workers of the plain loop")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--extra", help="a JSON file merged into the report (gpu_check.sh: tests, timings)")
    parser.add_argument("--json", required=True, help="write the report here (rewritten after each measurement)")
    args = parser.parse_args(argv)
    report = {"started": time.strftime("%Y-%m-%d %H:%M:%S")}
    if args.extra:
        report |= json.loads(Path(args.extra).read_text())

    def save():
        write_results(args.json, report, module="bench.gpu_throughput", argv=argv)

    measure(data=Path(args.data), sizes=args.sizes, batches=args.batches, device=torch.device(args.device),
            steps=args.steps, warmup=args.warmup, workers=args.workers, report=report, save=save)
    report["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    save()
    for size, rows in report["sizes"].items():
        for batch, row in rows.items():
            print(f"{size} px, batch {batch}: " + ", ".join(
                f"{k} {v:.0%}" if "vs" in k else f"{k} {v:.0f}" for k, v in row.items() if "relabels" not in k))
    return report


if __name__ == "__main__":
    main()
