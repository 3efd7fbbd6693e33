"""SCN's relabeling rule.

A sample whose `max(p) - p[given label] > margin` gets label `argmax(p)`, with `p = softmax` of the
model's (alpha-scaled) logits. `eligible` restricts it to the low-importance group (the paper,
scope "low") or lets every sample through (the official code, scope "all").
"""
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class RelabelDecision:
    """Positions within the batch to change, their new labels, and the probabilities that decided."""

    positions: torch.Tensor
    new_labels: torch.Tensor
    p_max: torch.Tensor
    p_given: torch.Tensor


def relabel_rows(probs: torch.Tensor, labels: torch.Tensor, *, margin: float,
                 eligible: torch.Tensor) -> tuple:
    """The rule for every row of a batch, without leaving the device (no data-dependent shapes, so
    no host sync): (change [B] bool, new label [B], p_max [B], p_given [B])."""
    probs = probs.detach().float()
    labels = labels.to(probs.device)
    eligible = eligible.to(probs.device).reshape(-1).bool()
    p_max, argmax = probs.max(dim=1)
    p_given = probs.gather(1, labels.reshape(-1, 1)).squeeze(1)
    change = eligible & (p_max - p_given > margin) & (argmax != labels)
    return change, argmax, p_max, p_given


def relabel(probs: torch.Tensor, labels: torch.Tensor, *, margin: float,
            eligible: torch.Tensor) -> RelabelDecision:
    """Apply the rule to one batch. All outputs live on the device of `probs`.

    probs: [B, C] class probabilities; labels: [B] current labels (long); eligible: [B] bool.
    Returns K changes: positions [K] (indices into the batch), new_labels [K], p_max [K], p_given [K].

    The official code crashes on current PyTorch by indexing CPU label tensors with CUDA
    indices; everything here is moved to one device first.
    """
    change, argmax, p_max, p_given = relabel_rows(probs, labels, margin=margin, eligible=eligible)
    positions = torch.nonzero(change).reshape(-1)
    return RelabelDecision(positions=positions, new_labels=argmax[positions],
                           p_max=p_max[positions], p_given=p_given[positions])
