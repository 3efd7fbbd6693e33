"""Training configuration: the one schema of every training option, and its presets.

Each option is a `TrainConfig` field whose metadata gives its command-line flag, help text, group
and allowed values. The trainer's argument parser (`add_arguments`), the argv that the app and the
benchmarks pass to the trainer (`option_argv`) and the range checks all come from that metadata, so
an option is declared once.

`official` follows the official SCN code (batch 64, Adam 1e-3, weight decay 1e-4, exponential
decay 0.9 per epoch, 224 px, margin_1 0.07 as its README advises at batch 64, relabeling every
sample of the batch as its code does); `paper` follows the paper as commonly cited (batch 1024,
margin_1 0.15, relabeling the low-importance group only); `demo` is the one-click demo's small scale.
Neither `official` nor `paper` turns on an option the paper and the official code lack (alpha
normalisation, warm-up, bias, the relabel gate). Explicit options override the preset.
"""
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, replace

from scn.classes import CLASS_NAMES
from scn.formats import FORMATS as DATASET_FORMATS
from scn.noise_files import FORMATS as NOISE_FILE_FORMATS

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
DECODED_CACHES = ("auto", "memory", "disk")
GROUPS = ("data", "method", "run")

PRESETS = {
    "official": dict(batch_size=64, lr=1e-3, weight_decay=1e-4, lr_gamma=0.9, image_size=224,
                     beta=0.7, margin_1=0.07, margin_2=0.2, epochs=70, relabel_epoch=10, relabel_scope="all"),
    "paper": dict(batch_size=1024, lr=1e-3, weight_decay=1e-4, lr_gamma=0.9, image_size=224,
                  beta=0.7, margin_1=0.15, margin_2=0.2, epochs=70, relabel_epoch=10, relabel_scope="low"),
}
# The one-click demo's settings (scn.runs.DEMO_RUNS) and the app's new-run form's defaults: the
# official code's, on the built-in benchmark with 30% symmetric label noise, from dlib's face-recognition
# network at its own 150 px, at a scale two runs side by side finish in minutes on a laptop CPU. SCN
# relabels its low-importance group, as the paper does. That network has no batch norm, so its
# backbone trains at a hundredth of the heads' rate, as chosen on validation (bench/demo_selection.py).
# bench/demo.py measures the demo as the app starts it.
PRESETS["demo"] = PRESETS["official"] | dict(
    synth_train=3000, synth_test=750, synth_noise=0.3, image_size=150, epochs=6, relabel_epoch=3,
    backbone_lr_scale=0.01, relabel_scope="low")

