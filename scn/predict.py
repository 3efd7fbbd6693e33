"""Expression, attention weight and Grad-CAM for every face in a photo.

`predict_image` detects the faces (or takes the whole image, or a box chosen by hand), aligns
each face that has landmarks onto `scn.align.TEMPLATE` (the others are cropped square), from the
full-resolution image, preprocesses them exactly as training does (resize to the checkpoint's
image_size, scale to [0, 1], normalise with its mean/std) and runs the model once for all faces. Class probabilities are the softmax of the classifier's logits before alpha
scales them; alpha is kept beside them as the model's certainty about the face (SCN's
importance weight), so a face with alpha near 0 still shows what the classifier sees. `load_model_cached` serves each checkpoint from memory until its file changes.
"""
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from scn.align import align_face
from scn.augment import normalize
from scn.cam import grad_cam, overlay
from scn.checkpoint import load_model
from scn.faces import Box, crop, detect_faces
from scn.store import RunReader

# Below this alpha SCN itself says the face is uncertain: its headline class is a weak guess.
UNSURE_ALPHA = 0.05
# grad-cam scales each map to [0, 1] by its maximum; a map whose maximum stays below this found no
# evidence for the class anywhere in the face (a flat map).
FLAT_CAM = 0.05

# What every probability the app and the CLI show is: the Predict page's and the Sample page's
# (the trainer stores each test sample's at every epoch) are the same quantity.
PROBABILITIES = ("Class probabilities: the softmax of the classifier's logits before alpha scales them, "
                 "the classifier's own view of the face")

# Grad-CAM hooks the model's last block while it runs; two threads (two browser sessions
# sharing one cached model) would read each other's activations, so inference is serialised.
_INFERENCE_LOCK = threading.Lock()


@dataclass(frozen=True)
class FacePrediction:
    """One face: where it is, what the model saw (`crop`: aligned where the box has landmarks)
    and what it said."""

    box: Box
    crop: Image.Image
    probs: np.ndarray
    class_names: tuple
    top_class: str
    alpha: float
    cam_class: str
    cam: np.ndarray
    overlay: np.ndarray

    @property
    def confidence(self) -> float:
        return float(self.probs.max())

    @property
    def unsure(self) -> str | None:
        """Why the top class should not be read as the answer (alpha near 0, or a flat Grad-CAM
        of the top class), or None. A softmax can be near 1 for a face the model has no grip on."""
        if self.alpha < UNSURE_ALPHA:
            return f"alpha {self.alpha:.3f} is near 0"
        if self.cam_class == self.top_class and float(self.cam.max()) < FLAT_CAM:
            return "its Grad-CAM is flat: no part of the face speaks for the class"
        return None

    def probabilities(self) -> dict:
        return {name: float(p) for name, p in zip(self.class_names, self.probs)}


def load_model_cached(path):
    """`scn.checkpoint.load_model(path)` on the CPU, loaded once per (path, modification time).

    A checkpoint rewritten by a run that is still training has a new mtime and is reloaded.
    """
    resolved = Path(path).resolve()
    return _load(str(resolved), resolved.stat().st_mtime_ns)


@lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int):
    return load_model(path, device="cpu")


def preprocess(crops, model_config: dict) -> torch.Tensor:
    """Batch [B, 3, S, S] of RGB crops, transformed as training transforms its images.

    Training decodes with a bilinear PIL resize to image_size (`scn.data.decode_image`) and
    normalises with `scn.augment.normalize`; this does the same, so scores are comparable.
    """
    size = int(model_config["image_size"])
    arrays = [np.asarray(c.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8).transpose(2, 0, 1)
              for c in crops]
    return normalize(torch.from_numpy(np.stack(arrays)), mean=model_config["mean"], std=model_config["std"])


def class_index_of(cam_class, class_names) -> int:
    """Index of `cam_class`, given as an index or a class name."""
    if isinstance(cam_class, str):
        if cam_class not in class_names:
            raise ValueError(f"unknown class {cam_class!r}; this model knows {', '.join(class_names)}")
        return class_names.index(cam_class)
    if not 0 <= int(cam_class) < len(class_names):
        raise ValueError(f"class index {cam_class} is out of range for {len(class_names)} classes")
    return int(cam_class)


def predict_image(model, meta: dict, image: Image.Image, *, cam_class=None, whole_image: bool = False,
                  boxes=None, detect_options=None) -> list:
    """FacePredictions for the faces in `image` (RGB), numbered left to right; [] if none found.

    A face whose box has landmarks (MTCNN's) is aligned to `scn.align.TEMPLATE`, as the training
    faces are framed; any other box is cropped as it is.

    `cam_class` (name or index) picks the class Grad-CAM explains for every face; by default
    each face's top class. `whole_image=True` treats the whole image as one face, and `boxes`
    (Boxes or (x, y, w, h) tuples: detected boxes a user edited, or drawn by hand) are used as
    they are, in their order, [] giving no face; otherwise faces are detected with
    `scn.faces.detect_faces(**detect_options)`. A box outside the image raises ValueError.
    """
    config = meta["model_config"]
    class_names = tuple(config["class_names"])
    cam_index = None if cam_class is None else class_index_of(cam_class, class_names)
    if whole_image:
        boxes = [Box(0, 0, image.width, image.height, "whole image")]
    elif boxes is not None:
        boxes = [b if isinstance(b, Box) else Box(*map(int, b), "manual") for b in boxes]
    else:
        boxes = detect_faces(image, **(detect_options or {}))
    if not boxes:
        return []
    size = int(config["image_size"])
    seen = [align_face(image, b.landmarks, size=size) if b.landmarks
            else crop(image, b).resize((size, size), Image.Resampling.BILINEAR) for b in boxes]
    batch = preprocess(seen, config)
    targets = None if cam_index is None else [cam_index] * len(boxes)
    with _INFERENCE_LOCK:
        alphas, logits, cams = grad_cam(model, batch, classes=targets)
    probs = torch.softmax(logits, dim=1).numpy()
    top = logits.argmax(dim=1).tolist()
    targets = targets or top
    return [
        FacePrediction(box=b, crop=seen[i], probs=probs[i], class_names=class_names, top_class=class_names[top[i]],
                       alpha=float(alphas[i]), cam_class=class_names[targets[i]], cam=cams[i],
                       overlay=overlay(np.asarray(seen[i]), cams[i]))
        for i, b in enumerate(boxes)
    ]


def alpha_percentile(alpha: float, training_alphas) -> float | None:
    """Percent of training samples whose attention weight is at most `alpha`; None without any."""
    values = np.asarray(training_alphas, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    return float(np.count_nonzero(values <= alpha) / values.size * 100.0)


def training_alphas(run_dir) -> np.ndarray:
    """The training samples' attention weights in the run's last recorded epoch (empty before one)."""
    return RunReader(run_dir).attention()["alpha"].to_numpy(dtype=np.float64)


def trained_on(meta: dict) -> str:
    """What the checkpoint's model was trained on, in words, for a caution beside its predictions."""
    dataset = meta.get("dataset") or {}
    return dataset.get("description") or dataset.get("name") or "an unrecorded dataset"
