"""Small datasets the tests write themselves."""
from pathlib import Path

import numpy as np
from PIL import Image

from scn.data import RAFDB_IMAGE_DIR, RAFDB_LABEL_FILE


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
