"""Can SCN train from a standing start? Random weights, the remedies, and the demo's own settings.

Groups of runs on the built-in benchmark, each its own `python -m scn train` process, one thread:

- `--part remedies`: from random weights (`--pretrained none`), at the size the demo had first
  (REMEDY_SCALE: 2,000 / 500 images, 10 epochs): the baseline and plain SCN at 30% label noise (the
  failure), and on clean labels the baseline, plain SCN, and SCN with each remedy (TrainConfig
  options, off in both presets): alpha fixed at 1 for the first epochs (`--alpha-warmup-epochs`),
  alpha's bias initialised so it starts near 0.95 (`--alpha-bias-init 3`), relabeling gated on
  validation accuracy (`--relabel-min-val-acc`), all three together, and alpha normalised within
  each batch (`--alpha-normalize`). The remedies are compared on clean labels because at this
  scale, from random weights, even the baseline learns nothing that generalises at 30% noise;
- `--part demo`: the synth-face pair (SYNTH_FACE_PAIR: SCN with alpha normalised and a wide relabel
  margin, and the baseline, both from the synth-face backbone at 64 px; the one-click demo's settings
  before it started from dlib-face, bench/demo.py) at 30% and 0% noise, for several seeds (the demo's target: SCN at
  least 2 points ahead at 30% at the last epoch, and no more than 1 point behind on clean labels);
- `--part scale`: at the demo's size from the synth-face backbone at 30% noise: the baseline,
  plain SCN, SCN with alpha normalised within each batch, with and without relabeling, under
  symmetric and annotator noise (`--synth-noise-model`), each scored against the ground truth
  (relabel precision and damage, alpha's AUROC for the labels wrong at the last epoch).

Every run's collapse warnings (scn.collapse) are recorded beside its accuracy. Finished runs are
kept in --runs-dir and skipped on a rerun.

    python -m bench.standing_start                       # every part (the figures in docs/results.md)
    python -m bench.standing_start --part demo --seeds 0 1 2
    python -m bench.standing_start --train 60 --test 21 --image-size 32 --epochs 2 --relabel-epoch 2 \\
        --demo-train 60 --demo-test 21 --demo-epochs 2 --demo-relabel-epoch 2 \\
        --seeds 0 --runs-dir /tmp/ss --json /tmp/ss.json      # toy scale (tests/test_bench.py)
"""
import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench.results_io import write_results
from bench.noise_robustness import accuracies, ensure_trained
from scn.metrics import run_scores
from scn.runs import train_command
from scn.store import RunReader

REMEDIES = {
    "baseline": {"method": "baseline"},
    "scn": {},
    "scn_warmup": {"alpha_warmup_epochs": 2},
    "scn_alpha_bias": {"alpha_bias_init": 3.0},
    "scn_relabel_gate": {"relabel_min_val_accuracy": 0.5},
    "scn_all_three": {"alpha_warmup_epochs": 2, "alpha_bias_init": 3.0, "relabel_min_val_accuracy": 0.5},
    "scn_alpha_normalize": {"alpha_normalize": True},
}
# The demo's size when the remedies were measured: small enough for ten runs in half an hour.
REMEDY_SCALE = {"train": 2000, "test": 500, "epochs": 10, "relabel_epoch": 5}
FAILURE_VARIANTS = ("baseline", "scn")
# The synth-face pair's methods and size; each job sets its own noise, so a toy scale can stand in.
SYNTH_FACE_PAIR = {"scn": {"method": "scn", "alpha_normalize": True, "margin_2": 0.7},
                   "baseline": {"method": "baseline"}}
DEMO_SIZE = {"train": 4000, "test": 1000, "epochs": 12, "relabel_epoch": 6}
DEMO_IMAGE_SIZE = 64
SCALE_RUNS = {
    "symmetric": {"baseline": {"method": "baseline"}, "scn": {}, "scn_alpha_normalize": {"alpha_normalize": True},
                  "scn_alpha_normalize_no_relabel": {"alpha_normalize": True, "relabel": False}},
    "annotators": {"baseline": {"method": "baseline"}, "scn_alpha_normalize": {"alpha_normalize": True}},
}


def jobs(args) -> list:
    found = []
    if "remedies" in args.part:
        found += [{"part": "remedies", "start": "none", "noise": noise, "variant": variant, "seed": seed,
                   "options": options} for noise in (0.3, 0.0) for variant, options in REMEDIES.items()
                  for seed in args.remedy_seeds if noise == 0.0 or variant in FAILURE_VARIANTS]
    if "demo" in args.part:
        found += [{"part": "demo", "start": "synth-face", "noise": noise, "variant": variant, "seed": seed,
                   "options": options} for seed in args.seeds for noise in args.demo_noise
                  for variant, options in SYNTH_FACE_PAIR.items()]
    if "scale" in args.part:
        found += [{"part": "scale", "start": "synth-face", "noise": 0.3, "noise_model": model, "variant": variant,
                   "seed": seed, "options": options | {"synth_noise_model": model}}
                  for seed in args.remedy_seeds for model, variants in SCALE_RUNS.items()
                  for variant, options in variants.items()]
    for job in found:
        model = f"-{job['noise_model']}" if "noise_model" in job else ""
        job["name"] = f"{job['part']}-{job['start']}-noise{job['noise']:g}{model}-{job['variant']}-seed{job['seed']}"
    return found


def command(job: dict, run_dir: Path, args) -> list:
    size = {k: getattr(args, k if job["part"] == "remedies" else f"demo_{k}") for k in DEMO_SIZE}
    options = {"synth_train": size["train"], "synth_test": size["test"], "synth_noise": job["noise"],
               "image_size": args.image_size, "epochs": size["epochs"], "relabel_epoch": size["relabel_epoch"],
               "threads": 1, "device": "cpu", "seed": job["seed"], "pretrained": job["start"], **job["options"]}
    return train_command(run_dir=run_dir, options=options)


