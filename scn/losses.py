"""SCN's losses: weighted cross-entropy (cross-entropy on alpha-scaled logits) and rank regularization."""
import math

import torch
import torch.nn.functional as F


def high_group_size(batch_size: int, *, beta: float) -> int:
    """M = floor(beta * B) as the official code, clamped to 1..B-1 so both groups are non-empty."""
    return min(max(math.floor(beta * batch_size), 1), batch_size - 1)


def importance_groups(alpha: torch.Tensor, *, beta: float) -> torch.Tensor:
    """Boolean mask of the high-importance group: the top M alphas of the batch.

    alpha: [B] or [B, 1] attention weights in (0, 1); returns a bool tensor [B] on alpha's device.
    Ties are broken by position (stable sort), so equal alphas split deterministically.
    A batch of one sample has no low group: its only sample is high.
    """
    alpha = alpha.reshape(-1)
    if len(alpha) < 2:
        return torch.ones_like(alpha, dtype=torch.bool)
    order = torch.sort(alpha, descending=True, stable=True).indices
    # Each sample's place in the ranking, by scatter from device tensors: assigning a Python
    # constant through an index would copy it to the GPU and wait there on every step.
    place = torch.empty_like(order).scatter_(0, order, torch.arange(len(order), device=alpha.device))
    return place < high_group_size(len(alpha), beta=beta)


def rank_regularization(alpha: torch.Tensor, *, beta: float, margin: float) -> torch.Tensor:
    """L_RR = max(0, margin - (mean(alpha_high) - mean(alpha_low))); zero for batches under 2.

    alpha: [B] or [B, 1]; returns a scalar tensor (differentiable in alpha)."""
    alpha = alpha.reshape(-1).float()
    if len(alpha) < 2:
        return alpha.sum() * 0.0
    sorted_alpha = torch.sort(alpha, descending=True, stable=True).values
    m = high_group_size(len(alpha), beta=beta)
    gap = sorted_alpha[:m].mean() - sorted_alpha[m:].mean()
    return torch.clamp(margin - gap, min=0.0)


def logit_weights(alpha: torch.Tensor, *, batch_alpha: torch.Tensor, normalize: bool) -> torch.Tensor:
    """The factor each sample's logits are scaled by: its alpha, or with `normalize` its alpha over
    the mean alpha of the (global) batch `batch_alpha`.

    Plain WCE can always be lowered by shrinking every alpha while a sample's cross-entropy is above
    log K, and rank regularization bounds only the gap between the groups, not their level; so from
    a weak start alpha sinks toward 0 and the logits with it. Normalised, a common level cancels and
    only alpha's ranking within the batch weights the samples (the weights average 1)."""
    return alpha / batch_alpha.mean() if normalize else alpha


def weighted_cross_entropy(scaled_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The paper's L_WCE: plain cross-entropy on the alpha-scaled logits the model returns.

    scaled_logits: [B, C] (alpha * logits); labels: [B] long; returns the batch mean, a scalar."""
    return F.cross_entropy(scaled_logits.float(), labels)
