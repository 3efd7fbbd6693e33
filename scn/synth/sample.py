"""One sample of the benchmark: its drawn parameters, its image, and its ground-truth row.

A sample is fully determined by (seed, split, index) and its true class, so a dataset renders the
same bytes whatever the number of worker processes.
"""
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from scn.synth.degrade import Degradation, degrade, draw_occlusion, sample_degradation
from scn.synth.expressions import ACTION_UNITS, sample_expression
from scn.synth.face import Identity, Pose, draw_face, sample_identity, sample_pose

SUPERSAMPLE = 2  # the scene is drawn at twice the output size, then shrunk: smooth edges
SPLIT_IDS = {"train": 0, "test": 1}


@dataclass(frozen=True, kw_only=True)
class Scene:
    """Background and lighting: two colours of a background gradient, a light gradient, a tint."""

    background_top: tuple
    background_bottom: tuple
    light_angle: float
    light_gradient: float
    brightness: float
    tint: tuple
    seed: int


@dataclass(frozen=True, kw_only=True)
class Sample:
    """Everything drawn for one image."""

    true_class: str
    identity: Identity
    pose: Pose
    aus: np.ndarray
    intensity: float
    blend_partner: str
    blend_weight: float
    scene: Scene
    degradation: Degradation


def sample_rng(*, seed: int, split: str, index: int) -> np.random.Generator:
    """The random stream of one image, independent of every other image's."""
    return np.random.default_rng([seed, SPLIT_IDS[split], index])


def draw_sample(rng: np.random.Generator, true_class: str, *, config, identity: Identity | None = None) -> Sample:
    """Draw identity, pose, expression, scene and degradations of one image of `true_class`.

    A given `identity` is kept (the same person in many images, as the identity set needs); the
    expression benchmark draws a new person per image."""
    identity = sample_identity(rng) if identity is None else identity
    pose = sample_pose(rng, config=config)
    expression = sample_expression(rng, true_class, config=config)
    scene = Scene(
        background_top=_scenery_colour(rng), background_bottom=_scenery_colour(rng),
        light_angle=rng.uniform(0, 2 * np.pi), light_gradient=rng.uniform(0.0, 0.7),
        brightness=rng.uniform(0.75, 1.12), tint=tuple(rng.uniform(0.95, 1.05, 3)),
        seed=int(rng.integers(2 ** 31)),
    )
    return Sample(true_class=true_class, identity=identity, pose=pose, scene=scene,
                  degradation=sample_degradation(rng, config=config), **expression)


def render(sample: Sample, *, size: int) -> tuple[np.ndarray, dict]:
    """The RGB uint8 image (size x size) of a sample and its landmarks in output pixels."""
    canvas = _background(sample.scene, SUPERSAMPLE * size)
    landmarks = draw_face(canvas, sample.identity, sample.pose, sample.aus,
                          light=float(np.cos(sample.scene.light_angle)) * sample.scene.light_gradient)
    if sample.degradation.occlusion != "none":
        draw_occlusion(landmarks, kind=sample.degradation.occlusion, skin=sample.identity.skin,
                       seed=sample.degradation.seed)
    image = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)
    image = degrade(_light(image, sample.scene), sample.degradation)
    points = {name: landmarks.pixels(name) / SUPERSAMPLE
              for name in ("brows", "eyes", "nose", "mouth", "outline", "chin")}
    return image, points


def truth_row(sample: Sample) -> dict:
    """The ground-truth columns of a sample: expression, identity, pose, lighting and degradations."""
    row = {"true_class": sample.true_class, "intensity": round(sample.intensity, 4),
           "blend_partner": sample.blend_partner, "blend_weight": round(sample.blend_weight, 4)}
    row.update({f"au{au:02d}": round(float(v), 4) for au, v in zip(ACTION_UNITS, sample.aus)})
    for prefix, part in (("id", sample.identity), ("pose", sample.pose)):
        for key, value in asdict(part).items():
            if isinstance(value, tuple):
                value = "#%02x%02x%02x" % tuple(int(round(v)) for v in value)
            row[f"{prefix}_{key}"] = round(value, 4) if isinstance(value, float) else value
    row.update(scene_brightness=round(sample.scene.brightness, 4),
               scene_light_gradient=round(sample.scene.light_gradient, 4))
    degradation = sample.degradation
    row.update(occlusion=degradation.occlusion, blur_sigma=round(degradation.blur_sigma, 4),
               resolution_scale=round(degradation.resolution_scale, 4),
               jpeg_quality=degradation.jpeg_quality, noise_sigma=round(degradation.noise_sigma, 4))
    return row


def _background(scene: Scene, side: int) -> np.ndarray:
    """A vertical colour gradient with a few out-of-focus shapes, like a room or a street."""
    ramp = np.linspace(0.0, 1.0, side, dtype=np.float32)[:, None, None]
    top, bottom = np.array(scene.background_top, np.float32), np.array(scene.background_bottom, np.float32)
    canvas = np.ascontiguousarray(np.broadcast_to(top + ramp * (bottom - top), (side, side, 3)).astype(np.uint8))
    rng = np.random.default_rng(scene.seed)
    for _ in range(rng.integers(0, 4)):
        x0, y0 = rng.integers(0, side, 2)
        w, h = rng.integers(side // 8, side // 2, 2)
        cv2.rectangle(canvas, (int(x0), int(y0)), (int(x0 + w), int(y0 + h)), _scenery_colour(rng), -1)
    return canvas


def _scenery_colour(rng: np.random.Generator) -> tuple:
    """A muted colour, as walls, sky and foliage mostly are: a grey level plus a little hue."""
    grey = rng.uniform(25, 230)
    return tuple(float(v) for v in np.clip(grey + rng.normal(0, 28, 3), 0, 255))


def _light(image: np.ndarray, scene: Scene) -> np.ndarray:
    """A linear light gradient across the image, overall brightness and a colour cast."""
    side = image.shape[0]
    coords = (np.arange(side, dtype=np.float32) - side / 2) / side
    gradient = (np.cos(scene.light_angle) * coords[None, :] + np.sin(scene.light_angle) * coords[:, None])
    gain = scene.brightness * (1.0 + scene.light_gradient * gradient)[..., None] * np.array(scene.tint, np.float32)
    return np.clip(image * gain, 0, 255).astype(np.uint8)
