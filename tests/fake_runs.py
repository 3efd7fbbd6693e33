"""A fake run folder as the trainer leaves it, with a small random-weight checkpoint, for predict tests."""
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from scn.checkpoint import save_checkpoint
from scn.classes import CLASS_NAMES
from scn.model import SCN
from scn.store import CHECKPOINT_DIR, RunWriter

# Small inputs keep every forward/backward pass in the tests fast on a 2-core CPU.
TEST_IMAGE_SIZE = 64
MODEL_CONFIG = {
    "num_classes": len(CLASS_NAMES), "class_names": list(CLASS_NAMES), "method": "scn",
    "image_size": TEST_IMAGE_SIZE, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
}
DATASET = {"name": "builtin", "description": "the built-in synthetic benchmark", "path": "data/builtin"}


def make_run(root, name="demo", *, checkpoints=("best", "last"), method="scn", training_alphas=None,
             seed=0) -> Path:
    """A run folder as the trainer leaves it: run.db with one attention epoch, config, checkpoints."""
    run_dir = Path(root) / name
    writer = RunWriter(run_dir)
    writer.write_config({"epochs": 2, "method": method})
    writer.set_status("finished", started=1.0)
    alphas = np.linspace(0.05, 0.95, 19) if training_alphas is None else np.asarray(training_alphas)
    if len(alphas):
        writer.add_samples("train", [f"train_{i}.jpg" for i in range(len(alphas))], np.arange(len(alphas)) % 7)
        writer.log_attention(1, alpha=alphas, is_high=alphas > np.median(alphas), labels=np.arange(len(alphas)) % 7)
    writer.close()
    torch.manual_seed(seed)
    model = SCN(len(CLASS_NAMES), method=method)
    for which in checkpoints:
        save_checkpoint(run_dir / CHECKPOINT_DIR / f"{which}.pt", {
            "model": model.state_dict(), "model_config": {**MODEL_CONFIG, "method": method},
            "dataset": DATASET, "epoch": 1,
        })
    return run_dir


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()
