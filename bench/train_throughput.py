"""Training speed against the compute ceiling, and the cost of SCN over the baseline.

For each image size (batch 64 by default) it measures images/s of
  * the ceiling: a bare torchvision ResNet-18 doing forward + backward + Adam step on random
    tensors, in float32, bfloat16 autocast, and bfloat16 + channels_last (the fastest counts);
  * a plain PyTorch reference loop: TensorDataset + DataLoader + torchvision v2 transforms doing the
    same augmentation per sample, the way most training scripts are written;
  * our trainer (scn.train.Trainer): data from the decoded cache, batch augmentation, the
    rank-regularization and relabel bookkeeping, metric rows and heartbeats in SQLite;
  * the same trainer with --method baseline, for the SCN-versus-baseline step cost.

    python -m bench.train_throughput                          # 112 and 224 px, about 10 minutes
    python -m bench.train_throughput --sizes 112 --steps 2 --rounds 1   # quick check
"""
import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision.transforms import v2

from bench.results_io import write_results
from scn.config import IMAGENET_MEAN, IMAGENET_STD, make_config
from scn.device import autocast, cpu_has_native_bf16
from scn.store import RunWriter
from scn.train import StopSignal, Trainer


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "native_bf16": cpu_has_native_bf16()}


def step_runner(step, *, steps: int):
    """Wrap one training step as 'run `steps` of them'; the caller times the whole."""
    def run():
        for _ in range(steps):
            step()
    return run


def optimizer_step(model, optimizer, x, y, *, device, precision: str) -> None:
    """One forward, backward and Adam step of a bare classifier: the work every ceiling times."""
    with autocast(device, precision):
        loss = torch.nn.functional.cross_entropy(model(x).float(), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def ceiling(size: int, *, batch: int, steps: int, precision: str, channels_last: bool):
    """Forward, backward and step of the bare model on tensors already in memory."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=7)
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 7, (batch,))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    device = torch.device("cpu")

    def step():
        optimizer_step(model, optimizer, x, y, device=device, precision=precision)

    return step_runner(step, steps=steps)


def reference_loop(size: int, *, batch: int, steps: int, precision: str):
    """The loop most people write: per-sample transforms in a DataLoader, then the model."""
    torch.manual_seed(0)
    images = torch.randint(0, 256, (batch * steps, 3, size, size), dtype=torch.uint8)
    labels = torch.randint(0, 7, (len(images),))
    transform = v2.Compose([
        v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(IMAGENET_MEAN, IMAGENET_STD), v2.RandomErasing(scale=(0.02, 0.25)),
    ])

    class Augmented(torch.utils.data.Dataset):
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            return transform(images[i]), labels[i]

    loader = torch.utils.data.DataLoader(Augmented(), batch_size=batch, shuffle=True)
    model = torchvision.models.resnet18(num_classes=7).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    device = torch.device("cpu")

    def epoch():
        for x, y in loader:
            optimizer_step(model, optimizer, x.contiguous(memory_format=torch.channels_last), y, device=device,
                           precision=precision)

    return epoch


def write_dataset(root: Path, *, count: int, size: int) -> Path:
    """A RAF-DB-layout folder of random images; the trainer decodes it once like any dataset."""
    rng = np.random.default_rng(0)
    (root / "Image" / "aligned").mkdir(parents=True)
    (root / "EmoLabel").mkdir()
    lines = []
    for split, n in (("train", count), ("test", 8)):
        for i in range(1, n + 1):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "Image" / "aligned" / f"{split}_{i:05d}_aligned.jpg")
            lines.append(f"{split}_{i:05d}.jpg {rng.integers(1, 8)}")
    (root / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines))
    return root


def trainer_loop(data: Path, size: int, *, batch: int, method: str, tmp: Path):
    """Our trainer's whole epoch, timed from outside, so every byte of bookkeeping is counted."""
    config = make_config(data=str(data), image_size=size, batch_size=batch, method=method,
                         epochs=1000, relabel_epoch=1, val_fraction=0.0, seed=0)
    run_dir = tmp / f"{method}-{size}"
    writer = RunWriter(run_dir)
    writer.write_config(config.to_dict())
    trainer = Trainer(config, run_dir=run_dir, writer=writer, log=quiet_log(), stop=StopSignal(),
                      checkpoint=None, progress=False)
    epochs = iter(range(1, 1000))
    return lambda: trainer.train_epoch(next(epochs))


def quiet_log():
    """A logger for a benchmark's trainer that prints nothing: the figures are the output."""
    import logging

    log = logging.getLogger("bench.quiet")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    return log


def measure(*, sizes=(112, 224), batch: int = 64, steps: int = 6, rounds: int = 3) -> dict:
    """Images/s of every variant at each size, measured in interleaved rounds."""
    precision = "bf16" if cpu_has_native_bf16() else "fp32"
    results = {"machine": machine(), "batch_size": batch, "precision": precision, "sizes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for size in sizes:
            data = write_dataset(tmp / f"data{size}", count=batch * steps, size=size)
            variants = {
                "ceiling_fp32": ceiling(size, batch=batch, steps=steps, precision="fp32", channels_last=False),
                "ceiling_bf16": ceiling(size, batch=batch, steps=steps, precision="bf16", channels_last=False),
                "ceiling_bf16_channels_last": ceiling(size, batch=batch, steps=steps, precision="bf16",
                                                      channels_last=True),
                "reference_loop": reference_loop(size, batch=batch, steps=steps, precision=precision),
                "trainer_scn": trainer_loop(data, size, batch=batch, method="scn", tmp=tmp),
                "trainer_baseline": trainer_loop(data, size, batch=batch, method="baseline", tmp=tmp),
            }
            # Round-robin rounds: a neighbour's load then slows every variant alike, so the ratios
            # below stay meaningful on a busy machine. The first round warms kernels and is dropped.
            times = {name: [] for name in variants}
            for round_ in range(rounds + 1):
                for name, run in variants.items():
                    start = time.perf_counter()
                    run()
                    if round_:
                        times[name].append(time.perf_counter() - start)
            row = {name: batch * steps / statistics.median(t) for name, t in times.items()}
            best = max(row["ceiling_fp32"], row["ceiling_bf16"], row["ceiling_bf16_channels_last"])
            row["trainer_vs_ceiling"] = row["trainer_scn"] / best
            row["reference_vs_ceiling"] = row["reference_loop"] / best
            row["scn_step_overhead_vs_baseline"] = row["trainer_baseline"] / row["trainer_scn"] - 1
            results["sizes"][size] = row
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[112, 224])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=6, help="steps per timed epoch")
    parser.add_argument("--rounds", type=int, default=3, help="timed round-robin rounds")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    results = measure(sizes=args.sizes, batch=args.batch_size, steps=args.steps, rounds=args.rounds)
    for size, row in results["sizes"].items():
        print(f"{size} px, batch {args.batch_size}:")
        for key, value in row.items():
            shown = f"{value:.1%}" if "vs" in key or "overhead" in key else f"{value:.1f} img/s"
            print(f"  {key:>30}: {shown}")
    print(json.dumps(results["machine"]))
    if args.json:
        write_results(args.json, results, module="bench.train_throughput")


if __name__ == "__main__":
    main()
