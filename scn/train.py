"""The SCN trainer: one process per run, the only writer of its run folder.

Read top to bottom: `train()` takes the run lock, loads (or resumes) everything, then runs
epochs of `_train_step`s. Each epoch ends with evaluation, the epoch's records in the store
(attention weights, relabel events, confusion) and checkpoints. SIGTERM or Ctrl-C ends the
current step, writes `last` (mid-epoch, with the epoch's random state) and exits cleanly.

Determinism: every epoch draws its shuffling and augmentation from a generator seeded by
(seed, epoch), and a mid-epoch checkpoint stores that generator's state, so a resumed run
retraces an uninterrupted one on the CPU.

On CUDA the uint8 batches are copied one step ahead (scn.pipeline) and augmented on the GPU with a
generator there; metrics and relabel events stay on the device until a metric row is due, so the
CPU does not wait for the GPU between rows. Under torchrun each process trains its share of every
global batch (scn.distributed); rank 0 alone evaluates and writes the run folder.
"""
import json
import logging
import math
import os
import signal
import sqlite3
import sys
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from scn import augment, distributed, lock, pipeline, starts
from scn.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from scn.collapse import check_epoch, one_label
from scn.config import SYNTH_FACE, TrainConfig, resumed_config
from scn.data import DatasetError, Split, load_dataset, split_validation
from scn.decoded import DiskImages
from scn.device import autocast, resolve_device, resolve_precision
from scn.labels import LabelState, RelabelEvent
from scn.losses import importance_groups, logit_weights, rank_regularization, weighted_cross_entropy
from scn.metrics import truth_table
from scn.model import PretrainedWeightsError
from scn.pretrain import ensure_backbone
from scn.relabel import relabel_rows
from scn.review import review_events, reviewed_indices
from scn.store import CONFIG_NAME, DB_NAME, LOG_NAME, RunDamagedError, RunReader, RunWriter, checkpoint_path

EVAL_BATCH = 256
# The longest file or folder name, in bytes, on the file systems runs live on (ext4, APFS, NTFS).
NAME_MAX_BYTES = 255


class RunExistsError(FileExistsError):
    """Raised when a new run is pointed at a folder that already holds one."""


class RunFolderError(OSError):
    """Raised when the run folder cannot be created or written (a read-only disk, say)."""


# What a user can fix (their data, weights, options, folder): one `error:` line on the terminal,
# the traceback in the run's log only.
USER_ERRORS = (CheckpointError, DatasetError, PretrainedWeightsError, RunExistsError, RunFolderError,
               ValueError, lock.RunLockedError)


class StopSignal:
    """Turns the first SIGTERM/SIGINT into a request to stop after the current step.

    A repeated SIGTERM (a second Stop click, a supervisor that signals twice) is only counted:
    raising inside the optimizer step would fail the run and lose the mid-epoch checkpoint the
    first signal asked for. A second Ctrl-C stays a hard interrupt for someone at a terminal, but
    one that arrives while a checkpoint is written waits until it is complete (`deferred`).
    """

    def __init__(self):
        self.requested = False
        self.repeats = 0
        self.deferring = False
        self.interrupted = False

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        if not self.requested:
            self.requested = True
        elif signum == signal.SIGINT and self.deferring:
            self.interrupted = True
        elif signum == signal.SIGINT:
            raise KeyboardInterrupt
        else:
            self.repeats += 1

    @contextmanager
    def deferred(self):
        """Hold a hard interrupt until the block (a checkpoint being written) is done, then raise it."""
        self.deferring = True
        try:
            yield
        finally:
            self.deferring = False
        if self.interrupted:
            raise KeyboardInterrupt


@dataclass
class EpochRecord:
    """What one epoch learns about every training sample, plus running sums for its metrics."""

    alpha: torch.Tensor
    is_high: torch.Tensor
    label: torch.Tensor
    pred: torch.Tensor
    p_given: torch.Tensor
    p_max: torch.Tensor
    # Rank regularization's hinge over the epoch's steps that have one: [steps, steps above 0, sum].
    rr_hinge: torch.Tensor
    loss_wce: float = 0.0
    loss_rr: float = 0.0
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0

    @classmethod
    def empty(cls, n: int) -> "EpochRecord":
        return cls(alpha=torch.full((n,), float("nan")), is_high=torch.zeros(n, dtype=torch.bool),
                   label=torch.full((n,), -1, dtype=torch.long), pred=torch.full((n,), -1, dtype=torch.long),
                   p_given=torch.full((n,), float("nan")), p_max=torch.full((n,), float("nan")),
                   rr_hinge=torch.zeros(3, dtype=torch.float64))

    @classmethod
    def from_state_dict(cls, state: dict, n: int) -> "EpochRecord":
        """A mid-epoch record from a checkpoint; one written before predictions were recorded
        resumes with them unknown for the samples it had already seen (and one written before the
        hinge was counts it from the resumed step on)."""
        return cls(**(vars(cls.empty(n)) | state))

    def rank_reg_activity(self) -> dict:
        """The share of the epoch's steps whose rank-regularization hinge was above 0, and the
        hinge's mean over them; None for an epoch without rank regularization."""
        steps, active, total = self.rr_hinge.tolist()
        if not steps:
            return {"rr_active_share": None, "rr_hinge_mean": None}
        return {"rr_active_share": active / steps, "rr_hinge_mean": total / steps}

    def state_dict(self) -> dict:
        return dict(self.__dict__)


def _accuracy(pred: torch.Tensor, labels: torch.Tensor) -> float | None:
    """Share of the samples predicted this epoch (pred >= 0) whose prediction is `labels`."""
    seen = pred >= 0
    return float((pred[seen] == labels[seen]).float().mean()) if seen.any() else None


