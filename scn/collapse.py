"""Collapse guards: the ways an SCN run fails without crashing, detected at the end of each epoch.

From random weights SCN can collapse: weighted cross-entropy `CE(alpha * logits)` is
lowered by shrinking alpha as long as the unscaled loss is above log K, and rank regularization only
asks the high group to beat the low group by margin_1, so alpha can sink toward 0 together, or sit
near 1 with no spread; a model still weak and biased toward the majority class then relabels many
training labels, mostly into that class, and ends up predicting one class. Each function below
looks for one symptom and returns a `CollapseWarning` (or None); the trainer records them in the
run store's `warnings` table and its log, and the app (a banner) and `scn runs` / `scn eval` show
them (`summary`). A training set with one label (`one_label`) is recorded there too, as epoch 0:
before training, the run is pointless already.

Thresholds (named constants below), set from the runs of `bench.standing_start` (docs/results.md):
- in the second half of the run, one class takes at least `DOMINANT_SHARE` of the validation
  predictions (the epoch's training predictions for a run without a validation split: the test
  split only reports) and at least `DOMINANT_RATIO` times its share of the validation labels (RAF-DB's
  majority class, happiness, is 39% of the labels, so a healthy model predicts it about that often).
  Not earlier: from a weak start a model that goes on to learn often predicts the majority class
  for most images in its first epochs (from synth-face at 30% noise, over 90% of them for up to six
  epochs before it reached 55%), while a collapsed one still does so at the end;
- alpha's mean is below `ALPHA_LOW` or above `ALPHA_HIGH` with a standard deviation under
  `ALPHA_MIN_STD`: the weights no longer rank samples;
- one epoch relabels more than `RELABEL_SHARE` of the training set, or at least
  `RELABEL_MIN_EVENTS` relabels of which at least `RELABEL_ONE_CLASS` go into one class (in the
  collapsing runs 94–100% went into happiness; a healthy run's few dozen relabels an epoch can
  lean 75–85% toward the majority class).
"""
from dataclasses import dataclass, field

import numpy as np

DOMINANT_SHARE = 0.9
DOMINANT_RATIO = 1.5
ALPHA_LOW = 0.1
ALPHA_HIGH = 0.95
ALPHA_MIN_STD = 0.02
RELABEL_SHARE = 0.2
RELABEL_ONE_CLASS = 0.9
RELABEL_MIN_EVENTS = 20

TITLES = {"one_label": "Every training label is one class",
          "one_class": "Predictions collapsed to one class",
          "alpha_collapsed": "Attention weights collapsed",
          "relabel_surge": "Relabeling surge",
          "relabel_one_class": "Relabels flow into one class"}

# What each warning means for the run and what to try; shown beside the warning in the app.
ADVICE = {
    "one_label": (
        "With one class the model can only learn to predict it, and SCN has nothing to relabel to. "
        "Check the dataset's label file and format (--format), or the noise file that replaced the labels."),
    "one_class": (
        "The model predicts (almost) one class: it has collapsed, and its accuracy is the share of "
        "that class. Start from a face-recognition backbone (--pretrained dlib-face, at 112 px or more), or keep alpha at 1 for the "
        "first epochs (--alpha-warmup-epochs), and relabel later or only once validation accuracy is "
        "reasonable (--relabel-epoch, --relabel-min-val-acc)."),
    "alpha_collapsed": (
        "The attention weights no longer rank samples: all of them sit near 0 (weighted cross-entropy "
        "is lowered by shrinking alpha while the model is still poor) or near 1 with no spread. "
        "Start from a face-recognition backbone (--pretrained dlib-face, at 112 px or more), start alpha near 1 (--alpha-bias-init 3) "
        "or keep it at 1 for the first epochs (--alpha-warmup-epochs)."),
    "relabel_surge": (
        "This epoch rewrote an unusually large share of the training labels: the model is "
        "overruling its labels wholesale, which breaks clean labels. Relabel later (--relabel-epoch), "
        "with a wider margin (--margin2), or only once validation accuracy is reasonable "
        "(--relabel-min-val-acc)."),
    "relabel_one_class": (
        "Relabels flow mostly into one class: a model biased toward that class is rewriting other "
        "classes' labels to it, which feeds the bias. Relabel later (--relabel-epoch), only once "
        "validation accuracy is reasonable (--relabel-min-val-acc), or start from a face backbone."),
}


@dataclass(frozen=True)
class CollapseWarning:
    """One symptom found at the end of an epoch: `kind` (one of KINDS), a sentence, its figures."""

    kind: str
    message: str
    figures: dict = field(default_factory=dict)


