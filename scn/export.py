"""A run's training samples as one table, for a spreadsheet or another tool: what each sample was
labelled, what SCN made of it (final label, attention, p(given label)), and what the user's review
decided.

    image, original_label, final_label, reviewed_label, last_alpha, mean_alpha, last_p_given,
    relabel_count
"""
import numpy as np
import pandas as pd

from scn import analysis
from scn.store import RunReader

COLUMNS = ["image", "original_label", "final_label", "reviewed_label", "last_alpha", "mean_alpha",
           "last_p_given", "relabel_count"]


def sample_table(reader: RunReader) -> pd.DataFrame:
    """One row per training sample, in the run's sample order.

    original_label is the dataset's; final_label the one the trainer ended with (its last relabel);
    reviewed_label the label after the user's review (of a relabel, or of the image's final label),
    empty for samples never reviewed (scn.review writes the same labels into the RAF-DB file). last_alpha and
    last_p_given are from the latest recorded epoch (p_given: the probability of the label the sample
    was trained with); mean_alpha over every recorded epoch. Labels are class names; values the run
    never recorded (no epoch yet, or a store older than p_given) are left empty.
    """
    samples, original = reader.samples("train"), reader.original_labels()
    names = np.asarray(reader.class_names() or [str(c) for c in range(original.max(initial=-1) + 1)],
                       dtype=object)
    events, reviews, image_reviews = reader.relabels(), reader.reviews(), reader.image_reviews()
    final = analysis.reviewed_labels(original=original, events=events, reviews=reviews.iloc[:0])
    reviewed = analysis.reviewed_labels(original=original, events=events, reviews=reviews,
                                        image_reviews=image_reviews)
    was_reviewed = np.isin(np.arange(len(samples)),
                           np.concatenate([reviews["idx"].to_numpy(), image_reviews["idx"].to_numpy()]))
    latest = reader.attention()
    empty = np.full(len(samples), np.nan)
    return pd.DataFrame({
        "image": samples["name"].to_numpy(),
        "original_label": names[original],
        "final_label": names[final],
        "reviewed_label": np.where(was_reviewed, names[reviewed], ""),
        "last_alpha": latest["alpha"].to_numpy(np.float64) if len(latest) else empty,
        "mean_alpha": _mean_over_epochs(reader.attention_matrix()[1], empty),
        "last_p_given": latest["p_given"].to_numpy(np.float64) if len(latest) else empty,
        "relabel_count": np.bincount(events["idx"].to_numpy(np.int64), minlength=len(samples)),
    }, columns=COLUMNS)


def _mean_over_epochs(alpha: np.ndarray, empty: np.ndarray) -> np.ndarray:
    """Per sample, the mean of alpha[epoch, sample] over the epochs that saw it (a stopped epoch
    leaves NaN for the samples it did not reach); NaN for a sample no epoch saw."""
    if not alpha.size:
        return empty
    seen = ~np.isnan(alpha)
    total = np.where(seen, alpha, 0).sum(0, dtype=np.float64)
    return np.divide(total, seen.sum(0), out=empty.copy(), where=seen.any(0))


def sample_csv(reader: RunReader) -> str:
    """sample_table as CSV text (4 decimals)."""
    return sample_table(reader).to_csv(index=False, float_format="%.4f")
