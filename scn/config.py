"""Training configuration and the two presets of DESIGN §2.

`official` follows the official SCN code (batch 64, Adam 1e-3, weight decay 1e-4, exponential
decay 0.9 per epoch, 224 px, margin_1 0.07 as its README advises at batch 64); `paper` follows the
paper as commonly cited (batch 1024, margin_1 0.15). Explicit options override the preset.
"""
from dataclasses import asdict, dataclass, field, fields, replace

from scn.classes import CLASS_NAMES

PRECISIONS = ("auto", "bf16", "fp16", "fp32")

PRESETS = {
    "official": dict(batch_size=64, lr=1e-3, weight_decay=1e-4, lr_gamma=0.9, image_size=224,
                     beta=0.7, margin_1=0.07, margin_2=0.2, epochs=70, relabel_epoch=10),
    "paper": dict(batch_size=1024, lr=1e-3, weight_decay=1e-4, lr_gamma=0.9, image_size=224,
                  beta=0.7, margin_1=0.15, margin_2=0.2, epochs=70, relabel_epoch=10),
}

# The face backbone runs on the built-in benchmark start from unless told otherwise (scn.pretrain):
# the paper's runs start from a face-recognition backbone, and from random weights SCN collapses.
BUILT_IN_START = "synth-face"
NO_START = "none"

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run needs to be reproduced; stored as the run's config.json."""

    data: str | None = None
    format: str = "rafdb"
    dataset_description: str = ""
    noise_file: str | None = None
    skip_bad: bool = False
    synth_train: int = 3000
    synth_test: int = 750
    synth_noise: float = 0.0
    class_names: tuple = CLASS_NAMES

    method: str = "scn"
    attention: bool = True
    rank_reg: bool = True
    relabel: bool = True
    relabel_scope: str = "low"

    preset: str = "official"
    epochs: int = 70
    batch_size: int = 64
    image_size: int = 224
    lr: float = 1e-3
    weight_decay: float = 1e-4
    lr_gamma: float = 0.9
    beta: float = 0.7
    margin_1: float = 0.07
    margin_2: float = 0.2
    relabel_epoch: int = 10
    drop_rate: float = 0.0
    pretrained: str | None = None
    val_fraction: float = 0.1
    alpha_warmup_epochs: int = field(default=0, metadata={
        "flag": "--alpha-warmup-epochs", "group": "method", "min": 0,
        "help": "train this many first epochs with alpha fixed at 1 (plain cross-entropy, no rank "
                "regularization, no relabeling) before the attention head switches on (default 0)"})
    alpha_bias_init: float | None = field(default=None, metadata={
        "flag": "--alpha-bias-init", "group": "method",
        "help": "initial bias of the alpha head, so alpha starts near sigmoid(bias), e.g. 3 for 0.95 "
                "(default: PyTorch's initialisation, alpha near 0.5)"})
    relabel_min_val_accuracy: float = field(default=0.0, metadata={
        "flag": "--relabel-min-val-acc", "group": "method", "min": 0.0, "max": 1.0,
        "help": "relabel in an epoch only if the previous epoch's validation accuracy reached this "
                "(training accuracy without a validation split; default 0: always)"})

    device: str = "auto"
    precision: str = "auto"
    channels_last: bool = True
    threads: int = 0
    seed: int = 0
    log_every: int = 10
    mean: tuple = field(default=IMAGENET_MEAN)
    std: tuple = field(default=IMAGENET_STD)

    def __post_init__(self):
        checks = [
            (self.method in ("scn", "baseline"), f"method must be scn or baseline, not {self.method!r}"),
            (self.relabel_scope in ("low", "all"), f"relabel scope must be low or all, not {self.relabel_scope!r}"),
            (self.format in ("rafdb", "imagefolder"), f"format must be rafdb or imagefolder, not {self.format!r}"),
            (self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}"),
            (self.epochs >= 1, "epochs must be at least 1"),
            (self.batch_size >= 1, "batch size must be at least 1"),
            (self.image_size >= 32, "image size must be at least 32 pixels"),
            (0.0 < self.beta < 1.0, "beta must lie strictly between 0 and 1"),
            (0.0 <= self.val_fraction < 0.5, "validation fraction must lie in [0, 0.5)"),
            (self.lr > 0, "learning rate must be positive"),
            (self.relabel_epoch >= 1, "relabel epoch must be at least 1 (epochs count from 1)"),
            (self.alpha_warmup_epochs >= 0, "alpha warm-up epochs must be at least 0"),
            (0.0 <= self.relabel_min_val_accuracy <= 1.0, "relabel minimum validation accuracy must lie in [0, 1]"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @property
    def uses_alpha(self) -> bool:
        return self.method == "scn"

    @property
    def method_label(self) -> str:
        """A name for tables and legends: 'SCN', 'Baseline', 'SCN w/o relabel', ..."""
        if self.method == "baseline":
            return "Baseline"
        off = [name for name, on in (("attention", self.attention), ("rank reg", self.rank_reg),
                                     ("relabel", self.relabel)) if not on]
        scope = "" if self.relabel_scope == "low" or not self.relabel else " (relabel all)"
        return "SCN" + (f" w/o {', '.join(off)}" if off else "") + scope

    def to_dict(self) -> dict:
        return asdict(self) | {"method_label": self.method_label}

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items() if k in known}
        return cls(**values)


def make_config(*, preset: str = "official", **overrides) -> TrainConfig:
    """A preset's values, then every override that is not None.

    Runs on the built-in benchmark (no `data`) start from the synth-face backbone unless `pretrained`
    says otherwise; "none" means random weights (recorded as None)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    values = PRESETS[preset] | {k: v for k, v in overrides.items() if v is not None}
    if "pretrained" not in values and not values.get("data"):
        values["pretrained"] = BUILT_IN_START
    if values.get("pretrained") == NO_START:
        values["pretrained"] = None
    return replace(TrainConfig(preset=preset), **values)
