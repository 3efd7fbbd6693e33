"""Face detection: MTCNN with five landmarks (the default), or OpenCV's Haar cascades.

MTCNN (Zhang et al. 2016, as packaged by facenet-pytorch, whose wheel ships the three networks'
weights) gives each face a box, a probability and five landmarks (eyes, nose tip, mouth corners),
which `scn.align` uses to align the face like RAF-DB's aligned images. It finds tilted, downcast and
small faces the cascades miss (`python -m bench.face_detection`). facenet-pytorch pins old torch,
numpy and Pillow versions it does not need, so it is installed with
`pip install --no-deps -r requirements-nodeps.txt`.

The Haar cascades ship inside opencv-python-headless (`cv2.data.haarcascades`) and stay as the
`detector="haar"` fallback and comparison: frontal faces and profiles looking either way (the
profile cascade only knows one direction, so it also runs on the mirrored image), merged by
non-maximum suppression, with square boxes and no landmarks.

Detection runs on a copy whose longest side is at most `max_side` pixels: a 12-megapixel photo
takes seconds at full size and gains nothing, since faces that matter are more than a few pixels.
Nothing is downloaded at run time.
"""
from dataclasses import dataclass, replace
from functools import lru_cache

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

CASCADES = {"frontal": "haarcascade_frontalface_default.xml", "profile": "haarcascade_profileface.xml"}
DETECTORS = ("mtcnn", "haar")
# Chosen with bench/face_detection.py: on the hand-annotated photos MTCNN's false boxes (a hand with a
# poker chip, a lamp, a shoulder, a blurred crowd) score 0.76-0.87 and its true faces 0.975 and up.
MIN_PROBABILITY = 0.95


class DetectorUnavailableError(RuntimeError):
    """Raised when the MTCNN detector's package, facenet-pytorch, is not installed."""


@dataclass(frozen=True)
class Box:
    """A face region in pixel coordinates of the full-resolution image.

    `landmarks` are the detector's five points ((x, y) of left eye, right eye, nose tip, left and
    right mouth corner, in the image's pixels) and `score` its probability; both are None for a
    box without them (Haar cascades, a box drawn by hand, the whole image).
    """

    x: int
    y: int
    w: int
    h: int
    source: str = "frontal"
    landmarks: tuple | None = None
    score: float | None = None

    def as_tuple(self) -> tuple:
        return (self.x, self.y, self.w, self.h)


@lru_cache(maxsize=None)
def _cascade(kind: str) -> cv2.CascadeClassifier:
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + CASCADES[kind])
    if cascade.empty():
        raise RuntimeError(f"OpenCV's {CASCADES[kind]} is missing from {cv2.data.haarcascades}")
    return cascade


def detect_faces(image: Image.Image, *, detector: str = "mtcnn", **options) -> list:
    """Boxes of the faces in `image`, left to right, found by `detector` ("mtcnn" or "haar").

    `options` go to `detect_faces_mtcnn` or `detect_faces_haar`.
    """
    if detector == "mtcnn":
        return detect_faces_mtcnn(image, **options)
    if detector == "haar":
        return detect_faces_haar(image, **options)
    raise ValueError(f"unknown face detector {detector!r}; choose one of {', '.join(DETECTORS)}")


@lru_cache(maxsize=4)
def _mtcnn(min_face_size: int):
    try:
        from facenet_pytorch.models.mtcnn import MTCNN
    except ImportError as exc:
        raise DetectorUnavailableError(
            "the MTCNN face detector needs facenet-pytorch: pip install --no-deps -r requirements-nodeps.txt "
            "(or use the Haar cascades, detector 'haar')") from exc
    return MTCNN(keep_all=True, device="cpu", min_face_size=min_face_size)


def detect_faces_mtcnn(image: Image.Image, *, max_side: int = 1280, min_face_size: int = 20,
                       min_probability: float = MIN_PROBABILITY) -> list:
    """MTCNN's boxes of the faces in `image` with their landmarks and probability, left to right.

    `min_face_size` is the smallest face side MTCNN looks for, in pixels of the detection copy
    (longest side `max_side`); `min_probability` drops boxes MTCNN is less sure of. Boxes are
    MTCNN's own (brow to chin, not squared), cut at the image border.
    """
    if not 0.0 <= min_probability <= 1.0:
        raise ValueError(f"min_probability must lie in [0, 1], not {min_probability}")
    small, scale = shrink(image.convert("RGB"), max_side)
    if min(small.size) < min_face_size:
        return []  # no face of the smallest size fits, and MTCNN's image pyramid would be empty
    rects, probabilities, points = _mtcnn(int(min_face_size)).detect(small, landmarks=True)
    if rects is None:
        return []
    boxes = []
    for rect, probability, five in zip(rects / scale, probabilities, points / scale):
        if probability < min_probability:
            continue
        x0, y0 = max(0, round(rect[0])), max(0, round(rect[1]))
        x1, y1 = min(image.width, round(rect[2])), min(image.height, round(rect[3]))
        if x1 > x0 and y1 > y0:
            boxes.append(Box(x0, y0, x1 - x0, y1 - y0, "mtcnn",
                             landmarks=tuple((round(float(x), 2), round(float(y), 2)) for x, y in five),
                             score=round(float(probability), 4)))
    return sorted(boxes, key=lambda box: (box.x, box.y))