def _confusion(labels: torch.Tensor, pred: torch.Tensor, *, num_classes: int) -> torch.Tensor:
    """Counts of (label, prediction) pairs: rows the given label, columns the prediction."""
    counts = torch.bincount(labels * num_classes + pred, minlength=num_classes ** 2)
    return counts.reshape(num_classes, num_classes)


def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch


def _batches(order: torch.Tensor, batch_size: int, *, smallest: int = 2) -> list:
    """Split a permutation into batches; a final batch under `smallest` joins the previous one,
    because batch norm cannot train on a single sample and rank regularization needs two (two per
    process under data parallelism)."""
    batches = list(torch.split(order, batch_size))
    if len(batches) > 1 and len(batches[-1]) < smallest:
        batches[-2:] = [torch.cat(batches[-2:])]
    return batches


def _on_host(record: EpochRecord) -> EpochRecord:
    return replace(record, **{k: v.cpu() for k, v in vars(record).items() if isinstance(v, torch.Tensor)})


def _on_device(record: EpochRecord, device) -> EpochRecord:
    return replace(record, **{k: v.to(device) for k, v in vars(record).items() if isinstance(v, torch.Tensor)})


def _writes_to(stream, path: Path) -> bool:
    """Whether `stream` is the file at `path` (same device and inode)."""
    try:
        mine, theirs = os.fstat(stream.fileno()), os.stat(path)
    except (OSError, ValueError, AttributeError):
        return False
    return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)


class _LogFileHandler(logging.FileHandler):
    """The run's log file. A line it cannot write (a full disk) is dropped, not reported with a
    traceback on the terminal: the run's status and the command's `error:` line say what failed."""

    def handleError(self, record) -> None:
        pass


def _logger(run_dir: Path) -> logging.Logger:
    log = logging.getLogger(f"scn.train.{run_dir.resolve()}")
    log.setLevel(logging.INFO)
    log.propagate = False
    log.handlers.clear()
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    handlers = [_LogFileHandler(run_dir / LOG_NAME)]
    # A trainer spawned by the app writes its stdout into the log already; anyone else (a terminal,
    # a pipe, a batch job's output file) gets every line on stdout too, one per epoch at least.
    if not _writes_to(sys.stdout, run_dir / LOG_NAME):
        handlers.append(logging.StreamHandler(sys.stdout))
    for handler in handlers:
        handler.setFormatter(formatter)
        log.addHandler(handler)
    return log


def resolve_data(config: TrainConfig) -> tuple:
    """The dataset folder and a one-line description; no path means the built-in benchmark."""
    if config.data:
        return Path(config.data), config.dataset_description or f"{config.format} dataset at {config.data}"
    # Only runs on the built-in benchmark need the generator (and OpenCV).
    from scn.synth import default_dataset

    root = default_dataset(train=config.synth_train, test=config.synth_test, noise=config.synth_noise,
                           noise_model=config.synth_noise_model, annotators=config.synth_annotators,
                           label_from=config.synth_label_from)
    model = config.synth_noise_model
    if model == "annotators":
        model = f"{config.synth_annotators} annotators, {config.synth_label_from} vote"
    description = (f"the built-in synthetic benchmark ({config.synth_train} train / "
                   f"{config.synth_test} test images, {config.synth_noise:.0%} label noise, {model})")
    return root, description


def prepare_data(config: TrainConfig, *, log=None, progress: bool = False):
    """Load the dataset and take its own validation split or carve one from the training split:
    (config with class names, train, val, test, root)."""
    root, description = resolve_data(config)
    dataset = load_dataset(root, format=config.format, image_size=config.image_size,
                           noise_file=config.noise_file, noise_format=config.noise_format,
                           skip_bad=config.skip_bad, seed=config.seed,
                           workers=max(1, torch.get_num_threads()), contempt=config.contempt,
                           decoded_cache=config.decoded_cache, progress=progress,
                           log=None if log is None else log.info)
    if log is not None:
        if dataset.decoded_cache == "disk":
            log.info("decoded images on disk (--decoded-cache %s): %s", config.decoded_cache,
                     ", ".join(str(split.images.path) for split in (dataset.train, dataset.val, dataset.test)
                               if split is not None))
        for bad in dataset.train.bad + dataset.test.bad + (dataset.val.bad if dataset.val else []):
            log.warning("skipped unreadable image %s", bad)
        for warning in dataset.warnings:
            log.warning(warning)
    if dataset.val is not None and config.val_fraction > 0:
        train, val = dataset.train, dataset.val
    else:
        train, val = split_validation(dataset.train, fraction=config.val_fraction, seed=config.seed)
    config = replace(config, class_names=tuple(dataset.class_names), dataset_description=description)
    return config, train, val, dataset.test, root


@torch.no_grad()
def evaluate(model, split: Split, *, config: TrainConfig, device, precision) -> dict:
    """Accuracy, mean loss, confusion matrix (rows: given label, columns: prediction), and each
    sample's prediction and class probabilities (softmax of the logits before alpha scales them,
    as scn.predict shows them: alpha > 0 leaves the prediction the same)."""
    model.eval()
    num_classes = len(config.class_names)
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    loss_sum, preds, probs = 0.0, [], []
    for start in range(0, len(split), EVAL_BATCH):
        images = split.images[start:start + EVAL_BATCH]
        labels = split.labels[start:start + EVAL_BATCH]
        x = augment.normalize(images, mean=config.mean, std=config.std).to(device)
        if config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            alpha, logits = model.heads(x)
        logits = logits.float().cpu()
        scaled = alpha.float().cpu() * logits
        preds.append(scaled.argmax(1))
        probs.append(torch.softmax(logits, dim=1))
        loss_sum += F.cross_entropy(scaled, labels, reduction="sum").item()
        confusion += _confusion(labels, scaled.argmax(1), num_classes=num_classes)
    model.train()
    total = int(confusion.sum())
    return {"accuracy": float(confusion.diag().sum()) / max(total, 1), "loss": loss_sum / max(total, 1),
            "confusion": confusion, "pred": torch.cat(preds) if preds else torch.zeros(0, dtype=torch.long),
            "probs": torch.cat(probs) if probs else torch.zeros(0, num_classes)}


