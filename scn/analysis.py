"""What a run's records mean, for the app's pages: alpha across epochs, relabel events marked right
or wrong, degradation kinds and ambiguity from the benchmark's ground truth, per-class
precision/recall/F1, training progress, whether rank regularization acted, and the corrected label
file after review. Pure functions over pandas/numpy (no I/O, no plotting); the ground-truth scores
themselves (AUROC, relabel precision/recall/damage) are scn.metrics', shared with the benchmarks.
"""
import numpy as np
import pandas as pd

from scn.classes import CLASS_NAMES_WITH_CONTEMPT, canonical_name
from scn.metrics import truth_ambiguity, truth_table

# Degradations, as the generator records them: (column, kind, test that it was applied).
# A kind of None names the degradation by the column's value (the occlusion: glasses, hand...).
DEGRADATIONS = (
    ("occlusion", None, None),
    ("blur_sigma", "blur", lambda v: v > 0),
    ("resolution_scale", "low-res", lambda v: v < 1),
    ("noise_sigma", "noise", lambda v: v > 0),
    ("jpeg_quality", "jpeg", lambda v: v < 60),
)
NOT_APPLIED = ("", "none", "nan")


def degradation_kinds(table: pd.DataFrame) -> list:
    """Per row, the degradations applied, joined by '+' ('none' when there are none)."""
    parts = []
    for column, kind, applied in DEGRADATIONS:
        if column not in table:
            continue
        values = table[column]
        if kind is None:
            text = values.fillna("").astype(str).str.strip().str.lower()
            parts.append(np.where(text.isin(NOT_APPLIED), "", text))
        else:
            parts.append(np.where(applied(pd.to_numeric(values, errors="coerce").fillna(0)), kind, ""))
    if not parts:
        return ["none"] * len(table)
    return ["+".join(filter(None, kinds)) or "none" for kinds in zip(*parts)]


def match_groundtruth(samples: pd.DataFrame, groundtruth: pd.DataFrame | None) -> pd.DataFrame | None:
    """The benchmark's truth for a run's training samples (RunReader.samples('train')), indexed by
    idx: true_label (0-based), is_noisy, degradation ('none', 'blur', 'hand+jpeg', ...), ambiguity
    (NaN where unknown), intensity and noise_model when known. None without ground truth;
    ValueError when it does not cover the run."""
    if groundtruth is None or not len(samples):
        return None
    truth = truth_table(samples, groundtruth)
    columns = ["true_label", "is_noisy", "degradation", "ambiguity"]
    columns += [c for c in ("intensity", "noise_model") if c in truth]
    return truth.assign(degradation=degradation_kinds(truth), ambiguity=truth_ambiguity(truth)).set_index("idx")[columns]


def group_gap(alpha: np.ndarray, is_high: np.ndarray) -> np.ndarray:
    """mean(alpha of the high group) - mean(alpha of the low group), per epoch row; the quantity
    the rank regularisation pushes above margin_1."""
    alpha, is_high = np.atleast_2d(alpha), np.atleast_2d(is_high)
    with np.errstate(invalid="ignore", divide="ignore"):
        high = np.where(is_high, alpha, 0).sum(1) / is_high.sum(1)
        low = np.where(~is_high, alpha, 0).sum(1) / (~is_high).sum(1)
    return high - low


def histograms(alpha: np.ndarray, *, bins: int = 40) -> tuple:
    """Per-epoch histograms of alpha over a shared range: (counts[epoch, bin], bin edges)."""
    alpha = np.atleast_2d(alpha)
    if alpha.size == 0:
        return np.zeros((0, bins), np.int64), np.linspace(0, 1, bins + 1)
    lo, hi = float(alpha.min()), float(alpha.max())
    if hi - lo < 1e-6:
        lo, hi = lo - 0.01, hi + 0.01
    edges = np.linspace(lo, hi, bins + 1)
    return np.stack([np.histogram(row, bins=edges)[0] for row in alpha]), edges


def mark_events(events: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Add true_label, `right` (the new label is the true class) and `broke_clean` (the label it
    replaced was the true class) to relabel events; events of samples without truth get NaN/False."""
    true = truth["true_label"].reindex(events["idx"]).to_numpy()
    return events.assign(true_label=true, right=events["new"].to_numpy() == true,
                         broke_clean=events["old"].to_numpy() == true)


def normalise_rows(matrix) -> np.ndarray:
    """Confusion matrix with each true-class row summing to 1 (rows without samples stay 0)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)


def per_class_metrics(matrix, *, class_names) -> pd.DataFrame:
    """Precision, recall, F1 and support per class from a confusion matrix (rows = true class).
    F1 is 2·TP / (2·TP + FP + FN): 0, not undefined, for a class that occurs and is never hit,
    and undefined (NaN) only for a class that neither occurs nor is predicted."""
    matrix = np.asarray(matrix, dtype=np.float64)
    tp = np.diag(matrix)
    predicted, support = matrix.sum(axis=0), matrix.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.full_like(tp, np.nan), where=predicted > 0)
    recall = np.divide(tp, support, out=np.full_like(tp, np.nan), where=support > 0)
    occurring = predicted + support  # 2·TP + FP + FN
    f1 = np.divide(2 * tp, occurring, out=np.full_like(tp, np.nan), where=occurring > 0)
    return pd.DataFrame({"class": list(class_names)[: len(tp)], "precision": precision,
                         "recall": recall, "f1": f1, "support": support.astype(int)})


