"""SCN against the baseline under each kind and rate of label noise, with the ablation at 30%, from
the built-in benchmark's start (dlib-face) with the paper's method settings at the demo's scale.

Settings: symmetric noise at 0, 10, 20 and 30% and the annotators model (scn.synth.noise) at 10, 20
and 30%; the baseline and SCN at each, over --seeds; at symmetric 30% also bench.ablation's two
partial arms (attention-weighted CE alone, and with rank regularization), so the four arms give each
part's effect paired by seed. Every run is the demo preset (3,000 training images at 150 px, 6
epochs, relabel from epoch 3, backbone at 0.01 of the rate) with the paper's method settings:
margin_1 0.15 and relabelling the low-importance group. The paper's batch of 1,024 would leave three
steps an epoch at this scale, so the preset's 64 stays.

Per run: bench.ablation.scores (test accuracy at the last and the validation-selected epoch, alpha's
AUROC against the wrong labels by epoch, relabel precision, the rank-regularization hinge's share of
active steps) and, for SCN's arms, the Spearman correlation of the last epoch's alpha with each
face's ambiguity (scn.synth.noise.ambiguity), expression intensity, blur and occlusion.

Runs go seed by seed, so a grid cut short (--deadline-s: no run starts after it) has whole seeds;
the JSON is rewritten after every run, and finished runs in --runs-dir are reused on a rerun.
--merge takes earlier results files of this bench (other seeds, trained on another machine): their
runs go into the table as they are, each with the device it trained on, and are not trained again.

    python -m bench.paper_grid --workers 8 --threads 2      # on a GPU machine with 16 cores
    python -m bench.paper_grid --train 40 --test 14 --image-size 112 --epochs 1 --relabel-epoch 1 \\
        --seeds 0 --settings symmetric:0.3 --runs-dir /tmp/grid --json /tmp/grid.json   # a toy run
    python -m bench.paper_grid --seeds 1 2 --merge bench/results/paper_grid.json   # seed 0 from a GPU machine
"""
import json
import argparse
import subprocess
import threading
import time
from argparse import Namespace
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bench import ablation
from bench.results_io import write_results
from scn.config import PRESETS
from scn.metrics import truth_ambiguity, truth_table
from scn.store import RunReader

SETTINGS = ("symmetric:0", "symmetric:0.1", "symmetric:0.2", "symmetric:0.3",
            "annotators:0.1", "annotators:0.2", "annotators:0.3")
ABLATION_SETTING = "symmetric:0.3"
GRID_ARMS = ("baseline", "wce_rr_relabel")
PRESET = "demo"
# What the paper sets differently from the demo preset, apart from the batch.
PAPER_METHOD = {"margin_1": PRESETS["paper"]["margin_1"], "relabel_scope": PRESETS["paper"]["relabel_scope"]}


def merged_runs(paths) -> list:
    """The runs of earlier results files, each marked with the device its file was trained on."""
    runs = []
    for path in paths:
        data = json.loads(Path(path).read_text())
        runs += [{"device": data["device"]} | run for run in data["runs"]]
    return runs


def parse_setting(text: str) -> tuple:
    model, _, noise = text.partition(":")
    return model, float(noise)


def jobs(settings, seeds) -> list:
    """(setting, arm, seed), seed by seed."""
    return [(setting, arm, seed) for seed in seeds for setting in settings
            for arm in (ablation.ARMS if setting == ABLATION_SETTING else GRID_ARMS)]


def arm_args(setting: str, args) -> Namespace:
    """bench.ablation's options for one setting."""
    noise_model, noise = parse_setting(setting)
    return Namespace(train=args.train, test=args.test, noise=noise, noise_model=noise_model, preset=PRESET,
                     epochs=args.epochs, image_size=args.image_size, batch_size=None,
                     relabel_epoch=args.relabel_epoch, margin1=PAPER_METHOD["margin_1"], margin2=None,
                     pretrained=args.pretrained, threads=args.threads, runs_dir=args.runs_dir)


def alpha_spearman(reader: RunReader) -> dict | None:
    """Spearman's rho of the last epoch's alpha with what makes a face hard to label, over the
    training faces; None for the baseline (its alpha is a constant) or a run without ground truth."""
    if reader.config().get("method") == "baseline":
        return None
    groundtruth = reader.groundtruth()
    epochs, alpha, _ = reader.attention_matrix()
    if groundtruth is None or not epochs:
        return None
    truth = truth_table(reader.samples("train"), groundtruth)
    factors = {"ambiguity": truth_ambiguity(truth), "intensity": truth["intensity"].to_numpy(float),
               "blur": truth["blur_sigma"].to_numpy(float),
               "occluded": (truth["occlusion"].fillna("none") != "none").to_numpy(float)}
    last = pd.Series(alpha[-1][truth["idx"].to_numpy()], dtype=float)
    return {name: _rho(last, values) for name, values in factors.items()}


