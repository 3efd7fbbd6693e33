"""The SCN trainer: one process per run, the only writer of its run folder.

Read top to bottom: `train()` takes the run lock, loads (or resumes) everything, then runs
epochs of `_train_step`s. Each epoch ends with evaluation, the epoch's records in the store
(attention weights, relabel events, confusion) and checkpoints. SIGTERM or Ctrl-C ends the
current step, writes `last` (mid-epoch, with the epoch's random state) and exits cleanly.

Determinism: every epoch draws its shuffling and augmentation from a generator seeded by
(seed, epoch), and a mid-epoch checkpoint stores that generator's state, so a resumed run
retraces an uninterrupted one on the CPU.
"""
import logging
import math
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from scn import augment, lock
from scn.checkpoint import load_checkpoint, save_checkpoint
from scn.collapse import check_epoch
from scn.config import BUILT_IN_START, TrainConfig
from scn.data import CachedImages, Split, load_dataset, split_validation
from scn.device import autocast, resolve_device, resolve_precision
from scn.labels import LabelState, RelabelEvent
from scn.losses import importance_groups, rank_regularization, weighted_cross_entropy
from scn.model import SCN
from scn.pretrain import ensure_backbone
from scn.relabel import relabel
from scn.store import CHECKPOINT_DIR, DB_NAME, LOG_NAME, RunWriter

EVAL_BATCH = 256


class RunExistsError(FileExistsError):
    """Raised when a new run is pointed at a folder that already holds one."""


class StopSignal:
    """Turns the first SIGTERM/SIGINT into a request to stop after the current step."""

    def __init__(self):
        self.requested = False

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True


@dataclass
class EpochRecord:
    """What one epoch learns about every training sample, plus running sums for its metrics."""

    alpha: torch.Tensor
    is_high: torch.Tensor
    label: torch.Tensor
    loss_wce: float = 0.0
    loss_rr: float = 0.0
    correct: int = 0
    seen: int = 0
    seconds: float = 0.0

    @classmethod
    def empty(cls, n: int) -> "EpochRecord":
        return cls(alpha=torch.full((n,), float("nan")), is_high=torch.zeros(n, dtype=torch.bool),
                   label=torch.full((n,), -1, dtype=torch.long))

    def state_dict(self) -> dict:
        return dict(self.__dict__)


