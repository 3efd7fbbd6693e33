"""What does each part of SCN add? The baseline and SCN built up one part at a time, over several seeds.

Four arms on the built-in benchmark, each run in its own `python -m scn train` process:
  baseline        plain ResNet-18, cross-entropy
  wce             SCN's attention-weighted cross-entropy alone (--no-rank-reg --no-relabel)
  wce_rr          plus rank regularization (--no-relabel)
  wce_rr_relabel  plus relabeling: the full SCN
Each part's effect is the arm with it minus the arm without it, paired by seed (same data split,
order and start), reported as the mean of the per-seed differences and their sample standard
deviation (ddof 1; none with a single seed). Per run: test accuracy at the last epoch and at the
validation-selected epoch, alpha's AUROC against the wrong labels at the last epoch, relabel
precision, and the share of steps on which the rank-regularization hinge was above 0 (a part whose
hinge never opens has not been tested). Finished runs in --runs-dir are reused on a rerun.

    python -m bench.ablation --noise 0.3 --seeds 0 1 2 --json bench/results/ablation.json
    python -m bench.ablation --preset paper --noise-model annotators --noise 0.2 --pretrained synth-face
    python -m bench.ablation --train 40 --test 14 --image-size 32 --epochs 1 --seeds 0 --pretrained none \\
        --runs-dir /tmp/ablation --json /tmp/ablation.json
"""
import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from bench.results_io import write_results
from bench.noise_robustness import ensure_trained, optional_float, summarize
from scn import runs
from scn.config import BUILT_IN_START, PRESETS, SYNTH_FACE
from scn.metrics import run_scores
from scn.store import RunReader
from scn.synth.noise import NOISE_MODELS

# Trainer options (scn.config names) of each arm, in the order the parts are added.
ARMS = {
    "baseline": {"method": "baseline"},
    "wce": {"rank_reg": False, "relabel": False},
    "wce_rr": {"relabel": False},
    "wce_rr_relabel": {},
}
# (part, arm with it, arm without it)
EFFECTS = (("attention-weighted cross-entropy", "wce", "baseline"),
           ("rank regularization", "wce_rr", "wce"),
           ("relabeling", "wce_rr_relabel", "wce_rr"),
           ("SCN as a whole", "wce_rr_relabel", "baseline"))
# The per-run figures each effect is computed on.
EFFECT_METRICS = ("last_test_accuracy", "best_val_test_accuracy")
SPREAD = "sample standard deviation (ddof 1) of the per-seed paired differences; null with one seed"


def run_name(*, arm: str, seed: int, args) -> str:
    return f"{args.noise_model}-noise{args.noise:g}-{arm}-seed{seed}"


def train_options(*, arm: str, seed: int, args) -> dict:
    """The trainer options of one run: the built-in benchmark at --train/--test, the arm's switches,
    and the preset's values for every option not passed (None)."""
    return {"synth_train": args.train, "synth_test": args.test, "synth_noise": args.noise,
            "synth_noise_model": args.noise_model, "preset": args.preset, "epochs": args.epochs,
            "image_size": args.image_size, "batch_size": args.batch_size, "relabel_epoch": args.relabel_epoch,
            "margin_1": args.margin1, "margin_2": args.margin2, "pretrained": args.pretrained,
            "seed": seed, "threads": args.threads} | ARMS[arm]


def prepare(args) -> None:
    """Build the dataset (and the built-in start) once, before runs that share them start at once."""
    from scn.synth import default_dataset

    default_dataset(train=args.train, test=args.test, noise=args.noise, noise_model=args.noise_model,
                    progress=False)
    if (args.pretrained or BUILT_IN_START) == SYNTH_FACE:
        from scn.pretrain import ensure_backbone

        ensure_backbone()


def run_arm(arm: str, seed: int, args) -> dict:
    run_dir = Path(args.runs_dir) / run_name(arm=arm, seed=seed, args=args)
    command = [*runs.train_command(run_dir=run_dir, options=train_options(arm=arm, seed=seed, args=args)),
               "--no-progress"]
    ensure_trained(run_dir, command)
    return {"arm": arm, "seed": seed, "run": run_dir.name} | scores(RunReader(run_dir))


def scores(reader: RunReader) -> dict:
    """bench.noise_robustness's summary of a run, plus what the ablation compares: the last epoch's
    alpha AUROCs, the precision of all its relabels and the rank-regularization hinge's activity."""
    result = summarize(reader)
    epochs = reader.epoch_metrics()
    shares = epochs["rr_active_share"].dropna()
    result |= {"alpha_auroc_noisy_last": last_or_none(result.get("alpha_auroc_by_epoch")),
               "alpha_auroc_wrong_now_last": last_or_none(result.get("alpha_auroc_wrong_now_by_epoch")),
               "rr_active_share_last": optional_float(epochs["rr_active_share"].iloc[-1]),
               "rr_active_share_mean": float(shares.mean()) if len(shares) else None,
               "rr_active_share_by_epoch": [optional_float(v) for v in epochs["rr_active_share"]]}
    quality = run_scores(reader)
    relabels = 0 if quality is None else int(quality["relabels"].sum())
    result["relabel_precision"] = float(quality["correct"].sum()) / relabels if relabels else None
    return result