# Start names (scn.starts). Runs on the built-in benchmark start from a real face-recognition
# network unless told otherwise: the paper's runs start from one, and from random weights SCN collapses.
DLIB_FACE = "dlib-face"
SYNTH_FACE = "synth-face"
IMAGENET = "imagenet"
NO_START = "none"
START_NAMES = (DLIB_FACE, SYNTH_FACE, IMAGENET, NO_START)
BUILT_IN_START = DLIB_FACE
# dlib's input layer subtracts these channel means (0-255) and divides by 256: as normalisation
# constants of the 0-1 scale (scn.augment.normalize), mean = average / 255 and std = 256 / 255.
DLIB_CHANNEL_AVERAGES = (122.782, 117.001, 104.298)
DLIB_MEAN = tuple(average / 255.0 for average in DLIB_CHANNEL_AVERAGES)
DLIB_STD = (256.0 / 255.0,) * 3
DLIB_MIN_IMAGE_SIZE = 112

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def option(default, *, flag: str, help: str, group: str, choices: tuple | None = None,
           min: float | None = None, max: float | None = None, above: float | None = None,
           below: float | None = None):
    """A TrainConfig field that is also a trainer option. `min`/`max` bound it inclusively,
    `above`/`below` exclusively; a boolean whose default is True is turned off by its flag
    (`--no-...`), one whose default is False is turned on by it."""
    if group not in GROUPS:
        raise ValueError(f"group must be one of {GROUPS}, not {group!r}")
    limits = {k: v for k, v in dict(choices=choices, min=min, max=max, above=above, below=below).items()
              if v is not None}
    return field(default=default, metadata={"flag": flag, "help": help, "group": group, **limits})


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run needs to be reproduced; stored as the run's config.json."""

    data: str | None = option(None, flag="--data", group="data",
                              help="dataset folder (default: the built-in synthetic benchmark)")
    format: str = option("rafdb", flag="--format", group="data",
                         choices=DATASET_FORMATS,
                         help="layout of --data: rafdb (EmoLabel + Image/aligned), imagefolder (one folder "
                              "per class), fer2013 (fer2013.csv), ferplus (fer2013.csv + fer2013new.csv) "
                              "or affectnet (training.csv + validation.csv and the photos)")
    contempt: bool = option(True, flag="--no-contempt", group="data",
                            help="ferplus and affectnet: drop the contempt faces and train 7 classes "
                                 "instead of 8")
    dataset_description: str = ""
    noise_file: str | None = option(None, flag="--noise-file", group="data",
                                    help="label-noise file that replaces the training labels it lists, "
                                         "for any dataset: SCN's `0.1noise_train.txt` or EAC's `noise01.txt` "
                                         "format (scn.noise_files)")
    noise_format: str | None = option(None, flag="--noise-format", group="data", choices=NOISE_FILE_FORMATS,
                                      help="format of --noise-file: scn (paths, 0-based labels) or eac (names, "
                                           "1-based); default: told from the file")
    skip_bad: bool = option(False, flag="--skip-bad", group="data",
                            help="skip missing or unreadable images (listed in the run log) instead of failing")
    decoded_cache: str = option("auto", flag="--decoded-cache", group="data", choices=DECODED_CACHES,
                                help="where the decoded images live while training: memory, disk "
                                     "(memory-mapped files in the studio cache, reused by later runs on the "
                                     "same files; scn.decoded) or auto (default: disk when the decoded "
                                     "dataset passes 2 GiB, e.g. 57,000 images at 112 px)")
    synth_train: int = option(3000, flag="--synth-train", group="data", min=1,
                              help="built-in benchmark: training images (default 3000)")
    synth_test: int = option(750, flag="--synth-test", group="data", min=1,
                             help="built-in benchmark: test images (default 750)")
    synth_noise: float = option(0.0, flag="--synth-noise", group="data", min=0.0, below=1.0,
                                help="built-in benchmark: share of wrong training labels (default 0)")
    synth_noise_model: str = option("symmetric", flag="--synth-noise-model", group="data",
                                    choices=("symmetric", "pairwise", "annotators"),
                                    help="built-in benchmark: how labels go wrong: symmetric (any other "
                                         "class, SCN's protocol; default), pairwise (the confusable class) "
                                         "or annotators (simulated annotators vote, so ambiguous faces are "
                                         "mislabelled)")
    synth_annotators: int = option(5, flag="--synth-annotators", group="data", min=1,
                                   help="built-in benchmark, annotators model: size of the panel (default 5)")
    synth_label_from: str = option("majority", flag="--synth-label-from", group="data",
                                   choices=("majority", "single"),
                                   help="built-in benchmark, annotators model: the panel's majority vote "
                                        "(default) or a single annotator's per face")
    val_fraction: float = option(0.1, flag="--val-fraction", group="data", min=0.0, below=0.5,
                                 help="share of training images held out to choose the best checkpoint "
                                      "(default 0.1); a dataset's own validation split (FER2013's "
                                      "PublicTest) is used instead unless this is 0")
    class_names: tuple = CLASS_NAMES

    method: str = option("scn", flag="--method", group="method", choices=("scn", "baseline"),
                         help="scn, or baseline: plain ResNet-18 with cross-entropy")
    attention: bool = option(True, flag="--no-attention", group="method",
                             help="ablation: cross-entropy on unweighted logits")
    rank_reg: bool = option(True, flag="--no-rank-reg", group="method",
                            help="ablation: no rank regularization")
    relabel: bool = option(True, flag="--no-relabel", group="method", help="ablation: no relabeling")
    relabel_scope: str = option("all", flag="--relabel-scope", group="method", choices=("low", "all"),
                                help="relabel the low-importance group (as the paper; preset: paper) "
                                     "or every sample of the batch (as the official code; preset: "
                                     "official)")

    preset: str = option("official", flag="--preset", group="method", choices=tuple(PRESETS),
                         help="official: the official code's settings; paper: batch 1024, margin_1 0.15; "
                              "demo: the one-click demo's (built-in benchmark of 3000 images with label noise 0.3, "
                              "dlib-face at 150 px, 6 epochs, relabel the low group from epoch 3, backbone at "
                              "0.01 of the rate)")
    epochs: int = option(70, flag="--epochs", group="method", min=1, help="training epochs (preset: 70)")
    batch_size: int = option(64, flag="--batch-size", group="method", min=2,
                             help="images per step (preset: 64 official, 1024 paper)")
    image_size: int = option(224, flag="--image-size", group="method", min=32,
                             help="input size in pixels (preset: 224)")
    lr: float = option(1e-3, flag="--lr", group="method", above=0.0, help="Adam learning rate (preset: 1e-3)")
    backbone_lr_scale: float = option(1.0, flag="--backbone-lr-scale", group="method", above=0.0, max=1.0,
                                      help="the backbone trains at --lr times this, the heads at --lr "
                                           "(default 1: one rate, as the official code); dlib-face has no "
                                           "batch norm, and at the heads' rate its features blow up")
    weight_decay: float = option(1e-4, flag="--weight-decay", group="method", min=0.0,
                                 help="Adam weight decay (preset: 1e-4)")
    lr_gamma: float = option(0.9, flag="--lr-gamma", group="method", above=0.0, max=1.0,
                             help="learning rate decay per epoch (preset: 0.9)")
    beta: float = option(0.7, flag="--beta", group="method", above=0.0, below=1.0,
                         help="share of each batch in the high-importance group (preset: 0.7)")
    margin_1: float = option(0.07, flag="--margin1", group="method", min=0.0, max=1.0,
                             help="rank regularization margin between the groups' mean alpha "
                                  "(preset: 0.07 official, 0.15 paper)")
    margin_2: float = option(0.2, flag="--margin2", group="method", min=0.0, max=1.0,
                             help="relabel when max(p) - p[given label] exceeds this (preset: 0.2)")
    relabel_epoch: int = option(10, flag="--relabel-epoch", group="method", min=1,
                                help="first epoch (1-based) that relabels (preset: 10)")
    drop_rate: float = option(0.0, flag="--drop-rate", group="method", min=0.0, below=1.0,
                              help="dropout before the heads (default 0)")
    pretrained: str | None = option(None, flag="--pretrained", group="method",
                                    help="'dlib-face' (dlib's face-recognition ResNet, trained on real "
                                         "faces for identity; the default on the built-in benchmark; needs "
                                         "--image-size 112 or more), 'synth-face' (a ResNet-18 trained on "
                                         "synthetic identities, `scn pretrain`), 'none' (random weights; "
                                         "the default with --data), 'imagenet' (locally cached torchvision "
                                         "weights) or a weights file (plain state dict, our checkpoint, or "
                                         "the official MS-Celeb file)")
    alpha_warmup_epochs: int = option(0, flag="--alpha-warmup-epochs", group="method", min=0,
                                      help="train this many first epochs with alpha fixed at 1 (plain "
                                           "cross-entropy, no rank regularization, no relabeling) before the "
                                           "attention head switches on (default 0)")
    alpha_bias_init: float | None = option(None, flag="--alpha-bias-init", group="method",
                                           help="initial bias of the alpha head, so alpha starts near "
                                                "sigmoid(bias), e.g. 3 for 0.95 (default: PyTorch's "
                                                "initialisation, alpha near 0.5)")
    alpha_normalize: bool = option(False, flag="--alpha-normalize", group="method",
                                   help="divide each batch's alphas by their mean before they scale the "
                                        "logits, so the weights average 1 and only their ranking acts "
                                        "(default off, as in both presets)")
    relabel_min_val_accuracy: float = option(0.0, flag="--relabel-min-val-acc", group="method", min=0.0,
                                             max=1.0,
                                             help="relabel in an epoch only if the previous epoch's "
                                                  "validation accuracy reached this (training accuracy "
                                                  "without a validation split; default 0: always)")

    device: str = option("auto", flag="--device", group="run",
                         help="auto (a GPU when PyTorch sees one), cpu, cuda or cuda:N")
    precision: str = option("auto", flag="--precision", group="run", choices=PRECISIONS,
                            help="auto: AMP on CUDA (bfloat16 where the GPU has it, else float16), "
                                 "bfloat16 on CPUs that compute it natively; fp16 is CUDA only")
    channels_last: bool = option(True, flag="--no-channels-last", group="run",
                                 help="keep the default NCHW memory layout")
    threads: int = option(0, flag="--threads", group="run", min=0, help="CPU threads (default 0: all cores)")
    seed: int = option(0, flag="--seed", group="run", min=0, help="seed of data split, order and augmentation")
    processes: int = option(1, flag="--processes", group="run", min=1,
                            help="training processes on this machine, one per GPU (default 1); more "
                                 "than one starts the trainer under torchrun with DDP")
    log_every: int = option(10, flag="--log-every", group="run", min=1,
                            help="steps between metric rows (default 10)")
    reviewed_labels: bool = option(False, flag="--reviewed-labels", group="run",
                                   help="with --resume: train on from the last checkpoint with the labels "
                                        "as reviewed on the Relabels page (relabels accepted or reverted, "
                                        "images given a label), recorded as review events; it stays on "
                                        "for the run's later resumes")
    mean: tuple = field(default=IMAGENET_MEAN)
    std: tuple = field(default=IMAGENET_STD)

    def __post_init__(self):
        for spec in options():
            problem = _limit_problem(spec, getattr(self, spec.name))
            if problem:
                raise ValueError(problem)
        if self.pretrained == DLIB_FACE:
            if self.image_size < DLIB_MIN_IMAGE_SIZE:
                raise ValueError(f"the dlib-face start needs --image-size {DLIB_MIN_IMAGE_SIZE} or more "
                                 f"(its last blocks shrink to nothing below), not {self.image_size}; for "
                                 "smaller images choose --pretrained synth-face or none")
            # The network was trained on dlib's own input scaling, not ImageNet's.
            if (tuple(self.mean), tuple(self.std)) == (IMAGENET_MEAN, IMAGENET_STD):
                object.__setattr__(self, "mean", DLIB_MEAN)
                object.__setattr__(self, "std", DLIB_STD)

    @property
    def uses_alpha(self) -> bool:
        return self.method == "scn"

    @property
    def uses_rank_reg(self) -> bool:
        return self.uses_alpha and self.rank_reg

    @property
    def relabel_start(self) -> int | None:
        """The first epoch that relabels, or None for a run that never does (baseline, no-relabel)."""
        return self.relabel_epoch if self.uses_alpha and self.relabel else None

    @property
    def method_label(self) -> str:
        """A name for tables and legends: 'SCN', 'Baseline', 'SCN w/o relabel', ..."""
        if self.method == "baseline":
            return "Baseline"
        off = [name for name, on in (("attention", self.attention), ("rank reg", self.rank_reg),
                                     ("relabel", self.relabel)) if not on]
        # The scope is named only where it is not the preset's own, so "SCN" is the preset's SCN.
        preset_scope = PRESETS.get(self.preset, {}).get("relabel_scope")
        scope = "" if self.relabel_scope == preset_scope or not self.relabel else \
            {"low": " (relabel low group)", "all": " (relabel all)"}[self.relabel_scope]
        return "SCN" + (f" w/o {', '.join(off)}" if off else "") + scope

    def to_dict(self) -> dict:
        return asdict(self) | {"method_label": self.method_label}

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items() if k in known}
        return cls(**values)


