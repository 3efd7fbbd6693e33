"""The batch augmentation: the vectorised device version is checked on the CPU against the
official recipe's rates, RandomErasing's bounds and the per-sample `train_batch`."""
import math

import pytest
import torch

from scn import augment
from scn.config import IMAGENET_MEAN, IMAGENET_STD

NORM = dict(mean=IMAGENET_MEAN, std=IMAGENET_STD)


def test_erase_boxes_follow_random_erasing_bounds_and_rate():
    boxes = augment.erase_boxes(4000, height=32, width=48, generator=torch.Generator().manual_seed(0))
    top, left, h, w = boxes.unbind(1)
    erased = h > 0
    assert erased.float().mean().item() == pytest.approx(0.5, abs=0.03)
    area = (h * w)[erased].float() / (32 * 48)
    # Rounding the sides moves the area a little outside the drawn scale on a small image.
    assert area.min() >= augment.ERASE_SCALE[0] * 0.7 and area.max() <= augment.ERASE_SCALE[1] * 1.3
    assert area.mean().item() == pytest.approx(sum(augment.ERASE_SCALE) / 2, rel=0.1)
    ratio = h[erased].float() / w[erased].float()
    assert ratio.min() >= augment.ERASE_RATIO[0] * 0.5 and ratio.max() <= augment.ERASE_RATIO[1] * 2
    assert (top + h <= 32).all() and (left + w <= 48).all() and (top >= 0).all() and (left >= 0).all()
    assert boxes[~erased].eq(0).all()


def test_device_batch_rates_shape_and_normalisation_match_train_batch():
    images = torch.randint(20, 236, (2000, 3, 16, 16), dtype=torch.uint8)
    reference = augment.train_batch(images[:8], generator=torch.Generator().manual_seed(1), **NORM)
    x = augment.device_train_batch(images, generator=torch.Generator().manual_seed(1), **NORM)
    assert x.shape == images.shape and x.dtype == reference.dtype == torch.float32
    erased = (x == 0).all(dim=1)
    assert erased.any(dim=(1, 2)).float().mean().item() == pytest.approx(0.5, abs=0.04)
    # Back to the 0–255 scale: what flip and noise did, on the pixels erasing left alone.
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255
    raw = (x * std + mean).round()
    kept = ~erased[:, None].expand_as(x)
    same = ((raw == images.float()) | ~kept).flatten(1).all(1)
    flipped = ((raw == images.flip(-1).float()) | ~kept).flatten(1).all(1) & ~same
    noisy = ~same & ~flipped
    assert flipped.float().mean().item() == pytest.approx(0.25, abs=0.04)
    assert noisy.float().mean().item() == pytest.approx(0.25, abs=0.04)
    # Noise of variance 30 on the 0–255 scale, truncated as the official uint8 cast does.
    residual = (raw - images.float())[noisy][kept[noisy]]
    assert residual.std().item() == pytest.approx(math.sqrt(30), rel=0.1)
    assert residual.mean().item() == pytest.approx(-0.5, abs=0.2)


def test_device_batch_is_deterministic_for_a_seeded_generator():
    images = torch.randint(0, 256, (64, 3, 24, 24), dtype=torch.uint8)
    a = augment.device_train_batch(images, generator=torch.Generator().manual_seed(3), **NORM)
    b = augment.device_train_batch(images, generator=torch.Generator().manual_seed(3), **NORM)
    c = augment.device_train_batch(images, generator=torch.Generator().manual_seed(4), **NORM)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_a_rank_slice_is_augmented_as_in_the_whole_batch():
    images = torch.randint(0, 256, (10, 3, 20, 20), dtype=torch.uint8)
    whole = augment.device_train_batch(images, generator=torch.Generator().manual_seed(5), **NORM)
    part = augment.device_train_batch(images[6:], generator=torch.Generator().manual_seed(5), **NORM,
                                      start=6, total=10)
    assert torch.equal(whole[6:], part)
