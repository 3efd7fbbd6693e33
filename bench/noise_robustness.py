"""Does SCN beat the baseline under label noise? The grid of noise levels, ablations and sensitivity runs.

Trains the baseline and SCN at each noise level (SCN's flip protocol on the built-in benchmark with
RAF-DB's class balance), and at the highest level each ablation (without attention weighting,
rank regularization or relabeling), for several seeds, each run in its own `python -m scn train`
process. Every run starts from one baseline trained first on a separate clean set of the benchmark
(see `pretrained_backbone`; `--pretrain-train 0` trains from scratch instead; `--synth-face` from
the synth-face backbone). With --sensitivity it also trains SCN variants of relabel scope, margins
and first relabel epoch at the lowest and highest noise levels. Finished runs are kept in
--runs-dir and skipped on a rerun, so an interrupted grid continues where it stopped.

    python -m bench.noise_robustness                  # the grid from an expression-labelled start
    python -m bench.noise_robustness --sensitivity scn_scope_all scn_margin2_0.1 scn_margin2_0.4 \\
        scn_relabel_from_2 scn_relabel_from_9   # the grid plus 10 sensitivity runs, +19 min
    python -m bench.noise_robustness --synth-face --alpha-normalize --margin2 0.7 --train 4000 --relabel-epoch 6 \\
        --noise 0 0.1 0.2 0.3 --sensitivity scn_margin1_0.15 scn_margin2_0.2 \\
        --json bench/results/noise_robustness_synth_face.json --plot bench/results/noise_robustness_synth_face.png
    python -m bench.noise_robustness --synth-face --noise-model annotators --noise 0.1 0.2 0.3 --train 4000 \
        --relabel-epoch 6 --seeds 0 --no-ablations --json bench/results/noise_models_reproduction_annotators.json
    python -m bench.noise_robustness --train 60 --test 21 --image-size 32 --epochs 1 --seeds 0 \\
        --noise 0.3 --pretrain-train 60 --pretrain-epochs 1 --runs-dir /tmp/grid --json /tmp/grid.json

Writes the per-run results and the mean ± std table to --json, and a plot to --plot.
"""
import argparse
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench.results_io import write_results
from scn import runs
from scn.config import PRESETS
from scn.metrics import run_scores
from scn.store import RunNotFoundError, RunReader, checkpoint_path
from scn.synth.noise import NOISE_MODELS

# Trainer options (scn.config names) of each variant, on top of the grid's shared settings.
VARIANTS = {
    "baseline": {"method": "baseline"},
    "scn": {},
    "scn_no_attention": {"attention": False},
    "scn_no_rank_reg": {"rank_reg": False},
    "scn_no_relabel": {"relabel": False},
}
ABLATIONS = ("scn_no_attention", "scn_no_rank_reg", "scn_no_relabel")
# How SCN's relabeling trades fixes for damage (--sensitivity): scope, margins and when it starts.
# These override the grid's own settings.
SENSITIVITY = {
    "scn_scope_all": {"relabel_scope": "all"},
    "scn_margin2_0.1": {"margin_2": 0.1},
    "scn_margin2_0.2": {"margin_2": 0.2},
    "scn_margin2_0.4": {"margin_2": 0.4},
    "scn_margin1_0.15": {"margin_1": 0.15},
    "scn_relabel_from_2": {"relabel_epoch": 2},
    "scn_relabel_from_9": {"relabel_epoch": 9},
}
VARIANTS |= SENSITIVITY


def grid_job(*, noise: float, variant: str, seed: int, noise_model: str = "symmetric") -> dict:
    """One grid run; its name is its folder under --runs-dir, which bench.relabel_quality reuses.
    Symmetric noise keeps the names runs had before there were other noise models."""
    model = "" if noise_model == "symmetric" else f"{noise_model}-"
    return {"noise": noise, "variant": variant, "seed": seed, "name": f"{model}noise{noise:g}-{variant}-seed{seed}"}


