"""The `synth-face` backbone: a ResNet-18 trained to tell synthetic people apart, with no
expression label, as SCN's MS-Celeb-1M face-recognition start was.

    from scn.pretrain import ensure_backbone
    path = ensure_backbone()      # built once into the cache, then reused

Recipe: `PEOPLE` people × `IMAGES_PER_PERSON` images of the identity set (scn.synth.identities), at
`IMAGE_SIZE` px (the demo's and the benchmark runs' size), softmax cross-entropy over the people plus
a regression of a 20-point face outline (brows, eyes and lids, nose tip, lips, chin: the points of
the 68-point face-alignment scheme that move), the two tasks of real face-analysis pipelines (a
recognition network, and the alignment network that finds the face's landmarks for it). Adam with a cosine schedule, a horizontal flip that mirrors
the landmarks, and random erasing as in SCN's own augmentation, after a colour jitter that makes
colours useless for telling people apart; bfloat16 + channels_last where the CPU has it.
Two images of each person are held out; the identity accuracy and the landmark error on them are
recorded, so a broken build shows as an accuracy near chance (1 / PEOPLE). Neither task is an
expression label, but the outline does move with the face's expression, as the landmarks of real
face-alignment sets do (300-W and WFLW include smiling, screaming and grimacing faces).

The file lives in `<cache>/backbones/` (see scn.synth.cache.studio_cache), named by the generator
version and `RECIPE_VERSION`: change either and a new backbone is built rather than a stale one
reused. Two processes asking at once (the two demo runs) are serialised by a file lock, and the
file is written atomically, so the second one waits and then loads the first one's backbone.
"""
import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from scn import augment, builds
from scn.config import IMAGENET_MEAN, IMAGENET_STD
from scn.device import autocast, resolve_device, resolve_precision
from scn.model import CHECKPOINT_FORMAT, SCN

SYNTH_FACE = "synth-face"
RECIPE_VERSION = 3  # bump when anything below changes what the backbone learns
PEOPLE = 384
IMAGES_PER_PERSON = 12
HELD_OUT_PER_PERSON = 2
IMAGE_SIZE = 64
EPOCHS = 16
BATCH_SIZE = 128
LR = 1e-3
WEIGHT_DECAY = 1e-4
DATA_SEED = 0
# Skin, hair and clothes colours alone tell the synthetic people apart; with colours made unreliable
# (a random gain per channel, and half the images in grey) the network must learn the geometry of
# brows, eyes, nose and mouth, which is where expressions show.
GREY_FRACTION = 0.5
CHANNEL_GAIN = (0.6, 1.4)
# Identities alone teach a network to ignore how a face moves (the same person smiles or frowns);
# the outline makes it place brows, lids and lips in every image, whatever the pose, occluder or
# expression. The weight keeps the landmark loss (smooth L1 on coordinates in [-1, 1]) below the
# identity loss, so that the network still learns to tell the people apart.
LANDMARK_WEIGHT = 2.0


def backbone_path() -> Path:
    """Where the synth-face backbone is (or will be) cached."""
    from scn.synth.cache import GENERATOR_VERSION, studio_cache  # the generator needs OpenCV

    return (studio_cache() / "backbones"
            / f"{SYNTH_FACE}-g{GENERATOR_VERSION}-r{RECIPE_VERSION}-{IMAGE_SIZE}px.pt")


def backbone_problem(path: Path) -> str | None:
    """Why the backbone file at `path` cannot be used (missing, or cut short by a full disk or a
    killed build), or None when it loads."""
    if not path.is_file():
        return f"{path} is missing"
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, EOFError, pickle errors alike
        return f"{path} cannot be read ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        return f"{path} holds no backbone weights"
    return None


