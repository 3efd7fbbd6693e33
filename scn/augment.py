"""Augmentation and normalisation on batches of uint8 tensors, as the official SCN code does it.

Official per-sample recipe: with probability 0.5 apply one of {horizontal flip, Gaussian noise of
variance 30 on the 0–255 scale}, then normalise with ImageNet statistics, then RandomErasing
(p 0.5, scale 0.02–0.25, ratio 0.3–3.3, value 0). Working on whole batches keeps the Python cost
per step small; every draw comes from the generator passed in, so runs are reproducible.
"""
import math

import torch

NOISE_STD = math.sqrt(30.0)
ERASE_SCALE = (0.02, 0.25)
ERASE_RATIO = (0.3, 3.3)


def normalize(images: torch.Tensor, *, mean, std) -> torch.Tensor:
    """uint8 or 0–255 float (B,3,H,W) → normalised float32."""
    mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1) * 255.0
    return (images.float() - mean) / std


def random_erasing_(images: torch.Tensor, *, generator: torch.Generator, p: float = 0.5) -> None:
    """torchvision's RandomErasing semantics, per sample, in place, drawing from `generator`."""
    _, _, height, width = images.shape
    area = height * width
    log_ratio = (math.log(ERASE_RATIO[0]), math.log(ERASE_RATIO[1]))
    chosen = torch.rand(len(images), generator=generator) < p
    for b in torch.nonzero(chosen).reshape(-1).tolist():
        for _ in range(10):
            draws = torch.rand(4, generator=generator).tolist()
            target = area * (ERASE_SCALE[0] + draws[0] * (ERASE_SCALE[1] - ERASE_SCALE[0]))
            ratio = math.exp(log_ratio[0] + draws[1] * (log_ratio[1] - log_ratio[0]))
            h, w = int(round(math.sqrt(target * ratio))), int(round(math.sqrt(target / ratio)))
            if h < height and w < width:
                top = int(draws[2] * (height - h + 1))
                left = int(draws[3] * (width - w + 1))
                images[b, :, top:top + h, left:left + w] = 0.0
                break


def train_batch(images: torch.Tensor, *, generator: torch.Generator, mean, std) -> torch.Tensor:
    """The official training augmentation applied to a uint8 batch; returns normalised float32."""
    x = images.float()
    n = len(x)
    apply = torch.rand(n, generator=generator) > 0.5
    which = torch.randint(0, 2, (n,), generator=generator)
    flip = apply & (which == 0)
    noise = apply & (which == 1)
    if flip.any():
        x[flip] = x[flip].flip(-1)
    if noise.any():
        noisy = x[noise] + torch.randn(x[noise].shape, generator=generator) * NOISE_STD
        # The official code clips and casts to uint8, which truncates.
        x[noise] = noisy.clamp(0, 255).floor()
    x = normalize(x, mean=mean, std=std)
    random_erasing_(x, generator=generator)
    return x
