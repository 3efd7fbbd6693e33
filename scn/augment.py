"""Augmentation and normalisation on batches of uint8 tensors, as the official SCN code does it.

Official per-sample recipe: with probability 0.5 apply one of {horizontal flip, Gaussian noise of
variance 30 on the 0–255 scale}, then normalise with ImageNet statistics, then RandomErasing
(p 0.5, scale 0.02–0.25, ratio 0.3–3.3, value 0). Working on whole batches keeps the Python cost
per step small; every draw comes from the generator passed in, so runs are reproducible.

Two implementations of the one recipe: `train_batch` (the CPU trainer's, whose draws — and so the
bit-exact resume of CPU runs — are unchanged) and `device_train_batch`, vectorised with no loop over
samples, for uint8 batches already on a GPU and a generator on that GPU.
"""
import math
from functools import lru_cache

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


def erase_boxes(count: int, *, height: int, width: int, generator: torch.Generator,
                p: float = 0.5) -> torch.Tensor:
    """RandomErasing's boxes for `count` images at once: long tensor [count, 4] of (top, left, h, w),
    all zero where the image is not erased (not chosen with probability `p`, or no valid box in 10
    attempts, as torchvision). Every attempt of every image is drawn in one call, so the cost does
    not grow with a Python loop over samples."""
    device = generator.device
    chosen = torch.rand(count, generator=generator, device=device) < p
    draws = torch.rand(count, 10, 4, generator=generator, device=device, dtype=torch.float64)
    area = height * width
    target = area * (ERASE_SCALE[0] + draws[..., 0] * (ERASE_SCALE[1] - ERASE_SCALE[0]))
    log_low, log_high = math.log(ERASE_RATIO[0]), math.log(ERASE_RATIO[1])
    ratio = torch.exp(log_low + draws[..., 1] * (log_high - log_low))
    h = torch.round(torch.sqrt(target * ratio)).long()
    w = torch.round(torch.sqrt(target / ratio)).long()
    valid = (h < height) & (w < width)
    # torchvision keeps the first attempt that fits; argmax over a bool finds it (0 when none does).
    first = valid.to(torch.uint8).argmax(dim=1, keepdim=True)
    h, w = h.gather(1, first)[:, 0], w.gather(1, first)[:, 0]
    top = (draws[..., 2].gather(1, first)[:, 0] * (height - h + 1)).long()
    left = (draws[..., 3].gather(1, first)[:, 0] * (width - w + 1)).long()
    erased = (chosen & valid.any(dim=1)).long()
    return torch.stack([top, left, h, w], dim=1) * erased[:, None]


@lru_cache(maxsize=8)
def _statistics(mean: tuple, std: tuple, device: torch.device) -> tuple:
    """Normalisation constants on `device`, made once: building them every step would copy from
    pageable memory, which waits for the GPU."""
    return tuple(torch.tensor(v, dtype=torch.float32).view(1, 3, 1, 1).mul(255.0).to(device) for v in (mean, std))


def device_train_batch(images: torch.Tensor, *, generator: torch.Generator, mean, std,
                       start: int = 0, total: int | None = None) -> torch.Tensor:
    """The same recipe as `train_batch`, vectorised for the device that holds `images` (uint8
    [B,3,H,W]) and drawing from `generator` on that device; returns normalised float32.

    Under data parallelism a rank holds only rows start..start+B of a global batch of `total`:
    the draws are made for the whole global batch, so each sample's augmentation does not depend
    on how the batch is split across ranks.
    """
    count = len(images) if total is None else total
    _, _, height, width = images.shape
    device = images.device
    apply = torch.rand(count, generator=generator, device=device) > 0.5
    which = torch.randint(0, 2, (count,), generator=generator, device=device)
    noise = torch.randn((count, *images.shape[1:]), generator=generator, device=device)
    boxes = erase_boxes(count, height=height, width=width, generator=generator)
    rows = slice(start, start + len(images))
    flip = (apply & (which == 0))[rows].view(-1, 1, 1, 1)
    noisy = (apply & (which == 1))[rows].view(-1, 1, 1, 1)
    x = images.float()
    x = torch.where(flip, x.flip(-1), x)
    # The official code clips and casts to uint8, which truncates.
    x = torch.where(noisy, (x + noise[rows] * NOISE_STD).clamp(0, 255).floor(), x)
    mean_t, std_t = _statistics(tuple(mean), tuple(std), device)
    x = (x - mean_t) / std_t
    top, left, h, w = boxes[rows].unbind(1)
    ys = torch.arange(height, device=device).view(1, -1, 1)
    xs = torch.arange(width, device=device).view(1, 1, -1)
    inside = ((ys >= top.view(-1, 1, 1)) & (ys < (top + h).view(-1, 1, 1))
              & (xs >= left.view(-1, 1, 1)) & (xs < (left + w).view(-1, 1, 1)))
    return x.masked_fill(inside[:, None], 0.0)