def jobs(args) -> list:
    """The baseline and SCN at each of --noise, the ablations at --ablation-noise (default: the
    highest of --noise) and the --sensitivity variants at --sensitivity-noise (default: the lowest
    and highest of --noise), first seed only."""
    ablation_noise = max(args.noise) if args.ablation_noise is None else args.ablation_noise
    grid = [grid_job(noise=noise, variant=variant, seed=seed, noise_model=args.noise_model)
            for noise in args.noise for variant in ("baseline", "scn") for seed in args.seeds]
    if args.ablations:
        grid += [grid_job(noise=ablation_noise, variant=variant, seed=seed, noise_model=args.noise_model)
                 for variant in ABLATIONS for seed in args.seeds]
    if args.sensitivity is not None:
        levels = args.sensitivity_noise or sorted({min(args.noise), max(args.noise)})
        grid += [grid_job(noise=noise, variant=variant, seed=args.seeds[0], noise_model=args.noise_model)
                 for noise in levels for variant in args.sensitivity or SENSITIVITY]
    return grid


def dataset_for(noise: float, args) -> Path:
    from scn.synth import default_dataset

    return default_dataset(train=args.train, test=args.test, noise=noise, seed=args.data_seed,
                           noise_model=args.noise_model, progress=False)


def train_command(job: dict, data: Path, run_dir: Path, args) -> list:
    options = {"data": str(data), "epochs": args.epochs, "image_size": args.image_size,
               "batch_size": args.batch_size, "relabel_epoch": args.relabel_epoch, "margin_1": args.margin1,
               "margin_2": args.margin2, "seed": job["seed"], "threads": args.threads,
               "pretrained": "synth-face" if args.synth_face else
               str(args.pretrained_path) if args.pretrained_path else None}
    if args.alpha_normalize and job["variant"] != "baseline":
        options["alpha_normalize"] = True
    return [*runs.train_command(run_dir=run_dir, options=options | VARIANTS[job["variant"]]), "--no-progress"]


def prepare(args, noise_levels) -> dict:
    """Generate the datasets and train the shared starting weights once, before any grid run starts."""
    if args.synth_face:
        from scn.pretrain import ensure_backbone

        ensure_backbone()
    args.pretrained_path = pretrained_backbone(args) if args.pretrain_train and not args.synth_face else None
    return {noise: dataset_for(noise, args) for noise in sorted(set(noise_levels))}


def pretrained_backbone(args) -> Path:
    """The grid's starting weights: a baseline trained once on a separate, clean set of the built-in
    benchmark (other identities: another data seed). It stands in for the paper's MS-Celeb face
    pretraining, which cannot be downloaded here; without it, models trained from scratch at a
    scale these cores can afford are too weak for relabeling to mean anything (docs/results.md)."""
    from scn.synth import default_dataset

    data = default_dataset(train=args.pretrain_train, test=args.test, seed=args.data_seed + 1, progress=False)
    run_dir = Path(args.runs_dir) / f"pretrain-{args.pretrain_train}x{args.pretrain_epochs}-{args.image_size}px"
    options = {"data": str(data), "method": "baseline", "epochs": args.pretrain_epochs,
               "image_size": args.image_size, "batch_size": args.batch_size, "threads": args.pretrain_threads}
    ensure_trained(run_dir, [*runs.train_command(run_dir=run_dir, options=options), "--no-progress"])
    return checkpoint_path(run_dir, "last")


def ensure_trained(run_dir: Path, command: list) -> None:
    """Train `command` into `run_dir` unless a finished run is there; continue a stopped one."""
    try:
        state = RunReader(run_dir).status()["state"]
    except RunNotFoundError:
        state = None
    if state == "finished":
        return
    if checkpoint_path(run_dir, "last").exists():
        command = [*command, "--resume"]
    elif run_dir.exists():
        shutil.rmtree(run_dir)
    started = time.time()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    print(f"{run_dir.name}: trained in {time.time() - started:.0f} s", flush=True)


