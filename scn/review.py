"""A run's training labels after the user's review, as a RAF-DB label file and as the changes a
resumed run applies (`python -m scn train --resume --reviewed-labels`).

Reviews live in the run (scn.store.AppWriter.write_reviews for single relabel events, write_image_reviews
for an image's final label); this turns them, with the relabel history, into the labels a user
trains on next: relabels kept, reverted ones back at their original label, reviewed images at
the label their review gave them, test labels as they were.
"""
import numpy as np
import pandas as pd

from scn import analysis
from scn.labels import LabelState, RelabelEvent
from scn.store import RunReader

# Store events and checkpoint history name the same event by these (a step relabels a sample
# once per kind); the store's ids are what event reviews refer to.
EVENT_KEY = ["epoch", "step", "idx", "kind"]


def reviewed_labels(reader: RunReader) -> np.ndarray:
    """Every training sample's label after review, from the run's store."""
    return analysis.reviewed_labels(original=reader.original_labels(), events=reader.relabels(),
                                    reviews=reader.reviews(), image_reviews=reader.image_reviews())


def corrected_label_file(reader: RunReader) -> str:
    """Every image of the dataset in RAF-DB's label format: training images at their reviewed
    labels, validation (carved from the training images, or the dataset's own) and test images at
    theirs, so that training on the file loses none of the data."""
    train, val, test = reader.samples("train"), reader.samples("val"), reader.samples("test")
    return analysis.rafdb_label_file(
        pd.concat([train["name"], val["name"], test["name"]]),
        np.concatenate([reviewed_labels(reader), val["label"].to_numpy(), test["label"].to_numpy()]),
        class_names=reader.class_names())


def review_events(labels: LabelState, *, reader: RunReader, epoch: int, step: int) -> list:
    """The events (kind "review", at `epoch` and `step`) that take a resumed run's labels to its
    reviewed labels; empty when they already agree.

    The relabel history is the checkpoint's (`labels`), not the store's: a checkpoint taken
    mid-epoch holds relabels the store records only when that epoch ends. Its events are matched
    to the store's by EVENT_KEY, so a reverted event counts only while it is a sample's latest."""
    history = pd.DataFrame([{"epoch": e.epoch, "step": e.step, "idx": e.index, "new": e.new,
                             "kind": e.kind} for e in labels.history],
                           columns=["epoch", "step", "idx", "new", "kind"])
    stored = reader.relabels()[["id"] + EVENT_KEY]
    history = history.merge(stored, on=EVENT_KEY, how="left").fillna({"id": -1})
    target = analysis.reviewed_labels(original=labels.original.numpy(), events=history,
                                      reviews=reader.reviews(), image_reviews=reader.image_reviews())
    current = labels.current.numpy()
    return [RelabelEvent(epoch=epoch, step=step, index=int(i), old=int(current[i]), new=int(target[i]),
                         p_max=float("nan"), p_given=float("nan"), alpha=float("nan"), group="",
                         kind="review")
            for i in np.flatnonzero(target != current)]


def reviewed_indices(reader: RunReader) -> np.ndarray:
    """The training samples a person reviewed: by an image review, or by a review of one of its
    relabel events (accepted or reverted). The relabel rule leaves their labels alone."""
    return np.union1d(reader.reviews()["idx"].to_numpy(np.int64),
                      reader.image_reviews()["idx"].to_numpy(np.int64))


def current_labels(reader: RunReader) -> np.ndarray:
    """Every training sample's label after all recorded relabel events, before review."""
    return analysis.reviewed_labels(original=reader.original_labels(), events=reader.relabels(),
                                    reviews=reader.reviews().iloc[:0])


def pending_changes(reader: RunReader) -> pd.DataFrame:
    """The training samples whose reviewed label differs from their current one: idx, current,
    reviewed; what resuming with the reviewed labels would change."""
    current, reviewed = current_labels(reader), reviewed_labels(reader)
    idx = np.flatnonzero(current != reviewed)
    return pd.DataFrame({"idx": idx, "current": current[idx], "reviewed": reviewed[idx]})
