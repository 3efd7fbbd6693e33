"""The identity set: many synthetic people, each in many images, labelled only by who they are.

It is this project's stand-in for MS-Celeb-1M, the face-recognition set SCN's backbone was trained
on: a ResNet-18 learns to tell the people apart (scn.pretrain) and never sees an expression label.
Each person keeps their identity (face shape, skin, hair, eyes, features) across images, while
expression, pose, scene, lighting, occluders and camera faults are drawn afresh for every image from
the benchmark's own distributions, so the network must learn faces that vary the way the
expression benchmark's faces vary. The expression drawn for an image stays inside this module.

People are drawn from a stream seeded apart from the expression benchmark's, so the benchmark's
faces are not among them (each benchmark image draws its own person anyway).
"""
import multiprocessing
import os

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from scn.classes import CLASS_NAMES
from scn.synth.config import SynthConfig
from scn.synth.degrade import encode_jpeg
from scn.synth.face import OUTLINE_POINTS, sample_identity
from scn.synth.sample import draw_sample, render

# Drawn at the benchmark's own size (scn.synth.cache DEFAULTS) and resized the way the trainer's
# loader resizes benchmark images, so a backbone sees the same pixels at pretraining and training.
RENDER_SIZE = 100
IDENTITY_STREAM = 300  # separate from the benchmark's streams (0, 1: splits; 100, 200: order, noise)


def identity_rng(*, seed: int, person: int, image: int | None = None) -> np.random.Generator:
    """The random stream of one person (image None) or of one image of that person."""
    key = [seed, IDENTITY_STREAM, person] + ([] if image is None else [image])
    return np.random.default_rng(key)


def render_person(person: int, *, images: int, size: int, seed: int, config: SynthConfig) -> tuple:
    """`images` pictures of one person as a uint8 array (images, size, size, 3), and each picture's
    face outline (scn.synth.face.Landmarks.outline) in its pixels, float32 (images, OUTLINE_POINTS, 2)."""
    identity = sample_identity(identity_rng(seed=seed, person=person))
    out = np.empty((images, size, size, 3), np.uint8)
    landmarks = np.empty((images, OUTLINE_POINTS, 2), np.float32)
    for i in range(images):
        rng = identity_rng(seed=seed, person=person, image=i)
        expression = CLASS_NAMES[rng.integers(len(CLASS_NAMES))]
        sample = draw_sample(rng, expression, config=config, identity=identity)
        picture, points = render(sample, size=RENDER_SIZE)
        landmarks[i] = points["outline"] * (size / RENDER_SIZE)
        # The benchmark stores JPEGs; the same compression at the same quality keeps its artefacts.
        data = np.frombuffer(encode_jpeg(picture, sample.degradation.jpeg_quality), np.uint8)
        picture = cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        out[i] = np.asarray(Image.fromarray(picture).resize((size, size), Image.Resampling.BILINEAR))
    return out, landmarks


def identity_set(*, people: int, images: int, size: int, seed: int = 0, config: SynthConfig | None = None,
                 workers: int | None = None, progress: bool = True) -> tuple:
    """Render `people` × `images` faces: uint8 images (N, 3, size, size), identity labels (N,), and
    the face outline of each image in its pixels (N, OUTLINE_POINTS, 2)."""
    if people < 2 or images < 1:
        raise ValueError("an identity set needs at least 2 people and 1 image each")
    config = config or SynthConfig()
    workers = workers or len(os.sched_getaffinity(0))
    jobs = range(people)
    bar = tqdm(total=people, desc="identities", unit="person", disable=not progress)
    arrays = []
    if workers == 1 or people < 16:
        for person in jobs:
            arrays.append(render_person(person, images=images, size=size, seed=seed, config=config))
            bar.update()
    else:
        # spawn: safe even when the caller already runs threads (a trainer).
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers, initializer=cv2.setNumThreads, initargs=(1,)) as pool:
            args = [(person, images, size, seed, config) for person in jobs]
            for array in pool.imap(_render_job, args, chunksize=4):
                arrays.append(array)
                bar.update()
    bar.close()
    pictures = np.concatenate([picture for picture, _ in arrays]).transpose(0, 3, 1, 2)
    labels = np.repeat(np.arange(people), images)
    return np.ascontiguousarray(pictures), labels, np.concatenate([points for _, points in arrays])


def _render_job(args) -> tuple:
    person, images, size, seed, config = args
    return render_person(person, images=images, size=size, seed=seed, config=config)