def _epoch_seed(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch


def _batches(order: torch.Tensor, batch_size: int) -> list:
    """Split a permutation into batches; a final batch of one joins the previous one, because
    batch norm cannot train on a single sample and rank regularization needs two."""
    batches = list(torch.split(order, batch_size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2:] = [torch.cat(batches[-2:])]
    return batches


def _logger(run_dir: Path) -> logging.Logger:
    log = logging.getLogger(f"scn.train.{run_dir.resolve()}")
    log.setLevel(logging.INFO)
    log.propagate = False
    log.handlers.clear()
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    handlers = [logging.FileHandler(run_dir / LOG_NAME)]
    # A spawned trainer's stderr is already redirected into the log; only a terminal gets a copy.
    if sys.stderr.isatty():
        handlers.append(logging.StreamHandler())
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

    root = default_dataset(train=config.synth_train, test=config.synth_test, noise=config.synth_noise)
    description = (f"the built-in synthetic benchmark ({config.synth_train} train / "
                   f"{config.synth_test} test images, {config.synth_noise:.0%} label noise)")
    return root, description


def prepare_data(config: TrainConfig, *, log=None):
    """Load the dataset and carve the validation split: (config with class names, train, val, test, root)."""
    root, description = resolve_data(config)
    dataset = load_dataset(root, format=config.format, image_size=config.image_size,
                           noise_file=config.noise_file, skip_bad=config.skip_bad, seed=config.seed,
                           workers=max(1, torch.get_num_threads()))
    if log is not None:
        for bad in dataset.train.bad + dataset.test.bad:
            log.warning("skipped unreadable image %s", bad)
    train, val = split_validation(dataset.train, fraction=config.val_fraction, seed=config.seed)
    config = replace(config, class_names=tuple(dataset.class_names), dataset_description=description)
    return config, train, val, dataset.test, root


@torch.no_grad()
def evaluate(model, split: Split, *, config: TrainConfig, device, precision) -> dict:
    """Accuracy, mean loss and confusion matrix (rows: given label, columns: prediction)."""
    model.eval()
    num_classes = len(config.class_names)
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    loss_sum = 0.0
    for start in range(0, len(split), EVAL_BATCH):
        images = split.images[start:start + EVAL_BATCH]
        labels = split.labels[start:start + EVAL_BATCH]
        x = augment.normalize(images, mean=config.mean, std=config.std).to(device)
        if config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            _, scaled = model(x)
        scaled = scaled.float().cpu()
        loss_sum += F.cross_entropy(scaled, labels, reduction="sum").item()
        confusion += torch.bincount(labels * num_classes + scaled.argmax(1),
                                    minlength=num_classes ** 2).reshape(num_classes, num_classes)
    model.train()
    total = int(confusion.sum())
    return {"accuracy": float(confusion.diag().sum()) / max(total, 1), "loss": loss_sum / max(total, 1),
            "confusion": confusion}


def _model_config(config: TrainConfig) -> dict:
    return {"num_classes": len(config.class_names), "class_names": list(config.class_names),
            "method": config.method, "drop_rate": config.drop_rate, "image_size": config.image_size,
            "mean": list(config.mean), "std": list(config.std)}


class Trainer:
    """Holds the state of one run between steps; `train()` below is the entry point."""

    def __init__(self, config: TrainConfig, *, run_dir: Path, writer: RunWriter, log, stop: StopSignal,
                 checkpoint: dict | None, progress: bool):
        self.run_dir, self.writer, self.log, self.stop = run_dir, writer, log, stop
        if config.threads > 0:
            torch.set_num_threads(config.threads)
        self.config, self.train_split, self.val_split, self.test_split, root = prepare_data(config, log=log)
        config = self.config
        self.dataset_info = {"description": config.dataset_description, "path": str(root),
                             "format": config.format}
        self.device = resolve_device(config.device)
        self.precision = resolve_precision(config.precision, self.device)

        if config.pretrained == BUILT_IN_START and checkpoint is None:
            # The first run that needs it builds it, logging its progress where the app shows it.
            ensure_backbone(log=log.info, progress=progress)
        torch.manual_seed(config.seed)
        self.model = SCN(len(config.class_names), pretrained=None if checkpoint else config.pretrained,
                         drop_rate=config.drop_rate, method=config.method,
                         alpha_bias=config.alpha_bias_init)
        if self.model.load_report is not None:
            log.info("pretrained weights: %s", self.model.load_report)
        elif checkpoint is None:
            log.info("starting from random weights")
        self.model.to(self.device)
        if config.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr,
                                          weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.ExponentialLR(self.optimizer, gamma=config.lr_gamma)
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        self.labels = LabelState(self.train_split.labels)
        self.best = {"split": "val" if self.val_split is not None else "test", "epoch": None,
                     "accuracy": None}
        self.start_epoch, self.start_step, self.partial = 1, 0, None
        # The accuracy that opens relabeling (relabel_min_val_accuracy): the last epoch's on validation.
        self.gate_accuracy = 0.0
        if checkpoint is not None:
            self._restore(checkpoint)
        self.train_images = CachedImages(self.train_split.images, self.labels.current)
        self.steps_per_epoch = len(_batches(torch.arange(len(self.train_split)), config.batch_size))
        # One bar for the whole run, so its ETA is the run's, not the epoch's.
        self.bar = tqdm(total=config.epochs * self.steps_per_epoch, unit="step", dynamic_ncols=True,
                        initial=(self.start_epoch - 1) * self.steps_per_epoch + self.start_step,
                        disable=not progress)

    def _restore(self, checkpoint: dict) -> None:
        labels = LabelState.from_state_dict(checkpoint["labels"])
        if len(labels) != len(self.train_split) or not torch.equal(labels.original, self.train_split.labels):
            raise RuntimeError("the dataset differs from the one this run was trained on; cannot resume")
        self.labels = labels
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
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

    def record_samples(self) -> None:
        writer = self.writer
        for name, split in (("train", self.train_split), ("val", self.val_split), ("test", self.test_split)):
            if split is not None:
                writer.add_samples(name, split.names, split.labels.tolist())
        truth = Path(self.dataset_info["path"]) / "groundtruth.csv"
        if truth.is_file():
            writer.add_groundtruth(pd.read_csv(truth))
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
                self.end_epoch(epoch)
        finally:
            self.bar.close()
        return "finished"

    def train_epoch(self, epoch: int) -> str:
        config = self.config
        generator = torch.Generator().manual_seed(_epoch_seed(config.seed, epoch))
        torch.manual_seed(_epoch_seed(config.seed, epoch) + 1)
        batches = _batches(torch.randperm(len(self.train_split), generator=generator), config.batch_size)
        record, first_step = EpochRecord.empty(len(self.train_split)), 0
        if self.partial is not None and epoch == self.start_epoch:
            generator.set_state(self.partial["generator"])
            torch.set_rng_state(self.partial["torch_rng"])
            record = EpochRecord(**self.partial["record"])
            first_step = self.start_step
        self.partial = None
        self.record = record
        bar = self.bar
        bar.set_description(f"epoch {epoch}/{config.epochs}")
        window_start, window_images = time.perf_counter(), 0
        for step in range(first_step, len(batches)):
            started = time.perf_counter()
            metrics = self._train_step(epoch, step, batches[step], generator)
            record.seconds += time.perf_counter() - started
            window_images += len(batches[step])
            last = step == len(batches) - 1
            if step % config.log_every == 0 or last or self.stop.requested:
                now = time.perf_counter()
                images_per_s = window_images / max(now - window_start, 1e-9)
                window_start, window_images = now, 0
                self.writer.log_step({
                    "global_step": (epoch - 1) * len(batches) + step, "epoch": epoch, "step": step,
                    "time": time.time(), "lr": self.optimizer.param_groups[0]["lr"],
                    "images_per_s": images_per_s, **metrics})
                self.writer.set_status("running", epoch=epoch - 1, step=step + 1)
                bar.set_postfix(loss=f"{metrics['loss']:.3f}", img_s=f"{images_per_s:.0f}")
            bar.update(1)
            if self.stop.requested and not last:
                partial = {"generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
                           "record": record.state_dict()}
                save_checkpoint(self.run_dir / CHECKPOINT_DIR / "last.pt",
                                self.checkpoint(epoch=epoch - 1, step_in_epoch=step + 1, partial=partial))
                self.log.info("stopped at epoch %d step %d; checkpoint written", epoch, step + 1)
                return "stopped"
        return "completed"

    def _train_step(self, epoch: int, step: int, positions: torch.Tensor, generator) -> dict:
        config, record = self.config, self.record
        images, targets, positions = self.train_images.__getitems__(positions)
        x = augment.train_batch(images, generator=generator, mean=config.mean, std=config.std)
        x = x.to(self.device, non_blocking=True)
        if config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        targets_device = targets.to(self.device, non_blocking=True)
        with autocast(self.device, self.precision):
            alpha, logits = self.model.heads(x)
        alpha, logits = alpha.float().reshape(-1), logits.float()
        attention_on = epoch > config.alpha_warmup_epochs
        weighted = config.uses_alpha and config.attention and attention_on
        scaled = alpha[:, None] * logits if weighted else logits
        loss_wce = weighted_cross_entropy(scaled, targets_device)
        if config.uses_alpha and config.rank_reg and attention_on:
            loss_rr = rank_regularization(alpha, beta=config.beta, margin=config.margin_1)
        else:
            loss_rr = torch.zeros((), device=self.device)
        loss = loss_wce + loss_rr
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()

        alpha_cpu = alpha.detach().cpu()
        is_high = importance_groups(alpha_cpu, beta=config.beta)
        record.alpha[positions] = alpha_cpu
        record.is_high[positions] = is_high
        record.label[positions] = targets
        correct = int((scaled.detach().argmax(1).cpu() == targets).sum())
        loss_wce_value, loss_rr_value = loss_wce.item(), loss_rr.item()
        record.loss_wce += loss_wce_value * len(positions)
        record.loss_rr += loss_rr_value * len(positions)
        record.correct += correct
        record.seen += len(positions)
        if self.relabels_in(epoch):
            self._relabel(epoch, step, positions, targets, scaled.detach(), alpha_cpu, is_high)
        return {"loss": loss_wce_value + loss_rr_value, "loss_wce": loss_wce_value,
                "loss_rr": loss_rr_value, "accuracy": correct / len(positions)}

    def relabels_in(self, epoch: int) -> bool:
        """Whether `epoch` relabels: SCN with relabeling, from relabel_epoch, once the attention head
        is on (its groups mean nothing before) and the previous epoch reached the accuracy gate."""
        config = self.config
        return (config.uses_alpha and config.relabel and epoch >= config.relabel_epoch
                and epoch > config.alpha_warmup_epochs
                and self.gate_accuracy >= config.relabel_min_val_accuracy)

    def _relabel(self, epoch, step, positions, targets, scaled, alpha, is_high) -> None:
        config = self.config
        eligible = ~is_high if config.relabel_scope == "low" else torch.ones_like(is_high)
        decision = relabel(torch.softmax(scaled, dim=1).cpu(), targets, margin=config.margin_2,
                           eligible=eligible)
        events = [
            RelabelEvent(epoch=epoch, step=step, index=int(positions[p]), old=int(targets[p]),
                         new=int(new), p_max=float(pmax), p_given=float(pgiven), alpha=float(alpha[p]),
                         group="high" if bool(is_high[p]) else "low")
            for p, new, pmax, pgiven in zip(decision.positions.tolist(), decision.new_labels,
                                            decision.p_max, decision.p_given)
        ]
        self.labels.apply(events)

    def end_epoch(self, epoch: int) -> None:
        config, record, writer = self.config, self.record, self.writer
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        test = evaluate(self.model, self.test_split, config=config, device=self.device,
                        precision=self.precision)
        val = (evaluate(self.model, self.val_split, config=config, device=self.device,
                        precision=self.precision) if self.val_split is not None else None)
        events = [e for e in self.labels.history if e.epoch == epoch]
        n_train = len(self.train_split)
        high, low = record.alpha[record.is_high], record.alpha[~record.is_high]
        seen = max(record.seen, 1)
        writer.log_attention(epoch, alpha=record.alpha.numpy(), is_high=record.is_high.numpy(),
                             labels=record.label.numpy())
        writer.log_relabels(events)
        writer.log_confusion(epoch, "test", test["confusion"].numpy())
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
            "alpha_std": float(record.alpha.std()), "alpha_gap": gap, "relabels": len(events),
        })
        selection = val if val is not None else test
        warnings = check_epoch(confusion=selection["confusion"].numpy(), alpha=record.alpha.numpy(),
                               new_labels=[e.new for e in events], train_size=n_train,
                               class_names=config.class_names,
                               check_alpha=config.uses_alpha and epoch > config.alpha_warmup_epochs,
                               split="test" if val is None else "validation")
        writer.log_warnings(epoch, warnings)
        for warning in warnings:
            self.log.warning("collapse warning, epoch %d (%s): %s", epoch, warning.kind, warning.message)
        self.gate_accuracy = record.correct / seen if val is None else val["accuracy"]
        if config.relabel_min_val_accuracy > 0 and config.relabel_epoch <= epoch + 1 <= config.epochs:
            self.log.info("relabeling in epoch %d: %s (%s accuracy %.4f, gate %.2f)", epoch + 1,
                          "on" if self.relabels_in(epoch + 1) else "held back",
                          "training" if val is None else "validation", self.gate_accuracy,
                          config.relabel_min_val_accuracy)
        improved = self.best["accuracy"] is None or selection["accuracy"] > self.best["accuracy"]
        if improved:
            self.best = {"split": self.best["split"], "epoch": epoch, "accuracy": selection["accuracy"]}
        checkpoint = self.checkpoint(epoch=epoch, step_in_epoch=0, partial=None)
        save_checkpoint(self.run_dir / CHECKPOINT_DIR / "last.pt", checkpoint)
        if improved:
            save_checkpoint(self.run_dir / CHECKPOINT_DIR / "best.pt", checkpoint)
        writer.set_status("running", epoch=epoch, step=0)
        self.log.info(
            "epoch %d/%d: train acc %.4f, loss %.4f (rr %.4f), test acc %.4f%s, alpha %.3f±%.3f, "
            "%d relabels, %.0f img/s", epoch, config.epochs, record.correct / seen,
            (record.loss_wce + record.loss_rr) / seen, record.loss_rr / seen, test["accuracy"],
            "" if val is None else f", val acc {val['accuracy']:.4f}", float(record.alpha.mean()),
            float(record.alpha.std()), len(events), record.seen / max(record.seconds, 1e-9))


