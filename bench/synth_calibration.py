"""Is the built-in benchmark hard in the right ways? A plain ResNet-18 from scratch on clean labels.

Trains the baseline (112 px, 20 epochs, 5,000 training images, clean labels) and reports its test
accuracy, confusion matrix, the most confused class pairs, and accuracy by expression intensity,
blend, and each degradation, from the benchmark's ground truth.

    python -m bench.synth_calibration                        # about 30 min on 2 cores
    python -m bench.synth_calibration --train 60 --test 21 --image-size 32 --epochs 1   # smoke
"""
import argparse
import shutil

import numpy as np
import pandas as pd

from bench.results_io import write_results
from bench.relabel_quality import predict_probs
from scn.classes import CLASS_NAMES
from scn.config import make_config
from scn.synth import default_dataset
from scn.store import checkpoint_path
from scn.train import train


def difficulty_table(truth: pd.DataFrame) -> dict:
    """Accuracy per slice of the ground truth: intensity bins, blends, each degradation."""
    # Neutral faces have no expression intensity; they would fill the lowest bin.
    intensity = truth["intensity"].where(truth["true_class"] != "neutral")
    slices = {
        "intensity": pd.cut(intensity, [0, 0.35, 0.6, 0.85, 1.01],
                            labels=["subtle <0.35", "0.35-0.6", "0.6-0.85", "strong >0.85"]),
        "blend": np.where(truth["blend_weight"] > 0, "two-class blend", "single expression"),
        "occlusion": truth["occlusion"].fillna("none"),
        "blur": np.where(truth["blur_sigma"] > 0, "blurred", "sharp"),
        "low resolution": np.where(truth["resolution_scale"] < 1, "down-and-up scaled", "full resolution"),
        "jpeg": pd.cut(truth["jpeg_quality"], [0, 40, 70, 101], labels=["q<40", "q40-70", "q>70"]),
        "sensor noise": np.where(truth["noise_sigma"] > 0, "noisy", "clean"),
    }
    table = {}
    for name, keys in slices.items():
        grouped = truth.groupby(pd.Series(keys, index=truth.index))["correct"]
        table[name] = {k: {"accuracy": float(v.mean()), "images": int(v.size)} for k, v in grouped}
    return table


def confused_pairs(confusion: np.ndarray, *, top: int = 5) -> list:
    """Unordered class pairs ranked by the share of the pair's test images mistaken for the other
    class; raw counts would rank pairs by class size (neutral and happiness dominate RAF-DB)."""
    pairs = []
    for a in range(len(confusion)):
        for b in range(a + 1, len(confusion)):
            mistakes = confusion[a, b] + confusion[b, a]
            pairs.append({"pair": f"{CLASS_NAMES[a]}/{CLASS_NAMES[b]}", "mistakes": int(mistakes),
                          "share_of_pair": float(mistakes / max(confusion[a].sum() + confusion[b].sum(), 1))})
    return sorted(pairs, key=lambda p: -p["share_of_pair"])[:top]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=5000)
    parser.add_argument("--test", type=int, default=1250)
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (default: all)")
    parser.add_argument("--run-dir", default="bench/out/synth_calibration")
    parser.add_argument("--json", default="bench/results/synth_calibration.json")
    parser.add_argument("--reuse", action="store_true", help="analyse the finished run in --run-dir again")
    args = parser.parse_args(argv)
    data = default_dataset(train=args.train, test=args.test, noise=0.0, progress=False)
    if not args.reuse:
        shutil.rmtree(args.run_dir, ignore_errors=True)
        config = make_config(data=str(data), method="baseline", image_size=args.image_size, epochs=args.epochs,
                             val_fraction=0.0, threads=args.threads, seed=0)
        train(config, run_dir=args.run_dir, progress=False)

    truth = pd.read_csv(data / "groundtruth.csv")
    truth = truth[truth["split"] == "test"].reset_index(drop=True)
    names = truth["image"].str.replace("_aligned", "", regex=False).tolist()
    probs = predict_probs(checkpoint_path(args.run_dir, "last"), data, names)
    truth["predicted"] = probs.argmax(1)
    truth["true"] = truth["true_label"] - 1
    truth["correct"] = truth["predicted"] == truth["true"]
    confusion = np.zeros((7, 7), dtype=np.int64)
    np.add.at(confusion, (truth["true"], truth["predicted"]), 1)
    report = {"scale": vars(args), "test_accuracy": float(truth["correct"].mean()),
              "confusion": confusion.tolist(), "class_names": list(CLASS_NAMES),
              "most_confused_pairs": confused_pairs(confusion), "by_slice": difficulty_table(truth)}
    write_results(args.json, report, module="bench.synth_calibration", argv=argv)
    print(f"test accuracy {report['test_accuracy']:.1%} on {len(truth)} images")
    print(pd.DataFrame(confusion, index=CLASS_NAMES, columns=[c[:5] for c in CLASS_NAMES]).to_string())
    for pair in report["most_confused_pairs"]:
        print(f"  {pair['pair']:<22} {pair['mistakes']:>4} mistakes ({pair['share_of_pair']:.1%} of the pair)")
    for name, rows in report["by_slice"].items():
        print(f"{name}: " + ", ".join(f"{k} {v['accuracy']:.1%} (n={v['images']})" for k, v in rows.items()))


if __name__ == "__main__":
    main()