def ensure_backbone(*, log=print, progress: bool = True) -> Path:
    """The cached synth-face backbone, built first if it is missing or does not load (under a
    lock); returns its path."""
    path = backbone_path()
    if backbone_problem(path) is None:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_suffix(".lock")
    with builds.exclusive(lock):
        # Another process may have built it while this one waited for the lock.
        problem = backbone_problem(path)
        if problem is not None:
            if path.is_file():
                log(f"the cached {SYNTH_FACE} backbone is damaged: {problem}; building it again")
            what = f"the {SYNTH_FACE} backbone once (about 6 minutes on 2 CPU cores) into {path}"
            with builds.progress(lock, what=what, log=log) as line:
                checkpoint = build_backbone(log=line, progress=progress)
                tmp = path.with_suffix(".tmp")
                torch.save(checkpoint, tmp)
                os.replace(tmp, path)
            log(f"{SYNTH_FACE} backbone ready: held-out identity accuracy "
                f"{checkpoint['recipe']['identity_accuracy']:.1%} over {PEOPLE} people")
    return path


def build_backbone(*, people: int = PEOPLE, images_per_person: int = IMAGES_PER_PERSON,
                   image_size: int = IMAGE_SIZE, epochs: int = EPOCHS, batch_size: int = BATCH_SIZE,
                   seed: int = DATA_SEED, log=print, progress: bool = True) -> dict:
    """Render the identity set and train a ResNet-18 to name each image's person and place its face
    outline.

    Returns a checkpoint dict whose `model` holds the backbone (`features.*`; the identity and
    landmark heads are dropped) and whose `recipe` records how it was made, how well it tells
    held-out images of the people apart and how far off their landmarks it is."""
    from scn.synth.face import OUTLINE_POINTS  # the generator needs OpenCV
    from scn.synth.identities import identity_set

    if images_per_person <= HELD_OUT_PER_PERSON:
        raise ValueError(f"each person needs more than {HELD_OUT_PER_PERSON} images: that many are held out")
    started = time.time()
    log(f"rendering the identity set: {people} people × {images_per_person} images at {image_size} px")
    images, labels, points = identity_set(people=people, images=images_per_person, size=image_size, seed=seed,
                                          progress=progress)
    images, labels, points = torch.from_numpy(images), torch.from_numpy(labels), torch.from_numpy(points)
    held_out = torch.arange(len(labels)) % images_per_person >= images_per_person - HELD_OUT_PER_PERSON
    train_x, train_y, train_points = images[~held_out], labels[~held_out], points[~held_out]
    test_x, test_y, test_points = images[held_out], labels[held_out], points[held_out]
    log(f"identity set rendered in {time.time() - started:.0f} s; training on {len(train_y)} images")

    torch.manual_seed(seed)
    device = resolve_device("auto")
    precision = resolve_precision("auto", device)
    model = SCN(people, method="baseline")
    model.landmarks = torch.nn.Linear(model.fc.in_features, 2 * OUTLINE_POINTS)
    model = model.to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    steps_per_epoch = math.ceil(len(train_y) / batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
    generator = torch.Generator().manual_seed(seed)
    bar = tqdm(total=epochs * steps_per_epoch, desc=SYNTH_FACE, unit="step", disable=not progress)
    accuracy, landmark_error = 0.0, float("nan")
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(train_y), generator=generator)
        loss_sum = 0.0
        for batch in torch.split(order, batch_size):
            if len(batch) < 2:
                continue  # batch norm cannot train on one image
            x, target = face_batch(train_x[batch], train_points[batch], generator=generator)
            x = x.to(device).contiguous(memory_format=torch.channels_last)
            with autocast(device, precision):
                logits, predicted_points = face_heads(model, x)
            loss = (F.cross_entropy(logits.float(), train_y[batch].to(device))
                    + LANDMARK_WEIGHT * F.smooth_l1_loss(predicted_points.float(), target.to(device), beta=0.05))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += loss.item() * len(batch)
            bar.update(1)
        accuracy, landmark_error = held_out_scores(model, test_x, test_y, test_points, device=device,
                                                   precision=precision)
        elapsed = time.time() - started
        log(f"{SYNTH_FACE} epoch {epoch}/{epochs}: loss {loss_sum / len(train_y):.3f}, "
            f"held-out identity accuracy {accuracy:.1%}, landmark error {landmark_error:.2f} px, "
            f"{elapsed:.0f} s so far, "
            f"about {elapsed / epoch * (epochs - epoch):.0f} s left")
    bar.close()
    backbone = {k: v.cpu() for k, v in model.state_dict().items() if k.startswith("features.")}
    recipe = {"name": SYNTH_FACE, "recipe_version": RECIPE_VERSION, "people": people,
              "images_per_person": images_per_person, "image_size": image_size, "epochs": epochs,
              "batch_size": batch_size, "lr": LR, "seed": seed, "grey_fraction": GREY_FRACTION,
              "channel_gain": list(CHANNEL_GAIN), "landmark_weight": LANDMARK_WEIGHT,
              "identity_accuracy": accuracy, "landmark_error_px": landmark_error,
              "chance": 1.0 / people, "seconds": time.time() - started, "expression_labels": False}
    return {"format": f"{CHECKPOINT_FORMAT}-backbone", "model": backbone, "recipe": recipe}


