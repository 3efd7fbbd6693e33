"""How much expression does a backbone already know? A linear probe on frozen features.

Each start's ResNet-18 trunk is frozen; its 512-d pooled features of the built-in benchmark's clean
training images (2,000 / 500 by default, the demo's size when this was measured, at its image
size) fit a logistic regression (scikit-learn, on standardised features), scored on the test
images. Three starts:

- `random`: the trunk as initialised (what `--pretrained none` trains from);
- `synth-face`: the identity-trained backbone (scn.pretrain), which saw no expression label;
- `expression`: a baseline trained with expression labels on *other* clean images of the benchmark
  (another data seed): a clean-label teacher, for comparison only;
- `dlib-face`: dlib's face-recognition ResNet (real faces, identity only; its 256-d pooled features),
  and `dlib-face-random`, the same network with random weights. It needs 112 px or more.

    python -m bench.linear_probe --starts random synth-face expression   # the ResNet-18 starts, 64 px
    python -m bench.linear_probe --starts dlib-face dlib-face-random --image-size 150 \
        --json bench/results/linear_probe_dlib_face.json                # the real-face start
    python -m bench.linear_probe --train 60 --test 21 --expression-train 60 --expression-epochs 1 \\
        --runs-dir /tmp/probe --json /tmp/probe.json        # toy scale (tests/test_bench.py)
"""
import argparse
import time
from pathlib import Path

import numpy as np
import torch

from bench.results_io import write_results
from bench.noise_robustness import ensure_trained
from scn import augment
from scn.config import DLIB_FACE, DLIB_MEAN, DLIB_STD, IMAGENET_MEAN, IMAGENET_STD, SYNTH_FACE
from scn.data import load_dataset
from scn.model import SCN
from scn.runs import DEMO_DATA, train_command
from scn.starts import build_model
from scn.store import RunReader, checkpoint_path


@torch.no_grad()
def features(model: SCN, images: torch.Tensor) -> np.ndarray:
    model.eval()
    mean, std = (DLIB_MEAN, DLIB_STD) if model.backbone == "dlib-resnet" else (IMAGENET_MEAN, IMAGENET_STD)
    out = []
    for start in range(0, len(images), 256):
        x = augment.normalize(images[start:start + 256], mean=mean, std=std)
        out.append(torch.flatten(model.features(x), 1))
    return torch.cat(out).numpy()


def probe(model: SCN, train, test) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=0.5))
    classifier.fit(features(model, train.images), train.labels.numpy())
    predicted = classifier.predict(features(model, test.images))
    labels = test.labels.numpy()
    recall = [float((predicted[labels == c] == c).mean()) for c in np.unique(labels)]
    return {"test_accuracy": float((predicted == labels).mean()), "mean_class_recall": float(np.mean(recall))}


def expression_start(args) -> Path:
    """A baseline trained on other clean expression images (data seed 1), from random weights."""
    from scn.synth import default_dataset

    data = default_dataset(train=args.expression_train, test=args.test, seed=1, progress=False)
    run_dir = Path(args.runs_dir) / f"expression-{args.expression_train}x{args.expression_epochs}-{args.image_size}px"
    options = {"data": str(data), "method": "baseline", "pretrained": "none", "epochs": args.expression_epochs,
               "image_size": args.image_size, "threads": args.threads}
    ensure_trained(run_dir, [*train_command(run_dir=run_dir, options=options), "--no-progress"])
    return checkpoint_path(run_dir, "last")


STARTS = ("random", SYNTH_FACE, "expression", DLIB_FACE, "dlib-face-random")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--image-size", type=int, default=DEMO_DATA["image_size"])
    parser.add_argument("--expression-train", type=int, default=3000)
    parser.add_argument("--expression-epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--starts", nargs="+", default=list(STARTS), choices=STARTS,
                        help="the starts to probe (default: all)")
    parser.add_argument("--runs-dir", default="runs/bench-linear-probe")
    parser.add_argument("--json", default="bench/results/linear_probe.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from scn.pretrain import ensure_backbone
    from scn.synth import default_dataset

    started = time.time()
    dataset = load_dataset(default_dataset(train=args.train, test=args.test, progress=False),
                           image_size=args.image_size)
    torch.manual_seed(0)
    models, extra = {}, {}
    for name in args.starts:
        if name == "expression":
            expression = expression_start(args)
            models[name] = build_model(7, start=str(expression))
            extra["expression_start_test_accuracy"] = float(
                RunReader(expression.parent.parent).epoch_metrics()["test_accuracy"].iloc[-1])
        elif name == SYNTH_FACE:
            backbone = ensure_backbone()
            models[name] = build_model(7, start=SYNTH_FACE)
            extra["synth_face_recipe"] = torch.load(backbone, map_location="cpu", weights_only=True)["recipe"]
        elif name == "dlib-face-random":
            models[name] = build_model(7, start=DLIB_FACE, load_weights=False)
        else:
            models[name] = build_model(7, start=None if name == "random" else name)
    results = {name: probe(model, dataset.train, dataset.test) for name, model in models.items()}
    counts = np.bincount(dataset.test.labels.numpy())
    for name, scores in results.items():
        print(f"{name:10} linear probe: test accuracy {scores['test_accuracy']:.1%}, "
              f"mean class recall {scores['mean_class_recall']:.1%}")
    out = {"settings": {k: getattr(args, k) for k in ("train", "test", "image_size", "expression_train",
                                                      "expression_epochs")},
           "majority_share": float(counts.max() / counts.sum()), **extra,
           "results": results, "seconds": time.time() - started}
    write_results(args.json, out, module="bench.linear_probe", argv=argv)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
