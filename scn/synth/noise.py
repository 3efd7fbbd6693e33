"""Label noise for the built-in benchmark: three models of how training labels go wrong.

    symmetric   each label flips with probability P to a uniformly chosen other class (the protocol
                of SCN's and EAC's noise files);
    pairwise    each label flips with probability P to its confusable class (surprise <-> fear,
                disgust <-> anger, sadness <-> neutral, happiness -> neutral), the asymmetric
                protocol of the noisy-label literature;
    annotators  instance-dependent: a panel of simulated annotators, each with a skill and class
                biases, looks at the visible evidence of each face and votes; the given label is
                the majority vote (or one annotator's). The panel's care is tuned so that a share
                P of the given labels is wrong, and the wrong ones fall on ambiguous faces.

What an annotator sees (`evidence`): the face's action units, minus what an occluder hides (a mask
hides the mouth, sunglasses the eyes), fitted against each class prototype at its best intensity;
the worse the fit of a class, the less likely that class. Blur, low resolution, sensor noise, JPEG
artefacts and pose make every fit less certain (a higher temperature). `ambiguity` is the chance
that a reference annotator, without biases and of a fixed care, names another class than
the true one: a property of the face alone, the same whatever noise model labelled it.

Everything here works on the ground-truth table (scn.synth.sample.truth_row columns), so the
ambiguity of any run trained on the benchmark can be recomputed from its stored ground truth.
"""
import numpy as np
import pandas as pd

from scn.classes import CLASS_NAMES
from scn.synth.expressions import ACTION_UNITS, AU_INDEX, prototype_vector

NOISE_MODELS = ("symmetric", "pairwise", "annotators")
LABEL_SOURCES = ("majority", "single")
DEFAULT_ANNOTATORS = 5

# The confusable class of each class: RAF-DB's and our benchmark's most confused pairs (surprise/fear,
# disgust/anger, sadness/neutral; bench.synth_calibration). Happiness, confused with little, goes to
# neutral, its most frequent confusion there.
PAIRS = {"surprise": "fear", "fear": "surprise", "disgust": "anger", "anger": "disgust",
         "sadness": "neutral", "neutral": "sadness", "happiness": "neutral"}

# How much of each action unit an occluder leaves visible (1 = fully visible).
BROWS, EYES, NOSE, MOUTH = (1, 2, 4), (5, 6, 7), (9, 10), (12, 15, 17, 20, 23, 24, 25, 26)
VISIBILITY = {
    "glasses": {BROWS: 0.8, EYES: 0.7},
    "sunglasses": {BROWS: 0.6, EYES: 0.05},
    "hand": {NOSE: 0.5, MOUTH: 0.3},
    "mask": {NOSE: 0.2, MOUTH: 0.0},
}
# The intensities a class is fitted at, up to 1.25 times its prototype (the generator's largest
# jitter). Below 0.3 an expression is too faint to tell from a resting face (at zero every class
# would explain a neutral face as well as neutral does), so faint faces fit no class well.
FIT_INTENSITY = (0.3, 1.25)
# Action-unit activity below this is not seen (the generator's stray activity of resting faces
# reaches 0.2); what is seen is the activity above it.
PERCEPTION_THRESHOLD = 0.1
# What an annotator perceives beyond the action units (the whole face, the context), as a head
# start of the true class against the fit residuals; without it even the most careful panel would
# mislabel the faces whose blend partner shows more than their own class.
TRUE_CLASS_HEAD_START = 0.03
# The reference annotator behind `ambiguity`: the temperature of its softmax over the misfits.
REFERENCE_TEMPERATURE = 0.02
# The bracket of the panel's carelessness: all right at the careful end, votes from the biases alone
# at the careless end.
CAREFUL, CARELESS = 1e-3, 1e3
# A face is ambiguous when the reference annotator names another class more often than not.
AMBIGUOUS = 0.5
SKILL_RANGE = (0.6, 1.4)
BIAS_STD = 0.5
# Random streams (numpy seed sequences [seed, stream]) of the label noise.
NOISE_STREAM, PANEL_STREAM = 200, 201


