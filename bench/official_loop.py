"""The official SCN training loop (github.com/kaiwang960112/Self-Cure-Network, src/train.py), timed on
a RAF-DB-layout folder such as `python -m scn synth` writes, for a side-by-side with our trainer on
the same device, data, image size and batch.

Their code is not part of this repository. `prepare` copies it out of a git mirror of theirs into the
ignored folder official-scn/ (a device run carries that folder); `time` patches a copy of their
train.py, imports it and runs their own `run_training()` for a few steps of its first epoch:

    python -m bench.official_loop prepare --mirror /work/.mirror/kaiwang960112+Self-Cure-Network/repo
    python -m bench.official_loop time --data DIR --size 224 --batch 64 --method scn --device cuda

The patches (PATCHES below), each of which must still be found in their source:
  * their ResNet-18 is built with `models.resnet18(pretrained)`: current torchvision takes weights
    by keyword only, and neither ImageNet's weights nor the MS-Celeb ones their README asks for can
    be downloaded here, so the model starts from random weights (the speed does not depend on it);
  * `.cuda()` becomes the chosen device, so the loop also runs on a CPU at toy scale;
  * their fixed Resize((224, 224)) becomes the chosen size;
  * the relabel step indexes a CPU tensor with CUDA indices, which current PyTorch refuses
    (a known defect of theirs); the indices go to the CPU first;
  * a clock is called at the top of every training step.
Everything else, their data loading (cv2 per image, PIL transforms in DataLoader workers), fp32
model step, rank regularization and relabeling, runs as they wrote it. Their "baseline" is the same
loop without rank regularization (margin_1 -1: the hinge is never positive) and without relabeling
(relabel_epoch past the run); the model keeps its alpha head, a Linear(512, 1).
"""
import argparse
import importlib
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from bench.results_io import write_results

ROOT = Path(__file__).resolve().parent.parent
FOLDER = ROOT / "official-scn"
MIRROR = Path("/work/.mirror/kaiwang960112+Self-Cure-Network/repo")
UPSTREAM = "github.com/kaiwang960112/Self-Cure-Network"
FILES = ("src/train.py", "src/image_utils.py")
PATCHED_MODULE = "train_timed"

# (what their source says, what it becomes, why)
PATCHES = (
    ("resnet  = models.resnet18(pretrained)", "resnet  = models.resnet18(weights=None)",
     "torchvision's weights are keyword-only; ImageNet/MS-Celeb weights are unavailable offline: random init"),
    (".cuda()", ".to(_DEVICE)", "the chosen device (a CPU at toy scale)"),
    ("transforms.Resize((224, 224))", "transforms.Resize((_SIZE, _SIZE))", "the chosen image size"),
    ("label_idx = indexes[update_idx]", "label_idx = indexes[update_idx.cpu()]",
     "current PyTorch refuses CUDA indices into a CPU tensor"),
    ("            batch_sz = imgs.size(0) \n", "            batch_sz = imgs.size(0); _step_hook(batch_sz)\n",
     "the clock, at the top of every training step"),
)


class OfficialLoopError(RuntimeError):
    pass


class _Timed(Exception):
    """Raised out of their loop once the timed steps are done."""


def prepare(*, mirror: Path = MIRROR, folder: Path = FOLDER) -> str:
    """Copy their files at the mirror's HEAD into `folder`; returns the commit."""
    def git(*args):
        done = subprocess.run(["git", "-C", str(mirror), *args], capture_output=True, text=True)
        if done.returncode != 0:
            raise OfficialLoopError(f"git {' '.join(args)} in {mirror}: {done.stderr.strip()}")
        return done.stdout

    commit = git("rev-parse", "HEAD").strip()
    for name in FILES:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(git("show", f"{commit}:{name}"))
    (folder / "SOURCE").write_text(f"{UPSTREAM} {commit}\n")
    return commit


def patched_source(text: str) -> str:
    for old, new, _ in PATCHES:
        if old not in text:
            raise OfficialLoopError(f"their train.py no longer contains {old!r}: update PATCHES")
        text = text.replace(old, new)
    return text


def load(*, folder: Path = FOLDER):
    """Their train.py, patched, written next to theirs and imported (DataLoader workers started by
    fork or forkserver find their dataset class by module name)."""
    source = folder / "src" / "train.py"
    if not source.is_file():
        raise OfficialLoopError(f"{source} is missing: run `python -m bench.official_loop prepare` first")
    (folder / "src" / f"{PATCHED_MODULE}.py").write_text(patched_source(source.read_text()))
    if str(folder / "src") not in sys.path:
        sys.path.insert(0, str(folder / "src"))
    sys.modules.pop(PATCHED_MODULE, None)
    return importlib.import_module(PATCHED_MODULE)


