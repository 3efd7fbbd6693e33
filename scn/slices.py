"""Scores per slice of the built-in benchmark: does SCN treat dark skin, dim light, an occluder, a
turned head or a faint expression differently?

The benchmark's ground truth records how each face was drawn; `slice_columns` bins that into five
dimensions (skin tone by luminance, lighting, occluder, |yaw|, expression intensity), and
`slice_scores` gives, per slice, the training images' mean attention weight and accuracy of the
model's predictions against the true class, the test images' accuracy, and the precision of SCN's
relabels (the share whose new label is the true class). `run_predictions` runs a run's checkpoint
over its dataset for the accuracies (the trainer keeps them in the run folder when a run on the
benchmark finishes: `save_predictions`); `run_slices` puts it together for a run.
"""
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from scn import augment
from scn.metrics import truth_table

# Dimension -> (ground-truth column, bin edges, bin labels); the edges follow the generator's
# ranges (scn/synth: SKIN_TONES luminance 66-212, brightness 0.75-1.12, |yaw| up to 22 degrees) and
# the intensity bands of the calibration table in docs/results.md.
BINNED = {
    "skin tone": ("skin_luminance", [0, 100, 140, 180, 256],
                  ["luminance < 100", "100–140", "140–180", "≥ 180"]),
    "lighting": ("scene_brightness", [0, 0.87, 1.0, np.inf], ["brightness < 0.87", "0.87–1.0", "≥ 1.0"]),
    "pose": ("abs_yaw", [0, 8, 16, np.inf], ["|yaw| < 8°", "8–16°", "≥ 16°"]),
    "intensity": ("intensity", [0, 0.35, 0.6, 0.85, np.inf],
                  ["intensity < 0.35", "0.35–0.6", "0.6–0.85", "> 0.85"]),
}
DIMENSIONS = ("skin tone", "lighting", "occluder", "pose", "intensity")
SCORE_COLUMNS = ["dimension", "slice", "train_images", "mean_alpha", "train_accuracy", "test_images",
                 "test_accuracy", "relabels", "relabel_precision"]
EVAL_BATCH = 256
# A checkpoint's predictions over the run's images, kept in the run folder (save_predictions).
PREDICTIONS_FILE = "slice-predictions-{which}.npz"


class NoGroundTruthError(LookupError):
    """Raised for a run whose dataset has no ground truth to slice by (not the built-in benchmark)."""


def luminance(colours) -> np.ndarray:
    """Relative luminance (Rec. 709 weights, 0-255) of '#rrggbb' colours."""
    text = pd.Series(colours, dtype=str).str.lstrip("#")
    rgb = np.stack([text.str[i:i + 2].apply(int, base=16).to_numpy() for i in (0, 2, 4)], axis=1)
    return rgb @ np.array([0.2126, 0.7152, 0.0722])


def slice_columns(truth: pd.DataFrame) -> pd.DataFrame:
    """One column per dimension of DIMENSIONS that `truth` (ground-truth rows) records, holding
    each row's slice as an ordered categorical; dimensions the table lacks are left out."""
    values = pd.DataFrame(index=truth.index)
    if "id_skin" in truth:
        values["skin_luminance"] = luminance(truth["id_skin"])
    if "pose_yaw" in truth:
        values["abs_yaw"] = pd.to_numeric(truth["pose_yaw"]).abs()
    for column in ("scene_brightness", "intensity"):
        if column in truth:
            values[column] = pd.to_numeric(truth[column])
    slices = pd.DataFrame(index=truth.index)
    for dimension in DIMENSIONS:
        if dimension == "occluder":
            if "occlusion" in truth:
                slices[dimension] = truth["occlusion"].fillna("none").astype(str).astype("category")
            continue
        column, edges, labels = BINNED[dimension]
        if column in values:
            slices[dimension] = pd.cut(values[column], bins=edges, labels=labels, right=False)
    return slices


def slice_scores(train: pd.DataFrame, *, test: pd.DataFrame | None = None,
                 events: pd.DataFrame | None = None) -> pd.DataFrame:
    """Scores per (dimension, slice), in SCORE_COLUMNS.

    `train`: one row per training image with true_label, the slice columns of `slice_columns`, and
    optionally alpha and predicted; `test`: the same for test images (true_label, predicted, slice
    columns); `events`: SCN relabel events with idx (a position in `train`) and new. Scores without
    their inputs are NaN; a slice without images is left out."""
    test = test if test is not None else pd.DataFrame(columns=["true_label"])
    events = events if events is not None else pd.DataFrame(columns=["idx", "new"])
    right = events["new"].to_numpy() == train["true_label"].to_numpy()[events["idx"].to_numpy(int)]
    events = events.assign(right=right)
    rows = []
    for dimension in (d for d in DIMENSIONS if d in train):
        train_groups = train.groupby(dimension, observed=True)
        test_groups = test.groupby(dimension, observed=True) if dimension in test else {}
        event_groups = events.groupby(train[dimension].to_numpy()[events["idx"].to_numpy(int)])
        test_groups, event_groups = dict(list(test_groups)), dict(list(event_groups))
        for name, group in train_groups:
            tested = test_groups.get(name, test.iloc[:0])
            relabels = event_groups.get(name, events.iloc[:0])
            rows.append({
                "dimension": dimension, "slice": str(name), "train_images": len(group),
                "mean_alpha": group["alpha"].mean() if "alpha" in group else np.nan,
                "train_accuracy": _accuracy(group), "test_images": len(tested),
                "test_accuracy": _accuracy(tested), "relabels": len(relabels),
                "relabel_precision": relabels["right"].mean() if len(relabels) else np.nan,
            })
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def _accuracy(frame: pd.DataFrame) -> float:
    if "predicted" not in frame or not len(frame):
        return np.nan
    return float((frame["predicted"].to_numpy() == frame["true_label"].to_numpy()).mean())