def train(config: TrainConfig, *, run_dir, resume: bool = False, progress: bool | None = None) -> str:
    """Train one run into `run_dir`; returns "finished" or "stopped". Raises on failure, after
    recording the traceback in the run's status."""
    run_dir = Path(run_dir)
    if not resume and (run_dir / DB_NAME).exists():
        raise RunExistsError(f"{run_dir} already holds a run; resume it with --resume or choose another run folder")
    run_dir.mkdir(parents=True, exist_ok=True)
    lock_fd = lock.acquire(run_dir)
    log = _logger(run_dir)
    stop = StopSignal()
    stop.install()
    writer = None
    try:
        checkpoint = None
        if resume:
            checkpoint = load_checkpoint(run_dir / CHECKPOINT_DIR / "last.pt")
            config = TrainConfig.from_dict(checkpoint["run_config"])
        writer = RunWriter(run_dir)
        writer.write_config(config.to_dict())
        fields = {"pid": os.getpid(), "total_epochs": config.epochs, "message": None, "finished": None}
        if not resume:
            fields["started"] = time.time()
        writer.set_status("starting", **fields)
        if checkpoint is not None:
            writer.discard_from(epoch=checkpoint["epoch"] + 1, step=checkpoint["step_in_epoch"])
        trainer = Trainer(config, run_dir=run_dir, writer=writer, log=log, stop=stop,
                          checkpoint=checkpoint, progress=sys.stderr.isatty() if progress is None else progress)
        writer.write_config(trainer.config.to_dict())
        trainer.record_samples()
        outcome = trainer.run()
        writer.set_status(outcome, finished=time.time() if outcome == "finished" else None)
        log.info("run %s", outcome)
        return outcome
    except BaseException:
        log.error("training failed:\n%s", traceback.format_exc())
        if writer is not None:
            writer.set_status("failed", message=traceback.format_exc(), finished=time.time())
        raise
    finally:
        if writer is not None:
            writer.close()
        os.close(lock_fd)