def step_losses(alpha: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor, *, config: TrainConfig,
                epoch: int, ranks: distributed.Ranks, total: int, rr_hinge: torch.Tensor | None = None) -> tuple:
    """SCN's loss terms for this process's rows of a global batch of `total` in epoch `epoch`:
    (loss_wce, loss_rr, the logits the loss and the relabel rule read, alpha of the global batch).

    alpha: [B] or [B, 1] and logits: [B, C] (not yet scaled) from the model's heads; targets: [B].
    A step with rank regularization adds [1, hinge above 0, hinge] to `rr_hinge` (EpochRecord's)."""
    alpha, logits = alpha.float().reshape(-1), logits.float()
    attention_on = epoch > config.alpha_warmup_epochs
    weighted = config.uses_alpha and config.attention and attention_on
    # SCN's high/low split and rank regularization are over the global batch.
    alpha_all = ranks.gather(alpha, total=total)
    weight = logit_weights(alpha, batch_alpha=alpha_all, normalize=config.alpha_normalize)
    scaled = weight[:, None] * logits if weighted else logits
    loss_wce = weighted_cross_entropy(scaled, targets)
    if ranks.active:
        # DDP averages gradients over processes; scaled so, the step is the global batch mean.
        loss_wce = loss_wce * (len(targets) * ranks.world / total)
    if config.uses_alpha and config.rank_reg and attention_on:
        loss_rr = rank_regularization(alpha_all, beta=config.beta, margin=config.margin_1)
        if rr_hinge is not None:
            hinge = loss_rr.detach().double()
            rr_hinge += torch.stack([torch.ones_like(hinge), (hinge > 0).double(), hinge])
    else:
        loss_rr = torch.zeros((), device=logits.device)
    return loss_wce, loss_rr, scaled, alpha_all


def _model_config(config: TrainConfig) -> dict:
    return {"num_classes": len(config.class_names), "class_names": list(config.class_names),
            "method": config.method, "backbone": starts.backbone_for(config.pretrained),
            "drop_rate": config.drop_rate, "image_size": config.image_size,
            "mean": list(config.mean), "std": list(config.std)}


def _parameter_groups(model, config: TrainConfig) -> list:
    """One group at one rate, as the official code; with a backbone scale, the backbone first at the
    scaled rate and the heads last at `lr` (the rate the run records)."""
    if config.backbone_lr_scale == 1.0:
        return [{"params": list(model.parameters())}]
    backbone = list(model.features.parameters())
    ids = set(map(id, backbone))
    return [{"params": backbone, "lr": config.lr * config.backbone_lr_scale},
            {"params": [p for p in model.parameters() if id(p) not in ids]}]


