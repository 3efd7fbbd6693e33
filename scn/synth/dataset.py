"""Writing a benchmark in RAF-DB's own layout, with its ground truth and injected label noise.

    DIR/Image/aligned/train_00001_aligned.jpg ... test_00001_aligned.jpg
    DIR/EmoLabel/list_patition_label.txt      `train_00001.jpg 4` (1-based RAF-DB labels; the
                                              noisy label for training images when noise > 0)
    DIR/EmoLabel/0.1noise_train.txt           the noisy training labels in the official SCN format
    DIR/EmoLabel/noise01.txt                  ... and in EAC's (both when noise > 0; scn.noise_files)
    DIR/groundtruth.csv                       true class, given label, noise model, annotator votes,
                                              ambiguity, expression, identity, pose and every
                                              degradation of each image

Class counts follow RAF-DB basic's training split scaled to the requested size (or are uniform).
Label noise follows one of scn.synth.noise's models (symmetric: SCN's protocol, each training label
flipped with probability P to a uniformly chosen other class; pairwise; annotators); test labels
are always clean. Every image has its own random stream derived from (seed, split, index), so the
bytes do not depend on the number of worker processes.
"""
import csv
import multiprocessing
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from scn.classes import CLASS_NAMES
from scn.noise_files import eac_file_name, scn_file_name, write_noise_file
from scn.synth import noise as label_noise
from scn.synth.config import SynthConfig
from scn.synth.degrade import encode_jpeg
from scn.synth.sample import SPLIT_IDS, draw_sample, render, sample_rng, truth_row

RAFDB_TRAIN_COUNTS = {"surprise": 1290, "fear": 281, "disgust": 717, "happiness": 4772,
                      "sadness": 1982, "anger": 705, "neutral": 2524}
BALANCES = ("rafdb", "uniform")
LABEL_FILE = "EmoLabel/list_patition_label.txt"
IMAGE_DIR = "Image/aligned"
GROUND_TRUTH = "groundtruth.csv"
MIN_SIZE, MAX_SIZE = 32, 512
# The random stream of the order of classes within a split (the noise streams: scn.synth.noise).
ORDER_STREAM = 100


def class_counts(total: int, *, balance: str = "rafdb") -> dict:
    """Images per class for a split of `total` images, by largest remainder (sums to `total`)."""
    if balance not in BALANCES:
        raise ValueError(f"balance must be one of {', '.join(BALANCES)}, got {balance!r}")
    weights = np.array([RAFDB_TRAIN_COUNTS[name] if balance == "rafdb" else 1 for name in CLASS_NAMES], float)
    exact = total * weights / weights.sum()
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: total - counts.sum()]:
        counts[i] += 1
    return dict(zip(CLASS_NAMES, counts.tolist()))


def split_classes(total: int, *, split: str, balance: str, seed: int) -> list:
    """The true class of every image of a split, in a seeded random order."""
    classes = [name for name, count in class_counts(total, balance=balance).items() for _ in range(count)]
    order = np.random.default_rng([seed, ORDER_STREAM + SPLIT_IDS[split]]).permutation(total)
    return [classes[i] for i in order]


def generate_dataset(out, *, train: int, test: int, size: int = 100, seed: int = 0, noise: float = 0.0,
                     noise_model: str = "symmetric", annotators: int = label_noise.DEFAULT_ANNOTATORS,
                     label_from: str = "majority", balance: str = "rafdb", config: SynthConfig | None = None,
                     workers: int | None = None, overwrite: bool = False, progress: bool = True) -> Path:
    """Render a benchmark of `train` + `test` faces into `out` (RAF-DB layout); returns `out`.

    `noise` is the share of wrong training labels under `noise_model` (scn.synth.noise;
    `annotators` and `label_from` configure the annotators model). Raises ValueError for bad
    arguments, a non-empty `out` (unless `overwrite`), or an output folder that cannot be written.
    """
    _check_arguments(train=train, test=test, size=size, seed=seed, noise=noise, balance=balance,
                     noise_model=noise_model, annotators=annotators, label_from=label_from)
    config = config or SynthConfig()
    out = _prepare_output(Path(out), overwrite=overwrite)
    jobs = [(split, index, name)
            for split, total in (("train", train), ("test", test))
            for index, name in enumerate(split_classes(total, split=split, balance=balance, seed=seed))]
    rows = _render_all(jobs, out=out, size=size, seed=seed, config=config, workers=workers, progress=progress)

    table = pd.DataFrame(rows)
    true_labels = np.array([CLASS_NAMES.index(c) for c in table["true_class"]], dtype=int)
    given = true_labels.copy()
    given[:train], votes = label_noise.noisy_labels(table.iloc[:train], noise=noise, seed=seed, model=noise_model,
                                                    annotators=annotators, label_from=label_from)
    _write_labels(out / LABEL_FILE, rows, given)
    if noise > 0:
        names = [row["image"] for row in rows[:train]]
        write_noise_file(out / "EmoLabel" / scn_file_name(noise), names, given[:train], format="scn")
        write_noise_file(out / "EmoLabel" / eac_file_name(noise), names, given[:train], format="eac")
    extra = {"noise_model": noise_model, "ambiguity": np.round(label_noise.ambiguity(table), 4),
             "votes": [" ".join(str(v + 1) for v in face) for face in votes] + [""] * test
             if votes is not None else ""}
    _write_ground_truth(out / GROUND_TRUTH, rows, true_labels, given, extra=pd.DataFrame(extra, index=table.index))
    return out