def _rho(alpha: pd.Series, values: np.ndarray) -> float | None:
    """Spearman's rho as Pearson's r of the ranks (ties share their mean rank); None where either
    side is constant."""
    ranks, value_ranks = alpha.rank(), pd.Series(values).rank()
    if ranks.nunique() < 2 or value_ranks.nunique() < 2:
        return None
    return float(np.corrcoef(ranks, value_ranks)[0, 1])


def setting_table(results: list) -> list:
    """Per setting and arm: mean and sample SD over seeds of the test accuracies, and SCN minus the
    baseline paired by seed."""
    rows = []
    for setting in dict.fromkeys(r["setting"] for r in results):
        of_setting = [r for r in results if r["setting"] == setting]
        effects = [e for e in ablation.effects(of_setting) if e["seeds"]]
        row = {"setting": setting, "arms": [a for a in ablation.arm_table(of_setting) if a["seeds"]],
               "effects": effects, "scn_minus_baseline": next((e for e in effects if e["part"] == "SCN as a whole"), None)}
        spearman = [r["alpha_spearman"] for r in of_setting if r.get("alpha_spearman")]
        row["alpha_spearman_mean"] = {name: _mean([s[name] for s in spearman]) for name in spearman[0]} \
            if spearman else None
        rows.append(row)
    return rows


def _mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def markdown(rows: list) -> str:
    lines = ["| noise | seeds | SCN − baseline, last epoch (points) | SCN − baseline, val-selected (points) |",
             "|---|---|---|---|"]
    for row in rows:
        effect = row["scn_minus_baseline"]
        if effect is None:
            continue
        lines.append(f"| {row['setting']} | {len(effect['seeds'])} | {ablation.effect_cell(effect['last_test_accuracy'])} "
                     f"| {ablation.effect_cell(effect['best_val_test_accuracy'])} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), help="NOISE_MODEL:RATE, e.g. symmetric:0.3")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train", type=int, default=PRESETS[PRESET]["synth_train"])
    parser.add_argument("--test", type=int, default=PRESETS[PRESET]["synth_test"])
    parser.add_argument("--image-size", type=int, help="default: the demo preset's")
    parser.add_argument("--epochs", type=int, help="default: the demo preset's")
    parser.add_argument("--relabel-epoch", type=int, help="default: the demo preset's")
    parser.add_argument("--pretrained", help="the trainer's start (default: the built-in benchmark's)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per run")
    parser.add_argument("--workers", type=int, default=2, help="runs trained at once")
    parser.add_argument("--deadline-s", type=float, help="start no run after this many seconds")
    parser.add_argument("--runs-dir", default="bench/out/paper_grid")
    parser.add_argument("--json", default="bench/results/paper_grid.json")
    parser.add_argument("--merge", nargs="+", default=[], metavar="JSON",
                        help="earlier results files of this bench whose runs are kept, not trained again")
    args = parser.parse_args(argv)
    started = time.time()
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    results, skipped, failed, lock = merged_runs(args.merge), [], [], threading.Lock()
    done = {(r["setting"], r["arm"], r["seed"]) for r in results}
    pending = [job for job in jobs(args.settings, args.seeds) if job not in done]
    for setting in dict.fromkeys(setting for setting, _, _ in pending):
        ablation.prepare(arm_args(setting, args))

    def save():
        report = {"settings": vars(args), "device": device, "devices": sorted({r["device"] for r in results}),
                  "preset": PRESET, "paper_method": PAPER_METHOD,
                  "wall_seconds": time.time() - started, "spread": ablation.SPREAD, "runs": results,
                  "not_started": skipped, "failed": failed, "table": setting_table(results)}
        write_results(args.json, report, module="bench.paper_grid", argv=argv)

    def run(job):
        setting, arm, seed = job
        if args.deadline_s is not None and time.time() - started > args.deadline_s:
            with lock:
                skipped.append({"setting": setting, "arm": arm, "seed": seed})
            return
        try:
            result = {"setting": setting, "device": device} | ablation.run_arm(arm, seed, arm_args(setting, args))
        except subprocess.CalledProcessError as error:
            with lock:
                failed.append({"setting": setting, "arm": arm, "seed": seed, "exit": error.returncode})
                save()
            return
        result["alpha_spearman"] = alpha_spearman(RunReader(Path(args.runs_dir) / result["run"]))
        with lock:
            results.append(result)
            save()

    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        list(pool.map(run, pending))
    save()
    print(markdown(setting_table(results)))


if __name__ == "__main__":
    main()
