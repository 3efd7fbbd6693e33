"""dlib's face-recognition ResNet in PyTorch, with its weights read from the pinned PyPI package.

The network (`dlib_face_recognition_resnet_model_v1`, Davis King, released into the public domain)
was trained to tell real people apart; it never saw an expression label. That is the role the
paper's MS-Celeb-1M backbone plays, so it is SCN's real-face start here (`--pretrained dlib-face`).
The package `face-recognition-models` ships its weights as a dlib `.dat` file; this module parses
that file (dlib's own serialisation: variable-length integers, float32 tensors) and fills an
equivalent PyTorch network. Nothing is downloaded.

The architecture is dlib's `anet_type`: a 7x7 stride-2 stem and a 3x3 max pool, then residual
blocks of widths 32 (x3), 64 (x4), 128 (x3), 256 (x3), 256 (x1), each block two 3x3 convolutions
with a fixed per-channel scale and shift (`affine`, batch norm folded in) instead of batch norm.
A downsampling block adds its stride-2 branch to a 2x2 average pool of its input; dlib adds tensors
of different shapes by zero-padding the smaller at the end of each dimension, so the pooled input
fills only the first channels, and at some sizes the branch fills only the top-left cells. Global
average pooling gives 256 features; dlib's 128-d embedding is a bias-free linear map of those.
SCN's heads sit on the 256 pooled features.
"""
import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from scn.config import DLIB_MEAN, DLIB_STD

PACKAGE = "face_recognition_models"
WEIGHTS_FILE = "models/dlib_face_recognition_resnet_model_v1.dat"
FEATURES = 256
EMBEDDING = 128
MEAN, STD = DLIB_MEAN, DLIB_STD

# (width, blocks, first block downsamples) from the input side, as dlib's alevel4 ... alevel0.
LEVELS = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))


class DlibWeightsError(RuntimeError):
    """Raised when the dlib weights file is missing or is not the network this module builds."""


def weights_path() -> Path:
    """The `.dat` file inside the installed face-recognition-models package.

    The package's own `__init__` imports pkg_resources, which current setuptools no longer ships,
    so the file is found through the package's location without importing it."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DlibWeightsError(
            "the dlib-face start needs the face-recognition-models package "
            "(pip install face-recognition-models==0.3.0, listed in requirements.txt)")
    path = Path(list(spec.submodule_search_locations)[0]) / WEIGHTS_FILE
    if not path.is_file():
        raise DlibWeightsError(f"{path} is missing from the installed face-recognition-models package")
    return path


def _pad_add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's add of two tensors of different shapes: each zero-padded at the end to the larger."""
    shape = [max(x, y) for x, y in zip(a.shape[1:], b.shape[1:])]

    def padded(t):
        pads = []
        for size, target in zip(reversed(t.shape[1:]), reversed(shape)):
            pads += [0, target - size]
        return F.pad(t, pads) if any(pads) else t

    return padded(a) + padded(b)


class Affine(nn.Module):
    """A fixed per-channel scale and shift: dlib's `affine` layer (batch norm folded after training)."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class ResidualBlock(nn.Module):
    def __init__(self, in_channels: int, channels: int, *, downsample: bool):
        super().__init__()
        self.downsample = downsample
        # dlib pads a stride-1 convolution by half the kernel and a strided one not at all.
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=2 if downsample else 1,
                               padding=0 if downsample else 1)
        self.affine1 = Affine(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.affine2 = Affine(channels)

    def forward(self, x):
        branch = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        shortcut = F.avg_pool2d(x, 2, stride=2) if self.downsample else x
        return F.relu(_pad_add(branch, shortcut))


class DlibFaceNet(nn.Module):
    """The trunk up to global pooling, in SCN's `features` role: [B, 3, H, W] -> [B, 256, 1, 1].

    Inputs are normalised with MEAN and STD (dlib's own input scaling). `embedding` is dlib's
    128-d face descriptor layer, kept so the port can be checked against dlib itself."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 7, stride=2)
        self.stem_affine = Affine(32)
        blocks, channels = [], 32
        for width, count, downsample in LEVELS:
            for index in range(count):
                blocks.append(ResidualBlock(channels, width, downsample=downsample and index == 0))
                channels = width
        self.blocks = nn.Sequential(*blocks)
        self.embedding = nn.Linear(FEATURES, EMBEDDING, bias=False)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.stem_affine(self.stem(x))), 3, stride=2)
        return F.adaptive_avg_pool2d(self.blocks(x), 1)

    @property
    def cam_layer(self) -> nn.Module:
        """The last 128-wide block: 6 x 6 cells at 112 px, the finest map of the late blocks."""
        return self.blocks[sum(count for _, count, _ in LEVELS[:3]) - 1]

    def descriptor(self, x) -> torch.Tensor:
        """dlib's 128-d face descriptor of normalised 150 x 150 face chips."""
        return self.embedding(torch.flatten(self(x), 1))