def run_job(job: dict, data: Path, args) -> dict:
    run_dir = Path(args.runs_dir) / job["name"]
    ensure_trained(run_dir, train_command(job, data, run_dir, args))
    return job | summarize(RunReader(run_dir))


def accuracies(epochs) -> dict:
    """A run's test accuracy at its last epoch and at its best validation epoch (the two ways
    docs/results.md reports every run), and its training time."""
    best_row = epochs.loc[epochs["val_accuracy"].idxmax()]
    return {"last_test_accuracy": float(epochs["test_accuracy"].iloc[-1]),
            "best_val_epoch": int(best_row["epoch"]),
            "best_val_test_accuracy": float(best_row["test_accuracy"]),
            "seconds": float(epochs["seconds"].sum())}


def summarize(reader: RunReader) -> dict:
    """Last-epoch and best-on-validation test accuracy, plus the ground-truth scores of the last epoch."""
    epochs = reader.epoch_metrics()
    result = accuracies(epochs) | {"alpha_std_last": float(epochs["alpha_std"].iloc[-1])}
    scores = run_scores(reader)
    if scores is not None and len(scores):
        last = scores.iloc[-1]
        result |= {"relabel_precision_epoch_last": optional_float(last["precision"]),
                   "relabel_recall": optional_float(last["recall"]), "clean_broken": int(last["clean_broken"]),
                   "relabels_total": int(scores["relabels"].sum()),
                   "alpha_auroc_by_epoch": [optional_float(v) for v in scores["alpha_auroc"]],
                   "alpha_auroc_wrong_now_by_epoch": [optional_float(v) for v in scores["auroc_wrong_now"]]}
    return result


def optional_float(value) -> float | None:
    """A score for JSON: None where it is missing or NaN (an epoch with nothing to score)."""
    return None if value is None or np.isnan(value) else float(value)


def aggregate(results: list) -> list:
    table = {}
    for r in results:
        table.setdefault((r["noise"], r["variant"]), []).append(r)
    rows = []
    for (noise, variant), runs in sorted(table.items()):
        last = np.array([r["last_test_accuracy"] for r in runs]) * 100
        best = np.array([r["best_val_test_accuracy"] for r in runs]) * 100
        rows.append({"noise": noise, "variant": variant, "seeds": len(runs),
                     "last_mean": float(last.mean()), "last_std": float(last.std(ddof=1)) if len(runs) > 1 else 0.0,
                     "best_val_mean": float(best.mean()),
                     "best_val_std": float(best.std(ddof=1)) if len(runs) > 1 else 0.0})
    return rows


def markdown(rows: list) -> str:
    lines = ["| noise | method | seeds | test acc, last epoch (%) | test acc, best-on-val (%) |",
             "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['noise']:.0%} | {r['variant']} | {r['seeds']} | {r['last_mean']:.1f} ± {r['last_std']:.1f} "
                     f"| {r['best_val_mean']:.1f} ± {r['best_val_std']:.1f} |")
    return "\n".join(lines)