class Trainer:
    """Holds the state of one run between steps; `train()` below is the entry point."""

    def __init__(self, config: TrainConfig, *, run_dir: Path, writer: RunWriter, log, stop: StopSignal,
                 checkpoint: dict | None, progress: bool, ranks: distributed.Ranks = distributed.Ranks()):
        self.run_dir, self.writer, self.log, self.stop, self.ranks = run_dir, writer, log, stop, ranks
        self.resumed = checkpoint is not None
        if config.batch_size < 2 * ranks.world:
            raise ValueError(f"batch size {config.batch_size} gives some of the {ranks.world} processes "
                             "fewer than 2 images per step; use a batch of at least 2 per process")
        if config.threads > 0:
            torch.set_num_threads(config.threads)
        self.config, self.train_split, self.val_split, self.test_split, root = prepare_data(
            config, log=log, progress=progress)
        config = self.config
        useless = one_label(self.train_split.labels, class_names=config.class_names)
        # Stored by record_samples: a refused resume must leave the run's records as they were.
        self.warnings = [] if useless is None else [useless]
        for warning in self.warnings:
            log.warning(warning.message)
        self.dataset_info = {"description": config.dataset_description, "path": str(root),
                             "format": config.format, "classes": list(config.class_names),
                             "decoded_cache": "disk" if isinstance(self.train_split.images, DiskImages)
                             else "memory",
                             "sizes": {"train": len(self.train_split), "test": len(self.test_split),
                                       "val": len(self.val_split) if self.val_split is not None else 0}}
        self.device = distributed.device_for(ranks, resolve_device(config.device))
        self.precision = resolve_precision(config.precision, self.device)

        if config.pretrained == SYNTH_FACE and checkpoint is None:
            # The first run that needs it builds it, logging its progress where the app shows it.
            ensure_backbone(log=log.info, progress=progress)
        torch.manual_seed(config.seed)
        # A resumed run's weights come from its checkpoint, but its architecture from its start.
        self.model = starts.build_model(len(config.class_names), start=config.pretrained,
                                        load_weights=checkpoint is None, drop_rate=config.drop_rate,
                                        method=config.method, alpha_bias=config.alpha_bias_init)
        if self.model.load_report is not None:
            log.info("pretrained weights: %s", self.model.load_report)
        elif checkpoint is None:
            log.info("starting from random weights")
        if ranks.active and self.device.type == "cuda":
            # Batch statistics over the global batch, as one process would compute them.
            # (SyncBatchNorm has no CPU implementation: CPU processes normalise their own share.)
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.model.to(self.device)
        if config.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.heads = distributed.data_parallel_heads(self.model, ranks=ranks, device=self.device,
                                                     alpha_in_loss=config.uses_alpha
                                                     and (config.attention or config.rank_reg)
                                                     and not config.alpha_warmup_epochs)
        self.optimizer = torch.optim.Adam(_parameter_groups(self.model, config), lr=config.lr,
                                          weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.ExponentialLR(self.optimizer, gamma=config.lr_gamma)
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        self.labels = LabelState(self.train_split.labels)
        # Each training sample's true class when the dataset has a ground truth (record_samples).
        self.true_labels = None
        # Only a validation split chooses a `best` checkpoint: without one, none is written.
        self.best = {"split": "val" if self.val_split is not None else None, "epoch": None,
                     "accuracy": None}
        self.start_epoch, self.start_step, self.partial = 1, 0, None
        # The accuracy that opens relabeling (relabel_min_val_accuracy): the last epoch's on validation.
        self.gate_accuracy = 0.0
        # Samples whose label a person reviewed: the relabel rule never changes them again.
        self.reviewed = torch.zeros(len(self.train_split), dtype=torch.bool)
        if checkpoint is not None:
            self._restore(checkpoint)
            if config.reviewed_labels:
                self._apply_reviews()
        self.reviewed = self.reviewed.to(self.device)
        self.cache = pipeline.pin(self.train_split.images, self.device)
        # The labels batches are drawn with; relabels reach them at once and the history (on the
        # host, in self.labels) when `_flush_relabels` runs.
        self.current_labels = self.labels.current.to(self.device, copy=True)
        self.pending_relabels = []
        self.steps_per_epoch = len(_batches(torch.arange(len(self.train_split)), config.batch_size,
                                            smallest=2 * ranks.world))
        # One bar for the whole run, so its ETA is the run's, not the epoch's.
        self.bar = tqdm(total=config.epochs * self.steps_per_epoch, unit="step", dynamic_ncols=True,
                        initial=(self.start_epoch - 1) * self.steps_per_epoch + self.start_step,
                        disable=not progress)

    def _restore(self, checkpoint: dict) -> None:
        labels = LabelState.from_state_dict(checkpoint["labels"])
        last = checkpoint_path(self.run_dir, "last")
        if len(labels) != len(self.train_split) or not torch.equal(labels.original, self.train_split.labels):
            changed = (f"{len(self.train_split)} training images now, {len(labels)} then"
                       if len(labels) != len(self.train_split) else
                       f"{int((labels.original != self.train_split.labels).sum())} training labels differ")
            raise CheckpointError(f"cannot resume: the dataset differs from the one {last} was trained on "
                                  f"({changed}); the run is left as it was")
        self.labels = labels
        applied = [e.index for e in labels.history if e.kind == "review"]
        if applied:
            # The run has trained on reviewed labels: every image reviewed keeps its label from
            # here on, also on a later resume without --reviewed-labels.
            self.reviewed[applied] = True
            self.reviewed[torch.from_numpy(reviewed_indices(RunReader(self.run_dir)))] = True
        try:
            self.model.load_state_dict(checkpoint["model"])
            self.optimizer.load_state_dict(checkpoint["optimizer"])
        except (RuntimeError, ValueError) as exc:
            raise CheckpointError(f"cannot resume: {last} holds a model of another architecture "
                                  f"({str(exc).splitlines()[0]}); the run is left as it was") from exc
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.best = checkpoint["best"]
        self.start_epoch = checkpoint["epoch"] + 1
        self.start_step = checkpoint["step_in_epoch"]
        self.partial = checkpoint["partial"]
        self.gate_accuracy = checkpoint.get("gate_accuracy", 0.0)
        if self.scaler is not None and checkpoint.get("scaler"):
            self.scaler.load_state_dict(checkpoint["scaler"])
        self.log.info("resumed at epoch %d step %d with %d relabels restored",
                      self.start_epoch, self.start_step, len(labels.history))

    def _apply_reviews(self) -> None:
        """Bring the restored labels to the run's reviewed labels (scn.review), as review events at
        the step training resumes from; the store records them with that epoch's relabels."""
        reader = RunReader(self.run_dir)
        events = review_events(self.labels, reader=reader, epoch=self.start_epoch, step=self.start_step)
        self.labels.apply(events)
        self.reviewed[torch.from_numpy(reviewed_indices(reader))] = True
        self.log.info("reviewed labels: %d training label(s) changed by review", len(events))

    def record_samples(self) -> None:
        writer = self.writer
        if not self.resumed:  # a resumed run has them recorded already
            writer.log_warnings(0, self.warnings)
        for name, split in (("train", self.train_split), ("val", self.val_split), ("test", self.test_split)):
            if split is not None:
                writer.add_samples(name, split.names, split.labels.tolist())
        truth = Path(self.dataset_info["path"]) / "groundtruth.csv"
        if truth.is_file():
            table = pd.read_csv(truth)
            writer.add_groundtruth(table)
            samples = pd.DataFrame({"idx": range(len(self.train_split)), "name": self.train_split.names,
                                    "label": self.train_split.labels.numpy()})
            try:
                self.true_labels = torch.tensor(truth_table(samples, table)["true_label"].to_numpy())
            except ValueError as exc:  # a ground truth of other images: nothing to score against
                self.log.warning("ground truth not used for training accuracy: %s", exc)
        writer.set_meta("dataset", self.dataset_info)

    def checkpoint(self, *, epoch: int, step_in_epoch: int, partial: dict | None) -> dict:
        return {
            "model": self.model.state_dict(), "model_config": _model_config(self.config),
            "run_config": self.config.to_dict(), "epoch": epoch, "step_in_epoch": step_in_epoch,
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "labels": self.labels.state_dict(), "rng": {"torch": torch.get_rng_state()},
            "best": dict(self.best), "dataset": self.dataset_info, "partial": partial,
            "gate_accuracy": self.gate_accuracy,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
        }

    def run(self) -> str:
        config = self.config
        n = len(self.train_split)
        self.writer.set_status("running", total_epochs=config.epochs, steps_per_epoch=self.steps_per_epoch,
                               epoch=self.start_epoch - 1, step=self.start_step)
        self.log.info("training %s on %s: %d train, %d val, %d test images at %d px, %s/%s",
                      config.method_label, config.dataset_description, n,
                      0 if self.val_split is None else len(self.val_split), len(self.test_split),
                      config.image_size, self.device.type, self.precision)
        try:
            for epoch in range(self.start_epoch, config.epochs + 1):
                if self.train_epoch(epoch) == "stopped":
                    return "stopped"
                if self.ranks.is_main:
                    self.end_epoch(epoch)
                else:
                    # Rank 0 alone evaluates and writes; the others keep the schedule in step.
                    self.scheduler.step()
                if self.ranks.active:
                    # Every process must agree on whether the next epoch relabels (a collective).
                    share = torch.tensor([self.gate_accuracy if self.ranks.is_main else 0.0], device=self.device)
                    self.gate_accuracy = float(self.ranks.sum(share).item())
        finally:
            self.bar.close()
        return "finished"

    def train_epoch(self, epoch: int) -> str:
        config, ranks, device = self.config, self.ranks, self.device
        generator = torch.Generator().manual_seed(_epoch_seed(config.seed, epoch))
        torch.manual_seed(_epoch_seed(config.seed, epoch) + 1)
        order = torch.randperm(len(self.train_split), generator=generator)
        batches = _batches(order, config.batch_size, smallest=2 * ranks.world)
        on_gpu = device.type == "cuda"
        # Indices for the device, copied once an epoch: a copy from pageable memory waits for the GPU.
        device_batches = _batches(order.to(device), config.batch_size, smallest=2 * ranks.world)
        # The CPU keeps augmenting with the order's generator (its resume is bit-exact); a GPU
        # augments with a generator of its own, seeded alike on every rank.
        augment_generator = (torch.Generator(device).manual_seed(_epoch_seed(config.seed, epoch) + 2)
                             if on_gpu else generator)
        record, first_step = EpochRecord.empty(len(self.train_split)), 0
        if self.partial is not None and epoch == self.start_epoch:
            generator.set_state(self.partial["generator"])
            if on_gpu and self.partial.get("augment_generator") is not None:
                augment_generator.set_state(self.partial["augment_generator"])
            torch.set_rng_state(self.partial["torch_rng"])
            record = EpochRecord.from_state_dict(self.partial["record"], len(self.train_split))
            first_step = self.start_step
        self.partial = None
        self.record = record = _on_device(record, device)
        bar = self.bar
        bar.set_description(f"epoch {epoch}/{config.epochs}")
        window = torch.zeros(4, dtype=torch.float64, device=device)
        window_start = time.perf_counter()
        # A GPU gets only this rank's rows; the CPU augments the whole global batch, as one process
        # would, and each rank keeps its share, so processes and a single process draw alike.
        prefetcher = pipeline.Prefetcher(self.cache, batches, device=device,
                                         rows=ranks.share if on_gpu else None)
        for step, images in prefetcher.iterate(first=first_step):
            window += self._train_step(epoch, step, device_batches[step], images, augment_generator)
            last = step == len(batches) - 1
            due = step % config.log_every == 0 or last
            # Every rank must stop after the same step: under torchrun they agree on it when a row is due.
            stopping = (due and ranks.any(self.stop.requested, device=device)) if ranks.active \
                else self.stop.requested
            if due or stopping:
                self._flush_relabels()
                loss_wce, loss_rr, correct, seen = ranks.sum(window).tolist()
                window.zero_()
                now = time.perf_counter()
                record.seconds += now - window_start
                record.loss_wce += loss_wce
                record.loss_rr += loss_rr
                record.correct += int(correct)
                record.seen += int(seen)
                images_per_s = seen / max(now - window_start, 1e-9)
                metrics = {"loss": (loss_wce + loss_rr) / seen, "loss_wce": loss_wce / seen,
                           "loss_rr": loss_rr / seen, "accuracy": correct / seen}
                self.writer.log_step({
                    "global_step": (epoch - 1) * len(batches) + step, "epoch": epoch, "step": step,
                    "time": time.time(), "lr": self.optimizer.param_groups[-1]["lr"],
                    "images_per_s": images_per_s, **metrics})
                self.writer.set_status("running", epoch=epoch - 1, step=step + 1)
                bar.set_postfix(loss=f"{metrics['loss']:.3f}", img_s=f"{images_per_s:.0f}")
                window_start = time.perf_counter()
            bar.update(1)
            if stopping and not last:
                partial = {"generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
                           "augment_generator": augment_generator.get_state() if on_gpu else None,
                           "record": _on_host(record).state_dict()}
                if ranks.is_main:
                    with self.stop.deferred():
                        save_checkpoint(checkpoint_path(self.run_dir, "last"),
                                        self.checkpoint(epoch=epoch - 1, step_in_epoch=step + 1, partial=partial))
                self.log.info("stopped at epoch %d step %d; checkpoint written%s", epoch, step + 1,
                              f" ({self.stop.repeats} repeated stop signal(s) ignored)"
                              if self.stop.repeats else "")
                return "stopped"
        self.ranks.check_agree(self.current_labels, what="the training labels")
        self.record = _on_host(record)
        return "completed"

    def _train_step(self, epoch: int, step: int, positions: torch.Tensor, images: torch.Tensor,
                    generator) -> torch.Tensor:
        """One optimisation step on the global batch `positions` ([B] training-set indices on the
        device), of which `images` (uint8 on the device) holds this process's share, or all B rows
        on the CPU.

        Returns this process's [loss_wce sum, loss_rr sum, correct, images] as a float64 tensor on
        the device: reading it waits for the GPU, which the caller does only when a row is due."""
        config, record, ranks, device = self.config, self.record, self.ranks, self.device
        total, rows = len(positions), self.ranks.share(len(positions))
        if device.type == "cuda":
            x = augment.device_train_batch(images, generator=generator, mean=config.mean, std=config.std,
                                           start=rows.start, total=total)
        else:
            x = augment.train_batch(images, generator=generator, mean=config.mean, std=config.std)[rows]
        if config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        targets_all = self.current_labels[positions]
        targets = targets_all[rows]
        with autocast(device, self.precision):
            alpha, logits = self.heads(x)
        loss_wce, loss_rr, scaled, alpha_all = step_losses(alpha, logits, targets, config=config, epoch=epoch,
                                                           ranks=ranks, total=total, rr_hinge=record.rr_hinge)
        loss = loss_wce + loss_rr
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()

        alpha_all = alpha_all.detach()
        is_high = importance_groups(alpha_all, beta=config.beta)
        record.alpha[positions] = alpha_all
        record.is_high[positions] = is_high
        record.label[positions] = targets_all
        # The softmax the relabel rule reads: what the model made of each sample, for its history.
        probs = torch.softmax(scaled.detach(), dim=1)
        p_max, pred = probs.max(dim=1)
        seen_rows = ranks.gather(torch.stack([pred.float(), probs.gather(1, targets[:, None]).squeeze(1),
                                              p_max], dim=1), total=total)
        record.pred[positions] = seen_rows[:, 0].long()
        record.p_given[positions] = seen_rows[:, 1]
        record.p_max[positions] = seen_rows[:, 2]
        correct = (pred == targets).sum()
        wce_sum = loss_wce.detach() * (total / ranks.world)
        if self.relabels_in(epoch):
            self._relabel(epoch, step, positions, targets_all, probs, alpha_all, is_high)
        seen = torch.full((), len(targets), dtype=torch.float64, device=device)
        return torch.stack([wce_sum.double(), loss_rr.detach().double() * len(targets), correct.double(), seen])

    def relabels_in(self, epoch: int) -> bool:
        """Whether `epoch` relabels: SCN with relabeling, from relabel_epoch, once the attention head
        is on (its groups mean nothing before) and the previous epoch reached the accuracy gate."""
        config = self.config
        return (config.uses_alpha and config.relabel and epoch >= config.relabel_epoch
                and epoch > config.alpha_warmup_epochs
                and self.gate_accuracy >= config.relabel_min_val_accuracy)

    def _relabel(self, epoch, step, positions, targets_all, probs, alpha_all, is_high) -> None:
        """Decide on this process's rows, gather the decisions of the global batch, and apply them
        to the device labels at once; the events reach the history at the next `_flush_relabels`."""
        config, ranks = self.config, self.ranks
        rows = ranks.share(len(positions))
        eligible = ~is_high if config.relabel_scope == "low" else torch.ones_like(is_high)
        eligible = eligible & ~self.reviewed[positions]
        change, new, p_max, p_given = relabel_rows(probs, targets_all[rows],
                                                   margin=config.margin_2, eligible=eligible[rows])
        decided = ranks.gather(torch.stack([change.float(), new.float(), p_max, p_given], dim=1),
                               total=len(positions))
        change, new = decided[:, 0] > 0.5, decided[:, 1].long()
        self.current_labels[positions] = torch.where(change, new, targets_all)
        self.pending_relabels.append((epoch, step, torch.stack([
            positions.double(), targets_all.double(), decided[:, 0].double(), new.double(),
            decided[:, 2].double(), decided[:, 3].double(), alpha_all.double(), is_high.double()], dim=1)))

    def _flush_relabels(self) -> None:
        """Move the relabels decided since the last flush into the label history (a host sync)."""
        pending, self.pending_relabels = self.pending_relabels, []
        for epoch, step, rows in pending:
            events = [
                RelabelEvent(epoch=epoch, step=step, index=int(index), old=int(old), new=int(new),
                             p_max=float(pmax), p_given=float(pgiven), alpha=float(alpha),
                             group="high" if high else "low")
                for index, old, changed, new, pmax, pgiven, alpha, high in rows.cpu().tolist() if changed
            ]
            self.labels.apply(events)

    def end_epoch(self, epoch: int) -> None:
        config, record, writer = self.config, self.record, self.writer
        lr = self.optimizer.param_groups[-1]["lr"]
        self.scheduler.step()
        test = evaluate(self.model, self.test_split, config=config, device=self.device,
                        precision=self.precision)
        val = (evaluate(self.model, self.val_split, config=config, device=self.device,
                        precision=self.precision) if self.val_split is not None else None)
        events = [e for e in self.labels.history if e.epoch == epoch]
        relabels = [e for e in events if e.kind == "scn"]
        n_train = len(self.train_split)
        high, low = record.alpha[record.is_high], record.alpha[~record.is_high]
        seen = max(record.seen, 1)
        writer.log_attention(epoch, alpha=record.alpha.numpy(), is_high=record.is_high.numpy(),
                             labels=record.label.numpy())
        writer.log_history(epoch, pred=record.pred.numpy(), p_given=record.p_given.numpy(),
                           p_max=record.p_max.numpy())
        writer.log_relabels(events)
        writer.log_confusion(epoch, "test", test["confusion"].numpy())
        writer.log_predictions(epoch, "test", pred=test["pred"].numpy(), probs=test["probs"].numpy())
        if val is not None:
            writer.log_confusion(epoch, "val", val["confusion"].numpy())
        gap = float(high.mean() - low.mean()) if len(high) and len(low) else math.nan
        writer.log_epoch({
            "epoch": epoch, "time": time.time(), "seconds": record.seconds, "lr": lr,
            "images_per_s": record.seen / max(record.seconds, 1e-9),
            "train_loss": (record.loss_wce + record.loss_rr) / seen, "train_loss_wce": record.loss_wce / seen,
            "train_loss_rr": record.loss_rr / seen, "train_accuracy": record.correct / seen,
            "val_accuracy": None if val is None else val["accuracy"], "test_accuracy": test["accuracy"],
            "test_loss": test["loss"], "alpha_mean": float(record.alpha.mean()),
            "alpha_std": float(record.alpha.std()), "alpha_gap": gap, "relabels": len(relabels),
            "train_accuracy_original": _accuracy(record.pred, self.labels.original),
            "train_accuracy_truth": None if self.true_labels is None else _accuracy(record.pred, self.true_labels),
            **record.rank_reg_activity(),
        })
        if val is not None:
            confusion = val["confusion"]
        else:
            # Nothing may look at the test split to judge the run: the epoch's training predictions do.
            seen_samples = record.pred >= 0
            confusion = _confusion(record.label[seen_samples], record.pred[seen_samples],
                                   num_classes=len(config.class_names))
        warnings = check_epoch(confusion=confusion.numpy(), alpha=record.alpha.numpy(),
                               new_labels=[e.new for e in relabels], train_size=n_train,
                               class_names=config.class_names, epoch=epoch, epochs=config.epochs,
                               check_alpha=config.uses_alpha and epoch > config.alpha_warmup_epochs,
                               split="training" if val is None else "validation")
        writer.log_warnings(epoch, warnings)
        for warning in warnings:
            self.log.warning("collapse warning, epoch %d (%s): %s", epoch, warning.kind, warning.message)
        self.gate_accuracy = record.correct / seen if val is None else val["accuracy"]
        if config.relabel_min_val_accuracy > 0 and config.relabel_epoch <= epoch + 1 <= config.epochs:
            self.log.info("relabeling in epoch %d: %s (%s accuracy %.4f, gate %.2f)", epoch + 1,
                          "on" if self.relabels_in(epoch + 1) else "held back",
                          "training" if val is None else "validation", self.gate_accuracy,
                          config.relabel_min_val_accuracy)
        improved = val is not None and (self.best["accuracy"] is None or val["accuracy"] > self.best["accuracy"])
        if improved:
            self.best = {"split": "val", "epoch": epoch, "accuracy": val["accuracy"]}
        checkpoint = self.checkpoint(epoch=epoch, step_in_epoch=0, partial=None)
        with self.stop.deferred():
            save_checkpoint(checkpoint_path(self.run_dir, "last"), checkpoint)
            if improved:
                save_checkpoint(checkpoint_path(self.run_dir, "best"), checkpoint)
            writer.set_status("running", epoch=epoch, step=0)
        self.log.info(
            "epoch %d/%d: train acc %.4f, loss %.4f (rr %.4f), test acc %.4f%s, alpha %.3f±%.3f, "
            "%d relabels, %.0f img/s", epoch, config.epochs, record.correct / seen,
            (record.loss_wce + record.loss_rr) / seen, record.loss_rr / seen, test["accuracy"],
            "" if val is None else f", val acc {val['accuracy']:.4f}", float(record.alpha.mean()),
            float(record.alpha.std()), len(relabels), record.seen / max(record.seconds, 1e-9))


def train(config: TrainConfig, *, run_dir, resume: bool = False, resume_changes: dict | None = None,
          progress: bool | None = None) -> str:
    """Train one run into `run_dir`; returns "finished" or "stopped". Raises on failure, after
    recording the traceback in the run's status.

    A resumed run trains with its checkpoint's configuration, changed only by `resume_changes`
    (scn.config.RESUME_OPTIONS: more epochs, the reviewed labels)."""
    run_dir = Path(run_dir)
    _check_run_dir_name(run_dir)
    # On resume the run's own device decides the backend, not this invocation's default.
    stored = run_dir / CONFIG_NAME
    device = json.loads(stored.read_text()).get("device", config.device) if resume and stored.is_file() \
        else config.device
    ranks = distributed.from_environment(device)
    if not ranks.is_main:
        return _train_other_rank(config, run_dir=run_dir, resume=resume, resume_changes=resume_changes,
                                 ranks=ranks)
    if not ranks.active and config.processes > 1 and not resume:
        raise ValueError(f"--processes {config.processes} needs the processes started by torchrun: "
                         f"torchrun --standalone --nproc-per-node {config.processes} -m scn train …")
    if not resume and (run_dir / DB_NAME).exists() and not _failed_before_training(run_dir):
        raise RunExistsError(f"{run_dir} already holds a run; resume it with --resume or choose another run folder")
    if not resume and config.reviewed_labels:
        raise ValueError("--reviewed-labels applies to a resumed run (--resume): a new run has no "
                         "reviewed labels yet")
    if not resume and config.pretrained and config.pretrained != SYNTH_FACE:
        # Checked before the run folder exists: a run that failed on its weights would otherwise
        # be left behind, and running the command again would say "already holds a run". The
        # synth-face backbone is ours: a missing one is built by the trainer, not an error.
        starts.build_model(len(config.class_names), start=config.pretrained, method=config.method)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock_fd = lock.acquire(run_dir)
    except OSError as exc:
        raise RunFolderError(f"cannot write the run folder {run_dir}: {exc.strerror or exc}") from exc
    log = _logger(run_dir)
    stop = StopSignal()
    stop.install()
    # Set once this invocation has changed the run's records: a failure before that (a refused
    # resume) leaves the run exactly as it was, status included.
    writer = touched = None
    try:
        checkpoint = None
        if resume:
            checkpoint, config = _resume_from(run_dir, resume_changes)
        elif (run_dir / DB_NAME).exists():
            log.info("starting over: the run in this folder failed before its first checkpoint")
            _remove_database(run_dir)
        writer = RunWriter(run_dir)
        if not resume:
            touched = True
            writer.write_config(config.to_dict())
            writer.set_status("starting", pid=os.getpid(), total_epochs=config.epochs, started=time.time())
        # Loads the data and, on resume, checks the checkpoint against it and against the model.
        trainer = Trainer(config, run_dir=run_dir, writer=writer, log=log, stop=stop,
                          checkpoint=checkpoint, progress=sys.stderr.isatty() if progress is None else progress,
                          ranks=ranks)
        touched = True
        writer.set_status("starting", pid=os.getpid(), total_epochs=trainer.config.epochs, message=None,
                          finished=None)
        if checkpoint is not None:
            writer.discard_from(epoch=checkpoint["epoch"] + 1, step=checkpoint["step_in_epoch"])
        writer.set_meta("processes", ranks.world)
        if ranks.active:
            log.info("%d process%s (torchrun, %s), %d images per process per step", ranks.world,
                     "" if ranks.world == 1 else "es", ranks.backend, trainer.config.batch_size // ranks.world)
        writer.write_config(trainer.config.to_dict())
        trainer.record_samples()
        outcome = trainer.run()
        writer.set_status(outcome, finished=time.time() if outcome == "finished" else None)
        log.info("run %s", outcome)
        if outcome == "finished" and trainer.true_labels is not None:
            _save_slice_predictions(run_dir, device=trainer.device, log=log)
        return outcome
    except BaseException as exc:
        error = _as_user_error(exc, run_dir=run_dir)
        _log_failure(log, to_terminal=not isinstance(error, USER_ERRORS + (KeyboardInterrupt,)))
        if touched:
            _mark_ended(writer, error, log=log)
        if error is exc:
            raise
        raise error from exc
    finally:
        if writer is not None:
            writer.close()
        os.close(lock_fd)
        distributed.shutdown()


def _save_slice_predictions(run_dir: Path, *, device, log) -> None:
    """The checkpoints' predictions the Slices page scores, made now, on the training device, rather
    than on the page's first visit. When `best` is the last epoch's checkpoint its predictions are
    `last`'s. A failure costs only that wait, so it is logged, not raised."""
    from scn import slices

    reader = RunReader(run_dir)
    by_epoch = {}
    for which in reader.checkpoints():
        try:
            epoch = load_checkpoint(reader.checkpoint_path(which))["epoch"]
            if epoch not in by_epoch:
                by_epoch[epoch] = slices.run_predictions(reader, which=which, device=device)
            slices.save_predictions(reader, which=which, predicted=by_epoch[epoch])
        except (OSError, ValueError, KeyError, CheckpointError) as exc:
            log.warning("could not keep the %s checkpoint's predictions for the Slices page: %s", which, exc)


def _check_run_dir_name(run_dir: Path) -> None:
    """Refuse a run folder path the file system would refuse (with a bare OSError) anyway."""
    for part in run_dir.parts:
        size = len(os.fsencode(part))
        if size > NAME_MAX_BYTES:
            raise RunFolderError(f"the run folder name {part[:24]}… is {size} bytes long; file systems "
                                 f"allow at most {NAME_MAX_BYTES} bytes a folder name: choose a shorter one")


def _failed_before_training(run_dir: Path) -> bool:
    """Whether the run in `run_dir` failed before its first checkpoint (bad data, say): it has
    nothing to resume, so a new run may take its folder."""
    if checkpoint_path(run_dir, "last").exists() or checkpoint_path(run_dir, "best").exists():
        return False
    try:
        return RunReader(run_dir).status()["state"] == "failed"
    except RunDamagedError:
        return False


def _remove_database(run_dir: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        (run_dir / (DB_NAME + suffix)).unlink(missing_ok=True)


def _as_user_error(exc: BaseException, *, run_dir: Path) -> BaseException:
    """A full disk reaches the database as "database or disk is full": the user's to fix, like a
    checkpoint the full disk refused."""
    if isinstance(exc, sqlite3.OperationalError) and "disk is full" in str(exc):
        return RunFolderError(f"cannot write {run_dir / DB_NAME}: no space left on device")
    return exc


def _log_failure(log: logging.Logger, *, to_terminal: bool) -> None:
    """The traceback into the run's log file; on the terminal too only for an error that is not
    the user's (a user's gets one `error:` line from the command)."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "training ended early:\n%s",
                            (traceback.format_exc(),), None)
    for handler in log.handlers:
        if to_terminal or isinstance(handler, logging.FileHandler):
            handler.handle(record)


def _mark_ended(writer: RunWriter, exc: BaseException, *, log) -> None:
    """Record how the run ended: stopped for an interrupt (its last checkpoint stands), else
    failed with the reason first (the app shows this message, and a traceback buries it)."""
    try:
        if isinstance(exc, KeyboardInterrupt):
            writer.set_status("stopped", message="interrupted; resume continues from the last checkpoint")
        else:
            reason = f"{exc}\n\n" if str(exc) else ""
            writer.set_status("failed", message=reason + traceback.format_exc(), finished=time.time())
    except sqlite3.Error as db_error:  # e.g. the disk that failed the checkpoint is full
        log.error("could not record the run's end: %s", db_error)


def _resume_from(run_dir: Path, changes: dict | None) -> tuple:
    """The `last` checkpoint of `run_dir` and the configuration to resume it with."""
    checkpoint = load_checkpoint(checkpoint_path(run_dir, "last"))
    config = resumed_config(TrainConfig.from_dict(checkpoint["run_config"]), changes or {},
                            epochs_done=checkpoint["epoch"])
    return checkpoint, config


def _train_other_rank(config: TrainConfig, *, run_dir: Path, resume: bool, resume_changes: dict | None,
                      ranks) -> str:
    """A torchrun process other than rank 0: it trains its share of every batch and writes
    nothing; its errors go to stderr, which torchrun prints with the rank."""
    log = logging.getLogger(f"scn.train.rank{ranks.rank}")
    log.setLevel(logging.WARNING)
    stop = StopSignal()
    stop.install()
    try:
        checkpoint = None
        if resume:
            checkpoint, config = _resume_from(run_dir, resume_changes)
        trainer = Trainer(config, run_dir=run_dir, writer=distributed.SilentWriter(), log=log, stop=stop,
                          checkpoint=checkpoint, progress=False, ranks=ranks)
        return trainer.run()
    finally:
        distributed.shutdown()
