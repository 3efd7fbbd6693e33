"""Face alignment: five landmarks onto a canonical template by a similarity transform.

RAF-DB's aligned images were made this way: the eyes, nose tip and mouth corners a detector found
are mapped by rotation, uniform scale and translation (4 degrees of freedom, so the face is never
sheared) onto fixed positions of a square crop. A model then sees every face framed alike,
whatever the tilt and size of the head in the photo.

`TEMPLATE` places the points where the built-in benchmark (`scn.synth`) draws them on average, as
fractions of the image side, so a photo aligned for prediction is framed like the faces the model
trained on: the mean over 280 generated training faces of `scn.synth.face.Landmarks` (eye centres,
nose tip, mouth corners), made left-right symmetric since the generator's yaw, roll and shift
average out. `python -m bench.face_detection` re-derives it and reports how far the landmarks MTCNN
finds on generated faces lie from it.

`align_folder` prepares a folder of raw photos for training the same way (`python -m scn align`).
"""
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from scn.faces import crop, detect_faces
from scn.images import ImageLoadError, load_image

TEMPLATE = np.array([
    (0.3404, 0.4014),  # left eye (image left)
    (0.6596, 0.4014),  # right eye
    (0.5000, 0.5801),  # nose tip
    (0.3935, 0.7004),  # left mouth corner
    (0.6065, 0.7004),  # right mouth corner
])
POINTS = ("left eye", "right eye", "nose", "left mouth corner", "right mouth corner")


def similarity(landmarks, *, size: int, template=TEMPLATE) -> np.ndarray:
    """The 2x3 matrix of the similarity transform taking `landmarks` (5 (x, y) points in the photo)
    closest, in least squares, to `template` scaled to a `size` x `size` crop.

    All five points count: a robust fit (RANSAC) would drop a point whose error crosses a pixel
    threshold, so the crop of one face would change with the photo's resolution.
    """
    source = _points(landmarks, "landmarks")
    target = _points(template, "template") * size
    if np.linalg.norm(source - source.mean(axis=0)) < 1e-6:
        raise ValueError("the landmarks coincide: they give no scale to align by")
    x, y = source[:, 0], source[:, 1]
    ones, zeros = np.ones_like(x), np.zeros_like(x)
    # u = a x - b y + tx, v = b x + a y + ty: rotation and uniform scale (a, b), translation.
    design = np.vstack([np.stack([x, -y, ones, zeros], 1), np.stack([y, x, zeros, ones], 1)])
    (a, b, tx, ty), *_ = np.linalg.lstsq(design, np.concatenate([target[:, 0], target[:, 1]]), rcond=None)
    return np.array([[a, -b, tx], [b, a, ty]])


def align_face(image: Image.Image, landmarks, *, size: int, template=TEMPLATE) -> Image.Image:
    """The `size` x `size` RGB crop of `image` in which `landmarks` land on `template`.

    The face is warped at its own resolution (at least `size`, at most 1024 px) and then resized
    with Pillow's bilinear filter, as training resizes its aligned images: warping a large face
    straight down to a small crop would sample it sparsely and alias. Outside the photo is black.
    """
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, not {size}")
    matrix = similarity(landmarks, size=size, template=template)
    scale = np.hypot(matrix[0, 0], matrix[1, 0])
    native = int(np.clip(round(size / scale), size, 1024))
    warped = cv2.warpAffine(np.asarray(image.convert("RGB")), matrix * (native / size), (native, native),
                            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    aligned = Image.fromarray(warped)
    return aligned if native == size else aligned.resize((size, size), Image.Resampling.BILINEAR)


def align_folder(source, target, *, size: int = 100, largest: bool = False, detector: str = "mtcnn",
                 overwrite: bool = False, progress: bool = True) -> pd.DataFrame:
    """Write one aligned `size` x `size` PNG per face of every photo under `source` into `target`,
    keeping the subfolders (class folders stay class folders), and return the report.

    A photo `happy/p1.jpg` gives `happy/p1_face1.png`, `happy/p1_face2.png`, ... (faces left to
    right), or `happy/p1.png` from its largest face alone with `largest=True`. Faces without
    landmarks (`detector="haar"`) are cropped square instead of aligned. The report has a row per
    file: `file` (relative to `source`), `status` ("aligned", "no face", "unreadable" or "name
    taken": another photo of that folder has the same name with another extension), `faces` found,
    `written`, `message`; it is also written to `target/align_report.csv`, which dataset loaders
    ignore. Refuses a `target` that already holds files unless `overwrite=True`, which replaces
    the files of the same names.
    """
    source, target = Path(source), Path(target)
    if not source.is_dir():
        raise ValueError(f"no folder of photos at {source}")
    if target.resolve().is_relative_to(source.resolve()):
        raise ValueError(f"the output folder {target} lies inside the input folder {source}: choose another")
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, not {size}")
    existing = [p for p in target.rglob("*") if p.is_file()] if target.is_dir() else []
    if existing and not overwrite:
        raise ValueError(f"{target} already holds {len(existing)} files; choose an empty folder or overwrite")
    files = sorted(p for p in source.rglob("*") if p.is_file() and not p.name.startswith("."))
    rows, taken = [], set()
    for path in tqdm(files, desc="align", unit="photo", disable=not progress):
        relative = path.relative_to(source)
        row = {"file": str(relative), "status": "aligned", "faces": 0, "written": 0, "message": ""}
        rows.append(row)
        if relative.with_suffix("") in taken:
            row.update(status="name taken", message=f"{relative}: another photo in this folder has the same name")
            continue
        try:
            image = load_image(path, name=str(relative))
        except ImageLoadError as exc:
            row.update(status="unreadable", message=str(exc))
            continue
        boxes = detect_faces(image, detector=detector)
        row["faces"] = len(boxes)
        if not boxes:
            row["status"] = "no face"
            continue
        taken.add(relative.with_suffix(""))
        if largest:
            boxes = [max(boxes, key=lambda b: b.w * b.h)]
        folder = target / relative.parent
        folder.mkdir(parents=True, exist_ok=True)
        for number, box in enumerate(boxes, start=1):
            face = (align_face(image, box.landmarks, size=size) if box.landmarks
                    else crop(image, box).resize((size, size), Image.Resampling.BILINEAR))
            face.save(folder / (f"{relative.stem}.png" if largest else f"{relative.stem}_face{number}.png"))
        row["written"] = len(boxes)
    report = pd.DataFrame(rows, columns=["file", "status", "faces", "written", "message"])
    target.mkdir(parents=True, exist_ok=True)
    report.to_csv(target / "align_report.csv", index=False)
    return report


def _points(points, what: str) -> np.ndarray:
    array = np.asarray(points, dtype=np.float64)
    if array.shape != (len(POINTS), 2) or not np.isfinite(array).all():
        raise ValueError(f"{what} must be 5 finite (x, y) points ({', '.join(POINTS)}); got shape {array.shape}")
    return array