def detect_faces_haar(image: Image.Image, *, max_side: int = 640, min_face_fraction: float = 0.04,
                      scale_factor: float = 1.15, min_neighbors: int = 5, profile: bool = True,
                      iou_threshold: float = 0.3) -> list:
    """Haar cascades' boxes of the faces in `image`, square with a margin, left to right.

    `min_face_fraction` is the smallest face side as a fraction of the detection copy's longest
    side (but at least the cascade's 24 px); `scale_factor` is the step between the cascade's
    scales (larger is faster and coarser); `min_neighbors` trades misses for false alarms.
    """
    small, scale = shrink(image.convert("L"), max_side)
    gray = cv2.equalizeHist(np.asarray(small))
    min_side = max(24, round(max(gray.shape) * min_face_fraction))
    found = []
    passes = [("frontal", False)] + ([("profile", False), ("profile", True)] if profile else [])
    for kind, mirrored in passes:
        rects, _, weights = _cascade(kind).detectMultiScale3(
            cv2.flip(gray, 1) if mirrored else gray, scaleFactor=scale_factor, minNeighbors=min_neighbors,
            minSize=(min_side, min_side), outputRejectLevels=True,
        )
        for (x, y, w, h), weight in zip(rects, np.ravel(weights)):
            if mirrored:
                x = gray.shape[1] - x - w
            found.append((kind, (int(x), int(y), int(w), int(h)), float(weight)))
    # Frontal detections come first: they are the more reliable of two views of one face.
    found.sort(key=lambda item: (item[0] != "frontal", -item[2]))
    kept = []
    for kind, rect, _ in found:
        if all(not same_face(rect, other, iou_threshold=iou_threshold) for _, other in kept):
            kept.append((kind, rect))
    boxes = [square_box(Box(round(x / scale), round(y / scale), round(w / scale), round(h / scale), kind), image.size)
             for kind, (x, y, w, h) in kept]
    return sorted(boxes, key=lambda box: (box.x, box.y))


def same_face(a, b, *, iou_threshold: float, containment: float = 0.5) -> bool:
    """Whether two detections (x, y, w, h) are one face: their IoU is above `iou_threshold`, or
    one lies mostly inside the other (the profile cascade fires on half-faces inside a face)."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    inter = max(0, min(ax + aw, bx + bw) - max(ax, bx)) * max(0, min(ay + ah, by + bh) - max(ay, by))
    union = aw * ah + bw * bh - inter
    return inter / union > iou_threshold or inter / min(aw * ah, bw * bh) > containment


def shrink(image: Image.Image, max_side: int) -> tuple:
    """(copy of `image` with its longest side at most `max_side`, the scale factor applied)."""
    scale = min(1.0, max_side / max(image.size))
    if scale == 1.0:
        return image.copy(), 1.0
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0), scale


def square_box(box: Box, image_size: tuple, *, margin: float = 0.2) -> Box:
    """A square around `box`'s centre, `margin` of its side larger on every side, inside the image.

    The square is shifted rather than cut at the image border, and shrinks only when the image
    itself is smaller, so the crop keeps the face's proportions.
    """
    width, height = image_size
    side = min(round(max(box.w, box.h) * (1 + 2 * margin)), width, height)
    cx, cy = box.x + box.w / 2, box.y + box.h / 2
    x = min(max(round(cx - side / 2), 0), width - side)
    y = min(max(round(cy - side / 2), 0), height - side)
    return Box(x, y, side, side, box.source, box.landmarks, box.score)


def crop(image: Image.Image, box: Box) -> Image.Image:
    """The part of `image` inside `box`, clipped to the image."""
    x0, y0 = max(box.x, 0), max(box.y, 0)
    x1, y1 = min(box.x + box.w, image.width), min(box.y + box.h, image.height)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"box {box.as_tuple()} lies outside the {image.width}x{image.height} image")
    return image.crop((x0, y0, x1, y1))


def draw_boxes(image: Image.Image, boxes, *, max_side: int | None = None, color=(255, 64, 64),
               first_number: int = 1) -> Image.Image:
    """A copy of `image` with each box outlined and numbered from `first_number`, as the faces are
    listed, and its landmarks, if it has them, marked with dots.

    `max_side` shrinks the copy first (boxes are scaled along): showing a 12-megapixel photo
    in a browser needs no more than a screen's worth of pixels.
    """
    annotated, scale = shrink(image, max_side) if max_side else (image.copy(), 1.0)
    draw = ImageDraw.Draw(annotated)
    line = max(2, round(max(annotated.size) / 300))
    font = ImageFont.load_default(size=max(14, round(max(annotated.size) / 30)))
    for number, box in enumerate(boxes, start=first_number):
        x, y, w, h = (round(v * scale) for v in box.as_tuple())
        draw.rectangle((x, y, x + w - 1, y + h - 1), outline=color, width=line)
        for px, py in box.landmarks or ():
            draw.ellipse((px * scale - 1.5 * line, py * scale - 1.5 * line, px * scale + 1.5 * line,
                          py * scale + 1.5 * line), fill=(64, 255, 64))
        label = str(number)
        left, top, right, bottom = draw.textbbox((x, y), label, font=font)
        draw.rectangle((left - line, top - line, right + line, bottom + line), fill=color)
        draw.text((x, y), label, fill=(255, 255, 255), font=font)
    return annotated


def zoom(image: Image.Image, box: Box, *, number: int = 1, margin: float = 0.3, side: int = 256) -> Image.Image:
    """The square around `box` (`margin` of its side larger on every side), with the box, its
    number and its landmarks drawn, at most `side` pixels: one face of a group photo up close."""
    region = square_box(box, image.size, margin=margin)
    shifted = replace(box, x=box.x - region.x, y=box.y - region.y,
                      landmarks=box.landmarks and tuple((x - region.x, y - region.y) for x, y in box.landmarks))
    return draw_boxes(crop(image, region), [shifted], max_side=side, first_number=number)
