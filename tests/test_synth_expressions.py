"""Action units and prototypes: each expression moves the face where FACS says it should."""
from dataclasses import replace

import numpy as np
import pytest

from scn.classes import CLASS_NAMES
from scn.synth import SynthConfig
from scn.synth.expressions import (ACTION_UNITS, BLEND_PARTNERS, OPTIONAL_UNITS, PROTOTYPES,
                                   UNIT_DROPOUT, prototype_vector, sample_expression)
from scn.synth.sample import draw_sample, render, sample_rng

SIZE = 100


def test_every_class_has_a_prototype_with_known_units():
    for table in (PROTOTYPES, OPTIONAL_UNITS, BLEND_PARTNERS, UNIT_DROPOUT):
        assert set(table) == set(CLASS_NAMES)
    assert all(set(UNIT_DROPOUT[name]) <= set(PROTOTYPES[name]) for name in CLASS_NAMES)
    assert PROTOTYPES["neutral"] == {}
    assert PROTOTYPES["happiness"].keys() == {6, 12}
    assert PROTOTYPES["surprise"].keys() >= {1, 2, 5, 26}
    assert PROTOTYPES["fear"].keys() >= {1, 2, 4, 5, 7, 20, 26}
    assert PROTOTYPES["sadness"].keys() == {1, 4, 15}
    assert PROTOTYPES["anger"].keys() == {4, 5, 7, 23}
    assert PROTOTYPES["disgust"].keys() >= {9, 10, 15, 17}
    assert all(set(p) <= set(ACTION_UNITS) for p in PROTOTYPES.values())


def test_sampled_expressions_scale_with_intensity_and_blend():
    config = SynthConfig(blend_fraction=1.0, stray_au_probability=0.0)
    rng = np.random.default_rng(0)
    draws = [sample_expression(rng, "happiness", config=config) for _ in range(200)]
    assert all(0.0 <= d["aus"].min() and d["aus"].max() <= 1.0 for d in draws)
    assert all(d["blend_partner"] in BLEND_PARTNERS["happiness"] for d in draws)
    assert all(0.1 <= d["blend_weight"] <= config.blend_weight_max for d in draws)
    calm = SynthConfig(blend_fraction=0.0, stray_au_probability=0.0)
    neutral = sample_expression(rng, "neutral", config=calm)
    assert neutral["intensity"] == 0.0 and not neutral["aus"].any()
    weak = sample_expression(np.random.default_rng(1), "sadness", config=replace(calm, intensity_max=0.3))
    strong = sample_expression(np.random.default_rng(1), "sadness", config=replace(calm, intensity_min=0.9))
    assert strong["aus"].sum() > 2 * weak["aus"].sum()


@pytest.fixture(scope="module")
def person():
    config = SynthConfig().without_degradations()
    sample = draw_sample(sample_rng(seed=11, split="train", index=0), "neutral", config=config)
    return replace(sample, aus=prototype_vector("neutral"))


def change(a, b, centre, half):
    """Mean absolute pixel difference in a box around `centre` (half-size in pixels)."""
    x, y = np.round(centre).astype(int)
    box = (slice(max(y - half[1], 0), y + half[1]), slice(max(x - half[0], 0), x + half[0]))
    return np.abs(a[box].astype(float) - b[box].astype(float)).mean()


def regions(person):
    neutral, points = render(person, size=SIZE)
    return neutral, {
        "brows": (points["brows"].mean(axis=0), (26, 6)),
        "eyes": (points["eyes"].mean(axis=0), (28, 5)),
        "mouth": (points["mouth"][0], (16, 7)),
        "cheeks": (points["nose"][0] + [0, 4], (34, 6)),
    }


def test_happiness_moves_mouth_and_cheeks_not_brows(person):
    neutral, boxes = regions(person)
    happy, _ = render(replace(person, aus=prototype_vector("happiness")), size=SIZE)
    moved = {name: change(happy, neutral, *box) for name, box in boxes.items()}
    assert moved["mouth"] > 6 and moved["cheeks"] > 2.5
    assert moved["brows"] < 0.1 * moved["mouth"]


def test_surprise_moves_brows_eyes_and_mouth(person):
    neutral, boxes = regions(person)
    surprised, _ = render(replace(person, aus=prototype_vector("surprise")), size=SIZE)
    moved = {name: change(surprised, neutral, *box) for name, box in boxes.items()}
    assert moved["brows"] > 10 and moved["eyes"] > 10 and moved["mouth"] > 10


@pytest.mark.parametrize("name, region", [("anger", "brows"), ("sadness", "brows"), ("sadness", "mouth"),
                                          ("fear", "mouth"), ("disgust", "mouth"), ("disgust", "cheeks")])
def test_prototype_changes_its_regions(person, name, region):
    neutral, boxes = regions(person)
    image, _ = render(replace(person, aus=prototype_vector(name)), size=SIZE)
    assert change(image, neutral, *boxes[region]) > 3.0


@pytest.mark.parametrize("name", ["sadness", "anger"])
def test_prototype_without_cheek_units_leaves_cheeks_alone(person, name):
    neutral, boxes = regions(person)
    image, _ = render(replace(person, aus=prototype_vector(name)), size=SIZE)
    assert change(image, neutral, *boxes["cheeks"]) < 1.5


def test_neutral_with_no_units_is_unchanged(person):
    a, _ = render(person, size=SIZE)
    b, _ = render(replace(person, aus=np.zeros(len(ACTION_UNITS))), size=SIZE)
    assert np.array_equal(a, b)

