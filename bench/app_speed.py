"""How fast the app's pages render, and how soon a started demo has something to chart.

1. Pages: fills a runs folder with two finished runs at RAF-DB size (12,271 training samples,
   40 epochs, 192 steps per epoch, a few hundred relabels per epoch, ground truth and the RAF-DB
   image folder for thumbnails) through RunWriter, then times streamlit AppTest runs of every page:
   the first (cold) run and the median of warm reruns, as a browser session sees them.
2. Demo start-up (--demo): calls scn.runs.start_run with the one-click demo's SCN options and times
   the first step row and the first epoch row (what the Training page charts). Without the built-in
   benchmark generator (scn.synth) it trains the same options on a RAF-DB folder of the demo's size
   written here, and says so.

    python -m bench.app_speed                       # pages at RAF-DB size
    python -m bench.app_speed --demo                # plus the demo's time to first chart
    python -m bench.app_speed --samples 2000 --epochs 5 --repeats 2   # quick check
"""
import argparse
import importlib.util
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from scn import runs
from scn.store import RunReader
from tests.fake_run import write_fake_run
from tests.helpers import write_rafdb

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGES = ("app.py", "pages/1_Training.py", "pages/2_Attention.py", "pages/3_Relabels.py",
         "pages/4_Confusion.py", "pages/5_Compare.py")


def time_page(page: str, *, repeats: int) -> dict:
    at = AppTest.from_file(APP, default_timeout=120)
    if page != "app.py":
        at.switch_page(page)
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
    return {"page": page, "cold_s": round(cold, 3), "warm_median_s": round(statistics.median(warm), 3)}


def bench_pages(root: Path, data: Path, *, samples: int, epochs: int, repeats: int) -> list:
    start = time.perf_counter()
    write_rafdb(data, train=samples, test=samples // 4, size=24)
    for name, method in (("rafdb-size-baseline", "baseline"), ("rafdb-size-scn", "scn")):
        write_fake_run(root / name, n_train=samples, n_test=samples // 4, epochs=epochs,
                       relabel_epoch=max(1, epochs // 4), method=method, data_dir=data,
                       steps_per_epoch=samples // 64, relabels_per_epoch=max(8, samples // 40))
    print(f"filled {root} in {time.perf_counter() - start:.0f} s "
          f"({samples} samples x {epochs} epochs, {len(RunReader(root / 'rafdb-size-scn').relabels())} "
          "relabel events in the SCN run)")
    os.environ["SCN_RUNS_DIR"] = str(root)
    results = []
    for page in PAGES:
        results.append(time_page(page, repeats=repeats))
        print(f"  {page:24s} cold {results[-1]['cold_s']:.2f} s   warm {results[-1]['warm_median_s']:.2f} s")
    return results


def bench_demo(root: Path, data: Path) -> dict:
    options = dict(runs.DEMO_RUNS["scn"])
    source = "built-in benchmark (scn.synth)"
    if importlib.util.find_spec("scn.synth") is None:
        write_rafdb(data, train=options.pop("synth_train"), test=options.pop("synth_test"), size=100)
        options.pop("synth_noise")
        options["data"] = str(data)
        source = f"RAF-DB folder of the demo's size at {data} (scn.synth is not on this branch)"
    run_dir = root / "demo-scn"
    start = time.perf_counter()
    pid = runs.start_run(run_dir=run_dir, options=options)
    spawned = time.perf_counter() - start
    first_step = first_epoch = None
    try:
        while first_epoch is None:
            time.sleep(0.2)
            reader = RunReader(run_dir) if (run_dir / "run.db").exists() else None
            if reader is None:
                continue
            if first_step is None and len(reader.step_metrics()):
                first_step = time.perf_counter() - start
            if len(reader.epoch_metrics()):
                first_epoch = time.perf_counter() - start
            if reader.status()["state"] in ("failed", "interrupted"):
                raise RuntimeError(f"the demo run failed:\n{reader.log_tail()}")
    finally:
        runs.stop_run(run_dir)
    result = {"source": source, "pid": pid, "start_run_returned_s": round(spawned, 1),
              "first_step_row_s": round(first_step, 1), "first_epoch_row_s": round(first_epoch, 1)}
    print(f"demo ({source}): start_run returned after {spawned:.1f} s, first step row after "
          f"{first_step:.1f} s, first epoch row after {first_epoch:.1f} s")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=12_271)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--demo", action="store_true", help="also time the demo's first chart")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        results = {"pages": bench_pages(tmp / "runs", tmp / "rafdb", samples=args.samples,
                                        epochs=args.epochs, repeats=args.repeats)}
        if args.demo:
            results["demo"] = bench_demo(tmp / "demo-runs", tmp / "demo-data")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
