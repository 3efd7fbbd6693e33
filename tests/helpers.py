"""Small datasets, images and run folders the tests make themselves."""
import csv
import io
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from scn.classes import CLASS_NAMES_WITH_CONTEMPT, class_index
from scn.config import make_config
from scn.data import RAFDB_IMAGE_DIR, RAFDB_LABEL_FILE
from scn.formats import affectnet, fer2013, ferplus
from scn.train import Trainer, train


def class_image(label: int, *, size: int, rng: np.random.Generator) -> Image.Image:
    """An image whose class is learnable: a bright bar at a class-specific height, plus noise."""
    pixels = rng.integers(0, 60, size=(size, size, 3), dtype=np.uint8)
    top = int(label * size / 8)
    pixels[top:top + max(2, size // 8), :, :] = 220
    return Image.fromarray(pixels)


def write_rafdb(root, *, train: int = 32, test: int = 16, size: int = 40, seed: int = 0,
                num_classes: int = 7) -> Path:
    """A RAF-DB-layout folder: EmoLabel/list_patition_label.txt and Image/aligned/*_aligned.jpg."""
    root = Path(root)
    (root / RAFDB_IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    (root / RAFDB_LABEL_FILE).parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines = []
    for split, count in (("train", train), ("test", test)):
        for i in range(1, count + 1):
            label = (i - 1) % num_classes
            name = f"{split}_{i:05d}"
            class_image(label, size=size, rng=rng).save(root / RAFDB_IMAGE_DIR / f"{name}_aligned.jpg")
            lines.append(f"{name}.jpg {label + 1}")
    (root / RAFDB_LABEL_FILE).write_text("\n".join(lines) + "\n")
    return root


FER_SPLITS = (("Training", 24), ("PublicTest", 8), ("PrivateTest", 8))


def _pixel_string(label: int, *, rng: np.random.Generator) -> str:
    grey = np.asarray(class_image(label, size=48, rng=rng).convert("L"))
    return " ".join(map(str, grey.ravel()))


def _write_csv(path: Path, header: list, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    return path


def write_fer2013(root, *, splits=FER_SPLITS, seed: int = 0) -> Path:
    """A folder with a FER2013 `fer2013.csv`: emotion i % 7 for the i-th row of each Usage, its
    48×48 face drawn with class_image for the canonical class of that emotion."""
    rng = np.random.default_rng(seed)
    rows = [(i % 7, _pixel_string(class_index(fer2013.EMOTIONS[i % 7]), rng=rng), usage)
            for usage, count in splits for i in range(count)]
    _write_csv(Path(root) / fer2013.CSV_NAME, ["emotion", "pixels", "Usage"], rows)
    return Path(root)


def write_ferplus(root, *, splits=FER_SPLITS, extra=(), seed: int = 0) -> Path:
    """A folder with `fer2013.csv` and `fer2013new.csv`: the i-th row of each Usage has 8 of 10
    votes for FERPlus emotion i % 8 (so contempt too) and a face drawn for it; `extra` rows
    (Usage, ten vote counts) follow with noise for a face."""
    rng = np.random.default_rng(seed)
    faces, votes = [], []
    for usage, count in splits:
        for i in range(count):
            emotion = ferplus.EMOTIONS[i % 8]
            counts = [0] * len(ferplus.VOTES)
            counts[i % 8], counts[(i + 1) % 8] = 8, 2
            faces.append((0, _pixel_string(CLASS_NAMES_WITH_CONTEMPT.index(emotion), rng=rng), usage))
            votes.append(counts)
    rows = [(usage, *counts) for (_, _, usage), counts in zip(faces, votes)]
    for usage, counts in extra:
        faces.append((0, " ".join(map(str, rng.integers(0, 256, 48 * 48))), usage))
        rows.append((usage, *counts))
    _write_csv(Path(root) / fer2013.CSV_NAME, ["emotion", "pixels", "Usage"], faces)
    _write_csv(Path(root) / ferplus.CSV_NAME, ["Usage", "Image name", *ferplus.VOTES],
               [(usage, fer2013.image_name(i), *counts) for i, (usage, *counts) in enumerate(rows)])
    return Path(root)


def write_affectnet(root, *, train: int = 24, test: int = 8, extra=(), seed: int = 0) -> Path:
    """An AffectNet download's layout: Manually_Annotated_file_lists/{training,validation}.csv and
    64×64 photos under Manually_Annotated_Images/, the face (expression i % 8, drawn with
    class_image) in the box (8, 4, 48, 48) of noise. `extra` rows (expression) follow in training."""
    root, rng = Path(root), np.random.default_rng(seed)
    header = ["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
              "facial_landmarks", "expression", "valence", "arousal"]
    for split, count, expressions in (("train", train, [i % 8 for i in range(train)] + list(extra)),
                                      ("test", test, [i % 8 for i in range(test)])):
        rows = []
        for i, expression in enumerate(expressions):
            name = f"{split}{i // 10}/{split}_{i:03d}.jpg"
            photo = Image.fromarray(rng.integers(0, 60, size=(64, 64, 3), dtype=np.uint8))
            label = class_index(affectnet.EXPRESSIONS[min(expression, 7)], class_names=CLASS_NAMES_WITH_CONTEMPT)
            photo.paste(class_image(label, size=48, rng=rng), (8, 4))
            (root / affectnet.IMAGE_DIR / name).parent.mkdir(parents=True, exist_ok=True)
            photo.save(root / affectnet.IMAGE_DIR / name)
            rows.append((name, 8, 4, 48, 48, ";".join(["10.5"] * 136), expression, 0.1, -0.2))
        _write_csv(root / affectnet.LIST_DIR / affectnet.LISTS[split], header, rows)
    return root


def copy_run(source, root, *, name: str | None = None) -> Path:
    """A copy of the run folder `source` under `root`, without its lock files: a test may change it.

    Checkpoints are hard links, not copies: with Adam's state each is about 128 MB, and a copy per
    test would fill gigabytes of disk over the suite. A test that changes a checkpoint must replace
    the file (save_checkpoint does, atomically) or unlink it first, never write into it."""
    target = Path(root) / (name or Path(source).name)
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.lock"), copy_function=_link_checkpoints)
    return target


def _link_checkpoints(source, target):
    if str(source).endswith(".pt"):
        os.link(source, target)
    else:
        shutil.copy2(source, target)


def make_unsure(run_dir) -> Path:
    """Rewrite the run's checkpoints so that alpha is about 0 for every face (alpha's bias -30):
    the state of an SCN model whose attention has collapsed."""
    from scn.checkpoint import load_checkpoint, save_checkpoint
    from scn.store import checkpoint_path

    for which in ("best", "last"):
        checkpoint = load_checkpoint(checkpoint_path(run_dir, which))
        checkpoint["model"]["alpha.0.bias"].fill_(-30.0)
        save_checkpoint(checkpoint_path(run_dir, which), checkpoint)
    return run_dir


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def tiny_config(data, **overrides):
    """Two epochs at 32 px that relabel in epoch 2 (scope "all", small margin), so every code path runs."""
    values = dict(data=str(data), epochs=2, batch_size=16, image_size=32, relabel_epoch=2,
                  relabel_scope="all", margin_2=0.05, val_fraction=0.125, log_every=1, seed=5)
    return make_config(**(values | overrides))


def train_collapsing_run(data_dir, run_dir) -> Path:
    """A one-epoch run that scn.collapse warns about: alpha starts at sigmoid(-12) ~ 0, so the scaled
    logits are ~0 and, with margin_2 0, the rule relabels almost every sample the (random) model's
    argmax disagrees with."""
    data = write_rafdb(data_dir, train=32, test=14, size=32)
    config = tiny_config(data, epochs=1, relabel_epoch=1, margin_2=0.0, alpha_bias_init=-12.0, lr=1e-6)
    assert train(config, run_dir=run_dir, progress=False) == "finished"
    return Path(run_dir)


def interrupt_after(monkeypatch, calls, action):
    """Call `action(trainer)` right after training step number `calls`: a stop request or a stand-in
    for SIGKILL at a chosen point of the run."""
    original = Trainer._train_step
    count = {"n": 0}

    def step(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        count["n"] += 1
        if count["n"] == calls:
            action(self)
        return result

    monkeypatch.setattr(Trainer, "_train_step", step)