def _check_arguments(*, train, test, size, seed, noise, balance, noise_model, annotators, label_from):
    for name, value in (("train", train), ("test", test), ("seed", seed)):
        if not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    if train + test == 0:
        raise ValueError("train and test are both 0: nothing to generate")
    if not isinstance(size, (int, np.integer)) or not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"size must be an integer from {MIN_SIZE} to {MAX_SIZE} pixels, got {size!r}")
    if not 0.0 <= noise < 1.0:
        raise ValueError(f"noise must be a probability in [0, 1), got {noise!r}")
    if balance not in BALANCES:
        raise ValueError(f"balance must be one of {', '.join(BALANCES)}, got {balance!r}")
    if noise_model not in label_noise.NOISE_MODELS:
        raise ValueError(f"noise model must be one of {', '.join(label_noise.NOISE_MODELS)}, got {noise_model!r}")
    if label_from not in label_noise.LABEL_SOURCES:
        raise ValueError(f"label_from must be one of {', '.join(label_noise.LABEL_SOURCES)}, got {label_from!r}")
    if not isinstance(annotators, (int, np.integer)) or annotators < 1:
        raise ValueError(f"annotators must be a positive integer, got {annotators!r}")


def _prepare_output(out: Path, *, overwrite: bool) -> Path:
    """Create the layout's folders, refusing to mix a new benchmark into existing files."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"output path {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise ValueError(f"output directory {out} is not empty (overwrite=True or --overwrite replaces it)")
        for part in ("Image", "EmoLabel", GROUND_TRUTH):
            target = out / part
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    try:
        (out / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
        (out / LABEL_FILE).parent.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ValueError(f"cannot write to output directory {out}: {error.strerror or error}") from None
    return out


def image_name(split: str, index: int) -> str:
    """RAF-DB's name of the index-th (0-based) image of a split, e.g. `train_00001.jpg`."""
    return f"{split}_{index + 1:05d}.jpg"


def _render_all(jobs, *, out, size, seed, config, workers, progress) -> list:
    """Render and write every image; returns their ground-truth rows in job order."""
    workers = workers or len(os.sched_getaffinity(0))
    settings = (str(out), size, seed, config)
    bar = tqdm(total=len(jobs), desc="synth", unit="img", disable=not progress)
    if workers == 1 or len(jobs) < 64:
        _start_worker(*settings)
        rows = []
        for job in jobs:
            rows.append(_render_one(job))
            bar.update()
    else:
        # spawn: safe even when the caller already runs threads (the app, a trainer).
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers, initializer=_start_worker, initargs=settings) as pool:
            rows = []
            for row in pool.imap(_render_one, jobs, chunksize=32):
                rows.append(row)
                bar.update()
    bar.close()
    return rows


_WORKER = {}


def _start_worker(out, size, seed, config):
    # One OpenCV thread per process: the pool already uses every core.
    cv2.setNumThreads(1)
    _WORKER.update(out=Path(out), size=size, seed=seed, config=config)


def _render_one(job) -> dict:
    split, index, true_class = job
    rng = sample_rng(seed=_WORKER["seed"], split=split, index=index)
    sample = draw_sample(rng, true_class, config=_WORKER["config"])
    image, _ = render(sample, size=_WORKER["size"])
    name = image_name(split, index)
    path = _WORKER["out"] / IMAGE_DIR / name.replace(".jpg", "_aligned.jpg")
    path.write_bytes(encode_jpeg(image, sample.degradation.jpeg_quality))
    return {"image": name, "split": split, **truth_row(sample)}


def _write_labels(path: Path, rows, labels):
    with open(path, "w") as f:
        for row, label in zip(rows, labels):
            f.write(f"{row['image']} {label + 1}\n")


def _write_ground_truth(path: Path, rows, true_labels, given, *, extra: pd.DataFrame):
    header = ["image", "split", "true_class", "true_label", "given_label", "given_class", "is_noisy",
              *extra.columns]
    header += [key for key in rows[0] if key not in header]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        for row, true_label, label, more in zip(rows, true_labels, given, extra.to_dict("records")):
            writer.writerow({**row, **more, "true_label": true_label + 1, "given_label": label + 1,
                             "given_class": CLASS_NAMES[label], "is_noisy": int(label != true_label)})
