"""The one-click demo as a user meets it: how long it takes from an empty cache, and what it shows.

Seed 0 is started exactly as the app's "Start the demo" button starts it (scn.runs.start_demo, both
trainers side by side, one thread each) with an empty cache folder, so its wall time includes
generating the benchmark; it is the figure the home page quotes. It runs last, with nothing else
training. Further seeds train the same pair with `--seed N` on a cache of their own, side by side;
pairs already trained in --runs-dir are kept, so an interrupted measurement resumes. Every run is scored as the docs report runs:
test accuracy at the last epoch and at the epoch validation accuracy chose, alpha's AUROC for the
labels wrong at each epoch, relabel precision, rank regularisation's share of active steps, and the
collapse warnings. The checks are computed, not asserted: the JSON says which hold. Seed 0 is also
compared with every earlier seed-0 pair in --runs-dir (each from an empty cache of its own): the
build and the training are deterministic, so they must agree.

    python -m bench.demo                                   # seeds 0 1 2, writes bench/results/demo.json
    python -m bench.demo --seeds 0 --json /tmp/demo.json   # seed 0 alone: a fresh clone's reproduction
    python -m bench.demo --seeds 0 --compare bench/results/demo.json   # ... compared with the committed one
"""
import argparse
import json
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.noise_robustness import ensure_trained, summarize
from bench.results_io import write_results
from scn.runs import DEMO_RUNS, start_demo, train_command
from scn.store import RunReader

METHODS = tuple(DEMO_RUNS)


def wait_finished(run_dirs, *, poll_s: float = 5.0) -> None:
    """Block until every run has stopped training; raise if one did not finish."""
    pending = list(run_dirs)
    while pending:
        time.sleep(poll_s)
        for run_dir in list(pending):
            state = RunReader(run_dir).status()["state"]
            if state == "finished":
                pending.remove(run_dir)
            elif state in ("failed", "stopped", "interrupted"):
                raise RuntimeError(f"{run_dir} ended {state}; see its train.log")


def first_seed(root: Path) -> tuple:
    """Seed 0 through the app's own start path, with a cache folder of its own that starts empty;
    returns ({method: run_dir}, wall seconds)."""
    cache = Path(tempfile.mkdtemp(prefix="cache-", dir=root))
    previous = os.environ.get("SCN_STUDIO_CACHE")
    os.environ["SCN_STUDIO_CACHE"] = str(cache)  # the trainers inherit it
    try:
        started = time.time()
        runs = {label: run_dir for label, (run_dir, _) in start_demo(root=root / "seed0").items()}
        wait_finished(runs.values())
        return runs, time.time() - started
    finally:
        os.environ["SCN_STUDIO_CACHE"] = previous or ""


def earlier_first_seeds(root: Path, latest: dict) -> list:
    """Seed-0 pairs an earlier measurement left in `root` (finished ones), to check that seed 0
    started again, from another empty cache, trains the same."""
    pairs, pair = [], {}
    # start_demo names a pair's folders by their start times, seconds apart: in name order, a pair's
    # two runs come together.
    for run_dir in sorted((root / "seed0").glob("*-demo-*")):
        if run_dir in latest.values() or RunReader(run_dir).status()["state"] != "finished":
            continue
        pair[run_dir.name.rsplit("-demo-", 1)[1]] = run_dir
        if set(pair) == set(DEMO_RUNS):
            pairs.append(pair)
            pair = {}
    return pairs


def other_seed(root: Path, seed: int) -> dict:
    """The pair with `--seed seed`, side by side; a pair already trained in `root` is kept."""
    runs = {label: root / f"seed{seed}-demo-{label}" for label in DEMO_RUNS}
    with ThreadPoolExecutor(len(runs)) as pool:
        list(pool.map(lambda label: ensure_trained(runs[label], [*train_command(
            run_dir=runs[label], options=DEMO_RUNS[label] | {"seed": seed}), "--no-progress"]), runs))
    return runs


