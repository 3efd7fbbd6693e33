"""What a run's records mean, scored against ground truth where it is known.

Pure functions over pandas/numpy (no I/O, no plotting), shared by the app pages and the benchmark
scripts: how well low attention weights flag noisy labels (AUROC by rank statistics), whether relabels
restored true classes (precision), fixed the noisy labels (recall) or broke clean ones (damage),
per-class precision/recall/F1 from confusion matrices, and the corrected label file after review.
"""
from pathlib import PurePath

import numpy as np
import pandas as pd

from scn.classes import CLASS_NAMES, CLASS_NAMES_WITH_CONTEMPT, canonical_name

# Column names the benchmark generator may use for each field of its ground-truth table, tried in
# order, so that a renamed column there costs one entry here rather than a broken page.
NAME_COLUMNS = ("image", "name", "file", "filename", "path")
TRUE_COLUMNS = ("true_label", "true_class", "label_true", "true", "clean_label", "expression")
GIVEN_COLUMNS = ("given_label", "noisy_label", "observed_label", "label", "given_class", "given")
NOISY_COLUMNS = ("is_noisy", "noisy", "label_noise", "flipped")
SPLIT_COLUMNS = ("split",)
# Degradations, as the generator records them: (columns tried, kind, test that it was applied).
# A kind of None names the degradation by the column's value (the occlusion: glasses, hand...).
DEGRADATIONS = (
    (("occlusion", "occlusion_kind"), None, None),
    (("blur_sigma", "blur"), "blur", lambda v: v > 0),
    (("resolution_scale", "low_res"), "low-res", lambda v: v < 1),
    (("noise_sigma",), "noise", lambda v: v > 0),
    (("jpeg_quality",), "jpeg", lambda v: v < 60),
)
NOT_APPLIED = ("", "none", "no", "false", "0", "nan")

def sample_key(name: str) -> str:
    """The join key of an image name across layouts: 'Image/aligned/train_00001_aligned.jpg',
    'train_00001.jpg' and 'train_00001' all give 'train_00001'."""
    stem = PurePath(str(name)).stem
    return stem[: -len("_aligned")] if stem.endswith("_aligned") else stem


def _first(columns, candidates):
    lowered = {c.lower(): c for c in columns}
    return next((lowered[c] for c in candidates if c in lowered), None)


def _class_indices(values: pd.Series, *, class_names, reference=None) -> pd.Series:
    """Class labels as 0-based indices into `class_names`: names are mapped by name; integers are
    taken as 0-based unless `reference` (the labels the run trained with) shows they are 1-based."""
    if values.dtype == object or pd.api.types.is_string_dtype(values):
        strings = values.astype(str)
        if not strings.str.fullmatch(r"-?\d+").all():
            lookup = {v: list(class_names).index(canonical_name(v)) for v in strings.unique()}
            return strings.map(lookup).astype(np.int64)
        values = strings.astype(np.int64)
    values = values.astype(np.int64)
    if reference is not None and len(reference):
        if (values - 1 == reference).mean() > (values == reference).mean():
            values = values - 1
    elif values.min() >= 1 and values.max() == len(class_names):
        values = values - 1
    return values


def degradation_kinds(table: pd.DataFrame) -> list:
    """Per row, the degradations applied, joined by '+' ('none' when there are none)."""
    parts = []
    for candidates, kind, applied in DEGRADATIONS:
        column = _first(table.columns, candidates)
        if column is None:
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


def match_groundtruth(samples: pd.DataFrame, groundtruth: pd.DataFrame | None, *,
                      class_names=CLASS_NAMES) -> pd.DataFrame | None:
    """Join the benchmark's ground truth to a run's training samples by image name.

    `samples`: RunReader.samples('train') (idx, name, label). Returns a frame indexed by idx with
    true_label (0-based), is_noisy, degradation (e.g. 'none', 'blur', 'hand+blur'), and
    intensity when the table has it; None when there is no usable ground truth.
    """
    if groundtruth is None or not len(groundtruth) or not len(samples):
        return None
    columns = groundtruth.columns
    name_col, true_col = _first(columns, NAME_COLUMNS), _first(columns, TRUE_COLUMNS)
    if name_col is None or true_col is None:
        return None
    table = groundtruth
    split_col = _first(columns, SPLIT_COLUMNS)
    if split_col is not None:
        table = table[table[split_col].astype(str).str.lower() == "train"]
    table = table.assign(_key=table[name_col].map(sample_key)).drop_duplicates("_key")
    keyed = samples.assign(_key=samples["name"].map(sample_key))
    joined = keyed.merge(table, on="_key", how="inner", suffixes=("", "_gt"))
    if not len(joined):
        return None
    given_col = _first([c for c in columns if c != true_col], GIVEN_COLUMNS)
    given = None
    if given_col is not None:
        given_name = given_col if given_col not in samples.columns else f"{given_col}_gt"
        given = _class_indices(joined[given_name], class_names=class_names,
                               reference=joined["label"])
    true = _class_indices(joined[true_col], class_names=class_names,
                          reference=given if given is not None else joined["label"])
    noisy_col = _first(columns, NOISY_COLUMNS)
    if noisy_col is None:
        is_noisy = joined["label"].to_numpy() != true.to_numpy()
    else:
        flags = joined[noisy_col].astype(str).str.strip().str.lower()
        is_noisy = ~flags.isin(NOT_APPLIED + ("0.0",))
    result = pd.DataFrame({
        "idx": joined["idx"].to_numpy(),
        "true_label": true.to_numpy(),
        "is_noisy": np.asarray(is_noisy, dtype=bool),
        "degradation": degradation_kinds(joined),
    })
    if "intensity" in columns:
        result["intensity"] = joined["intensity"].to_numpy()
    return result.set_index("idx").sort_index()