def split_truth(reader, split: str, *, groundtruth: pd.DataFrame) -> pd.DataFrame:
    """A run's samples of `split` (idx order) joined to the benchmark's ground truth, with the
    slice columns."""
    truth = truth_table(reader.samples(split), groundtruth)
    return pd.concat([truth[["idx", "name", "label", "true_label"]], slice_columns(truth)], axis=1)


@torch.no_grad()
def run_predictions(reader, *, which: str = "last", device="cpu") -> dict:
    """The predicted class of every training and test image of a run by its `which` checkpoint, on
    `device`: {"train": array by training idx, "test": array by test idx}. Reads the run's dataset,
    so it raises FileNotFoundError when that is not on this machine."""
    # The model stack (torchvision) takes about a second to import; only this function needs it,
    # so the Slices page of a run without checkpoints does not pay for it.
    from scn.checkpoint import load_model
    from scn.data import load_dataset

    dataset = reader.meta("dataset") or {}
    root = reader.config().get("data") or dataset.get("path")
    if not root:
        raise FileNotFoundError(f"{reader.name} does not record where its images are")
    model, meta = load_model(reader.checkpoint_path(which), device=device)
    config = meta["model_config"]
    data = load_dataset(root, format=dataset.get("format", "rafdb"), image_size=config["image_size"],
                        noise_file=reader.config().get("noise_file"), seed=reader.config().get("seed", 0),
                        workers=max(1, torch.get_num_threads()))
    predicted = {}
    for split, images, names in (("train", data.train.images, data.train.names),
                                 ("test", data.test.images, data.test.names)):
        classes = torch.cat([model(augment.normalize(images[s:s + EVAL_BATCH].to(device), mean=config["mean"],
                                                     std=config["std"]))[1].argmax(1).cpu()
                             for s in range(0, len(images), EVAL_BATCH)])
        # The run's training samples leave out its validation images: match them by name.
        by_name = dict(zip(names, classes.tolist()))
        stored = reader.samples(split)["name"]
        predicted[split] = np.array([by_name[n] for n in stored], dtype=np.int64)
    return predicted


def predictions_path(reader, which: str) -> Path:
    return reader.run_dir / PREDICTIONS_FILE.format(which=which)


def save_predictions(reader, *, which: str, device="cpu", predicted: dict | None = None) -> Path:
    """Run `which` checkpoint over the run's images (run_predictions), unless its `predicted` are
    given, and keep the result in the run folder, marked with the checkpoint file's version, so the
    Slices page need not wait for it."""
    version = reader.checkpoint_path(which).stat().st_mtime_ns
    if predicted is None:
        predicted = run_predictions(reader, which=which, device=device)
    target = predictions_path(reader, which)
    scratch = target.with_suffix(".tmp.npz")
    np.savez(scratch, checkpoint_version=version, **predicted)
    os.replace(scratch, target)
    return target


def saved_predictions(reader, *, which: str) -> dict | None:
    """What save_predictions kept for the checkpoint as it is now, or None (none kept, or the
    checkpoint was rewritten since: a resumed run)."""
    try:
        with np.load(predictions_path(reader, which)) as saved:
            if int(saved["checkpoint_version"]) != reader.checkpoint_path(which).stat().st_mtime_ns:
                return None
            return {"train": saved["train"], "test": saved["test"]}
    except (OSError, KeyError, ValueError):
        return None


def run_slices(reader, *, predictions: dict | None = None) -> pd.DataFrame:
    """`slice_scores` of a run: alpha of its latest recorded epoch, its SCN relabel events, and
    accuracies from `predictions` (run_predictions' output) when given. Raises NoGroundTruthError
    when the run's dataset has none."""
    groundtruth = reader.groundtruth()
    if groundtruth is None:
        raise NoGroundTruthError(f"{reader.name} was not trained on the built-in benchmark: its dataset "
                                 "has no ground truth (groundtruth.csv) to slice by")
    train = split_truth(reader, "train", groundtruth=groundtruth)
    attention = reader.attention()
    if len(attention) == len(train):
        train["alpha"] = attention["alpha"].to_numpy()
    test = split_truth(reader, "test", groundtruth=groundtruth)
    if predictions is not None:
        train["predicted"], test["predicted"] = predictions["train"], predictions["test"]
    return slice_scores(train, test=test, events=reader.relabels(kind="scn"))
