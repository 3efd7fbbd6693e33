"""A finished run at any size without training it: for timing the app on a RAF-DB-size (or larger)
run that these cores could not train in a benchmark's time.

The dataset is real (the built-in benchmark's generator, RAF-DB layout and ground truth); only the
model's behaviour is simulated: alpha lower on noisy labels, relabels from the relabel epoch on (most
to the true class), rising accuracy, predictions and probabilities per sample. Everything is recorded the way the trainer records it: the same
TrainConfig for config.json, the same RunWriter calls and columns, attention rows for the baseline
(alpha = 1, as scn.train logs them). tests/test_simulated_run.py checks it against a real run.
"""
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from scn.config import TrainConfig
from scn.data import list_splits
from scn.labels import RelabelEvent
from scn.losses import importance_groups
from scn.store import RunWriter
from scn.synth.dataset import GROUND_TRUTH, generate_dataset


def write_dataset(data_dir, *, train: int, test: int, noise: float = 0.3, size: int = 48) -> Path:
    """The built-in benchmark's images, labels and ground truth, small enough to write quickly."""
    return generate_dataset(data_dir, train=train, test=test, size=size, noise=noise, progress=False)


def simulated_predictions(true: np.ndarray, *, accuracy: float, classes: int, rng) -> tuple:
    """Predictions right with probability `accuracy` (else a random class), and class probabilities
    peaked on each prediction: (pred [N], probs [N, C])."""
    right = rng.random(len(true)) < accuracy
    pred = np.where(right, true, rng.integers(0, classes, len(true)))
    logits = rng.normal(0, 1, (len(true), classes))
    logits[np.arange(len(true)), pred] += 3
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return pred, probs


def write_simulated_run(run_dir, *, data_dir, epochs: int = 4, relabel_epoch: int = 2,
                        method: str = "scn", seed: int = 0, steps_per_epoch: int = 5,
                        relabels_per_epoch: int = 8) -> dict:
    """Fill `run_dir` as a finished run on the dataset at `data_dir`; returns the final labels."""
    rng = np.random.default_rng(seed)
    splits, class_names = list_splits(data_dir)
    names, given = splits["train"][0], np.asarray(splits["train"][1])
    test_names, test_labels = splits["test"][0], np.asarray(splits["test"][1])
    truth = pd.read_csv(Path(data_dir) / GROUND_TRUTH)
    train_truth = truth[truth["split"] == "train"].set_index("image").loc[names]
    true, noisy = train_truth["true_label"].to_numpy() - 1, train_truth["is_noisy"].to_numpy().astype(bool)
    classes, n_train = len(class_names), len(names)
    config = TrainConfig(data=str(data_dir), dataset_description=f"built-in benchmark at {data_dir}",
                         method=method, epochs=epochs, relabel_epoch=relabel_epoch, image_size=112,
                         relabel_scope="low",  # as the simulated relabels: from the low group
                         seed=seed, val_fraction=0.0, class_names=tuple(class_names))
    writer = RunWriter(run_dir)
    writer.write_config(config.to_dict())
    started = time.time() - 600
    writer.set_status("running", pid=None, started=started, epoch=0, total_epochs=epochs,
                      steps_per_epoch=steps_per_epoch)
    writer.add_samples("train", names, given.tolist())
    writer.add_samples("test", test_names, test_labels.tolist())
    writer.add_groundtruth(truth)
    writer.set_meta("dataset", {"description": config.dataset_description, "path": str(data_dir),
                                "format": "rafdb", "classes": list(class_names),
                                "sizes": {"train": n_train, "test": len(test_names), "val": 0},
                                "decoded_cache": "memory"})
    labels, global_step = given.copy(), 0
    for epoch in range(1, epochs + 1):
        for step in range(steps_per_epoch):
            writer.log_step({"global_step": global_step, "epoch": epoch, "step": step,
                             "time": started + global_step, "loss": 2.0 / epoch, "loss_wce": 1.9 / epoch,
                             "loss_rr": 0.1 / epoch if method == "scn" else 0.0, "accuracy": 0.3 + 0.1 * epoch,
                             "lr": 1e-3 * 0.9 ** (epoch - 1), "images_per_s": 150.0})
            global_step += 1
        if method == "scn":
            alpha = np.clip(0.75 - 0.25 * noisy * min(1, epoch / 3) + rng.normal(0, 0.05, n_train), 0, 1)
        else:
            alpha = np.ones(n_train)
        is_high = importance_groups(torch.as_tensor(alpha), beta=config.beta).numpy()
        events = []
        if method == "scn" and epoch >= relabel_epoch:
            candidates = rng.permutation(np.flatnonzero((labels != true) | (rng.random(n_train) < 0.05)))
            for i, index in enumerate(candidates[:relabels_per_epoch]):
                new = int(true[index]) if i % 4 else int((labels[index] + 1) % classes)
                if new == labels[index]:
                    continue
                events.append(RelabelEvent(epoch=epoch, step=i % steps_per_epoch, index=int(index),
                                           old=int(labels[index]), new=new, p_max=0.7, p_given=0.3 - 0.01 * i,
                                           alpha=float(alpha[index]), group="low"))
                labels[index] = new
        writer.log_attention(epoch, alpha=alpha, is_high=is_high, labels=labels)
        accuracy = 0.4 + 0.1 * epoch if method == "scn" else 0.35 + 0.09 * epoch
        pred, probs = simulated_predictions(true, accuracy=accuracy, classes=classes, rng=rng)
        writer.log_history(epoch, pred=pred, p_given=probs[np.arange(n_train), labels], p_max=probs.max(1))
        writer.log_relabels(events)
        test_pred, test_probs = simulated_predictions(test_labels, accuracy=accuracy, classes=classes, rng=rng)
        confusion = np.zeros((classes, classes), np.int64)
        np.add.at(confusion, (test_labels, test_pred), 1)
        writer.log_confusion(epoch, "test", confusion)
        writer.log_predictions(epoch, "test", pred=test_pred, probs=test_probs)
        writer.log_epoch({"epoch": epoch, "time": started + epoch * 60, "seconds": 60.0,
                          "lr": 1e-3 * 0.9 ** (epoch - 1), "images_per_s": 150.0, "train_loss": 2.0 / epoch,
                          "train_loss_wce": 1.9 / epoch, "train_loss_rr": 0.1 / epoch if method == "scn" else 0.0,
                          "train_accuracy": 0.3 + 0.1 * epoch, "val_accuracy": None,
                          "test_accuracy": accuracy, "test_loss": 1.5 / epoch,
                          "alpha_mean": float(alpha.mean()), "alpha_std": float(alpha.std()),
                          "alpha_gap": float(alpha[is_high].mean() - alpha[~is_high].mean()),
                          "relabels": len(events), "train_accuracy_original": float((pred == given).mean()),
                          "train_accuracy_truth": float((pred == true).mean()),
                          "rr_active_share": 1.0 if method == "scn" else None,
                          "rr_hinge_mean": 0.1 / epoch if method == "scn" else None})
        writer.set_status("running", epoch=epoch, step=0)
    writer.set_status("finished", finished=time.time())
    writer.close()
    return {"labels": labels}