def evidence(table: pd.DataFrame) -> tuple:
    """(misfit, true, blur) of each face: misfit[i, c] is how badly class c's prototype, at its best
    intensity, explains the action units visible above the perception threshold; true[i] is the
    true class (0-based); blur[i] >= 1 scales the uncertainty of every fit (camera faults, pose)."""
    aus = table[[f"au{au:02d}" for au in ACTION_UNITS]].to_numpy(np.float64)
    aus = np.clip(aus - PERCEPTION_THRESHOLD, 0.0, None)
    weight = np.ones_like(aus)
    occlusion = (table["occlusion"].fillna("none").astype(str).to_numpy() if "occlusion" in table
                 else np.full(len(table), "none"))
    for kind, parts in VISIBILITY.items():
        rows = occlusion == kind
        for units, visible in parts.items():
            weight[np.ix_(rows, [AU_INDEX[au] for au in units])] = visible
    prototypes = np.stack([prototype_vector(name) for name in CLASS_NAMES])  # (C, units)
    fit_num = (weight * aus) @ prototypes.T
    fit_den = weight @ (prototypes ** 2).T
    scale = np.clip(np.divide(fit_num, fit_den, out=np.zeros_like(fit_num), where=fit_den > 0),
                    *FIT_INTENSITY)
    misfit = (weight[:, None, :] * (aus[:, None, :] - scale[:, :, None] * prototypes[None]) ** 2).sum(-1)
    true = np.array([CLASS_NAMES.index(c) for c in table["true_class"]], dtype=np.int64)
    return misfit, true, _blur(table)


def _blur(table: pd.DataFrame) -> np.ndarray:
    def column(name, default):
        if name not in table:
            return np.full(len(table), float(default))
        return pd.to_numeric(table[name], errors="coerce").fillna(default).to_numpy(np.float64)

    jpeg = column("jpeg_quality", 90)
    return (1.0 + 0.6 * column("blur_sigma", 0) / 1.8 + 1.0 * (1.0 - column("resolution_scale", 1))
            + 0.3 * column("noise_sigma", 0) / 12.0 + 0.5 * np.clip((40.0 - jpeg) / 20.0, 0.0, 1.0)
            + 0.4 * np.abs(column("pose_yaw", 0)) / 22.0 + 0.2 * np.abs(column("pose_roll", 0)) / 20.0)


def _logits(misfit, true, blur, *, carelessness: float) -> np.ndarray:
    """An unbiased annotator's class logits. Carelessness 1 is the reference annotator; a careless
    one (above 1) decides more at random and sees less beyond the action units, a careful one (below
    1) the opposite, so that a careful enough panel labels every face right."""
    head_start = np.zeros_like(misfit)
    head_start[np.arange(len(true)), true] = TRUE_CLASS_HEAD_START / carelessness
    return -(misfit - head_start) / (REFERENCE_TEMPERATURE * carelessness * blur[:, None])


