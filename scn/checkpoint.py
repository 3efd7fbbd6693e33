"""Checkpoints of a run: `last` (to resume) and `best` (chosen on a named split).

A checkpoint is a plain dict of tensors and primitives so that it loads with
`torch.load(..., weights_only=True)`:

    format        "scn-studio/1"
    model         the SCN state dict
    model_config  num_classes, class_names, method, backbone, drop_rate, image_size, mean, std
    run_config    the whole training configuration
    epoch         epochs completed; step_in_epoch > 0 marks a checkpoint taken mid-epoch
    optimizer, scheduler, labels (scn.labels.LabelState.state_dict()), rng, best, dataset
"""
import errno
import os
from pathlib import Path

import torch

from scn.model import CHECKPOINT_FORMAT, SCN

REQUIRED_MODEL_CONFIG = ("num_classes", "class_names", "method", "image_size", "mean", "std")


class CheckpointError(RuntimeError):
    """Raised for a missing, unreadable or foreign checkpoint file."""


class CheckpointWriteError(CheckpointError):
    """Raised when a checkpoint cannot be written (most often: the disk is full); the previous
    file at that path is left as it was, so the run can resume once there is room."""


def save_checkpoint(path, checkpoint: dict) -> None:
    """Write atomically, so a trainer killed while saving never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        torch.save({"format": CHECKPOINT_FORMAT, **checkpoint}, tmp)
        os.replace(tmp, path)
    except BaseException as exc:  # a Ctrl-C too: never leave a half-written temporary file behind
        tmp.unlink(missing_ok=True)
        if isinstance(exc, (OSError, RuntimeError)):
            raise CheckpointWriteError(f"cannot write {path}: {_write_failure(exc)}") from exc
        raise


def _write_failure(exc: Exception) -> str:
    # A full disk reaches torch.save's zip writer as "[enforce fail at inline_container.cc:...]
    # unexpected pos ..." rather than as ENOSPC, so both mean the same to the user.
    if getattr(exc, "errno", None) == errno.ENOSPC or "unexpected pos" in str(exc):
        return "no space left on device"
    return str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__


def read_weights(path):
    """`torch.load` of a user's file, on the CPU and with `weights_only` (no code runs from it).

    Raises ValueError naming the file when it is not a readable PyTorch file (truncated, or another format)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path} is not a readable PyTorch weights file: {str(exc).splitlines()[0]}") from exc


def load_checkpoint(path) -> dict:
    """Load and validate one of our checkpoints; clear errors for anything else."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        checkpoint = read_weights(path)
    except ValueError as exc:
        raise CheckpointError(str(exc)) from exc
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not an SCN Studio checkpoint (no format tag {CHECKPOINT_FORMAT!r}); "
            "to start from foreign weights use --pretrained PATH instead"
        )
    config = checkpoint.get("model_config", {})
    absent = [key for key in REQUIRED_MODEL_CONFIG if key not in config]
    if absent or "model" not in checkpoint:
        raise CheckpointError(f"{path} lacks {', '.join(absent) or 'model weights'}")
    return checkpoint


def build_model(model_config: dict) -> SCN:
    # Checkpoints written before there was a choice of backbone are ResNet-18s.
    return SCN(model_config["num_classes"], backbone=model_config.get("backbone", "resnet18"),
               drop_rate=model_config.get("drop_rate", 0.0), method=model_config["method"])


def load_model(path, *, device="cpu"):
    """Model in eval mode plus the checkpoint's metadata (everything but the weights).

    Raises CheckpointError when the weights belong to another architecture.
    """
    checkpoint = load_checkpoint(path)
    model = build_model(checkpoint["model_config"])
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as exc:
        first_line = str(exc).splitlines()[0]
        raise CheckpointError(f"{path} holds weights of another architecture: {first_line}") from exc
    model.to(device).eval()
    meta = {k: v for k, v in checkpoint.items() if k not in ("model", "optimizer", "scheduler")}
    return model, meta
