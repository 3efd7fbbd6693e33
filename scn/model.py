"""The Self-Cure Network model: a ResNet-18 trunk with a classifier and an importance (alpha) head.

`SCN.forward` returns `(alpha, alpha * fc(features))` exactly as the official code, so the
cross-entropy on its second output is the paper's weighted cross-entropy. `method="baseline"`
is plain ResNet-18: alpha is a constant 1 and the logits are `fc(features)`.

Pretrained weights are loaded with their keys mapped and counted, and loading fails loudly when
too few backbone tensors match: the official code loads the MS-Celeb checkpoint with
`strict=False` under mismatching `module.` prefixes and silently keeps random weights.
"""
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
import torchvision

MIN_BACKBONE_MATCH = 0.9
CHECKPOINT_FORMAT = "scn-studio/1"


class PretrainedWeightsError(RuntimeError):
    """Raised when pretrained weights are unavailable or do not fit the backbone."""


@dataclass(frozen=True)
class LoadReport:
    """What a pretrained-weights load did: which backbone tensors it set and which it could not."""

    source: str
    matched: tuple
    missing: tuple
    unexpected: tuple

    @property
    def fraction(self) -> float:
        total = len(self.matched) + len(self.missing)
        return len(self.matched) / total if total else 0.0

    def __str__(self) -> str:
        return (
            f"{self.source}: matched {len(self.matched)} of {len(self.matched) + len(self.missing)} "
            f"backbone tensors ({self.fraction:.0%}), {len(self.unexpected)} unused"
        )


class SCN(nn.Module):
    """ResNet-18 trunk up to global pooling (512-d) → dropout → `fc` and `alpha` heads."""

    def __init__(self, num_classes: int = 7, *, pretrained=None, drop_rate: float = 0.0,
                 method: str = "scn", alpha_bias: float | None = None):
        super().__init__()
        if method not in ("scn", "baseline"):
            raise ValueError(f"method must be 'scn' or 'baseline', not {method!r}")
        self.method = method
        resnet = torchvision.models.resnet18(weights=None)
        self.features = nn.Sequential(*list(resnet.children())[:-1])
        self.dropout = nn.Dropout(drop_rate)
        self.fc = nn.Linear(512, num_classes)
        self.alpha = nn.Sequential(nn.Linear(512, 1), nn.Sigmoid()) if method == "scn" else None
        if self.alpha is not None and alpha_bias is not None:
            # A large bias starts every alpha near sigmoid(bias), i.e. near 1 for bias 3.
            nn.init.constant_(self.alpha[0].bias, alpha_bias)
        self.load_report = load_pretrained(self, pretrained) if pretrained else None

    def heads(self, x):
        """`(alpha, logits)` with the logits not yet scaled; alpha is 1 for the baseline.

        x: [B, 3, H, W] normalised images; alpha: [B, 1] in (0, 1); logits: [B, C]."""
        features = self.dropout(torch.flatten(self.features(x), 1))
        logits = self.fc(features)
        if self.alpha is None:
            return torch.ones(len(x), 1, device=x.device, dtype=logits.dtype), logits
        return self.alpha(features), logits

    def forward(self, x):
        """x: [B, 3, H, W] -> (alpha [B, 1], alpha * logits [B, C]), as the official code returns."""
        alpha, logits = self.heads(x)
        return alpha, alpha * logits

    @property
    def last_residual_block(self) -> nn.Module:
        """The layer Grad-CAM looks at: ResNet's layer4."""
        return self.features[7]


def _backbone_keys(model: SCN) -> list:
    return [k for k in model.features.state_dict().keys()]


def _candidate_state_dict(obj) -> dict:
    """Find the tensor dict inside the layouts people have: plain, ours, or official SCN."""
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        return obj["model"]
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            return obj[key]
    if isinstance(obj, dict):
        return obj
    raise PretrainedWeightsError(f"expected a dict of tensors, found {type(obj).__name__}")


# torchvision ResNet children in order, as our `features` Sequential numbers them.
_RESNET_NAMES = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")


def map_backbone_keys(state_dict: dict) -> dict:
    """Map keys of torchvision, official-SCN (`module.features.N`) and our layouts to `features.N...`.

    Returns only the keys that name a backbone tensor; heads (`fc`, `alpha`, the official
    `module.fc` and MS-Celeb classifier) are dropped here because their class count differs.
    """
    mapped = {}
    for key, value in state_dict.items():
        if not torch.is_tensor(value):
            continue
        name = key
        for prefix in ("module.", "model.", "backbone."):
            if name.startswith(prefix):
                name = name[len(prefix):]
        if name.startswith("features."):
            mapped[name] = value
            continue
        head, _, rest = name.partition(".")
        if head in _RESNET_NAMES:
            mapped[f"features.{_RESNET_NAMES.index(head)}.{rest}"] = value
    return mapped


def load_pretrained(model: SCN, pretrained, *, min_match: float = MIN_BACKBONE_MATCH) -> LoadReport:
    """Load backbone weights into `model` and report matched/missing keys.

    `pretrained` is "synth-face" (the identity-trained backbone of scn.pretrain, which must have been
    built: `python -m scn pretrain`), "imagenet" (torchvision's weights, which must already be in the
    local torch cache: nothing is downloaded) or a path to a plain state dict, a checkpoint of ours, or the
    official SCN MS-Celeb file. Raises PretrainedWeightsError when fewer than `min_match` of the
    backbone tensors are found with the right shape.
    """
    if pretrained == "synth-face":
        # scn.pretrain builds on this module, so it is imported only when its backbone is asked for.
        from scn.pretrain import backbone_path

        path = backbone_path()
        if not path.is_file():
            raise PretrainedWeightsError(
                f"the synth-face backbone is not built yet ({path}); build it once with "
                "`python -m scn pretrain` (under 11 minutes on 2 CPU cores)")
        source = f"synth-face backbone ({path.name})"
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise PretrainedWeightsError(
                f"the synth-face backbone {path} cannot be read ({str(exc).splitlines()[0]}); delete it "
                "and build it again with `python -m scn pretrain`") from exc
    elif pretrained == "imagenet":
        source = "torchvision ImageNet ResNet-18"
        weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        if not cached.exists():
            raise PretrainedWeightsError(
                f"ImageNet weights are not cached at {cached} and are not downloaded at run time; "
                "copy resnet18-f37072fd.pth there or pass a weights file with --pretrained PATH"
            )
        loaded = torch.load(cached, map_location="cpu", weights_only=True)
    else:
        path = Path(pretrained)
        source = str(path)
        if not path.is_file():
            raise PretrainedWeightsError(f"pretrained weights file not found: {path}")
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise PretrainedWeightsError(f"{path} is not a readable PyTorch weights file: {exc}") from exc
    mapped = map_backbone_keys(_candidate_state_dict(loaded))
    own = model.state_dict()
    backbone = _backbone_keys(model)
    matched = tuple(
        k for k in backbone if f"features.{k}" in mapped and mapped[f"features.{k}"].shape == own[f"features.{k}"].shape
    )
    missing = tuple(k for k in backbone if k not in matched)
    unexpected = tuple(sorted(set(mapped) - {f"features.{k}" for k in backbone}))
    report = LoadReport(source=source, matched=matched, missing=missing, unexpected=unexpected)
    if report.fraction < min_match:
        raise PretrainedWeightsError(
            f"{report}; at least {min_match:.0%} must match. First missing: {', '.join(missing[:5])}"
        )
    model.features.load_state_dict({k: mapped[f"features.{k}"] for k in matched}, strict=False)
    return report
