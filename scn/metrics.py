"""Scores that only known ground truth makes possible: were the relabels right, and do low
attention weights point at the noisy labels?

Definitions (per epoch, after that epoch's relabels):
  precision  share of the epoch's relabel events whose new label is the true class;
  recall     share of the noisy training labels whose current label is the true class again;
  damage     clean training labels whose current label is no longer the true class
             (reported as a count and as a share of the clean labels).
"""
import numpy as np
import pandas as pd


def auroc(scores, positives) -> float:
    """Area under the ROC curve of `scores` for detecting `positives` (higher score = more positive).

    Mann-Whitney U with average ranks, so ties count one half. NaN when a class is absent.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positives = np.asarray(positives, dtype=bool)
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = pd.Series(scores).rank(method="average").to_numpy()
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def relabel_quality(*, original, true, events: pd.DataFrame, epochs=None) -> pd.DataFrame:
    """Precision, recall and damage of relabel events against the truth, epoch by epoch.

    `original` and `true` are 0-based labels indexed by training-sample index; `events` has columns
    epoch, idx, old, new in the order they happened. `epochs` lists the epochs to report (default:
    1 to the last epoch with an event).
    """
    original = np.asarray(original, dtype=np.int64)
    true = np.asarray(true, dtype=np.int64)
    noisy = original != true
    current = original.copy()
    if epochs is None:
        epochs = range(1, int(events["epoch"].max()) + 1) if len(events) else []
    by_epoch = {e: group for e, group in events.groupby("epoch")} if len(events) else {}
    rows = []
    for epoch in epochs:
        group = by_epoch.get(epoch)
        relabels = correct = 0
        if group is not None:
            idx, new = group["idx"].to_numpy(), group["new"].to_numpy()
            relabels, correct = len(idx), int((new == true[idx]).sum())
            current[idx] = new  # in event order: a later event for the same sample wins
        broken = int(((current != true) & ~noisy).sum())
        rows.append({
            "epoch": epoch, "relabels": relabels, "correct": correct,
            "precision": correct / relabels if relabels else float("nan"),
            "noisy_fixed": int(((current == true) & noisy).sum()), "noisy_total": int(noisy.sum()),
            "recall": float(((current == true) & noisy).sum() / noisy.sum()) if noisy.any() else float("nan"),
            "clean_broken": broken, "damage": broken / max(int((~noisy).sum()), 1),
        })
    return pd.DataFrame(rows, columns=["epoch", "relabels", "correct", "precision", "noisy_fixed",
                                       "noisy_total", "recall", "clean_broken", "damage"])


def truth_table(samples: pd.DataFrame, groundtruth: pd.DataFrame) -> pd.DataFrame:
    """Join a run's training samples (idx, name, label) to the benchmark's ground truth by image name.

    Returns idx-ordered columns idx, name, label, true_label (0-based), is_noisy and every other
    ground-truth column.
    """
    truth = groundtruth.copy()
    truth["name"] = truth["image"].astype(str).str.replace("_aligned", "", regex=False)
    truth["true_label"] = truth["true_label"].astype(int) - 1  # the table is 1-based like RAF-DB
    joined = samples.merge(truth.drop(columns=["image"]), on="name", how="left", validate="one_to_one")
    if joined["true_label"].isna().any():
        missing = joined.loc[joined["true_label"].isna(), "name"].head(3).tolist()
        raise ValueError(f"ground truth lacks training images such as {', '.join(missing)}")
    joined["true_label"] = joined["true_label"].astype(int)
    joined["is_noisy"] = joined["label"] != joined["true_label"]
    return joined.sort_values("idx").reset_index(drop=True)


def run_scores(reader) -> pd.DataFrame | None:
    """Per-epoch relabel quality and attention AUROC of a run trained on the built-in benchmark
    (None when the run has no ground truth)."""
    groundtruth = reader.groundtruth()
    if groundtruth is None:
        return None
    truth = truth_table(reader.samples("train"), groundtruth)
    epochs = reader.attention_epochs()
    quality = relabel_quality(original=truth["label"], true=truth["true_label"],
                              events=reader.relabels(), epochs=epochs)
    quality["alpha_auroc"] = [
        auroc(-reader.attention(epoch)["alpha"].to_numpy(), truth["is_noisy"].to_numpy()) for epoch in epochs
    ]
    return quality
