import numpy as np
import pytest

from scn import collapse
from scn.classes import CLASS_NAMES
from scn.store import RunReader
from tests.helpers import train_collapsing_run

HEALTHY = np.diag([20, 5, 10, 60, 25, 10, 30]) + 1  # rows given label, columns prediction


def one_class_confusion(column: int) -> np.ndarray:
    confusion = np.zeros((7, 7), int)
    confusion[:, column] = [20, 5, 10, 60, 25, 10, 30]
    return confusion


def test_dominant_prediction_flags_a_model_that_predicts_one_class():
    warning = collapse.dominant_prediction(one_class_confusion(3), class_names=CLASS_NAMES)
    assert warning.kind == "one_class" and warning.figures["class"] == "happiness"
    assert warning.figures["prediction_share"] == 1.0 and "happiness" in warning.message
    assert collapse.dominant_prediction(HEALTHY, class_names=CLASS_NAMES) is None
    assert "of the test predictions" in collapse.dominant_prediction(one_class_confusion(0), class_names=CLASS_NAMES,
                                                                      split="test").message


def confusion_of(*, labelled: int, predicted: int, total: int) -> np.ndarray:
    """A confusion matrix of `total` images of which `labelled` carry happiness (3) and `predicted`
    are predicted happiness, the rest given and predicted neutral (6)."""
    confusion = np.zeros((7, 7), int)
    confusion[3, 3] = min(labelled, predicted)
    confusion[3, 6] = labelled - confusion[3, 3]
    confusion[6, 3] = predicted - confusion[3, 3]
    confusion[6, 6] = total - confusion.sum()
    return confusion


@pytest.mark.parametrize("labelled, predicted, flagged", [
    (65, 92, False),  # 92% of the predictions, but happiness is 65% of the labels: under 1.5 times
    (10, 50, False),  # five times its share of the labels, but only half of the predictions
    (50, 90, True),  # exactly DOMINANT_SHARE, under two thirds of it labelled
    (100, 150, True),  # of 160: 93.75% of the predictions, exactly 1.5 times its 62.5% of the labels
])
def test_dominant_prediction_needs_both_the_share_and_the_ratio(labelled, predicted, flagged):
    total = 160 if labelled == 100 else 100
    warning = collapse.dominant_prediction(confusion_of(labelled=labelled, predicted=predicted, total=total),
                                           class_names=CLASS_NAMES)
    assert (warning is not None) == flagged
    if flagged:
        assert warning.figures == {"class": "happiness", "prediction_share": predicted / total,
                                   "label_share": labelled / total}
        assert warning.message == (f"{predicted / total:.0%} of the validation predictions are happiness "
                                   f"(it is {labelled / total:.0%} of the labels)")


def test_dominant_prediction_allows_a_majority_class_predicted_at_its_own_share():
    # 70% of the labels are happiness and 72% of the predictions: a majority, not a collapse.
    confusion = np.diag([5, 5, 5, 70, 5, 5, 5])
    confusion[0, 3] = 2
    assert collapse.dominant_prediction(confusion, class_names=CLASS_NAMES) is None
    assert collapse.dominant_prediction(np.zeros((7, 7)), class_names=CLASS_NAMES) is None


@pytest.mark.parametrize("alpha, where", [(np.full(100, 0.01), "0"), (np.full(100, 0.99), "1")])
def test_alpha_collapse_near_zero_or_one_without_spread(alpha, where):
    warning = collapse.alpha_collapse(alpha + np.linspace(0, 0.005, 100))
    assert warning.kind == "alpha_collapsed" and f"toward {where}" in warning.message


def test_alpha_collapse_reports_its_figures():
    warning = collapse.alpha_collapse([0.01, 0.011])  # two weights are enough to judge
    assert warning.figures == {"alpha_mean": pytest.approx(0.0105), "alpha_std": pytest.approx(0.0005)}
    assert warning.message == "alpha has collapsed toward 0: mean 0.010, std 0.000"


def test_alpha_collapse_figures_are_float64_over_the_trainer_s_float32_weights():
    alpha = np.random.default_rng(0).uniform(0, 0.02, 100_001).astype(np.float32)
    figures = collapse.alpha_collapse(alpha).figures
    assert figures["alpha_mean"] == alpha.astype(np.float64).mean()
    assert figures["alpha_std"] == alpha.astype(np.float64).std()


def test_alpha_collapse_limits_are_inclusive_for_a_healthy_run():
    assert collapse.alpha_collapse([0.02, 0.06]) is None  # std exactly ALPHA_MIN_STD: still spread
    assert collapse.alpha_collapse([collapse.ALPHA_LOW] * 2) is None
    assert collapse.alpha_collapse([collapse.ALPHA_HIGH] * 2) is None
    assert collapse.alpha_collapse([0.96, 0.96]).kind == "alpha_collapsed"