def summarize(reader: RunReader) -> dict:
    epochs = reader.epoch_metrics()
    warnings = reader.warnings()
    last = epochs.iloc[-1]
    predicted = reader.confusion(int(last["epoch"]), "test").sum(axis=0)
    return accuracies(epochs) | {
        "last_train_accuracy": float(last["train_accuracy"]), "last_val_accuracy": float(last["val_accuracy"]),
        "test_accuracy_by_epoch": [round(float(a), 4) for a in epochs["test_accuracy"]],
        "last_alpha_mean": float(last["alpha_mean"]), "last_alpha_std": float(last["alpha_std"]),
        "relabels": int(epochs["relabels"].sum()),
        "last_top_predicted_share": float(predicted.max() / max(predicted.sum(), 1)),
        "warnings": {kind: [int(e) for e in rows["epoch"]] for kind, rows in warnings.groupby("kind")},
        "start_weights": start_weights(reader),
    } | truth_scores(reader)


def truth_scores(reader: RunReader) -> dict:
    """The last epoch's scores against the ground truth: how precise the relabels were, how many
    clean labels they broke, and whether alpha ranked the wrong labels low."""
    scores = run_scores(reader)
    last = scores.iloc[-1]
    return {"relabel_precision_by_epoch": [None if np.isnan(p) else round(float(p), 3) for p in scores["precision"]],
            "last_wrong_labels": int(last["wrong_labels"]), "last_damage": float(last["damage"]),
            "last_recall": float(last["recall"]), "last_auroc_wrong_now": float(last["auroc_wrong_now"])}


def start_weights(reader: RunReader) -> str:
    """What the run started from, as its trainer logged it (which backbone file, how much matched)."""
    for line in (reader.run_dir / "train.log").read_text(errors="replace").splitlines():
        if "pretrained weights: " in line or "starting from random weights" in line:
            return line.split(" INFO ", 1)[-1]
    return "unknown"


def run_job(job: dict, args) -> dict:
    run_dir = Path(args.runs_dir) / job["name"]
    ensure_trained(run_dir, command(job, run_dir, args))
    return job | summarize(RunReader(run_dir))


def table(results: list) -> list:
    """Mean ± std over seeds per (part, start, noise, variant)."""
    groups = {}
    for r in results:
        groups.setdefault((r["part"], r["start"], r["noise"], r.get("noise_model", "symmetric"), r["variant"]),
                          []).append(r)
    rows = []
    for (part, start, noise, noise_model, variant), runs in groups.items():
        last = np.array([r["last_test_accuracy"] for r in runs]) * 100
        best = np.array([r["best_val_test_accuracy"] for r in runs]) * 100
        rows.append({"part": part, "start": start, "noise": noise, "noise_model": noise_model, "variant": variant,
                     "seeds": [r["seed"] for r in runs],
                     "last_mean": float(last.mean()), "last_std": float(last.std()),
                     "best_val_mean": float(best.mean()), "best_val_std": float(best.std()),
                     "best_val_epochs": [r["best_val_epoch"] for r in runs],
                     "runs_with_warnings": sum(bool(r["warnings"]) for r in runs),
                     "warning_kinds": sorted({k for r in runs for k in r["warnings"]})})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", nargs="+", choices=("remedies", "demo", "scale"),
                        default=["remedies", "demo", "scale"])
    for prefix, size, part in (("", REMEDY_SCALE, "remedies"), ("demo-", DEMO_SIZE, "demo and scale")):
        for key, value in size.items():
            parser.add_argument(f"--{prefix}{key.replace('_', '-')}", type=int, default=value,
                                help=f"{key.replace('_', ' ')} of the {part} parts (default {value})")
    parser.add_argument("--image-size", type=int, default=DEMO_IMAGE_SIZE)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the demo part")
    parser.add_argument("--demo-noise", type=float, nargs="+", default=[0.3, 0.0], help="noise rates of the demo part")
    parser.add_argument("--remedy-seeds", type=int, nargs="+", default=[0],
                        help="seeds of the remedies and scale parts")
    parser.add_argument("--parallel", type=int, default=2, help="runs at a time (one thread each)")
    parser.add_argument("--runs-dir", default="runs/bench-standing-start")
    parser.add_argument("--json", default="bench/results/standing_start.json")
    args = parser.parse_args(argv)

    from scn.pretrain import ensure_backbone

    if {"demo", "scale"} & set(args.part):
        ensure_backbone()
    started = time.time()
    with ThreadPoolExecutor(args.parallel) as pool:
        results = list(pool.map(lambda job: run_job(job, args), jobs(args)))
    rows = table(results)
    for row in rows:
        print(f"{row['part']:8} start={row['start']:10} noise={row['noise']:.0%} {row['noise_model']:10} "
              f"{row['variant']:17} "
              f"last {row['last_mean']:.1f} ± {row['last_std']:.1f}, best-on-val {row['best_val_mean']:.1f}, "
              f"warnings in {row['runs_with_warnings']}/{len(row['seeds'])} runs {row['warning_kinds']}")
    settings = {f"{prefix}{k}": getattr(args, f"{prefix}{k}") for prefix in ("", "demo_") for k in DEMO_SIZE}
    settings["image_size"] = args.image_size
    out = {"settings": settings | {"threads_per_run": 1, "parallel": args.parallel},
           "wall_seconds": time.time() - started, "table": rows, "runs": results}
    write_results(args.json, out, module="bench.standing_start", argv=argv)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
