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


def test_dlib_backbone_heads_read_standardised_features():
    model = SCN(7, backbone="dlib-resnet").train()
    x = torch.randn(6, 3, 112, 112)
    features = torch.flatten(model.features(x), 1)
    standardised = model.neck(features)
    assert model.fc.in_features == 256 and isinstance(SCN(7).neck, torch.nn.Identity)
    assert torch.allclose(standardised.mean(0), torch.zeros(256), atol=1e-4)
    alpha, logits = model.heads(x)
    assert alpha.shape == (6, 1) and logits.shape == (6, 7)
