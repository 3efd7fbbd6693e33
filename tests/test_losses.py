import math

import pytest
import torch

from scn.losses import (high_group_size, importance_groups, logit_weights, rank_regularization,
                        weighted_cross_entropy)


def test_high_group_size_is_floor_of_beta_b_clamped():
    assert high_group_size(10, beta=0.7) == 7
    assert high_group_size(64, beta=0.7) == 44
    assert high_group_size(2, beta=0.7) == 1
    assert high_group_size(2, beta=0.1) == 1  # floor gives 0, clamped to 1
    assert high_group_size(3, beta=0.99) == 2  # floor gives 2 = B-1
    assert high_group_size(10, beta=0.05) == 1  # floor gives 0, clamped to 1


def test_rank_regularization_hand_worked():
    # B=4, beta=0.5: high = {0.9, 0.8} mean 0.85, low = {0.3, 0.1} mean 0.2, gap 0.65
    alpha = torch.tensor([0.1, 0.9, 0.3, 0.8])
    assert rank_regularization(alpha, beta=0.5, margin=0.15).item() == pytest.approx(0.0)
    assert rank_regularization(alpha, beta=0.5, margin=0.7).item() == pytest.approx(0.05)


def test_rank_regularization_exactly_at_margin_is_zero():
    alpha = torch.tensor([0.75, 0.25], dtype=torch.float64)
    assert rank_regularization(alpha, beta=0.7, margin=0.5).item() == pytest.approx(0.0, abs=1e-7)


def test_rank_regularization_ties_give_full_margin():
    alpha = torch.full((5,), 0.6)
    assert rank_regularization(alpha, beta=0.7, margin=0.15).item() == pytest.approx(0.15)


def test_rank_regularization_batch_of_one_and_two():
    assert rank_regularization(torch.tensor([0.4]), beta=0.7, margin=0.15).item() == 0.0
    # B=2: M=1, gap = 0.5 - 0.45 = 0.05 → loss 0.10
    loss = rank_regularization(torch.tensor([0.45, 0.5]), beta=0.7, margin=0.15)
    assert loss.item() == pytest.approx(0.10)


def test_rank_regularization_has_gradient_toward_separating_groups():
    alpha = torch.tensor([0.5, 0.6, 0.4], requires_grad=True)
    rank_regularization(alpha, beta=0.7, margin=0.5).backward()
    # High group (0.6, 0.5) is pushed up, the low one (0.4) down.
    assert alpha.grad[1] < 0 and alpha.grad[0] < 0 and alpha.grad[2] > 0


def test_rank_regularization_groups_are_the_importance_groups_ties_included():
    """The loss pushes up exactly the samples importance_groups calls high (which relabeling spares),
    even when every alpha ties: ties go by position in both."""
    alpha = torch.full((100,), 0.5, requires_grad=True)
    rank_regularization(alpha, beta=0.7, margin=0.15).backward()
    assert torch.equal(alpha.grad < 0, importance_groups(alpha.detach(), beta=0.7))


def test_importance_groups_marks_top_m_with_stable_ties():
    groups = importance_groups(torch.tensor([0.2, 0.9, 0.5, 0.5, 0.1]), beta=0.4)
    assert groups.tolist() == [False, True, True, False, False]
    alone = importance_groups(torch.tensor([0.3]), beta=0.7)
    assert alone.dtype == torch.bool and alone.tolist() == [True]
    assert importance_groups(torch.tensor([0.3, 0.8]), beta=0.7).tolist() == [False, True]


def test_importance_groups_stay_on_the_device_of_alpha():
    """The meta device stands in for a GPU: the ranking is built there, not copied from the host."""
    assert importance_groups(torch.rand(5, device="meta"), beta=0.7).device.type == "meta"


def test_weighted_cross_entropy_is_the_batch_mean_of_ce_on_scaled_logits():
    # alpha (0.5, 1) scales the logits to [[1, 0], [0, 1]]; against labels (1, 1) the rows' losses are
    # -log(1 / (e + 1)) = log(1 + e) and -log(e / (e + 1)) = log(1 + 1/e).
    scaled = torch.tensor([[0.5], [1.0]]) * torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    expected = (math.log(1 + math.e) + math.log(1 + 1 / math.e)) / 2
    assert weighted_cross_entropy(scaled, torch.tensor([1, 1])).item() == pytest.approx(expected)
    # Half-precision logits (autocast) are scored in float32.
    loss = weighted_cross_entropy(scaled.bfloat16(), torch.tensor([1, 1]))
    assert loss.dtype == torch.float32 and loss.item() == pytest.approx(expected, rel=1e-6)


def test_normalized_logit_weights_ignore_alpha_level_and_keep_its_ranking():
    alpha = torch.tensor([0.8, 0.4, 0.2, 0.6])
    weights = logit_weights(alpha, batch_alpha=alpha, normalize=True)
    assert torch.allclose(weights.mean(), torch.tensor(1.0))
    assert torch.allclose(logit_weights(alpha * 0.1, batch_alpha=alpha * 0.1, normalize=True), weights)
    assert torch.equal(weights.argsort(), alpha.argsort())
    assert torch.equal(logit_weights(alpha, batch_alpha=alpha, normalize=False), alpha)


def test_normalized_wce_gives_no_gradient_to_a_common_alpha_level():
    # The collapse path of plain WCE: one shared alpha lowers the loss of samples the model gets
    # wrong by shrinking; normalised, the loss does not depend on that level at all.
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.3, 1.5], [-0.5, 2.5, 0.0]])
    labels = torch.tensor([1, 0, 2])
    level = torch.tensor(0.7, requires_grad=True)
    alpha = level * torch.tensor([1.0, 0.5, 0.8])
    weights = logit_weights(alpha, batch_alpha=alpha, normalize=True)
    weighted_cross_entropy(weights[:, None] * logits, labels).backward()
    assert abs(level.grad.item()) < 1e-6
    plain = torch.tensor(0.7, requires_grad=True)
    weighted_cross_entropy((plain * torch.tensor([1.0, 0.5, 0.8]))[:, None] * logits, labels).backward()
    assert plain.grad.item() > 0.01  # plain WCE: lowering alpha lowers this batch's loss