def macro_f1(matrix) -> float:
    """Mean F1 over the classes that occur (as truth or as prediction), a class never hit counting
    as 0, as scikit-learn's f1_score(average="macro", zero_division=0). Skipping such classes would
    praise a model that predicts one class: 0.56 instead of 0.08 on a 7-class matrix."""
    matrix = np.asarray(matrix, dtype=np.float64)
    occurring = (matrix.sum(axis=0) + matrix.sum(axis=1)) > 0
    if not occurring.any():
        return float("nan")
    f1 = per_class_metrics(matrix, class_names=range(len(matrix)))["f1"].to_numpy()
    return float(f1[occurring].mean())


def reviewed_labels(*, original, events: pd.DataFrame, reviews: pd.DataFrame,
                    image_reviews: pd.DataFrame | None = None) -> np.ndarray:
    """Training labels after review. Each sample keeps the label its latest relabel event (in the
    order of `events`) gave it, unless that event's id was reverted in `reviews`, in which case it
    goes back to its original label; a review of the image itself (`image_reviews`: idx, label)
    overrides both. Where a sample has both, the later action wins (`time` of either review;
    without times, the image review)."""
    labels = np.asarray(original, dtype=np.int64).copy()
    event_review_time = pd.Series(dtype=float)
    if len(events):
        latest = events.groupby("idx").last()
        reverted = set(reviews.loc[reviews["decision"] == "revert", "event_id"])
        keep = ~latest["id"].isin(reverted)
        labels[latest.index[keep].to_numpy()] = latest.loc[keep, "new"].to_numpy()
        if "time" in reviews:
            event_review_time = latest["id"].map(reviews.set_index("event_id")["time"]).dropna()
    if image_reviews is not None and len(image_reviews):
        if "time" in image_reviews:
            overruled = image_reviews["idx"].map(event_review_time) > image_reviews["time"]
            image_reviews = image_reviews[~overruled]
        labels[image_reviews["idx"].to_numpy()] = image_reviews["label"].to_numpy()
    return labels


def rafdb_label_file(names, labels, *, class_names) -> str:
    """A label list in RAF-DB's format ('train_00001.jpg 4', 1-based in RAF-DB's class order, with
    contempt as 8). RAF-DB names lose their '_aligned' suffix; relative paths (ImageFolder) stay."""
    order = [CLASS_NAMES_WITH_CONTEMPT.index(canonical_name(c)) + 1 for c in class_names]

    def listed(name: str) -> str:
        return name if "/" in name else name.replace("_aligned.", ".")

    return "".join(f"{listed(str(n))} {order[int(label)]}\n" for n, label in zip(names, labels))


def progress(steps: pd.DataFrame, *, total_epochs: int | None, steps_per_epoch: int | None) -> tuple:
    """(fraction of training done, seconds left or None) from the logged steps. The rate comes from
    the latest 50 steps only, so slow first steps and old pauses (stop, resume) fade out of it."""
    if not len(steps) or not total_epochs:
        return 0.0, None
    per_epoch = steps_per_epoch or int(steps.loc[steps["epoch"] == steps["epoch"].min(), "step"].max()) + 1
    position = (steps["epoch"] - 1 + (steps["step"] + 1) / per_epoch) / total_epochs
    recent = steps.assign(position=position).tail(50)
    done = float(min(1.0, recent["position"].iloc[-1]))
    span = recent["position"].iloc[-1] - recent["position"].iloc[0]
    seconds = recent["time"].iloc[-1] - recent["time"].iloc[0]
    if span <= 0 or not seconds > 0:
        return done, None
    return done, float((1.0 - done) * seconds / span)


def rank_reg_activity(epoch: pd.Series, *, rank_reg: bool) -> str:
    """Whether rank regularization acted in one epoch (a row of RunReader.epoch_metrics()), in words:
    the share of its steps whose hinge max(0, margin_1 - gap) was above 0, and the hinge's mean.
    `rank_reg`: whether the run trains with it (TrainConfig.uses_rank_reg)."""
    if not rank_reg:
        return "rank regularization: off in this run"
    share, mean = epoch.get("rr_active_share"), epoch.get("rr_hinge_mean")
    if share is None or pd.isna(share):
        return (f"rank regularization: not recorded for epoch {int(epoch['epoch'])} (an alpha warm-up "
                "epoch, or a run from before the hinge was recorded)")
    text = (f"rank regularization: hinge above 0 on {share:.0%} of epoch {int(epoch['epoch'])}'s steps "
            f"(mean hinge {mean:.4f})")
    if share == 0:
        text += "; L_RR did not act: the groups' alpha gap already exceeded margin_1 on every step"
    return text
