"""Does bfloat16 autocast + channels_last cost accuracy? The same run in float32 and in bfloat16,
on the built-in benchmark, compared on test accuracy and training speed. It trains the baseline on
clean labels: what is compared is the arithmetic, not SCN's response to noise, and a short SCN run
from scratch can fall into relabeling toward the majority class, which would hide any difference.

    python -m bench.precision_accuracy                     # about 8 minutes on 2 cores
    python -m bench.precision_accuracy --train 60 --test 21 --image-size 32 --epochs 1   # smoke
"""
import argparse
import shutil
import statistics
from pathlib import Path

from bench.results_io import write_results
from scn.config import make_config
from scn.store import RunReader
from scn.synth import default_dataset
from scn.train import train

VARIANTS = {"fp32": {"precision": "fp32", "channels_last": False},
            "bf16_channels_last": {"precision": "bf16", "channels_last": True}}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=5000)
    parser.add_argument("--test", type=int, default=1250)
    parser.add_argument("--noise", type=float, default=0.0)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--runs-dir", default="bench/out/precision")
    parser.add_argument("--json", default="bench/results/precision_accuracy.json")
    args = parser.parse_args(argv)
    data = default_dataset(train=args.train, test=args.test, noise=args.noise, progress=False)
    results = {name: {"runs": []} for name in VARIANTS}
    for seed in args.seeds:
        for name, options in VARIANTS.items():
            run_dir = Path(args.runs_dir) / f"{name}-seed{seed}"
            shutil.rmtree(run_dir, ignore_errors=True)
            config = make_config(data=str(data), method="baseline", image_size=args.image_size,
                                 epochs=args.epochs, seed=seed, **options)
            train(config, run_dir=run_dir, progress=False)
            epochs = RunReader(run_dir).epoch_metrics()
            results[name]["runs"].append({"seed": seed, "test_accuracy": float(epochs["test_accuracy"].iloc[-1]),
                                          "train_images_per_s": float(epochs["images_per_s"].mean())})
    for name, result in results.items():
        result["mean_test_accuracy"] = statistics.mean(r["test_accuracy"] for r in result["runs"])
        result["mean_images_per_s"] = statistics.mean(r["train_images_per_s"] for r in result["runs"])
        per_seed = ", ".join(f"{r['test_accuracy']:.4f}" for r in result["runs"])
        print(f"{name:>20}: test accuracy {result['mean_test_accuracy']:.4f} (seeds: {per_seed}), "
              f"{result['mean_images_per_s']:.0f} img/s")
    write_results(args.json, {"scale": vars(args), "results": results}, module="bench.precision_accuracy", argv=argv)


if __name__ == "__main__":
    main()