def score(run_dir: Path) -> dict:
    reader = RunReader(run_dir)
    epochs = reader.epoch_metrics()
    warnings = reader.warnings()
    result = summarize(reader) | {
        "val_accuracy_by_epoch": [round(float(v), 4) for v in epochs["val_accuracy"]],
        "test_accuracy_by_epoch": [round(float(v), 4) for v in epochs["test_accuracy"]],
        "warnings": sorted(set(warnings["kind"])) if len(warnings) else []}
    if "rr_active_share" in epochs and epochs["rr_active_share"].notna().all():
        result["rr_active_share_by_epoch"] = [round(float(v), 4) for v in epochs["rr_active_share"]]
    return result


def differences(rows: list, key: str) -> dict:
    diffs = [100 * (row["scn"][key] - row["baseline"][key]) for row in rows]
    return {"by_seed": diffs, "mean": statistics.mean(diffs),
            "sample_sd": statistics.stdev(diffs) if len(diffs) > 1 else None}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--runs-dir", default=None, help="where the runs go (default: a new temporary folder)")
    parser.add_argument("--json", default="bench/results/demo.json")
    parser.add_argument("--compare", default=None,
                        help="a demo.json to compare seed 0 with (a reproduction from a fresh clone); seed-0 "
                             "pairs an earlier measurement left in --runs-dir are compared with too")
    args = parser.parse_args(argv)
    if args.seeds[0] != 0:
        parser.error("the first seed must be 0: it is the demo as the app starts it")

    root = Path(args.runs_dir or tempfile.mkdtemp(prefix="scn-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    # The other seeds share one cache; seed 0, last so nothing else runs beside it, gets an empty one.
    os.environ["SCN_STUDIO_CACHE"] = str(root / "cache")
    by_seed = {seed: other_seed(root, seed) for seed in args.seeds[1:]}
    first, wall = first_seed(root)
    by_seed = {0: first} | by_seed
    rows = [{"seed": seed, **{label: score(run_dir) for label, run_dir in runs.items()}}
            for seed, runs in by_seed.items()]
    last = differences(rows, "last_test_accuracy")
    chosen = differences(rows, "best_val_test_accuracy")
    scn_rows = [row["scn"] for row in rows]
    checks = {
        "scn_ahead_by_2_points_last": last["mean"] >= 2.0,
        "scn_ahead_by_2_points_val_selected": chosen["mean"] >= 2.0,
        "every_seed_scn_at_least_baseline": all(d >= 0 for d in last["by_seed"] + chosen["by_seed"]),
        "alpha_auroc_wrong_labels_last_epoch_at_least_0_75": all(
            (r["alpha_auroc_wrong_now_by_epoch"][-1] or 0) >= 0.75 for r in scn_rows),
        "no_collapse_warning": not any(row[m]["warnings"] for row in rows for m in METHODS),
        "demo_within_10_minutes": wall <= 600,
    }
    out = {"options": {label: options for label, options in DEMO_RUNS.items()},
           "wall_seconds_first_seed_from_empty_cache": wall, "cpu_count": os.cpu_count(),
           "runs": rows, "scn_minus_baseline_points": {"last": last, "val_selected": chosen},
           "checks": checks}
    earlier = [{label: score(run_dir) for label, run_dir in pair.items()} for pair in earlier_first_seeds(root, first)]
    if args.compare:
        earlier.append(json.loads(Path(args.compare).read_text())["runs"][0])
    if earlier:
        out["reproduction_points"] = [
            {label: {key: 100 * (rows[0][label][key] - before[label][key])
                     for key in ("last_test_accuracy", "best_val_test_accuracy")} for label in METHODS}
            for before in earlier]
        out["checks"]["seed_0_reproduces_within_1_point"] = all(
            abs(v) <= 1.0 for pair in out["reproduction_points"] for d in pair.values() for v in d.values())
    write_results(args.json, out, module="bench.demo", argv=argv)
    print(f"demo: {wall / 60:.1f} min from an empty cache; SCN - baseline {last['mean']:+.1f} points "
          f"(last epoch), {chosen['mean']:+.1f} (validation-selected); checks: {checks}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
