"""Where each noise model puts the wrong labels: the wrong-label rate by expression intensity,
occlusion and ambiguity, from a generated benchmark's groundtruth.csv.

    python -m bench.noise_models [--train 3000] [--size 48] [--noise 0.2] [--workers N]
    python -m bench.noise_models --groundtruth DIR/groundtruth.csv

Generates the benchmark as `python -m scn synth --noise-model annotators --noise 0.2` does (into
a temporary folder) and reads back its groundtruth.csv; with --groundtruth it reads an existing
one instead. For comparison, the symmetric and pairwise models label the same training faces at
the same rate (scn.synth.noise, as `scn synth` would with those models and the same seed). Prints a
Markdown table and writes bench/results/noise_models.json.
"""
import argparse
import resource
import tempfile
import time
from pathlib import Path

import pandas as pd

from bench.results_io import write_results
from scn.classes import CLASS_NAMES
from scn.metrics import auroc
from scn.synth import generate_dataset
from scn.synth.noise import AMBIGUOUS, noisy_labels

RESULTS = Path(__file__).parent / "results" / "noise_models.json"
INTENSITY_BINS = [(-0.01, 0.0, "neutral (none)"), (0.0, 0.35, "< 0.35"), (0.35, 0.6, "0.35–0.6"),
                  (0.6, 0.85, "0.6–0.85"), (0.85, 1.0, "> 0.85")]
OCCLUSIONS = ("none", "glasses", "sunglasses", "hand", "mask")


def slices(train: pd.DataFrame) -> dict:
    """Boolean masks of the training faces: by intensity, occlusion and ambiguity."""
    intensity = train["intensity"].astype(float)
    masks = {f"intensity {label}": (intensity > low) & (intensity <= high) for low, high, label in INTENSITY_BINS}
    masks |= {f"occlusion {kind}": train["occlusion"].fillna("none") == kind for kind in OCCLUSIONS}
    ambiguous = train["ambiguity"].astype(float) >= AMBIGUOUS
    masks |= {f"ambiguous (ambiguity ≥ {AMBIGUOUS})": ambiguous, "not ambiguous": ~ambiguous}
    return masks


def report(truth: pd.DataFrame, *, seed: int) -> dict:
    """Wrong-label rate per slice under the dataset's own labels and, on the same faces at the same
    rate, under the other models."""
    train = truth[truth["split"] == "train"].reset_index(drop=True)
    true = train["true_label"].to_numpy(int) - 1
    own_model = str(train["noise_model"].iloc[0])
    rate = float((train["given_label"].to_numpy(int) - 1 != true).mean())
    wrong = {own_model: train["given_label"].to_numpy(int) - 1 != true}
    for model in ("symmetric", "pairwise"):
        if model != own_model:
            wrong[model] = noisy_labels(train, noise=rate, seed=seed, model=model)[0] != true
    masks = slices(train)
    rows = [{"slice": name, "faces": int(mask.sum()),
             **{model: float(w[mask.to_numpy()].mean()) if mask.any() else None for model, w in wrong.items()}}
            for name, mask in masks.items()]
    ambiguity = train["ambiguity"].astype(float).to_numpy()
    return {"noise_model": own_model, "train_faces": len(train), "wrong_label_rate": rate,
            "models": list(wrong), "rows": rows,
            "auroc_ambiguity_flags_wrong": {model: auroc(ambiguity, w) for model, w in wrong.items()},
            "wrong_by_true_class": {model: {name: float(w[true == c].mean()) for c, name in enumerate(CLASS_NAMES)
                                            if (true == c).any()} for model, w in wrong.items()}}


def markdown(result: dict) -> str:
    models = result["models"]
    lines = [f"| slice | faces | {' | '.join(models)} |", "|---|---|" + "---|" * len(models)]
    for row in result["rows"]:
        cells = [f"{row[m]:.1%}" if row[m] is not None else "–" for m in models]
        lines.append(f"| {row['slice']} | {row['faces']:,} | {' | '.join(cells)} |")
    lines.append(f"| AUROC: ambiguity flags a wrong label | | "
                 + " | ".join(f"{result['auroc_ambiguity_flags_wrong'][m]:.3f}" for m in models) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groundtruth", type=Path, help="read this groundtruth.csv instead of generating one")
    parser.add_argument("--train", type=int, default=3000)
    parser.add_argument("--size", type=int, default=48, help="image side: the labels do not depend on it")
    parser.add_argument("--noise", type=float, default=0.2)
    parser.add_argument("--noise-model", default="annotators")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    if args.groundtruth:
        truth = pd.read_csv(args.groundtruth, keep_default_na=False)
    else:
        with tempfile.TemporaryDirectory() as scratch:
            out = generate_dataset(Path(scratch) / "synth", train=args.train, test=0, size=args.size,
                                   noise=args.noise, noise_model=args.noise_model, seed=args.seed,
                                   workers=args.workers, progress=False)
            truth = pd.read_csv(out / "groundtruth.csv", keep_default_na=False)
    # CPU seconds of this process and its render workers: what the run costs on idle cores, where
    # the wall time also counts whatever else the machine is doing.
    cpu = sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
              for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    result = report(truth, seed=args.seed) | {"seconds": round(time.perf_counter() - start, 1),
                                              "cpu_seconds": round(cpu, 1)}
    print(markdown(result))
    write_results(args.out, result, module="bench.noise_models", argv=argv)
    print(f"wrote {args.out} ({result['seconds']} s wall, {result['cpu_seconds']} CPU s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
