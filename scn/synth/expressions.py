"""Facial action units (FACS) and the EMFACS prototypes of the seven basic expressions.

An expression is a vector of action-unit intensities in [0, 1]; the face renderer turns each unit
into a movement of brows, lids, cheeks, nose and lips. A sample's vector is its class prototype
scaled by an intensity (subtle to extreme), with per-unit jitter, optional units that only some
people show, stray activity of other units, and for a fraction of samples a blend with a second
class. The true class of a blend is the one with the larger weight.

Disgust: EMFACS lists 9+15+16. AU16 (lower lip depressor) is not modelled, because with closed
lips it is hardly visible at this resolution; we use the common variant 9+10+15+17 instead.
"""
import numpy as np

ACTION_UNITS = (1, 2, 4, 5, 6, 7, 9, 10, 12, 15, 17, 20, 23, 24, 25, 26)
AU_NAMES = {
    1: "inner brow raiser", 2: "outer brow raiser", 4: "brow lowerer", 5: "upper lid raiser",
    6: "cheek raiser", 7: "lid tightener", 9: "nose wrinkler", 10: "upper lip raiser",
    12: "lip corner puller", 15: "lip corner depressor", 17: "chin raiser", 20: "lip stretcher",
    23: "lip tightener", 24: "lip pressor", 25: "lips part", 26: "jaw drop",
}
AU_INDEX = {au: i for i, au in enumerate(ACTION_UNITS)}

# Weight of each unit at full intensity. The weights keep the pairs that real data confuses close:
# fear is surprise plus brow lowering, lid tightening and lip stretching; anger and disgust both
# lower the brows; sadness at low intensity is little more than a neutral face.
PROTOTYPES = {
    "surprise": {1: 1.0, 2: 1.0, 5: 0.8, 25: 0.6, 26: 0.8},
    "fear": {1: 0.9, 2: 0.6, 4: 0.55, 5: 0.9, 7: 0.35, 20: 0.8, 25: 0.6, 26: 0.45},
    "disgust": {4: 0.25, 9: 0.9, 10: 0.75, 15: 0.5, 17: 0.5},
    "happiness": {6: 0.8, 12: 1.0},
    "sadness": {1: 0.85, 4: 0.55, 15: 0.85},
    "anger": {4: 1.0, 5: 0.5, 7: 0.8, 23: 0.9},
    "neutral": {},
}

# Units some people add to a prototype, with the chance that a sample shows them.
OPTIONAL_UNITS = {
    "happiness": ((25, 0.7, 0.5), (26, 0.25, 0.2)),
    "sadness": ((17, 0.5, 0.4),),
    "anger": ((24, 0.7, 0.4), (10, 0.5, 0.2)),
    "disgust": ((25, 0.4, 0.3),),
    "surprise": (),
    "fear": (),
    "neutral": (),
}

# Blend partners, weighted like the confusions in real FER data.
BLEND_PARTNERS = {
    "surprise": {"fear": 3, "happiness": 2, "neutral": 1},
    "fear": {"surprise": 4, "sadness": 2, "disgust": 1},
    "disgust": {"anger": 4, "sadness": 2, "neutral": 1},
    "happiness": {"surprise": 2, "neutral": 2, "disgust": 1},
    "sadness": {"neutral": 4, "fear": 1, "disgust": 1},
    "anger": {"disgust": 4, "sadness": 1, "neutral": 1},
    "neutral": {"sadness": 3, "happiness": 1, "anger": 1},
}


def prototype_vector(name: str) -> np.ndarray:
    """Action-unit vector of a class prototype at full intensity (order of ACTION_UNITS)."""
    vector = np.zeros(len(ACTION_UNITS))
    for au, weight in PROTOTYPES[name].items():
        vector[AU_INDEX[au]] = weight
    return vector


def sample_expression(rng: np.random.Generator, name: str, *, config) -> dict:
    """Draw the action units of one face whose true class is `name`.

    Returns a dict with `aus` (vector in ACTION_UNITS order), `intensity`, `blend_partner`
    ("" when none) and `blend_weight`.
    """
    intensity = 0.0 if name == "neutral" else rng.uniform(config.intensity_min, config.intensity_max)
    aus = _jittered(rng, name) * intensity
    partner, weight = "", 0.0
    if rng.random() < config.blend_fraction:
        partners = BLEND_PARTNERS[name]
        odds = np.array(list(partners.values()), dtype=float)
        partner = list(partners)[rng.choice(len(partners), p=odds / odds.sum())]
        weight = rng.uniform(0.1, config.blend_weight_max)
        partner_intensity = rng.uniform(config.intensity_min, config.intensity_max)
        # The partner adds on top: blends like "happily surprised" show both sets of units.
        aus = aus * (1.0 - weight) + _jittered(rng, partner) * partner_intensity * weight
    stray = rng.random(len(ACTION_UNITS)) < config.stray_au_probability
    aus = aus + stray * rng.uniform(0.0, config.stray_au_max, len(ACTION_UNITS))
    return {"aus": np.clip(aus, 0.0, 1.0), "intensity": intensity,
            "blend_partner": partner, "blend_weight": weight}


def _jittered(rng: np.random.Generator, name: str) -> np.ndarray:
    """The prototype with per-unit jitter and its optional units drawn."""
    vector = prototype_vector(name) * rng.uniform(0.7, 1.25, len(ACTION_UNITS))
    for au, weight, chance in OPTIONAL_UNITS[name]:
        if rng.random() < chance:
            vector[AU_INDEX[au]] = max(vector[AU_INDEX[au]], weight * rng.uniform(0.6, 1.2))
    return vector