def _softmax(logits: np.ndarray) -> np.ndarray:
    p = np.exp(logits - logits.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


def ambiguity(table: pd.DataFrame) -> np.ndarray:
    """Per face, the chance that the reference annotator names a class other than the true one
    (0 = unmistakable, near 6/7 = no visible evidence for the true class)."""
    misfit, true, blur = evidence(table)
    p = _softmax(_logits(misfit, true, blur, carelessness=1.0))
    return 1.0 - p[np.arange(len(true)), true]


def symmetric_labels(true: np.ndarray, *, noise: float, seed: int) -> np.ndarray:
    """SCN's label noise: each 0-based label flips with probability `noise` to another class."""
    rng = np.random.default_rng([seed, NOISE_STREAM])
    flip = rng.random(len(true)) < noise
    shift = rng.integers(1, len(CLASS_NAMES), len(true))
    return np.where(flip, (true + shift) % len(CLASS_NAMES), true)


def pairwise_labels(true: np.ndarray, *, noise: float, seed: int) -> np.ndarray:
    """Class-dependent noise: each 0-based label flips with probability `noise` to its PAIRS class."""
    partner = np.array([CLASS_NAMES.index(PAIRS[name]) for name in CLASS_NAMES])
    flip = np.random.default_rng([seed, NOISE_STREAM]).random(len(true)) < noise
    return np.where(flip, partner[true], true)


def annotator_votes(table: pd.DataFrame, *, noise: float, seed: int, annotators: int = DEFAULT_ANNOTATORS,
                    label_from: str = "majority") -> tuple:
    """The annotators model on the faces of `table`: (given labels, votes[face, annotator]), 0-based.

    The panel's carelessness is searched so that the share of given labels that differ from the
    true class is `noise` (to within one face). Each annotator has a skill (the panel's
    carelessness is divided by it) and a bias toward some classes; `label_from` is "majority" (ties
    go to the class whose voters are the most skilled) or "single" (each face labelled by one
    annotator of the panel, drawn at random, as crowdsourced sets often are). Raises ValueError
    when `noise` is more than even a careless panel gets wrong.
    """
    if label_from not in LABEL_SOURCES:
        raise ValueError(f"label_from must be one of {', '.join(LABEL_SOURCES)}, got {label_from!r}")
    if not isinstance(annotators, (int, np.integer)) or annotators < 1:
        raise ValueError(f"annotators must be a positive integer, got {annotators!r}")
    misfit, true, blur = evidence(table)
    n, classes = len(table), len(CLASS_NAMES)
    rng = np.random.default_rng([seed, PANEL_STREAM])
    skill = rng.uniform(*SKILL_RANGE, annotators)
    bias = rng.normal(0.0, BIAS_STD, (annotators, classes))
    # One uniform draw per vote, shared by every carelessness tried: the wrong-label rate then grows
    # smoothly with it and the search converges.
    draws = rng.random((n, annotators))
    chosen = rng.integers(0, annotators, n)

    def vote(carelessness: float) -> tuple:
        votes = np.empty((n, annotators), np.int64)
        for k in range(annotators):
            p = _softmax(_logits(misfit, true, blur, carelessness=carelessness / skill[k]) + bias[k])
            cumulative = np.cumsum(p, axis=1)
            votes[:, k] = np.minimum((cumulative < draws[:, k:k + 1]).sum(1), classes - 1)
        if label_from == "single":
            return votes[np.arange(n), chosen], votes
        tally = np.zeros((n, classes))
        np.add.at(tally, (np.repeat(np.arange(n), annotators), votes.ravel()), 1.0)
        skill_sum = np.zeros((n, classes))
        np.add.at(skill_sum, (np.repeat(np.arange(n), annotators), votes.ravel()), np.tile(skill, n))
        # Ties in the count are broken by the voters' summed skill (below one vote, so never decisive otherwise).
        return np.argmax(tally + skill_sum / (skill.sum() + 1.0), axis=1), votes

    def wrong_rate(carelessness: float) -> float:
        return float((vote(carelessness)[0] != true).mean())

    if noise <= 0 or n == 0:
        return true.copy(), vote(CAREFUL)[1]
    low, high = CAREFUL, CARELESS
    ceiling = wrong_rate(high)
    if ceiling < noise:
        raise ValueError(f"the annotator panel cannot get {noise:.0%} of the labels wrong: even careless "
                         f"it errs on {ceiling:.0%} (ask for less noise)")
    for _ in range(60):
        middle = np.sqrt(low * high)
        if wrong_rate(middle) < noise:
            low = middle
        else:
            high = middle
        if high / low < 1.0001:
            break
    # The bracket's ends are one face apart at most: take the one closer to the asked rate.
    best = min((low, high), key=lambda c: abs(wrong_rate(c) - noise))
    return vote(best)


def noisy_labels(table: pd.DataFrame, *, noise: float, seed: int, model: str = "symmetric",
                 annotators: int = DEFAULT_ANNOTATORS, label_from: str = "majority") -> tuple:
    """(given 0-based labels, votes or None) of the faces of a ground-truth table under `model`."""
    if model not in NOISE_MODELS:
        raise ValueError(f"noise model must be one of {', '.join(NOISE_MODELS)}, got {model!r}")
    true = np.array([CLASS_NAMES.index(c) for c in table["true_class"]], dtype=np.int64)
    if model == "symmetric":
        return symmetric_labels(true, noise=noise, seed=seed), None
    if model == "pairwise":
        return pairwise_labels(true, noise=noise, seed=seed), None
    return annotator_votes(table, noise=noise, seed=seed, annotators=annotators, label_from=label_from)
