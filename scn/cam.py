"""Grad-CAM on SCN's last residual block, with the `grad-cam` package, and heatmap overlays.

SCN returns `(alpha, alpha * logits)`; grad-cam wants a model that returns logits, so `LogitsOnly`
wraps it, returns the logits *before* alpha scales them and keeps the alpha of the same forward
pass. Scaled logits would make a face with alpha near 0 look uniformly unsure (every probability
1/C) and give it a blank map, hiding what the classifier sees; alpha is reported beside them. One forward and one backward pass then
give the probabilities, the attention weights and the class activation maps of a whole batch.
"""
import numpy as np
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn


class LogitsOnly(nn.Module):
    """SCN as grad-cam expects it: `forward` returns the unscaled logits; `last_alpha` holds the alphas."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.last_alpha = None

    def forward(self, x):
        alpha, logits = self.model.heads(x)
        self.last_alpha = alpha.detach()
        return logits


def _leaf_output(module, args, output):
    return output.detach().requires_grad_(True)


def grad_cam(model: nn.Module, batch: torch.Tensor, *, classes=None) -> tuple:
    """(alpha [B], unscaled logits [B, C], cams [B, H, W] in [0, 1]) for `batch` [B, 3, H, W].

    `classes[i]` is the class index whose evidence the map of sample i shows; None means each
    sample's top class (grad-cam picks the argmax of the same forward pass). The map is computed
    on `model.cam_layer` and resized to the input's H x W.
    """
    wrapped = LogitsOnly(model)
    targets = None if classes is None else [ClassifierOutputTarget(int(c)) for c in classes]
    # Grad-CAM needs gradients at the last block's output only. With every parameter frozen and
    # that output replaced by a fresh leaf, the forward pass records no graph through the trunk
    # and the backward pass runs through the pooling and heads alone.
    block = model.cam_layer
    frozen = [p for p in model.parameters() if p.requires_grad]
    for parameter in frozen:
        parameter.requires_grad_(False)
    handle = block.register_forward_hook(_leaf_output)  # before grad-cam's hooks, which then see the leaf
    try:
        with GradCAM(model=wrapped, target_layers=[block]) as cam:
            maps = cam(input_tensor=batch, targets=targets)
            logits = cam.outputs.detach()
    finally:
        handle.remove()
        for parameter in frozen:
            parameter.requires_grad_(True)
    # grad-cam scales each map to [0, 1] already; clip guards the float error of its division.
    return wrapped.last_alpha[:, 0], logits, np.clip(maps, 0.0, 1.0).astype(np.float32)


def overlay(image: np.ndarray, cam: np.ndarray, *, image_weight: float = 0.5) -> np.ndarray:
    """Blend the JET-coloured `cam` [H, W] onto `image` (uint8 RGB [H, W, 3]); returns uint8 RGB."""
    return show_cam_on_image(image.astype(np.float32) / 255.0, cam, use_rgb=True, image_weight=image_weight)
