import pytest
import torch
import torchvision

from scn.model import SCN, map_backbone_keys


def test_forward_returns_alpha_and_alpha_scaled_logits():
    model = SCN(7).eval()
    x = torch.randn(3, 3, 64, 64)
    alpha, scaled = model(x)
    raw_alpha, logits = model.heads(x)
    assert alpha.shape == (3, 1) and scaled.shape == (3, 7)
    assert ((alpha > 0) & (alpha < 1)).all()
    assert torch.allclose(scaled, raw_alpha * logits)


def test_baseline_has_no_alpha_head():
    model = SCN(8, method="baseline").eval()
    alpha, logits = model(torch.randn(2, 3, 64, 64))
    assert model.alpha is None
    assert torch.equal(alpha, torch.ones(2, 1)) and logits.shape == (2, 8)


def test_map_backbone_keys_drops_heads():
    mapped = map_backbone_keys({"module.conv1.weight": torch.zeros(1), "module.fc.weight": torch.zeros(1),
                                "alpha.0.weight": torch.zeros(1), "features.4.0.bn1.bias": torch.zeros(1)})
    assert set(mapped) == {"features.0.weight", "features.4.0.bn1.bias"}
