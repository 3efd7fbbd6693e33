"""A run's training labels after the user's review of its relabels, as a RAF-DB label file.

Reviews live in the run (RunReader.write_review); this turns them, with the relabel history, into
the file a user trains on next: relabels kept, reverted ones back at their original label, test
labels as they were.
"""
import numpy as np
import pandas as pd

from scn import analysis
from scn.store import RunReader


def corrected_label_file(reader: RunReader) -> str:
    train, test = reader.samples("train"), reader.samples("test")
    labels = analysis.reviewed_labels(original=reader.original_labels(), events=reader.relabels(),
                                      reviews=reader.reviews())
    return analysis.rafdb_label_file(pd.concat([train["name"], test["name"]]),
                                     np.concatenate([labels, test["label"].to_numpy()]),
                                     class_names=reader.class_names())
