"""Facial action units (FACS) and the EMFACS prototypes of the seven basic expressions.

An expression is a vector of action-unit intensities in [0, 1]; the face renderer turns each unit
into a movement of brows, lids, cheeks, nose and lips. A sample's vector is its class prototype
scaled by an intensity (subtle to extreme), with per-unit jitter, optional units that only some
people show, stray activity of other units, and for a fraction of samples a blend with a second
class. The true class of a blend is the one with the larger weight.

Disgust: EMFACS lists 9+15+16. AU16 (lower lip depressor) is not modelled, because with closed
lips it is hardly visible at this resolution; we use the common variant 9+10+15+17 instead, with a
little brow lowering (AU4), as disgust in photographs usually shows.
"""
import numpy as np

# 1 inner brow raiser, 2 outer brow raiser, 4 brow lowerer, 5 upper lid raiser, 6 cheek raiser,
# 7 lid tightener, 9 nose wrinkler, 10 upper lip raiser, 12 lip corner puller, 15 lip corner
# depressor, 17 chin raiser, 20 lip stretcher, 23 lip tightener, 24 lip pressor, 25 lips part,
# 26 jaw drop.
ACTION_UNITS = (1, 2, 4, 5, 6, 7, 9, 10, 12, 15, 17, 20, 23, 24, 25, 26)
AU_INDEX = {au: i for i, au in enumerate(ACTION_UNITS)}

# Weight of each unit at full intensity. The weights keep the pairs that real data confuses close:
# fear is surprise plus brow lowering, lid tightening and lip stretching; anger and disgust both
# lower the brows; sadness at low intensity is little more than a neutral face.
PROTOTYPES = {
    "surprise": {1: 1.0, 2: 1.0, 5: 0.8, 25: 0.6, 26: 0.8},
    "fear": {1: 0.9, 2: 0.7, 4: 0.45, 5: 0.9, 7: 0.3, 20: 0.65, 25: 0.6, 26: 0.55},
    "disgust": {4: 0.35, 9: 0.9, 10: 0.75, 15: 0.5, 17: 0.5},
    "happiness": {6: 0.8, 12: 1.0},
    "sadness": {1: 0.85, 4: 0.55, 15: 0.85},
    "anger": {4: 1.0, 5: 0.5, 7: 0.8, 23: 0.9},
    "neutral": {},
}

# Units some people add to a prototype, with the chance that a sample shows them.
OPTIONAL_UNITS = {
    "happiness": ((25, 0.7, 0.5), (26, 0.25, 0.2)),
    "sadness": ((17, 0.5, 0.4),),
    "anger": ((24, 0.7, 0.4), (10, 0.5, 0.4), (9, 0.4, 0.2)),
    "disgust": ((25, 0.4, 0.3), (4, 0.5, 0.4), (7, 0.4, 0.4)),
    "surprise": (),
    "fear": (),
    "neutral": (),
}

# Not every unit of a prototype shows in every face: the chance that a unit is missing. Fear without
# brow lowering and lip stretching is surprise; anger without lip tightening is close to disgust.
UNIT_DROPOUT = {
    "surprise": {5: 0.25, 26: 0.2},
    "fear": {4: 0.4, 7: 0.5, 20: 0.4},
    "disgust": {15: 0.4, 17: 0.4},
    "sadness": {4: 0.3},
    "anger": {5: 0.4, 23: 0.35},
    "happiness": {},
    "neutral": {},
}

# In the wild, happiness and surprise are seldom subtle (they are the classes classifiers get most
# right); the others often are. A class's intensity is drawn from max(floor, intensity_min) up.
INTENSITY_FLOOR = {"happiness": 0.4, "surprise": 0.35}

# Blend partners, weighted like the confusions in real FER data.
BLEND_PARTNERS = {
    "surprise": {"fear": 3, "happiness": 2, "neutral": 1},
    "fear": {"surprise": 4, "sadness": 2, "disgust": 1},
    "disgust": {"anger": 4, "sadness": 2, "neutral": 1},
    "happiness": {"surprise": 3, "neutral": 1},
    "sadness": {"neutral": 4, "fear": 1, "disgust": 1},
    "anger": {"disgust": 4, "sadness": 1, "neutral": 1},
    "neutral": {"sadness": 4, "anger": 1},
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
    intensity = 0.0 if name == "neutral" else _intensity(rng, name, config=config)
    aus = _jittered(rng, name) * intensity
    partner, weight = "", 0.0
    if rng.random() < config.blend_fraction:
        partners = BLEND_PARTNERS[name]
        odds = np.array(list(partners.values()), dtype=float)
        partner = list(partners)[rng.choice(len(partners), p=odds / odds.sum())]
        weight = rng.uniform(0.1, config.blend_weight_max)
        partner_intensity = _intensity(rng, partner, config=config)
        # Both sets of units show, the true class's with the larger weight ("happily surprised").
        aus = aus * (1.0 - weight) + _jittered(rng, partner) * partner_intensity * weight
    stray = rng.random(len(ACTION_UNITS)) < config.stray_au_probability
    aus = aus + stray * rng.uniform(0.0, config.stray_au_max, len(ACTION_UNITS))
    return {"aus": np.clip(aus, 0.0, 1.0), "intensity": intensity,
            "blend_partner": partner, "blend_weight": weight}


def _intensity(rng: np.random.Generator, name: str, *, config) -> float:
    low = min(max(INTENSITY_FLOOR.get(name, 0.0), config.intensity_min), config.intensity_max)
    return rng.uniform(low, config.intensity_max)


def _jittered(rng: np.random.Generator, name: str) -> np.ndarray:
    """The prototype with per-unit jitter, some of its units missing and its optional units drawn."""
    vector = prototype_vector(name) * rng.uniform(0.7, 1.25, len(ACTION_UNITS))
    for au, chance in UNIT_DROPOUT[name].items():
        if rng.random() < chance:
            vector[AU_INDEX[au]] = 0.0
    for au, weight, chance in OPTIONAL_UNITS[name]:
        if rng.random() < chance:
            vector[AU_INDEX[au]] = max(vector[AU_INDEX[au]], weight * rng.uniform(0.6, 1.2))
    return vector