def auroc(scores, positives) -> float:
    """Area under the ROC curve of `scores` ranking `positives` first (Mann-Whitney U, ties get
    average ranks). NaN when either class is empty. For "low alpha flags a noisy label" pass
    scores = -alpha, positives = is_noisy."""
    scores = np.asarray(scores, dtype=np.float64)
    positives = np.asarray(positives, dtype=bool)
    n_pos = int(positives.sum())
    n_neg = len(positives) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = pd.Series(scores).rank(method="average").to_numpy()
    u = ranks[positives].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def auroc_by_epoch(epochs, alpha: np.ndarray, is_noisy) -> pd.DataFrame:
    """AUROC of "low alpha flags a noisy label" for each epoch row of `alpha` (epoch x sample)."""
    return pd.DataFrame({"epoch": list(epochs),
                         "auroc": [auroc(-row, is_noisy) for row in np.asarray(alpha)]})


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


def labels_after_epochs(original, events: pd.DataFrame, epochs) -> dict:
    """The label of every sample at the end of each of `epochs`, replaying `events` (id order)."""
    current = np.asarray(original, dtype=np.int64).copy()
    ordered = events.sort_values("id") if "id" in events else events
    result, previous = {}, -np.inf
    for epoch in sorted(epochs):
        chunk = ordered[(ordered["epoch"] > previous) & (ordered["epoch"] <= epoch)]
        last = chunk.groupby("idx")["new"].last()
        current[last.index.to_numpy()] = last.to_numpy()
        result[epoch] = current.copy()
        previous = epoch
    return result


def mark_events(events: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Add true_label, `right` (the new label is the true class) and `broke_clean` (the label it
    replaced was the true class) to relabel events; events of samples without truth get NaN/False."""
    true = truth["true_label"].reindex(events["idx"]).to_numpy()
    return events.assign(true_label=true, right=events["new"].to_numpy() == true,
                         broke_clean=events["old"].to_numpy() == true)


def relabel_quality(events: pd.DataFrame, *, original, truth: pd.DataFrame, epochs) -> pd.DataFrame:
    """Per epoch: relabel events, how many set the true class (precision = right / events), the
    share of noisy labels that are fixed by the end of the epoch (recall), and the number of clean
    labels that are wrong by the end of the epoch (damage)."""
    original = np.asarray(original, dtype=np.int64)
    true = truth["true_label"].reindex(np.arange(len(original)))
    known = true.notna().to_numpy()
    true = true.fillna(-1).to_numpy().astype(np.int64)
    noisy = known & (original != true)
    clean = known & (original == true)
    marked = mark_events(events, truth)
    per_epoch = marked.groupby("epoch").agg(events=("idx", "size"), right=("right", "sum"))
    states = labels_after_epochs(original, events, epochs)
    rows = []
    for epoch in sorted(epochs):
        n = int(per_epoch["events"].get(epoch, 0))
        right = int(per_epoch["right"].get(epoch, 0))
        labels = states[epoch]
        rows.append({
            "epoch": epoch, "events": n, "right": right,
            "precision": right / n if n else float("nan"),
            "noisy_fixed": int((noisy & (labels == true)).sum()),
            "recall": float((noisy & (labels == true)).sum() / noisy.sum()) if noisy.any() else float("nan"),
            "clean_broken": int((clean & (labels != true)).sum()),
        })
    return pd.DataFrame(rows, columns=["epoch", "events", "right", "precision", "noisy_fixed",
                                       "recall", "clean_broken"])


def normalise_rows(matrix) -> np.ndarray:
    """Confusion matrix with each true-class row summing to 1 (rows without samples stay 0)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)


def per_class_metrics(matrix, *, class_names) -> pd.DataFrame:
    """Precision, recall, F1 and support per class from a confusion matrix (rows = true class)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    tp = np.diag(matrix)
    predicted, support = matrix.sum(axis=0), matrix.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.full_like(tp, np.nan), where=predicted > 0)
    recall = np.divide(tp, support, out=np.full_like(tp, np.nan), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.full_like(tp, np.nan),
                   where=np.nan_to_num(denom) > 0)
    return pd.DataFrame({"class": list(class_names)[: len(tp)], "precision": precision,
                         "recall": recall, "f1": f1, "support": support.astype(int)})


def reviewed_labels(*, original, events: pd.DataFrame, reviews: pd.DataFrame) -> np.ndarray:
    """Training labels after review: each sample keeps the label its latest relabel gave it, unless
    that relabel was reverted, in which case it goes back to its original label."""
    labels = np.asarray(original, dtype=np.int64).copy()
    if not len(events):
        return labels
    latest = events.sort_values("id").groupby("idx").last()
    reverted = set(reviews.loc[reviews["decision"] == "revert", "event_id"])
    keep = ~latest["id"].isin(reverted)
    labels[latest.index[keep].to_numpy()] = latest.loc[keep, "new"].to_numpy()
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
