"""What makes in-the-wild faces hard: occluders in front of the face and a poor camera.

Occluders (glasses, sunglasses, a hand, a face mask) are drawn into the scene before it is shrunk
to the output size, in face units so they follow the head's pose. The image degradations (blur,
down-and-up scaling, sensor noise, JPEG compression) are applied to the output-size image, in the
order a camera pipeline would apply them.
"""
from dataclasses import dataclass

import cv2
import numpy as np

OCCLUSIONS = ("none", "glasses", "sunglasses", "hand", "mask")
MASK_COLOURS = ((172, 204, 228), (236, 236, 236), (36, 36, 40))


@dataclass(frozen=True, kw_only=True)
class Degradation:
    """The occluder and camera faults of one image; zero or 1.0 means the fault is absent."""

    occlusion: str
    blur_sigma: float
    resolution_scale: float
    noise_sigma: float
    jpeg_quality: int
    seed: int


def sample_degradation(rng: np.random.Generator, *, config) -> Degradation:
    """Draw the degradations of one image from the configured fractions."""
    odds = np.array([config.glasses_fraction, config.sunglasses_fraction, config.hand_fraction,
                     config.mask_fraction])
    occlusion = OCCLUSIONS[rng.choice(len(OCCLUSIONS), p=np.concatenate([[1.0 - odds.sum()], odds]))]
    blur = rng.uniform(0.6, config.blur_sigma_max) if rng.random() < config.blur_fraction else 0.0
    scale = 1.0
    if rng.random() < config.lowres_fraction:
        scale = rng.uniform(config.lowres_scale_min, config.lowres_scale_max)
    noise = rng.uniform(2.0, config.sensor_noise_sigma_max) if rng.random() < config.sensor_noise_fraction else 0.0
    low, high = config.jpeg_quality_low if rng.random() < config.low_jpeg_fraction else config.jpeg_quality_high
    return Degradation(occlusion=occlusion, blur_sigma=blur, resolution_scale=scale, noise_sigma=noise,
                       jpeg_quality=int(rng.integers(low, high + 1)), seed=int(rng.integers(2 ** 31)))


def draw_occlusion(landmarks, *, kind: str, skin, seed: int):
    """Draw the occluder `kind` over the face the landmarks describe (on the canvas of their pen)."""
    rng = np.random.default_rng(seed)
    if kind in ("glasses", "sunglasses"):
        _glasses(landmarks, dark=kind == "sunglasses", rng=rng)
    elif kind == "hand":
        _hand(landmarks, skin=np.asarray(skin) * rng.uniform(0.88, 1.04), rng=rng)
    elif kind == "mask":
        _mask(landmarks, colour=MASK_COLOURS[rng.integers(len(MASK_COLOURS))])


def _glasses(landmarks, *, dark: bool, rng: np.random.Generator):
    pen = landmarks.pen
    frame = rng.uniform(10, 70, 3) if not dark else np.full(3, 15.0)
    lens_w, lens_h = rng.uniform(0.17, 0.21), rng.uniform(0.11, 0.15) * (1.25 if dark else 1.0)
    t = np.linspace(0.0, 2.0 * np.pi, 24)
    # A superellipse: rounded-rectangular lenses.
    shape = np.stack([np.sign(np.cos(t)) * np.abs(np.cos(t)) ** 0.6 * lens_w,
                      np.sign(np.sin(t)) * np.abs(np.sin(t)) ** 0.6 * lens_h], axis=1)
    inner_ends = []
    for eye in landmarks.eyes:
        lens = shape + eye + [0.0, 0.02]
        if dark:
            pen.fill(lens, (22, 22, 28), lift=0.08)
            pen.line(lens[3:7] + [0.0, 0.02], (90, 90, 100), 0.015, lift=0.08)
        else:
            pen.line(lens[14:18], (235, 235, 240), 0.012, lift=0.08)
        pen.line(np.vstack([lens, lens[:1]]), frame, 0.024, lift=0.08)
        side = np.sign(eye[0])
        inner_ends.append(eye + [-side * lens_w, 0.0])
        pen.line([eye + [side * lens_w, -0.02], (side * 1.0, 0.02)], frame, 0.022, lift=0.08)
    pen.line(inner_ends, frame, 0.022, lift=0.12)


