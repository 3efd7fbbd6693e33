import numpy as np
import pytest

from scn.synth.identities import identity_set, render_person
from scn.synth.config import SynthConfig


def test_identity_set_labels_people_and_repeats_exactly():
    images, labels, points = identity_set(people=3, images=2, size=32, seed=4, workers=1, progress=False)
    assert images.shape == (6, 3, 32, 32) and images.dtype == np.uint8
    assert labels.tolist() == [0, 0, 1, 1, 2, 2]
    again, _, _ = identity_set(people=3, images=2, size=32, seed=4, workers=1, progress=False)
    assert np.array_equal(images, again)
    # The outline inside the picture: brows above the eyes, the eyes above the nose tip, the nose
    # above the lips, the chin lowest; each pair's left point left of its right one.
    assert points.shape == (6, 20, 2) and ((points > 0) & (points < 32)).all()
    brows, eyes, nose = points[:, 2:4, 1], points[:, 6:8, 1], points[:, 14, 1]
    lips, chin = points[:, 15:19, 1], points[:, 19, 1]
    assert (brows < eyes).all() and (eyes.max(1) < nose).all() and (nose < lips.min(1)).all()
    assert (lips.max(1) < chin).all() and (points[:, 0:14:2, 0] < points[:, 1:14:2, 0]).all()


def test_a_persons_images_differ_but_the_person_is_kept():
    config = SynthConfig()
    first, _ = render_person(0, images=3, size=32, seed=0, config=config)
    other, _ = render_person(1, images=3, size=32, seed=0, config=config)
    assert not np.array_equal(first[0], first[1])  # expression, pose, scene vary
    assert not np.array_equal(first, other)
    # The same person drawn again (e.g. in another worker process) is pixel-identical.
    assert np.array_equal(first, render_person(0, images=3, size=32, seed=0, config=config)[0])


def test_identity_set_needs_two_people():
    with pytest.raises(ValueError, match="at least 2 people"):
        identity_set(people=1, images=4, size=32, progress=False)
