"""How fast the app's pages render, and how soon a started demo has something to chart.

1. Pages: generates the built-in benchmark at RAF-DB size (12,271 training samples, ground truth,
   images for thumbnails) and fills a runs folder with two finished simulated runs on it (40
   epochs, 192 steps per epoch, a few hundred relabels per epoch; bench/simulated_run.py records
   them as the trainer does), then times streamlit AppTest runs of every page:
   the first (cold) run and the median of warm reruns, as a browser session sees them.
2. Demo start-up (--demo): starts the one-click demo's runs (SCN and the baseline, together) through
   scn.runs.start_run and times each run's first step row and first epoch row (what the Training
   page charts): once with a cold dataset cache, estimating the whole demo from the first epoch,
   and once with the cache warm (every later demo), up to the first step row.
3. Live latency (--live N): this process plays a trainer (holds the run lock, writes N epoch rows
   through RunWriter) while Chromium shows the Training page; times each row until it is on screen.

    python -m bench.app_speed                       # pages at RAF-DB size
    python -m bench.app_speed --live 5              # plus epoch-row-to-chart latency in Chromium
    python -m bench.app_speed --demo                # plus the demo's time to first chart
    python -m bench.app_speed --samples 2000 --epochs 5 --repeats 2   # quick check
"""
import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import streamlit as st
from streamlit.testing.v1 import AppTest

from bench.results_io import write_results
from scn import lock, runs
from scn.classes import CLASS_NAMES
from scn.store import RunReader, RunWriter
from studio.ui import REFRESH_SECONDS
from bench.app_server import chromium, serve_app
from bench.simulated_run import write_dataset, write_simulated_run

APP = str(Path(__file__).resolve().parent.parent / "app.py")
# Every page over the run store; Predict is timed by bench/predict_latency.py (its cost is the model
# on an upload, not the store). The Sample page is timed on one training sample's history.
PAGES = ("app.py",) + tuple(f"pages/{p.name}" for p in sorted((Path(APP).parent / "pages").glob("*.py"))
                            if not p.name.endswith("_Predict.py"))
QUERIES = {"pages/7_Sample.py": {"run": "rafdb-size-scn", "split": "train", "sample": "0"}}


def time_page(page: str, *, repeats: int) -> dict:
    """First run in this process (includes one-time imports), first run of a new session with
    Streamlit's caches emptied (what a new visitor waits for), and the median warm rerun."""
    def fresh() -> AppTest:
        at = AppTest.from_file(APP, default_timeout=120)
        if page != "app.py":
            at.switch_page(page)
        at.query_params.update(QUERIES.get(page, {}))
        return at

    at = fresh()
    start = time.perf_counter()
    at.run()
    cold = time.perf_counter() - start
    if at.exception:
        raise RuntimeError(f"{page}: {at.exception[0].value}")
    warm = []
    for _ in range(repeats):
        start = time.perf_counter()
        at.run()
        warm.append(time.perf_counter() - start)
    st.cache_data.clear()
    session = fresh()
    start = time.perf_counter()
    session.run()
    new_session = time.perf_counter() - start
    return {"page": page, "cold_s": round(cold, 3), "new_session_s": round(new_session, 3),
            "warm_median_s": round(statistics.median(warm), 3)}


