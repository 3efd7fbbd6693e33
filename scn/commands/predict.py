"""Predict the expression of every face in photos with a run's checkpoint.

Faces are found with MTCNN (`--detector haar` for OpenCV's Haar cascades) and aligned on their five
landmarks to the template the training faces are framed by (`scn.align`). For each face: its box
(x, y, width, height in the photo's pixels), landmarks and detector probability (MTCNN), the class
probabilities (softmax of the classifier's logits before alpha scales them), the attention weight
alpha and its percentile among the run's training samples, and "unsure" with the reason where alpha
is near 0 or the Grad-CAM is flat. With --cam-dir the Grad-CAM overlays (top class, last residual block) are written there as PNG files. A photo that
cannot be read is reported on stderr and the others are still predicted; the exit status is then 2.
"""
import json
import sys
from pathlib import Path


HELP = "predict expressions, attention weights and Grad-CAM for the faces in photos"


def add_arguments(parser) -> None:
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="photo files (JPEG, PNG, ...)")
    parser.add_argument("--run", required=True, help="run folder, e.g. runs/NAME")
    parser.add_argument("--checkpoint", choices=("best", "last"),
                        help="which checkpoint of the run to use (default: best, chosen on the validation "
                             "split; the last for a run without one)")
    parser.add_argument("--cam-dir", type=Path, help="write Grad-CAM overlays here as PNG files")
    parser.add_argument("--detector", choices=("mtcnn", "haar"), default="mtcnn",
                        help="face detector: mtcnn (aligned on 5 landmarks, default) or haar (square crops)")
    parser.add_argument("--whole-image", action="store_true",
                        help="treat each whole image as one face instead of detecting faces")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of text")


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def _cam_names(paths) -> list:
    """PNG name stems per image: the file stem, prefixed by the image's position when stems repeat."""
    stems = [Path(p).stem for p in paths]
    return [f"{i}-{stem}" if stems.count(stem) > 1 else stem for i, stem in enumerate(stems, start=1)]


def _face_record(number: int, face, percentile) -> dict:
    return {
        "face": number,
        "box": dict(zip(("x", "y", "w", "h"), face.box.as_tuple())),
        "detector": face.box.source,
        "detector_probability": face.box.score,
        "landmarks": None if face.box.landmarks is None else [list(point) for point in face.box.landmarks],
        "aligned": face.box.landmarks is not None,
        "top_class": face.top_class,
        "probabilities": face.probabilities(),
        "alpha": face.alpha,
        "alpha_percentile": percentile,
        "unsure": face.unsure,
    }


def _print_text(record: dict) -> None:
    if "error" in record:
        return
    faces = record["faces"]
    if not faces:
        print(f"{record['image']}: no face found (try --whole-image)")
    else:
        print(f"{record['image']}: {len(faces)} face{'s' if len(faces) > 1 else ''}")
    for face in faces:
        box = face["box"]
        percentile = face["alpha_percentile"]
        where = ("no training alphas recorded" if percentile is None
                 else f"percentile {percentile:.0f} among training samples")
        headline = f"{face['top_class']} {face['probabilities'][face['top_class']]:.3f}"
        if face["unsure"]:
            headline = f"unsure ({face['unsure']}; best guess {headline})"
        print(f"  face {face['face']}: box x={box['x']} y={box['y']} w={box['w']} h={box['h']}  "
              f"{headline}  alpha {face['alpha']:.3f} ({where})")
        print("    " + "  ".join(f"{name} {p:.3f}" for name, p in face["probabilities"].items()))
        if "cam" in face:
            print(f"    Grad-CAM ({face['top_class']}): {face['cam']}")


def run(args) -> int:
    # Imported here so that `python -m scn --help` does not wait for torch, OpenCV and pandas.
    from PIL import Image

    from scn.checkpoint import CheckpointError
    from scn.faces import DetectorUnavailableError
    from scn.images import ImageLoadError, load_image
    from scn.predict import alpha_percentile, load_model_cached, predict_image, trained_on, training_alphas
    from scn.selection import missing_best_reason
    from scn.store import CONFIG_NAME, RunDamagedError, RunNotFoundError, checkpoint_path

    run_dir = Path(args.run)
    which = args.checkpoint or "best"
    checkpoint = checkpoint_path(run_dir, which)
    if not run_dir.is_dir():
        _error(f"no run folder at {run_dir}")
        return 2
    if which == "best" and not checkpoint.is_file():
        reason = missing_best_reason(run_dir / CONFIG_NAME)
        if args.checkpoint is None and checkpoint_path(run_dir, "last").is_file():
            print(f"note: run {run_dir.name} has no best checkpoint ({reason}); using its last checkpoint",
                  file=sys.stderr)
            which, checkpoint = "last", checkpoint_path(run_dir, "last")
        else:
            _error(f"run {run_dir.name} has no best checkpoint ({checkpoint}): {reason}")
            return 2
    if not checkpoint.is_file():
        _error(f"run {run_dir.name} has no {which} checkpoint yet ({checkpoint})")
        return 2
    try:
        model, meta = load_model_cached(checkpoint)
    except CheckpointError as exc:
        _error(str(exc))
        return 2
    try:
        training = training_alphas(run_dir)
    except RunNotFoundError:
        training = []
    except RunDamagedError as exc:
        print(f"warning: {exc}; predicting from the checkpoint alone, without alpha percentiles",
              file=sys.stderr)
        training = []
    if meta["model_config"]["method"] == "baseline":
        training = []
    if args.cam_dir:
        args.cam_dir.mkdir(parents=True, exist_ok=True)
    records, failed = [], False
    for path, stem in zip(args.images, _cam_names(args.images)):
        try:
            image = load_image(path)
        except ImageLoadError as exc:
            _error(str(exc))
            records.append({"image": path, "error": str(exc)})
            failed = True
            continue
        try:
            faces = predict_image(model, meta, image, whole_image=args.whole_image,
                                  detect_options={"detector": args.detector})
        except DetectorUnavailableError as exc:
            _error(str(exc))
            return 2
        record = {"image": path, "faces": [_face_record(n, f, alpha_percentile(f.alpha, training))
                                                   for n, f in enumerate(faces, 1)]}
        if args.cam_dir:
            for face_record, face in zip(record["faces"], faces):
                target = args.cam_dir / f"{stem}-face{face_record['face']}-{face.cam_class}.png"
                Image.fromarray(face.overlay).save(target)
                face_record["cam"] = str(target)
        records.append(record)
        if not args.json:
            _print_text(record)
    if args.json:
        print(json.dumps({"run": str(run_dir), "checkpoint": str(checkpoint), "trained_on": trained_on(meta),
                          "images": records}, indent=2))
    else:
        print(f"(model trained on {trained_on(meta)}; treat predictions on other photos with care)")
    return 2 if failed else 0