def last_or_none(values):
    return values[-1] if values else None


def spread(values: np.ndarray) -> float | None:
    return float(values.std(ddof=1)) if len(values) > 1 else None


def arm_table(results: list) -> list:
    """Per arm: the mean and sample SD over seeds of each figure."""
    rows = []
    for arm in ARMS:
        runs_of_arm = [r for r in results if r["arm"] == arm]
        row = {"arm": arm, "seeds": len(runs_of_arm)}
        for metric in (*EFFECT_METRICS, "alpha_auroc_wrong_now_last", "relabel_precision", "rr_active_share_mean"):
            values = np.array([r[metric] for r in runs_of_arm if r.get(metric) is not None], dtype=float)
            row[metric] = {"mean": float(values.mean()) if len(values) else None, "sd": spread(values),
                           "n": len(values)}
        rows.append(row)
    return rows


def effects(results: list) -> list:
    """Each part's effect on each of EFFECT_METRICS: the per-seed differences (with - without) of
    the seeds both arms ran, their mean and sample SD."""
    by_arm_seed = {(r["arm"], r["seed"]): r for r in results}
    rows = []
    for part, with_part, without in EFFECTS:
        seeds = sorted(s for (arm, s) in by_arm_seed if arm == with_part and (without, s) in by_arm_seed)
        row = {"part": part, "with": with_part, "without": without, "seeds": seeds}
        for metric in EFFECT_METRICS:
            differences = np.array([by_arm_seed[(with_part, s)][metric] - by_arm_seed[(without, s)][metric]
                                    for s in seeds])
            row[metric] = {"differences": differences.tolist(),
                           "mean": float(differences.mean()) if len(differences) else None,
                           "sd": spread(differences)}
        rows.append(row)
    return rows


def effect_cell(figure: dict) -> str:
    """A paired difference in points: mean ± sample SD (no SD with one seed)."""
    if figure["mean"] is None:
        return "–"
    sd = "" if figure["sd"] is None else f" ± {figure['sd'] * 100:.1f}"
    return f"{figure['mean'] * 100:+.1f}{sd}"


def markdown(effect_rows: list) -> str:
    lines = ["| part | seeds | effect on test acc., last epoch (points) | effect, val-selected (points) |",
             "|---|---|---|---|"]
    for row in effect_rows:
        lines.append(f"| {row['part']} | {len(row['seeds'])} | {effect_cell(row['last_test_accuracy'])} "
                     f"| {effect_cell(row['best_val_test_accuracy'])} |")
    return "\n".join(lines) + "\n(± sample SD of the per-seed differences)"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=3000, help="built-in benchmark: training images")
    parser.add_argument("--test", type=int, default=1000, help="built-in benchmark: test images")
    parser.add_argument("--noise", type=float, default=0.3, help="share of wrong training labels")
    parser.add_argument("--noise-model", choices=NOISE_MODELS, default="symmetric")
    parser.add_argument("--pretrained", help="the trainer's start (default: the built-in benchmark's, "
                                             "--pretrained none: random weights)")
    parser.add_argument("--preset", choices=tuple(PRESETS), default="demo")
    parser.add_argument("--image-size", type=int, help="default: the preset's")
    parser.add_argument("--epochs", type=int, help="default: the preset's")
    parser.add_argument("--batch-size", type=int, help="default: the preset's")
    parser.add_argument("--relabel-epoch", type=int, help="default: the preset's")
    parser.add_argument("--margin1", type=float, help="default: the preset's")
    parser.add_argument("--margin2", type=float, help="default: the preset's")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per run")
    parser.add_argument("--workers", type=int, default=2, help="runs trained at once")
    parser.add_argument("--runs-dir", default="bench/out/ablation")
    parser.add_argument("--json", default="bench/results/ablation.json")
    args = parser.parse_args(argv)
    started = time.time()
    prepare(args)
    grid = [(arm, seed) for seed in args.seeds for arm in ARMS]
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        results = list(pool.map(lambda job: run_arm(*job, args), grid))
    effect_rows = effects(results)
    report = {"settings": vars(args), "wall_seconds": time.time() - started, "spread": SPREAD,
              "runs": results, "arms": arm_table(results), "effects": effect_rows}
    write_results(args.json, report, module="bench.ablation", argv=argv)
    print(markdown(effect_rows))


if __name__ == "__main__":
    main()