def plot(rows: list, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for variant in ("baseline", "scn"):
        points = [r for r in rows if r["variant"] == variant]
        ax.errorbar([r["noise"] * 100 for r in points], [r["last_mean"] for r in points],
                    yerr=[r["last_std"] for r in points], marker="o", capsize=3, label=variant)
    top = max(r["noise"] for r in rows)
    for offset, variant in zip((-0.8, 0.8, 1.6), ABLATIONS):
        for r in rows:
            if r["variant"] == variant and r["noise"] == top:
                ax.errorbar([top * 100 + offset], [r["last_mean"]], yerr=[r["last_std"]], marker="x",
                            capsize=3, linestyle="none", label=variant)
    ax.set_xlabel("training label noise (%)")
    ax.set_ylabel("test accuracy, last epoch (%)")
    ax.set_title("Built-in benchmark: baseline vs SCN")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def add_scale_arguments(parser) -> None:
    """The data and training scale, shared with bench.relabel_quality so both score the same runs."""
    parser.add_argument("--train", type=int, default=3000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--data-seed", type=int, default=0)
    # The demo's size and schedule and the official code's settings (scn.config PRESETS), but for
    # SCN's relabeling, which starts an epoch earlier here.
    parser.add_argument("--image-size", type=int, default=PRESETS["demo"]["image_size"])
    parser.add_argument("--epochs", type=int, default=PRESETS["demo"]["epochs"])
    parser.add_argument("--batch-size", type=int, default=PRESETS["official"]["batch_size"])
    parser.add_argument("--relabel-epoch", type=int, default=5)
    parser.add_argument("--margin1", type=float, default=PRESETS["official"]["margin_1"])
    parser.add_argument("--margin2", type=float, default=PRESETS["official"]["margin_2"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per run")
    parser.add_argument("--pretrain-train", type=int, default=10000,
                        help="clean images for the shared starting weights (0: every run starts from scratch)")
    parser.add_argument("--pretrain-epochs", type=int, default=8)
    parser.add_argument("--pretrain-threads", type=int, default=2)
    parser.add_argument("--synth-face", action="store_true",
                        help="start every run from the synth-face backbone (`python -m scn pretrain`) instead "
                             "of the clean-label expression start")
    parser.add_argument("--noise-model", choices=NOISE_MODELS, default="symmetric",
                        help="how training labels go wrong (scn.synth.noise); --noise is the wrong-label rate")
    parser.add_argument("--no-ablations", dest="ablations", action="store_false",
                        help="only the baseline and SCN (no ablations at the highest noise level)")
    parser.add_argument("--alpha-normalize", action="store_true",
                        help="every SCN variant normalises alpha within each batch (the demo's SCN, with --margin2 0.7)")
    parser.add_argument("--runs-dir", default="bench/out/noise_robustness")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_scale_arguments(parser)
    parser.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.3])
    parser.add_argument("--workers", type=int, default=2, help="runs trained at once")
    parser.add_argument("--ablation-noise", type=float, help="noise level of the ablations (default: the highest)")
    parser.add_argument("--sensitivity", nargs="*", choices=tuple(SENSITIVITY),
                        help="also train these SCN variants (relabel scope, margins, first relabel epoch; all of "
                             "them if none is named), first seed only")
    parser.add_argument("--sensitivity-noise", type=float, nargs="+",
                        help="noise levels of the sensitivity runs (default: the lowest and highest)")
    parser.add_argument("--json", default="bench/results/noise_robustness.json")
    parser.add_argument("--plot", default="bench/results/noise_robustness.png")
    args = parser.parse_args(argv)
    grid = jobs(args)
    started = time.time()
    datasets = prepare(args, [job["noise"] for job in grid])
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        results = list(pool.map(lambda job: run_job(job, datasets[job["noise"]], args), grid))
    rows = aggregate(results)
    report = {"scale": {k: getattr(args, k) for k in ("train", "test", "image_size", "epochs", "batch_size",
                                                      "relabel_epoch", "margin1", "margin2", "seeds", "noise",
                                                      "pretrain_train", "pretrain_epochs", "noise_model",
                                                      "synth_face", "alpha_normalize", "ablation_noise",
                                                      "sensitivity", "sensitivity_noise")},
              "wall_seconds": time.time() - started, "runs": results, "table": rows}
    if args.pretrained_path:
        pretrain_dir = args.pretrained_path.parent.parent
        epochs = RunReader(pretrain_dir).epoch_metrics()
        report["pretrain"] = {"run": pretrain_dir.name, "train_seconds": float(epochs["seconds"].sum()),
                              "test_accuracy": float(epochs["test_accuracy"].iloc[-1])}
    write_results(args.json, report, module="bench.noise_robustness", argv=argv)
    if args.plot:
        plot(rows, Path(args.plot))
    print(markdown(rows))


if __name__ == "__main__":
    main()
