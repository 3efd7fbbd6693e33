"""A contact sheet of the generator: what the classes, intensities, blends and degradations look like.

Rows 1-7: one class each; four intensities of one person, then three other people (neutral: seven
people).
Row 8: blends of the pairs real data confuses, and head poses. Row 9: each degradation.
"""
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from scn.classes import CLASS_NAMES
from scn.synth.config import SynthConfig
from scn.synth.degrade import Degradation, encode_jpeg
from scn.synth.expressions import prototype_vector
from scn.synth.sample import draw_sample, render, sample_rng

INTENSITIES = (0.25, 0.5, 0.75, 1.0)
BLENDS = (("fear", "surprise"), ("anger", "disgust"), ("sadness", "neutral"), ("happiness", "surprise"))
POSES = ((-18.0, 0.0), (0.0, -20.0), (0.0, 20.0), (15.0, 12.0))
CLEAN = Degradation(occlusion="none", blur_sigma=0.0, resolution_scale=1.0, noise_sigma=0.0,
                    jpeg_quality=95, seed=0)
DEGRADATIONS = (
    ("glasses", replace(CLEAN, occlusion="glasses")), ("sunglasses", replace(CLEAN, occlusion="sunglasses")),
    ("hand", replace(CLEAN, occlusion="hand", seed=3)), ("mask", replace(CLEAN, occlusion="mask")),
    ("blur 1.5", replace(CLEAN, blur_sigma=1.5)), ("low-res 0.35", replace(CLEAN, resolution_scale=0.35)),
    ("JPEG q15", replace(CLEAN, jpeg_quality=15)), ("noise 10", replace(CLEAN, noise_sigma=10.0, seed=1)),
)
LABEL_HEIGHT = 14


def contact_sheet(path, *, size: int = 100, seed: int = 0) -> Path:
    """Render the contact sheet as a PNG at `path` (tiles of size x size pixels); returns the path."""
    config = SynthConfig().without_degradations()
    people = _people(seed=seed, config=config)
    rows = []
    for name in CLASS_NAMES[:-1]:
        tiles = [(_with(people[0], name, level), f"{name[:5]} {level:.2f}") for level in INTENSITIES]
        tiles += [(_with(person, name, 0.8), f"{name[:5]} 0.80") for person in people[1:]]
        rows.append(tiles)
    # Neutral has no intensity: its row shows seven people instead.
    others = [_frontal(draw_sample(sample_rng(seed=seed, split="train", index=i), "neutral", config=config))
              for i in range(3)]
    rows.append([(_with(person, "neutral", 0.0), "neutral") for person in people[:1] + others + people[1:]])
    blends = [(_with(people[i % 4], a, 0.65, partner=b), f"{a[:4]}+{b[:4]}") for i, (a, b) in enumerate(BLENDS)]
    poses = [(replace(_with(people[i], "happiness", 0.6), pose=replace(people[i].pose, roll=roll, yaw=yaw)),
              f"roll {roll:+.0f} yaw {yaw:+.0f}") for i, (roll, yaw) in enumerate(POSES)]
    rows.append(blends + poses)
    rows.append([(replace(_with(people[i % 4], "surprise", 0.7), degradation=d), label)
                 for i, (label, d) in enumerate(DEGRADATIONS)])
    columns = max(len(row) for row in rows)
    sheet = np.full((len(rows) * (size + LABEL_HEIGHT), columns * size, 3), 255, np.uint8)
    for r, row in enumerate(rows):
        for c, (sample, label) in enumerate(row):
            y, x = r * (size + LABEL_HEIGHT), c * size
            sheet[y:y + size, x:x + size] = _final_image(sample, size)
            cv2.putText(sheet, label, (x + 2, y + size + LABEL_HEIGHT - 4), cv2.FONT_HERSHEY_SIMPLEX,
                        0.32, (0, 0, 0), 1, cv2.LINE_AA)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A 256-colour palette keeps the committed PNG small; the faces have few distinct colours.
    Image.fromarray(sheet).quantize(256, dither=Image.Dither.NONE).save(path, optimize=True)
    return path


def _people(*, seed: int, config) -> list:
    """Four frontal, undegraded people from light to dark skin, so the sheet shows the range."""
    people, index = [], 0
    for low, high in ((190, 256), (150, 190), (110, 150), (0, 110)):
        while True:
            sample = draw_sample(sample_rng(seed=seed, split="test", index=index), "neutral", config=config)
            index += 1
            if low <= np.mean(sample.identity.skin) < high:
                people.append(_frontal(sample))
                break
    return people


def _frontal(sample):
    return replace(sample, pose=replace(sample.pose, roll=0.0, yaw=0.0, shift_x=0.0, shift_y=0.0, scale=1.0),
                   degradation=CLEAN)


def _with(sample, name: str, intensity: float, *, partner: str = ""):
    aus = prototype_vector(name) * intensity
    if partner:
        aus = aus * 0.65 + prototype_vector(partner) * intensity * 0.45
    return replace(sample, true_class=name, aus=np.clip(aus, 0.0, 1.0), intensity=intensity,
                   blend_partner=partner, blend_weight=0.45 if partner else 0.0)


def _final_image(sample, size: int) -> np.ndarray:
    """The image as the dataset stores it: rendered, then through its JPEG quality."""
    image, _ = render(sample, size=size)
    data = np.frombuffer(encode_jpeg(image, sample.degradation.jpeg_quality), np.uint8)
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
