"""Latency of predicting on one 12-megapixel photo with one face, with a warm model, on the CPU.

The photo is matplotlib's grace_hopper.jpg scaled up to 3000 px high on a 4000x3000 textured
background, saved as a JPEG. Times, as the median and the best of --repeats runs after one warm-up
(the best is what the CPU does when other processes leave it alone):
decode (bytes -> RGB, reported apart), detection, model + Grad-CAM on the face, and the total
of `scn.predict.predict_image` (detection + prediction + Grad-CAM: the figure the budget is for).

    python -m bench.predict_latency                       # random weights, 224 px input
    python -m bench.predict_latency --run runs/NAME       # a run's best checkpoint
    python -m bench.predict_latency --json bench/results/predict_latency.json   # the figure in docs/results.md
"""
import argparse
import io
import os
import statistics
import time

import numpy as np
import torch
from matplotlib.cbook import get_sample_data
from PIL import Image, ImageFilter

from bench.results_io import write_results
from scn.checkpoint import load_model
from scn.classes import CLASS_NAMES
from scn.faces import detect_faces
from scn.images import load_image
from scn.model import SCN
from scn.predict import predict_image
from scn.store import checkpoint_path


def twelve_megapixel_photo(*, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    noise = Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).filter(ImageFilter.GaussianBlur(3))
    canvas = noise.resize((4000, 3000), Image.Resampling.BICUBIC)
    face = Image.open(get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")
    canvas.paste(face.resize((2560, 3000), Image.Resampling.BICUBIC), (720, 0))
    buffer = io.BytesIO()
    canvas.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def model_and_meta(run: str | None, image_size: int):
    if run:
        return load_model(checkpoint_path(run, "best"))
    config = {"num_classes": 7, "class_names": list(CLASS_NAMES), "method": "scn", "image_size": image_size,
              "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    return SCN(7).eval(), {"model_config": config}


def timed(fn, *, repeats: int):
    """(median ms, best ms, last result): the best shows what the CPU does when others leave it alone."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, min(times) * 1000, result


def measure(*, run: str | None = None, image_size: int = 224, repeats: int = 7) -> dict:
    """Median and best milliseconds of each stage on the 12-megapixel photo."""
    model, meta = model_and_meta(run, image_size)
    data = twelve_megapixel_photo()
    image = load_image(data)
    assert len(predict_image(model, meta, image)) == 1, "the benchmark photo must show exactly one face"
    box = detect_faces(image)[0]
    stages = {
        "decode (not in the budget)": lambda: load_image(data),
        "detection": lambda: detect_faces(image),
        "crop + model + Grad-CAM": lambda: predict_image(model, meta, image, boxes=[box]),
        "predict_image total": lambda: predict_image(model, meta, image),
    }
    results = {"photo": f"{image.width}x{image.height}", "megapixels": image.width * image.height / 1e6,
               "jpeg_megabytes": len(data) / 1e6, "model_input": meta["model_config"]["image_size"],
               "threads": torch.get_num_threads(), "repeats": repeats, "load_average": os.getloadavg()[0],
               "stages_ms": {}}
    for label, fn in stages.items():
        median, best, _ = timed(fn, repeats=repeats)
        results["stages_ms"][label] = {"median": median, "best": best}
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="run folder whose best checkpoint to use (default: random weights)")
    parser.add_argument("--image-size", type=int, default=224, help="model input size without --run")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    results = measure(run=args.run, image_size=args.image_size, repeats=args.repeats)
    print(f"photo {results['photo']} ({results['megapixels']:.1f} MP, {results['jpeg_megabytes']:.1f} MB JPEG), "
          f"model input {results['model_input']} px, torch threads {results['threads']}, {args.repeats} runs, "
          f"load average {results['load_average']:.1f}")
    print(f"  {'':28s} {'median':>8s} {'best':>8s}")
    for label, ms in results["stages_ms"].items():
        print(f"  {label:28s} {ms['median']:6.0f}ms {ms['best']:6.0f}ms")
    print("  budget for predict_image total: 1500 ms")
    if args.json:
        write_results(args.json, results, module="bench.predict_latency", argv=argv)


if __name__ == "__main__":
    main()