def bench_pages(root: Path, data: Path, *, samples: int, epochs: int, repeats: int) -> list:
    start = time.perf_counter()
    write_dataset(data, train=samples, test=samples // 4)
    for name, method in (("rafdb-size-baseline", "baseline"), ("rafdb-size-scn", "scn")):
        write_simulated_run(root / name, data_dir=data, epochs=epochs, relabel_epoch=max(1, epochs // 4),
                            method=method, steps_per_epoch=samples // 64,
                            relabels_per_epoch=max(8, samples // 40))
    print(f"filled {root} in {time.perf_counter() - start:.0f} s "
          f"({samples} samples x {epochs} epochs, {len(RunReader(root / 'rafdb-size-scn').relabels())} "
          "relabel events in the SCN run)")
    os.environ["SCN_RUNS_DIR"] = str(root)
    results = []
    for page in PAGES:
        results.append(time_page(page, repeats=repeats))
        print(f"  {page:24s} cold {results[-1]['cold_s']:.2f} s   new session {results[-1]['new_session_s']:.2f} s"
              f"   warm {results[-1]['warm_median_s']:.2f} s")
    return results


def watch_demo(root: Path, demo: dict, *, until: str) -> dict:
    """Start the demo's runs together, as its button does, and time each run's first step and
    epoch rows until every run has `until` ('first_step_row_s' or 'first_epoch_row_s'); then stop."""
    start = time.perf_counter()
    for label, options in demo.items():
        runs.start_run(run_dir=root / label, options=options)
    seen = {label: {} for label in demo}
    try:
        while not all(until in marks for marks in seen.values()):
            time.sleep(0.2)
            for label, marks in seen.items():
                if not (root / label / "run.db").exists():
                    continue
                reader = RunReader(root / label)
                if reader.status()["state"] in ("failed", "interrupted"):
                    raise RuntimeError(f"the demo run {label} failed:\n{reader.log_tail()}")
                elapsed = round(time.perf_counter() - start, 1)
                if "first_step_row_s" not in marks and len(reader.step_metrics()):
                    marks["first_step_row_s"] = elapsed
                epochs = reader.epoch_metrics()
                if "first_epoch_row_s" not in marks and len(epochs):
                    marks["first_epoch_row_s"] = elapsed
                    marks["epoch_seconds"] = round(float(epochs["seconds"].iloc[0]), 1)
                    marks["estimated_total_min"] = round(
                        (elapsed + (demo[label]["epochs"] - 1) * marks["epoch_seconds"]) / 60, 1)
    finally:
        for label in demo:
            runs.stop_run(root / label)
    return seen


def bench_demo(root: Path) -> dict:
    """The demo twice: first with a cold dataset cache (the first demo on a machine generates the
    benchmark) up to the first epoch, then again with the cache warm up to the first step."""
    demo = {label: dict(options) for label, options in runs.DEMO_RUNS.items()}
    os.environ["SCN_STUDIO_CACHE"] = str(root / "cache")
    results = {"cold_cache": watch_demo(root / "cold", demo, until="first_epoch_row_s"),
               "warm_cache": watch_demo(root / "warm", demo, until="first_step_row_s")}
    for phase in ("cold_cache", "warm_cache"):
        for label, marks in results[phase].items():
            print(f"demo {label}, {phase.replace('_', ' ')}: "
                  + ", ".join(f"{k} {v}" for k, v in marks.items()))
    return results


def bench_live(root: Path, *, epochs: int) -> dict:
    """Seconds from an epoch row committed to the store until the Training page in Chromium shows
    it. This process plays the trainer: it holds the run lock and writes through RunWriter."""
    run_dir = root / "live"
    run_dir.mkdir(parents=True)
    held = lock.acquire(run_dir)
    writer = RunWriter(run_dir)
    writer.write_config({"method": "scn", "epochs": epochs, "class_names": list(CLASS_NAMES)})
    writer.set_status("running", pid=os.getpid(), started=time.time(), total_epochs=epochs,
                      steps_per_epoch=1)
    latencies = []
    try:
        with serve_app(root) as url, chromium() as browser:
            page = browser.new_page()
            page.goto(f"{url}/Training")
            page.get_by_text("No training steps logged yet").wait_for(timeout=60_000)
            for epoch in range(1, epochs + 1):
                row = {"epoch": epoch, "time": time.time(), "lr": 1e-3, "images_per_s": 100.0}
                writer.log_step({"global_step": epoch, "step": 0, "loss": 1.0, "loss_wce": 1.0,
                                 "loss_rr": 0.0, "accuracy": 0.5, **row})
                writer.log_epoch({"seconds": 1.0, "train_accuracy": 0.5, "test_accuracy": 0.5, **row})
                written = time.perf_counter()
                page.get_by_text(f"{epoch} of {epochs} epochs done").wait_for(timeout=30_000)
                latencies.append(round(time.perf_counter() - written, 2))
    finally:
        writer.close()
        os.close(held)
    print(f"live: epoch row -> Training page shows it: {latencies} s "
          f"(max {max(latencies)} s; the page refreshes every {REFRESH_SECONDS} s)")
    return {"latencies_s": latencies, "max_s": max(latencies)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=12_271)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--demo", action="store_true", help="also time the demo's first chart")
    parser.add_argument("--live", type=int, metavar="EPOCHS", default=0,
                        help="also time EPOCHS epoch rows reaching the Training page in Chromium")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        results = {"pages": bench_pages(tmp / "runs", tmp / "rafdb", samples=args.samples,
                                        epochs=args.epochs, repeats=args.repeats)}
        if args.live:
            results["live"] = bench_live(tmp / "live-runs", epochs=args.live)
        if args.demo:
            results["demo"] = bench_demo(tmp / "demo-runs")
    if args.json:
        write_results(args.json, results, module="bench.app_speed")


if __name__ == "__main__":
    main()