class StepClock:
    """Called at the top of each of their training steps: after `warmup` steps it starts the clock,
    after `steps` more it stops it and ends their loop."""

    def __init__(self, *, warmup: int, steps: int, device: torch.device):
        self.warmup, self.steps, self.device = warmup, steps, device
        self.calls, self.images, self.previous, self.start, self.seconds = 0, 0, 0, None, None

    def __call__(self, batch: int) -> None:
        if self.calls == self.warmup:
            self._sync()
            self.start = time.perf_counter()
        elif self.calls > self.warmup:
            self.images += self.previous
        if self.calls == self.warmup + self.steps:
            self._sync()
            self.seconds = time.perf_counter() - self.start
            raise _Timed
        self.previous = batch
        self.calls += 1

    def _sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def _train_images(data: Path) -> int:
    labels = (data / "EmoLabel" / "list_patition_label.txt").read_text().split()
    return sum(name.startswith("train") for name in labels[::2])


def time_loop(*, data: Path, size: int, batch: int, method: str, device: torch.device, workers: int,
              warmup: int = 10, steps: int = 50, folder: Path = FOLDER) -> dict:
    """Images/s of `steps` of their training steps after `warmup`, all within their first epoch
    (the steps are cut to fit it; their evaluation never runs)."""
    batches = -(-_train_images(data) // batch)
    steps = min(steps, batches - 1 - warmup)
    if steps < 1:
        raise OfficialLoopError(f"{data} has {batches} batches of {batch}: too few for {warmup} warm-up steps "
                                "and one timed step")
    module = load(folder=folder)
    clock = StepClock(warmup=warmup, steps=steps, device=device)
    module._DEVICE, module._SIZE, module._step_hook = device, size, clock
    options = {"scn": ["--relabel_epoch", "1"], "baseline": ["--relabel_epoch", "2", "--margin_1", "-1"]}[method]
    argv = ["train.py", "--raf_path", str(data), "--batch_size", str(batch), "--workers", str(workers),
            "--epochs", "1", *options]
    saved_argv, sys.argv = sys.argv, argv
    torch.manual_seed(0)
    try:
        module.run_training()
    except _Timed:
        pass
    finally:
        sys.argv = saved_argv
    if clock.seconds is None:
        raise OfficialLoopError(f"their loop ended after {clock.calls} steps, before the clock stopped")
    return {"method": method, "size": size, "batch": batch, "workers": workers, "device": str(device),
            "warmup_steps": warmup, "timed_steps": steps, "images": clock.images,
            "images_per_s": clock.images / clock.seconds,
            "precision": "fp32 (their loop has no autocast)", "start": "random weights",
            "command_line": " ".join(argv[1:]),
            "source": (folder / "SOURCE").read_text().strip() if (folder / "SOURCE").is_file() else None,
            "patches": [why for _, _, why in PATCHES]}


def main(argv=None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    prep = commands.add_parser("prepare", help=f"copy their code from a git mirror of {UPSTREAM}")
    prep.add_argument("--mirror", type=Path, default=MIRROR)
    prep.add_argument("--folder", type=Path, default=FOLDER)
    timed = commands.add_parser("time", help="time their training loop")
    timed.add_argument("--data", type=Path, required=True, help="a RAF-DB-layout folder")
    timed.add_argument("--size", type=int, default=224)
    timed.add_argument("--batch", type=int, default=64)
    timed.add_argument("--method", choices=("scn", "baseline"), default="scn")
    timed.add_argument("--device", default="cuda")
    timed.add_argument("--workers", type=int, default=4, help="their DataLoader workers (theirs: 4)")
    timed.add_argument("--warmup", type=int, default=10)
    timed.add_argument("--steps", type=int, default=50)
    timed.add_argument("--folder", type=Path, default=FOLDER)
    timed.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    try:
        if args.command == "prepare":
            commit = prepare(mirror=args.mirror, folder=args.folder)
            print(f"{UPSTREAM} {commit} -> {args.folder}")
            return None
        result = time_loop(data=args.data, size=args.size, batch=args.batch, method=args.method,
                           device=torch.device(args.device), workers=args.workers, warmup=args.warmup,
                           steps=args.steps, folder=args.folder)
    except OfficialLoopError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2)
    print(json.dumps(result))
    if args.json:
        write_results(args.json, result, module="bench.official_loop", argv=argv)
    return result


if __name__ == "__main__":
    main()