class _Reader:
    """dlib's serialisation: an integer is a byte (low nibble: byte count, 0x80: negative)
    followed by that many little-endian bytes; a tensor is version 2, four dimensions, then
    raw little-endian float32 values."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def integer(self) -> int:
        head = self.data[self.pos]
        size = head & 0x0F
        value = int.from_bytes(self.data[self.pos + 1:self.pos + 1 + size], "little")
        self.pos += 1 + size
        return -value if head & 0x80 else value

    def tensor(self) -> torch.Tensor:
        version = self.integer()
        if version != 2:
            raise DlibWeightsError(f"unknown dlib tensor version {version} at byte {self.pos}")
        shape = [self.integer() for _ in range(4)]
        count = shape[0] * shape[1] * shape[2] * shape[3]
        if self.pos + 4 * count > len(self.data):
            raise ValueError(f"a tensor of {count} values runs past the end of the file")
        values = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.pos)
        self.pos += 4 * count
        return torch.from_numpy(values.astype(np.float32))

    def find(self, name: bytes) -> bool:
        """Move past the next serialised string `name`; False when there is none."""
        record = bytes([1, len(name)]) + name
        found = self.data.find(record, self.pos)
        if found < 0:
            return False
        self.pos = found + len(record)
        return True


def _layer_parameters(data: bytes) -> dict:
    """The parameter tensors of every convolution, affine and fully connected layer, input side first."""
    layers = {"con_4": [], "affine_": [], "fc_2": []}
    for name, found in layers.items():
        reader = _Reader(data)
        while reader.find(name.encode()):
            if name == "fc_2":
                outputs, inputs = reader.integer(), reader.integer()
                found.append((reader.tensor(), outputs, inputs))
            else:
                found.append(reader.tensor())
    return layers


def load_dlib_weights(net: DlibFaceNet, path=None) -> None:
    """Fill `net` with the weights of dlib's `.dat` file.

    Raises DlibWeightsError when the file's layers do not match the network one to one."""
    path = Path(path) if path else weights_path()
    try:
        layers = _layer_parameters(path.read_bytes())
    except (IndexError, ValueError) as exc:
        raise DlibWeightsError(f"{path} is truncated or is not a dlib network file ({exc})") from exc
    convs = [net.stem] + [conv for block in net.blocks for conv in (block.conv1, block.conv2)]
    affines = [net.stem_affine] + [a for block in net.blocks for a in (block.affine1, block.affine2)]
    if len(layers["con_4"]) != len(convs) or len(layers["affine_"]) != len(affines) or len(layers["fc_2"]) != 1:
        raise DlibWeightsError(
            f"{path} is not dlib's face-recognition ResNet: {len(layers['con_4'])} convolutions, "
            f"{len(layers['affine_'])} affine layers and {len(layers['fc_2'])} fully connected layers, "
            f"expected {len(convs)}, {len(affines)} and 1")
    with torch.no_grad():
        for conv, params in zip(convs, layers["con_4"]):
            weights = conv.weight.numel()
            if params.numel() != weights + conv.out_channels:
                raise DlibWeightsError(f"{path}: a convolution holds {params.numel()} values, "
                                       f"expected {weights + conv.out_channels}")
            conv.weight.copy_(params[:weights].view_as(conv.weight))
            conv.bias.copy_(params[weights:])
        for affine, params in zip(affines, layers["affine_"]):
            channels = affine.weight.numel()
            if params.numel() != 2 * channels:
                raise DlibWeightsError(f"{path}: an affine layer holds {params.numel()} values, "
                                       f"expected {2 * channels}")
            affine.weight.copy_(params[:channels])
            affine.bias.copy_(params[channels:])
        params, outputs, inputs = layers["fc_2"][0]
        if (outputs, inputs) != (EMBEDDING, FEATURES):
            raise DlibWeightsError(f"{path}: the embedding maps {inputs} to {outputs}, "
                                   f"expected {FEATURES} to {EMBEDDING}")
        # dlib multiplies row vectors by an inputs x outputs matrix; torch's Linear stores outputs x inputs.
        net.embedding.weight.copy_(params[:inputs * outputs].view(inputs, outputs).t())
