"""The noise models: pairwise targets, the annotator panel's rate, votes and where its wrong labels
fall, and the ambiguity of hand-made faces."""
import numpy as np
import pandas as pd
import pytest

from scn.classes import CLASS_NAMES
from scn.config import TrainConfig, option_specs
from scn.metrics import auroc
from scn.synth.config import SynthConfig
from scn.synth.dataset import split_classes
from scn.synth.expressions import ACTION_UNITS, prototype_vector
from scn.synth.noise import (LABEL_SOURCES, NOISE_MODELS, PAIRS, ambiguity, annotator_votes, noisy_labels,
                             pairwise_labels)
from scn.synth.sample import draw_sample, sample_rng, truth_row


@pytest.fixture(scope="module")
def faces() -> pd.DataFrame:
    """The ground truth of 700 benchmark faces, drawn but not rendered (the noise needs no pixels)."""
    classes = split_classes(700, split="train", balance="rafdb", seed=4)
    return pd.DataFrame([truth_row(draw_sample(sample_rng(seed=4, split="train", index=i), name,
                                               config=SynthConfig())) for i, name in enumerate(classes)])


def face(true_class: str, *, intensity: float, occlusion: str = "none", blur_sigma: float = 0.0) -> dict:
    aus = prototype_vector(true_class) * intensity
    return {"true_class": true_class, **{f"au{au:02d}": v for au, v in zip(ACTION_UNITS, aus)},
            "occlusion": occlusion, "blur_sigma": blur_sigma, "resolution_scale": 1.0, "noise_sigma": 0.0,
            "jpeg_quality": 90, "pose_yaw": 0.0, "pose_roll": 0.0}


def test_pairwise_noise_flips_only_to_the_confusable_class():
    true = np.arange(70000) % 7
    noisy = pairwise_labels(true, noise=0.2, seed=1)
    flipped = noisy != true
    assert abs(flipped.mean() - 0.2) < 0.01
    partner = np.array([CLASS_NAMES.index(PAIRS[name]) for name in CLASS_NAMES])
    assert np.array_equal(noisy[flipped], partner[true[flipped]])
    assert PAIRS["surprise"] == "fear" and PAIRS["disgust"] == "anger" and PAIRS["sadness"] == "neutral"


def test_ambiguity_of_hand_made_faces():
    table = pd.DataFrame([face("happiness", intensity=1.0), face("happiness", intensity=1.0, occlusion="mask"),
                          face("sadness", intensity=0.9), face("sadness", intensity=0.25),
                          face("anger", intensity=0.3), face("anger", intensity=0.3, blur_sigma=1.8)])
    clear_smile, masked_smile, sad, faint_sad, angry, blurred_angry = ambiguity(table)
    assert clear_smile < 0.01 and sad < 0.01
    assert masked_smile > clear_smile  # the mask hides the smile; only the cheeks are left
    assert faint_sad > 0.3  # a faint sadness is hard to tell from a resting face
    assert blurred_angry > angry


@pytest.mark.parametrize("label_from", LABEL_SOURCES)
@pytest.mark.parametrize("noise", [0.1, 0.3])
def test_the_panel_hits_the_asked_rate_and_errs_on_ambiguous_faces(faces, noise, label_from):
    given, votes = annotator_votes(faces, noise=noise, seed=0, annotators=5, label_from=label_from)
    true = np.array([CLASS_NAMES.index(c) for c in faces["true_class"]])
    wrong = given != true
    assert abs(wrong.mean() - noise) <= 1.5 / len(faces)
    assert votes.shape == (len(faces), 5) and votes.min() >= 0 and votes.max() < 7
    assert auroc(ambiguity(faces), wrong) > 0.8
    subtle = (faces["intensity"] > 0) & (faces["intensity"] < 0.35)
    assert wrong[subtle].mean() > 2 * wrong[faces["intensity"] > 0.6].mean()
    if label_from == "majority":
        counts = np.array([np.bincount(row, minlength=7) for row in votes])
        assert (counts[np.arange(len(given)), given] == counts.max(1)).all()


def test_the_panel_is_seeded_and_refuses_a_rate_it_cannot_reach(faces):
    one = annotator_votes(faces, noise=0.2, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(one, annotator_votes(faces, noise=0.2, seed=1)))
    assert not np.array_equal(one[1], annotator_votes(faces, noise=0.2, seed=2)[1])
    given, _ = annotator_votes(faces, noise=0.0, seed=1)
    assert np.array_equal(given, [CLASS_NAMES.index(c) for c in faces["true_class"]])
    with pytest.raises(ValueError, match="cannot get 97% of the labels wrong"):
        annotator_votes(faces, noise=0.97, seed=1)
    with pytest.raises(ValueError, match="label_from must be one of majority, single"):
        annotator_votes(faces, noise=0.1, seed=1, label_from="loudest")
    with pytest.raises(ValueError, match="noise model must be one of"):
        noisy_labels(faces, noise=0.1, seed=1, model="uniform")


def test_the_trainer_offers_the_same_models():
    specs = option_specs()
    assert specs["synth_noise_model"].limits["choices"] == NOISE_MODELS
    assert specs["synth_label_from"].limits["choices"] == LABEL_SOURCES
    with pytest.raises(ValueError, match="synth-noise-model must be one of"):
        TrainConfig(synth_noise_model="uniform")
