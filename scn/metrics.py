"""Scores that only known ground truth makes possible: were the relabels right, and do low
attention weights point at the noisy labels?

Definitions (per epoch, after that epoch's relabels):
  precision  share of the epoch's relabel events whose new label is the true class;
  recall     share of the noisy training labels whose current label is the true class again;
  damage     clean training labels whose current label is no longer the true class
             (reported as a count and as a share of the clean labels);
  wrong      training labels whose current label is not the true class (noisy or broken).

Attention, per epoch (`attention_scores`): AUROC of "low alpha flags it" against the labels wrong
*at that epoch* (the label the sample was trained with, after the relabels of the earlier epochs,
is not its true class), against the original flips, and against ambiguous faces (ground-truth
ambiguity at or above scn.synth.noise.AMBIGUOUS, whatever noise model labelled them).
"""
import numpy as np
import pandas as pd

from scn.synth.expressions import ACTION_UNITS
from scn.synth.noise import AMBIGUOUS, ambiguity


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
            "wrong_labels": int((current != true).sum()),
        })
    return pd.DataFrame(rows, columns=["epoch", "relabels", "correct", "precision", "noisy_fixed",
                                       "noisy_total", "recall", "clean_broken", "damage", "wrong_labels"])


def labels_by_epoch(original, events: pd.DataFrame, epochs) -> np.ndarray:
    """labels[epoch row, sample]: the label each training sample was trained with in each of
    `epochs` (ascending): its original label after the relabel events of the earlier epochs. A
    sample is seen once per epoch and relabelled after its step, so its own epoch's events come later."""
    current = np.asarray(original, dtype=np.int64).copy()
    events = events.sort_values("epoch", kind="stable")
    event_epochs, idx, new = (events[c].to_numpy(np.int64) for c in ("epoch", "idx", "new"))
    rows, applied = [], 0
    for epoch in epochs:
        upto = int(np.searchsorted(event_epochs, epoch, side="left"))
        current[idx[applied:upto]] = new[applied:upto]  # in event order: a later event wins
        applied = max(applied, upto)
        rows.append(current.copy())
    return np.stack(rows) if rows else np.zeros((0, len(current)), np.int64)


def attention_scores(epochs, alpha, *, original, true, events: pd.DataFrame, ambiguous=None) -> pd.DataFrame:
    """Per epoch: AUROC of low alpha against labels wrong at that epoch (`auroc_wrong_now`), against
    the original noisy labels (`auroc_noisy`) and, given the boolean `ambiguous`, against ambiguous
    faces (`auroc_ambiguous`); with `wrong_now`, the count of labels wrong at that epoch.

    `alpha` is epoch x sample (RunReader.attention_matrix), `original`/`true` 0-based labels by
    sample index, `events` the relabel events (epoch, idx, new, in order)."""
    alpha = np.atleast_2d(np.asarray(alpha, dtype=np.float64))
    true = np.asarray(true, dtype=np.int64)
    noisy = np.asarray(original) != true
    wrong = labels_by_epoch(original, events, epochs) != true
    frame = pd.DataFrame({
        "epoch": list(epochs),
        "wrong_now": wrong.sum(1),
        "auroc_wrong_now": [auroc(-row, w) for row, w in zip(alpha, wrong)],
        "auroc_noisy": [auroc(-row, noisy) for row in alpha],
    })
    if ambiguous is not None:
        frame["auroc_ambiguous"] = [auroc(-row, np.asarray(ambiguous, bool)) for row in alpha]
    return frame


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
    """Per-epoch relabel quality and attention AUROCs of a run trained on the built-in benchmark
    (None when the run has no ground truth): relabel_quality's columns, `alpha_auroc` (against the
    original noisy labels) and attention_scores' wrong_now, auroc_wrong_now and auroc_ambiguous."""
    groundtruth = reader.groundtruth()
    if groundtruth is None:
        return None
    truth = truth_table(reader.samples("train"), groundtruth)
    epochs, alpha, _ = reader.attention_matrix()
    events = reader.relabels()
    quality = relabel_quality(original=truth["label"], true=truth["true_label"], events=events, epochs=epochs)
    if not epochs:
        return quality.assign(alpha_auroc=[], wrong_now=[], auroc_wrong_now=[], auroc_ambiguous=[])
    scores = attention_scores(epochs, alpha, original=truth["label"], true=truth["true_label"], events=events,
                              ambiguous=truth_ambiguity(truth) >= AMBIGUOUS)
    return quality.assign(alpha_auroc=scores["auroc_noisy"].to_numpy(), wrong_now=scores["wrong_now"].to_numpy(),
                          auroc_wrong_now=scores["auroc_wrong_now"].to_numpy(),
                          auroc_ambiguous=scores["auroc_ambiguous"].to_numpy())


def truth_ambiguity(truth: pd.DataFrame) -> np.ndarray:
    """The ambiguity (scn.synth.noise.ambiguity) of each face of a ground-truth table: as recorded,
    else recomputed from its action units and degradations (tables written before it was
    recorded); NaN for a table that has neither."""
    if "ambiguity" in truth and truth["ambiguity"].notna().all():
        return truth["ambiguity"].to_numpy(np.float64)
    if not {f"au{au:02d}" for au in ACTION_UNITS} <= set(truth.columns):
        return np.full(len(truth), np.nan)
    return ambiguity(truth)
