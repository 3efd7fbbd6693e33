"""Small datasets, images and run folders the tests make themselves."""
import io
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from scn.config import make_config
from scn.data import RAFDB_IMAGE_DIR, RAFDB_LABEL_FILE
from scn.train import Trainer


def class_image(label: int, *, size: int, rng: np.random.Generator) -> Image.Image:
    """An image whose class is learnable: a bright bar at a class-specific height, plus noise."""
    pixels = rng.integers(0, 60, size=(size, size, 3), dtype=np.uint8)
    top = int(label * size / 8)
    pixels[top:top + max(2, size // 8), :, :] = 220
    return Image.fromarray(pixels)


def write_rafdb(root, *, train: int = 32, test: int = 16, size: int = 40, seed: int = 0,
                num_classes: int = 7) -> Path:
    """A RAF-DB-layout folder: EmoLabel/list_patition_label.txt and Image/aligned/*_aligned.jpg."""
    root = Path(root)
    (root / RAFDB_IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    (root / RAFDB_LABEL_FILE).parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines = []
    for split, count in (("train", train), ("test", test)):
        for i in range(1, count + 1):
            label = (i - 1) % num_classes
            name = f"{split}_{i:05d}"
            class_image(label, size=size, rng=rng).save(root / RAFDB_IMAGE_DIR / f"{name}_aligned.jpg")
            lines.append(f"{name}.jpg {label + 1}")
    (root / RAFDB_LABEL_FILE).write_text("\n".join(lines) + "\n")
    return root


def copy_run(source, root, *, name: str | None = None) -> Path:
    """A copy of the run folder `source` under `root`, without its lock files: a test may change it.

    Checkpoints are hard links, not copies: with Adam's state each is about 128 MB, and a copy per
    test would fill gigabytes of disk over the suite. A test that changes a checkpoint must replace
    the file (save_checkpoint does, atomically) or unlink it first, never write into it."""
    target = Path(root) / (name or Path(source).name)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.lock"), copy_function=_link_checkpoints)
    return target


def _link_checkpoints(source, target):
    if str(source).endswith(".pt"):
        os.link(source, target)
    else:
        shutil.copy2(source, target)


def make_unsure(run_dir) -> Path:
    """Rewrite the run's checkpoints so that alpha is about 0 for every face (alpha's bias -30):
    the state of an SCN model whose attention has collapsed."""
    from scn.checkpoint import load_checkpoint, save_checkpoint
    from scn.store import checkpoint_path

    for which in ("best", "last"):
        checkpoint = load_checkpoint(checkpoint_path(run_dir, which))
        checkpoint["model"]["alpha.0.bias"].fill_(-30.0)
        save_checkpoint(checkpoint_path(run_dir, which), checkpoint)
    return run_dir


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def tiny_config(data, **overrides):
    """Two epochs at 32 px that relabel in epoch 2 (scope "all", small margin), so every code path runs."""
    values = dict(data=str(data), epochs=2, batch_size=16, image_size=32, relabel_epoch=2,
                  relabel_scope="all", margin_2=0.05, val_fraction=0.125, log_every=1, seed=5)
    return make_config(**(values | overrides))


def interrupt_after(monkeypatch, calls, action):
    """Call `action(trainer)` right after training step number `calls`: a stop request or a stand-in
    for SIGKILL at a chosen point of the run."""
    original = Trainer._train_step
    count = {"n": 0}

    def step(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        count["n"] += 1
        if count["n"] == calls:
            action(self)
        return result

    monkeypatch.setattr(Trainer, "_train_step", step)