@dataclass(frozen=True)
class OptionSpec:
    """One trainer option as the schema declares it."""

    name: str
    flag: str
    help: str
    group: str
    type: type
    default: object
    limits: dict

    @property
    def is_switch(self) -> bool:
        return self.type is bool

    @property
    def metavar(self) -> str:
        return {int: "N", float: "X"}.get(self.type, "TEXT")


def _value_type(annotation) -> type:
    """int, float, str or bool from an annotation such as `str | None`."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        (annotation,) = [a for a in typing.get_args(annotation) if a is not type(None)]
    return annotation


def options() -> list:
    """Every trainer option, in declaration order."""
    hints = typing.get_type_hints(TrainConfig)
    return [OptionSpec(name=f.name, flag=f.metadata["flag"], help=f.metadata["help"],
                       group=f.metadata["group"], type=_value_type(hints[f.name]),
                       default=None if f.default is MISSING else f.default,
                       limits={k: f.metadata[k] for k in ("choices", "min", "max", "above", "below")
                               if k in f.metadata})
            for f in fields(TrainConfig) if "flag" in f.metadata]


def option_specs() -> dict:
    """Option name (as in config.json) -> OptionSpec."""
    return {spec.name: spec for spec in options()}


def _limit_problem(spec: OptionSpec, value) -> str | None:
    if value is None:
        return None
    label, limits = spec.flag.removeprefix("--no-").removeprefix("--"), spec.limits
    if "choices" in limits and value not in limits["choices"]:
        return f"{label} must be one of {', '.join(map(str, limits['choices']))}, not {value!r}"
    if spec.type in (int, float):
        if "min" in limits and value < limits["min"]:
            return f"{label} must be at least {limits['min']}, not {value}"
        if "max" in limits and value > limits["max"]:
            return f"{label} must be at most {limits['max']}, not {value}"
        if "above" in limits and value <= limits["above"]:
            return f"{label} must be greater than {limits['above']}, not {value}"
        if "below" in limits and value >= limits["below"]:
            return f"{label} must be less than {limits['below']}, not {value}"
    return None


def add_arguments(parser) -> None:
    """One argparse option per schema option, in its group. Valued options default to None, so
    that the preset (or the field's default) applies when they are not given."""
    groups = {name: parser.add_argument_group(name) for name in GROUPS}
    for spec in options():
        group = groups[spec.group]
        if spec.is_switch:
            # None when not given, as valued options, so that a preset's value for it applies.
            group.add_argument(spec.flag, dest=spec.name, action="store_true" if not spec.default
                               else "store_false", default=None, help=spec.help)
        else:
            group.add_argument(spec.flag, dest=spec.name, type=spec.type, default=None,
                               choices=spec.limits.get("choices"), metavar=None if "choices" in spec.limits
                               else spec.metavar, help=spec.help)


def config_from_args(args) -> TrainConfig:
    """The TrainConfig an argparse namespace built by `add_arguments` describes."""
    values = {spec.name: getattr(args, spec.name) for spec in options()}
    return make_config(**values)


def option_argv(options_: dict) -> list:
    """Trainer flags for `options_` (config.json names; None means "the default"). Switches appear
    only when they differ from their default. Raises KeyError for an unknown name and ValueError
    for a value out of range, so a caller learns before a trainer is spawned."""
    specs = option_specs()
    unknown = set(options_) - set(specs)
    if unknown:
        raise KeyError(f"unknown training option(s): {', '.join(sorted(unknown))}")
    argv = []
    for name, value in options_.items():
        spec = specs[name]
        if spec.is_switch:
            if value is not None and bool(value) != spec.default:
                argv.append(spec.flag)
        elif value is not None:
            problem = _limit_problem(spec, value)
            if problem:
                raise ValueError(problem)
            argv += [spec.flag, str(value)]
    return argv


def config_argv(config: TrainConfig) -> list:
    """Trainer flags that rebuild `config` (every option, so no preset value is assumed)."""
    values = {spec.name: getattr(config, spec.name) for spec in options()}
    if config.pretrained is None:
        values["pretrained"] = NO_START  # None alone would mean "the default start"
    return option_argv(values)


# The options a resume may change: more epochs, and training on with the reviewed labels. Every
# other option of a resumed run is the one its checkpoint recorded.
RESUME_OPTIONS = ("epochs", "reviewed_labels")


def resumed_config(stored: TrainConfig, changes: dict, *, epochs_done: int) -> TrainConfig:
    """The configuration a resumed run trains with: its checkpoint's `stored` one with `changes`
    (RESUME_OPTIONS names; None leaves a value as stored) after `epochs_done` completed epochs.

    Raises ValueError for another option, for fewer epochs than are done, and for reviewed labels
    with no epoch left to train them in."""
    unknown = set(changes) - set(RESUME_OPTIONS)
    if unknown:
        raise ValueError(f"a resumed run keeps its options; only {', '.join(RESUME_OPTIONS)} can "
                         f"change, not {', '.join(sorted(unknown))}")
    config = replace(stored, **{k: v for k, v in changes.items() if v is not None})
    if config.epochs < epochs_done:
        raise ValueError(f"the run has trained {epochs_done} epochs already; --epochs must be at least "
                         f"{epochs_done}, not {config.epochs}")
    if changes.get("reviewed_labels") and config.epochs == epochs_done:
        raise ValueError(f"the run has trained all its {epochs_done} epochs: give --epochs "
                         f"{epochs_done + 1} or more to train on with the reviewed labels")
    return config


def make_config(*, preset: str | None = "official", **overrides) -> TrainConfig:
    """A preset's values, then every override that is not None.

    Runs on the built-in benchmark (no `data`) start from dlib's face-recognition network unless `pretrained`
    says otherwise; "none" means random weights (recorded as None)."""
    preset = preset or "official"
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    values = PRESETS[preset] | {k: v for k, v in overrides.items() if v is not None}
    if "pretrained" not in values and not values.get("data"):
        values["pretrained"] = BUILT_IN_START
    if values.get("pretrained") == NO_START:
        values["pretrained"] = None
    return replace(TrainConfig(preset=preset), **values)


def config_diff(configs: dict) -> "pd.DataFrame":
    """The options on which runs differ, as a table: one row per option (sorted by name), one column
    per run, from `configs` (run name -> its config.json as a dict). Options equal in every run are
    left out, and so is method_label (it follows from the method switches). An option a run's
    config does not record (an older run) reads "(not recorded)".

    Raises ValueError for fewer than two runs: a difference needs two sides.
    """
    import pandas as pd

    if len(configs) < 2:
        raise ValueError(f"a config difference needs at least two runs, not {len(configs)}")
    missing = "(not recorded)"
    names = sorted(set().union(*configs.values()) - {"method_label"})
    rows = []
    for option in names:
        values = [_readable(config[option]) if option in config else missing for config in configs.values()]
        if len(set(values)) > 1:
            rows.append([option, *values])
    return pd.DataFrame(rows, columns=["option", *configs])


def _readable(value) -> str:
    """A config value as a table cell: lists comma-separated, None as "default"."""
    if value is None:
        return "default"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)
