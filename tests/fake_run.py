"""A finished run written through RunWriter with made-up but coherent records: SCN-like alpha that is
lower for noisy labels, relabels from the relabel epoch on (some right, some wrong), confusion
matrices, ground truth, and optionally the tiny RAF-DB folder its names point into. Used by the test fixtures and by
bench/app_speed.py (at RAF-DB size)."""
import time
from pathlib import Path

import numpy as np
import pandas as pd

from scn.classes import CLASS_NAMES
from scn.labels import RelabelEvent
from scn.store import RunWriter
from tests.helpers import write_rafdb


def write_fake_run(run_dir, *, n_train: int = 60, n_test: int = 21, epochs: int = 4,
                   relabel_epoch: int = 2, method: str = "scn", data_dir=None, seed: int = 0,
                   state: str = "finished", steps_per_epoch: int = 5,
                   relabels_per_epoch: int = 8) -> dict:
    """Fill `run_dir` and return what it wrote that tests check against (truth, noisy mask...)."""
    rng = np.random.default_rng(seed)
    classes = len(CLASS_NAMES)
    names = [f"train_{i + 1:05d}.jpg" for i in range(n_train)]
    true = rng.integers(0, classes, n_train)
    noisy = rng.random(n_train) < 0.3
    given = np.where(noisy, (true + rng.integers(1, classes, n_train)) % classes, true)
    config = {
        "data": str(data_dir) if data_dir else None, "format": "rafdb",
        "dataset_description": f"built-in benchmark ({n_train} train, 30% noise)",
        "method": method, "method_label": "SCN" if method == "scn" else "baseline",
        "attention": method == "scn", "rank_reg": method == "scn", "relabel": method == "scn",
        "relabel_scope": "low", "epochs": epochs, "batch_size": 64, "image_size": 112,
        "lr": 1e-3, "preset": "official", "seed": seed, "beta": 0.7, "margin_1": 0.15,
        "margin_2": 0.2, "relabel_epoch": relabel_epoch, "class_names": list(CLASS_NAMES),
        "val_fraction": 0.1, "synth_train": n_train, "synth_test": n_test, "synth_noise": 0.3,
    }
    writer = RunWriter(run_dir)
    writer.write_config(config)
    started = time.time() - 600
    writer.set_status("running", pid=None, started=started, epoch=0, total_epochs=epochs,
                      steps_per_epoch=steps_per_epoch)
    writer.add_samples("train", names, given)
    test_names = [f"test_{i + 1:04d}.jpg" for i in range(n_test)]
    test_labels = np.arange(n_test) % classes
    writer.add_samples("test", test_names, test_labels)
    writer.add_groundtruth(pd.DataFrame({
        "image": names + test_names,
        "split": ["train"] * n_train + ["test"] * n_test,
        "true_label": np.concatenate([true, test_labels]) + 1,  # 1-based, as the generator
        "given_label": np.concatenate([given, test_labels]) + 1,
        "is_noisy": np.concatenate([noisy, np.zeros(n_test, bool)]).astype(int),
        "occlusion": rng.choice(["none", "glasses", "hand"], n_train + n_test),
        "blur_sigma": np.where(rng.random(n_train + n_test) < 0.2, 1.2, 0.0),
        "intensity": rng.random(n_train + n_test),
    }))
    if data_dir is not None and not Path(data_dir).exists():
        write_rafdb(data_dir, train=n_train, test=n_test, size=24)
    labels = given.copy()
    global_step = 0
    for epoch in range(1, epochs + 1):
        for step in range(steps_per_epoch):
            global_step += 1
            writer.log_step({"global_step": global_step, "epoch": epoch, "step": step,
                             "time": started + global_step, "loss": 2.0 / epoch, "loss_wce": 1.9 / epoch,
                             "loss_rr": 0.1 / epoch, "accuracy": 0.3 + 0.1 * epoch, "lr": 1e-3 * 0.9 ** epoch,
                             "images_per_s": 150.0})
        alpha = np.clip(0.75 - 0.25 * noisy * min(1, epoch / 3) + rng.normal(0, 0.05, n_train), 0, 1)
        is_high = alpha >= np.quantile(alpha, 0.3)
        events = []
        if method == "scn" and epoch >= relabel_epoch:
            wrong_now = (labels != true) | (rng.random(n_train) < 0.05)
            candidates = rng.permutation(np.flatnonzero(wrong_now))[:relabels_per_epoch]
            for i, index in enumerate(candidates):
                new = int(true[index]) if i % 4 else int((labels[index] + 1) % classes)
                if new == labels[index]:
                    continue
                events.append(RelabelEvent(epoch=epoch, step=i % steps_per_epoch, index=int(index),
                                           old=int(labels[index]), new=new, p_max=0.7, p_given=0.3 - 0.01 * i,
                                           alpha=float(alpha[index]), group="low"))
                labels[index] = new
        if method == "scn":
            writer.log_attention(epoch, alpha=alpha, is_high=is_high, labels=labels)
        writer.log_relabels(events)
        confusion = np.diag(np.full(classes, 2 + epoch)) + rng.integers(0, 2, (classes, classes))
        writer.log_confusion(epoch, "test", confusion)
        accuracy = 0.4 + 0.1 * epoch if method == "scn" else 0.35 + 0.09 * epoch
        writer.log_epoch({"epoch": epoch, "time": started + epoch * 60, "seconds": 60.0,
                          "lr": 1e-3 * 0.9 ** epoch, "images_per_s": 150.0, "train_loss": 2.0 / epoch,
                          "train_loss_wce": 1.9 / epoch, "train_loss_rr": 0.1 / epoch,
                          "train_accuracy": 0.3 + 0.1 * epoch, "val_accuracy": accuracy - 0.02,
                          "test_accuracy": accuracy, "test_loss": 1.5 / epoch,
                          "alpha_mean": float(alpha.mean()), "alpha_std": float(alpha.std()),
                          "alpha_gap": 0.1, "relabels": len(events)})
        writer.set_status("running", epoch=epoch, step=steps_per_epoch)
    writer.set_status(state, finished=time.time() if state == "finished" else None)
    writer.close()
    return {"true": true, "given": given, "noisy": noisy, "labels": labels, "names": names}