def _hand(landmarks, *, skin: np.ndarray, rng: np.random.Generator):
    """A hand over the lower face or a cheek: a palm and four fingers."""
    pen = landmarks.pen
    palm = np.array([rng.uniform(-0.5, 0.5), rng.uniform(0.6, 1.1)])
    angle = rng.uniform(-0.5, 0.5) + (np.pi / 2 if rng.random() < 0.5 else 0.0) * np.sign(palm[0] or 1)
    up = np.array([np.sin(angle), -np.cos(angle)])
    across = np.array([-up[1], up[0]])
    pen.fill(_oval(palm, up, across, 0.4, 0.34), skin * 0.95, lift=0.3)
    for i, length in enumerate((0.44, 0.5, 0.48, 0.4)):
        base = palm + up * 0.22 + across * (i - 1.5) * 0.14
        pen.line([base, base + up * length], skin, 0.125, lift=0.3)
        if i:
            pen.line([base - across * 0.07, base - across * 0.07 + up * 0.36], skin * 0.7, 0.012, lift=0.3)
    thumb = palm - across * 0.32
    pen.line([thumb, thumb - across * 0.14 + up * 0.3], skin * 0.97, 0.12, lift=0.3)


def _mask(landmarks, *, colour):
    """A surgical mask from the nose bridge to under the chin, with pleats and ear loops."""
    pen = landmarks.pen
    top_y, chin_y = landmarks.nose[1] * 0.6, landmarks.chin[1]
    width = abs(landmarks.eyes[0][0]) * 2.2
    outline = [(-width, top_y + 0.12), (-0.3, top_y + 0.02), (0.0, top_y), (0.3, top_y + 0.02),
               (width, top_y + 0.12), (width * 0.92, chin_y - 0.35), (0.45, chin_y - 0.02),
               (0.0, chin_y + 0.05), (-0.45, chin_y - 0.02), (-width * 0.92, chin_y - 0.35)]
    pen.fill(outline, colour, lift=0.15)
    shade = np.asarray(colour) * 0.82
    for row in range(3):
        y = top_y + 0.25 + 0.17 * row
        pen.line([(-width * 0.9, y + 0.02), (0.0, y + 0.035), (width * 0.9, y + 0.02)], shade, 0.014, lift=0.15)
    for side in (-1, 1):
        pen.line([(side * width, top_y + 0.14), (side * 1.0, 0.1)], (230, 230, 230), 0.015)
        pen.line([(side * width * 0.92, chin_y - 0.35), (side * 1.0, 0.3)], (230, 230, 230), 0.015)


def _oval(centre, up, across, length: float, width: float) -> np.ndarray:
    t = np.linspace(0.0, 2.0 * np.pi, 20)[:, None]
    return centre + np.cos(t) * up * length + np.sin(t) * across * width


def degrade(image: np.ndarray, degradation: Degradation) -> np.ndarray:
    """Blur, down-and-up scale and add sensor noise to an RGB uint8 image."""
    if degradation.blur_sigma > 0:
        image = cv2.GaussianBlur(image, (0, 0), sigmaX=degradation.blur_sigma)
    if degradation.resolution_scale < 1.0:
        h, w = image.shape[:2]
        small = (max(1, round(w * degradation.resolution_scale)), max(1, round(h * degradation.resolution_scale)))
        image = cv2.resize(cv2.resize(image, small, interpolation=cv2.INTER_AREA), (w, h),
                           interpolation=cv2.INTER_LINEAR)
    if degradation.noise_sigma > 0:
        noise = np.random.default_rng(degradation.seed).normal(0.0, degradation.noise_sigma, image.shape)
        image = np.clip(image + noise, 0, 255).astype(np.uint8)
    return image


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of an RGB uint8 image at the given quality (1-100)."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG image")
    return data.tobytes()