def test_alpha_with_spread_or_mid_range_is_not_collapsed():
    rng = np.random.default_rng(0)
    assert collapse.alpha_collapse(np.clip(rng.normal(0.9, 0.08, 500), 0, 1)) is None
    assert collapse.alpha_collapse(np.full(100, 0.5)) is None
    assert collapse.alpha_collapse([np.nan, 0.01]) is None  # one weight is no distribution


def test_relabel_surge_above_the_share():
    warning = collapse.relabel_surge(relabels=300, train_size=1000)
    assert warning.figures == {"relabels": 300, "train_size": 1000, "share": 0.3}
    assert warning.message == "300 relabels in one epoch, 30% of the 1000 training labels"
    assert collapse.relabel_surge(relabels=150, train_size=1000) is None
    assert collapse.relabel_surge(relabels=200, train_size=1000) is None  # exactly RELABEL_SHARE
    assert collapse.relabel_surge(relabels=1, train_size=1).figures["share"] == 1.0


def test_relabels_into_one_class():
    into_happiness = [3] * 45 + [6] * 5
    warning = collapse.relabel_one_class(into_happiness, class_names=CLASS_NAMES)
    assert warning.figures == {"class": "happiness", "share": 0.9, "relabels": 50}
    assert warning.message == "90% of this epoch's 50 relabels are to happiness"
    assert collapse.relabel_one_class([3] * 10, class_names=CLASS_NAMES) is None  # too few to say
    assert collapse.relabel_one_class([3] * collapse.RELABEL_MIN_EVENTS, class_names=CLASS_NAMES) is not None
    assert collapse.relabel_one_class([3] * 20 + [0] * 20, class_names=CLASS_NAMES) is None
    # A healthy run's relabels may lean toward the majority class without flooding into it.
    assert collapse.relabel_one_class([3] * 25 + [0, 1, 2, 4, 5, 6] * 1, class_names=CLASS_NAMES) is None


def test_check_epoch_over_a_collapsing_sequence():
    """A 6-epoch run as it collapses: healthy, then alpha sinks, then relabels flood into one class."""
    epochs = [
        dict(confusion=HEALTHY, alpha=np.linspace(0.3, 0.9, 100), new_labels=[], epoch=1),
        dict(confusion=HEALTHY, alpha=np.full(100, 0.02), new_labels=[0, 1, 2], epoch=2),
        dict(confusion=one_class_confusion(3), alpha=np.full(100, 0.02), new_labels=[3] * 300, epoch=4),
    ]
    kinds = [[w.kind for w in collapse.check_epoch(train_size=1000, class_names=CLASS_NAMES, epochs=6, **e)]
             for e in epochs]
    assert kinds == [[], ["alpha_collapsed"],
                     ["one_class", "alpha_collapsed", "relabel_surge", "relabel_one_class"]]
    baseline = collapse.check_epoch(train_size=1000, class_names=CLASS_NAMES, epochs=6, check_alpha=False,
                                    **epochs[1])
    assert baseline == []


def test_check_epoch_judges_the_validation_split_unless_told():
    def warning(**split):
        return collapse.check_epoch(confusion=one_class_confusion(3), alpha=np.linspace(0.5, 1, 50), new_labels=[],
                                    train_size=1000, class_names=CLASS_NAMES, epoch=6, epochs=6, **split)[0]
    assert "of the validation predictions" in warning().message
    assert "of the test predictions" in warning(split="test").message


def test_one_class_predictions_early_in_a_run_are_a_slow_start_not_a_collapse():
    """Measured from synth-face: runs that end at 55-76% predict the majority class for most
    validation images in their first epochs; only a model still doing so past half-way is flagged."""
    def kinds(epoch):
        return [w.kind for w in collapse.check_epoch(confusion=one_class_confusion(3), alpha=np.linspace(0.5, 1, 50),
                                                     new_labels=[], train_size=1000, class_names=CLASS_NAMES,
                                                     epoch=epoch, epochs=12)]
    assert [kinds(epoch) for epoch in (1, 6, 7, 12)] == [[], [], ["one_class"], ["one_class"]]


def test_every_kind_has_a_title_and_advice():
    assert set(collapse.TITLES) == set(collapse.ADVICE)


def test_a_tiny_run_whose_alpha_collapses_is_warned_about(tmp_path):
    run_dir = train_collapsing_run(tmp_path / "rafdb", tmp_path / "run")
    warnings = RunReader(run_dir).warnings()
    kinds = set(warnings["kind"])
    assert {"alpha_collapsed", "relabel_surge"} <= kinds
    assert warnings["epoch"].tolist() == [1] * len(warnings)
    row = warnings.set_index("kind").loc["alpha_collapsed"]
    assert row["figures"]["alpha_mean"] < collapse.ALPHA_LOW
    assert "collapse warning, epoch 1 (alpha_collapsed)" in (run_dir / "train.log").read_text()
