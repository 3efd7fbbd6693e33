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


def test_alpha_with_spread_or_mid_range_is_not_collapsed():
    rng = np.random.default_rng(0)
    assert collapse.alpha_collapse(np.clip(rng.normal(0.9, 0.08, 500), 0, 1)) is None
    assert collapse.alpha_collapse(np.full(100, 0.5)) is None
    assert collapse.alpha_collapse([np.nan, 0.01]) is None  # one weight is no distribution


def test_relabel_surge_above_the_share():
    assert collapse.relabel_surge(relabels=300, train_size=1000).figures["share"] == 0.3
    assert collapse.relabel_surge(relabels=150, train_size=1000) is None


def test_relabels_into_one_class():
    into_happiness = [3] * 45 + [6] * 5
    warning = collapse.relabel_one_class(into_happiness, class_names=CLASS_NAMES)
    assert warning.figures == {"class": "happiness", "share": 0.9, "relabels": 50}
    assert collapse.relabel_one_class([3] * 10, class_names=CLASS_NAMES) is None  # too few to say
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