def one_label(labels, *, class_names) -> CollapseWarning | None:
    """Every training label is the same class (checked once, before training)."""
    present = np.unique(np.asarray(labels))
    if len(present) != 1:
        return None
    name = class_names[int(present[0])]
    return CollapseWarning("one_label", f"every training label is {name}: with one class the model can only "
                           "learn to predict it, and SCN has nothing to relabel to", {"class": name})


def summary(table) -> list:
    """One line per kind of warning in a run's `warnings` table (RunReader.warnings), in the order
    they first appeared: its title, when (the epochs, or "before training"), the latest message."""
    lines = []
    for kind, rows in table.groupby("kind", sort=False):
        epochs = [int(e) for e in rows["epoch"] if e > 0]
        when = ", ".join(["before training"] * (len(epochs) < len(rows)) + ([f"epoch {', '.join(map(str, epochs))}"]
                                                                           if epochs else []))
        lines.append({"kind": kind, "title": TITLES.get(kind, kind), "when": when,
                      "message": rows["message"].iloc[-1]})
    return lines


def dominant_prediction(confusion, *, class_names, split: str = "validation") -> CollapseWarning | None:
    """One class takes most of the predictions. `confusion`: rows given label, columns prediction."""
    confusion = np.asarray(confusion, dtype=float)
    total = confusion.sum()
    if total == 0:
        return None
    predicted = confusion.sum(axis=0) / total
    labelled = confusion.sum(axis=1) / total
    top = int(predicted.argmax())
    share, label_share = float(predicted[top]), float(labelled[top])
    if share < DOMINANT_SHARE or share < DOMINANT_RATIO * label_share:
        return None
    return CollapseWarning(
        "one_class",
        f"{share:.0%} of the {split} predictions are {class_names[top]} "
        f"(it is {label_share:.0%} of the labels)",
        {"class": class_names[top], "prediction_share": share, "label_share": label_share})


def alpha_collapse(alpha) -> CollapseWarning | None:
    """Attention weights all near 0, or all near 1 with almost no spread."""
    alpha = np.asarray(alpha, dtype=float)
    alpha = alpha[np.isfinite(alpha)]
    if len(alpha) < 2:
        return None
    mean, std = float(alpha.mean()), float(alpha.std())
    if std >= ALPHA_MIN_STD or ALPHA_LOW <= mean <= ALPHA_HIGH:
        return None
    where = "0" if mean < ALPHA_LOW else "1"
    return CollapseWarning("alpha_collapsed", f"alpha has collapsed toward {where}: mean {mean:.3f}, std {std:.3f}",
                           {"alpha_mean": mean, "alpha_std": std})


def relabel_surge(*, relabels: int, train_size: int) -> CollapseWarning | None:
    """One epoch relabels an unusually large share of the training set."""
    share = relabels / max(train_size, 1)
    if share <= RELABEL_SHARE:
        return None
    return CollapseWarning("relabel_surge",
                           f"{relabels} relabels in one epoch, {share:.0%} of the {train_size} training labels",
                           {"relabels": relabels, "train_size": train_size, "share": share})


def relabel_one_class(new_labels, *, class_names) -> CollapseWarning | None:
    """Most of an epoch's relabels go into one class."""
    new_labels = np.asarray(new_labels, dtype=int)
    if len(new_labels) < RELABEL_MIN_EVENTS:
        return None
    counts = np.bincount(new_labels, minlength=len(class_names))
    top = int(counts.argmax())
    share = float(counts[top]) / len(new_labels)
    if share < RELABEL_ONE_CLASS:
        return None
    return CollapseWarning("relabel_one_class",
                           f"{share:.0%} of this epoch's {len(new_labels)} relabels are to {class_names[top]}",
                           {"class": class_names[top], "share": share, "relabels": int(len(new_labels))})


def past_half(*, epoch: int, epochs: int) -> bool:
    """Whether `epoch` (1-based) lies in the second half of an `epochs`-long run, where a model that
    still predicts one class has not merely started slowly."""
    return epoch > epochs // 2


def check_epoch(*, confusion, alpha, new_labels, train_size: int, class_names, epoch: int, epochs: int,
                check_alpha: bool = True, split: str = "validation") -> list:
    """Every symptom of epoch `epoch` of `epochs`. `confusion`: on `split` (rows given, columns
    predicted); `alpha`: the epoch's attention weights (ignored unless `check_alpha`, e.g. for the
    baseline, whose alpha is 1 by construction); `new_labels`: the new class of each of the epoch's
    relabel events."""
    found = [dominant_prediction(confusion, class_names=class_names, split=split)
             if past_half(epoch=epoch, epochs=epochs) else None,
             alpha_collapse(alpha) if check_alpha else None,
             relabel_surge(relabels=len(new_labels), train_size=train_size),
             relabel_one_class(new_labels, class_names=class_names)]
    return [w for w in found if w is not None]