def colour_jitter(images: torch.Tensor, *, generator: torch.Generator) -> torch.Tensor:
    """uint8 (B, 3, H, W) → 0–255 float with a random gain per channel, and GREY_FRACTION in grey."""
    x = images.float()
    low, high = CHANNEL_GAIN
    x = x * (low + (high - low) * torch.rand(len(x), 3, 1, 1, generator=generator))
    grey = torch.rand(len(x), generator=generator) < GREY_FRACTION
    x[grey] = x[grey].mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
    return x.clamp(0, 255)


def face_batch(images: torch.Tensor, points: torch.Tensor, *, generator: torch.Generator) -> tuple:
    """A training batch: colour jitter, a horizontal flip of half the images (their landmarks
    mirrored), normalisation and random erasing; returns (images, landmarks in [-1, 1] as (B, 2N))."""
    from scn.synth.face import OUTLINE_MIRROR

    x = colour_jitter(images, generator=generator)
    points = points.clone()
    width = images.shape[-1]
    flip = torch.rand(len(x), generator=generator) < 0.5
    x[flip] = x[flip].flip(-1)
    points[flip, :, 0] = width - points[flip, :, 0]
    points[flip] = points[flip][:, OUTLINE_MIRROR]
    x = augment.normalize(x, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    augment.random_erasing_(x, generator=generator)
    return x, (points / width * 2 - 1).reshape(len(points), -1)


def face_heads(model: SCN, x: torch.Tensor) -> tuple:
    """Identity logits and the face outline (B, 2 * OUTLINE_POINTS) in [-1, 1] from one pass of the trunk."""
    features = torch.flatten(model.features(x), 1)
    return model.fc(features), model.landmarks(features)


@torch.no_grad()
def held_out_scores(model, images, labels, points, *, device, precision) -> tuple:
    """Identity accuracy and mean landmark error (pixels) on held-out images."""
    model.eval()
    correct, error = 0, 0.0
    width = images.shape[-1]
    for start in range(0, len(labels), 256):
        x = augment.normalize(images[start:start + 256], mean=IMAGENET_MEAN, std=IMAGENET_STD)
        with autocast(device, precision):
            logits, predicted = face_heads(model, x.to(device).contiguous(memory_format=torch.channels_last))
        correct += int((logits.float().argmax(1).cpu() == labels[start:start + 256]).sum())
        predicted = (predicted.float().cpu().reshape(-1, *points.shape[1:]) + 1) / 2 * width
        error += float((predicted - points[start:start + 256]).norm(dim=-1).mean(dim=1).sum())
    model.train()
    count = max(len(labels), 1)
    return correct / count, error / count
