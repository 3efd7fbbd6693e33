import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from scn.cam import LogitsOnly, grad_cam, overlay
from scn.model import SCN


def model_and_batch(size=64, batch=2):
    torch.manual_seed(0)
    return SCN(7).eval(), torch.randn(batch, 3, size, size)


def test_logits_only_returns_unscaled_logits_and_keeps_alpha():
    model, batch = model_and_batch()
    with torch.no_grad():
        alpha, logits = model.heads(batch)
        wrapped = LogitsOnly(model)
        assert torch.allclose(wrapped(batch), logits)
    assert torch.allclose(wrapped.last_alpha, alpha)


def test_cams_have_the_input_size_and_lie_in_unit_range():
    model, batch = model_and_batch(size=80, batch=3)
    alpha, logits, cams = grad_cam(model, batch)
    assert cams.shape == (3, 80, 80) and cams.dtype == np.float32
    assert cams.min() >= 0.0 and cams.max() <= 1.0 and cams.max() > 0.5
    with torch.no_grad():
        direct_alpha, direct_logits = model.heads(batch)
    assert torch.allclose(alpha, direct_alpha[:, 0], atol=1e-5)
    assert torch.allclose(logits, direct_logits, atol=1e-5)


def test_the_explained_class_changes_the_map():
    model, batch = model_and_batch(batch=1)
    top = int(model(batch)[1].argmax())
    _, _, default = grad_cam(model, batch)
    _, _, same = grad_cam(model, batch, classes=[top])
    _, _, other = grad_cam(model, batch, classes=[(top + 1) % 7])
    assert np.allclose(default, same, atol=1e-5)
    assert not np.allclose(default, other, atol=1e-3)


def test_short_backward_pass_gives_the_same_maps_as_plain_grad_cam():
    model, batch = model_and_batch(batch=2)
    classes = [2, 5]
    with GradCAM(model=LogitsOnly(model), target_layers=[model.cam_layer]) as plain:
        expected = plain(input_tensor=batch, targets=[ClassifierOutputTarget(c) for c in classes])
    _, _, maps = grad_cam(model, batch, classes=classes)
    assert np.allclose(maps, expected, atol=1e-4)


def test_grad_cam_leaves_the_model_as_it_was():
    model, batch = model_and_batch(batch=1)
    model.fc.weight.requires_grad_(False)
    grad_cam(model, batch)
    block = model.cam_layer
    assert not block._forward_hooks and not block._backward_hooks
    assert [p.requires_grad for p in model.parameters()].count(False) == 1 and not model.fc.weight.requires_grad


def test_overlay_blends_heatmap_onto_image():
    image = np.full((32, 32, 3), 128, dtype=np.uint8)
    cam = np.zeros((32, 32), dtype=np.float32)
    cam[:16] = 1.0
    blended = overlay(image, cam)
    assert blended.shape == (32, 32, 3) and blended.dtype == np.uint8
    hot, cold = blended[4, 4], blended[28, 28]
    assert hot[0] > hot[2] and cold[2] > cold[0]  # JET: red where the map is high, blue where low
