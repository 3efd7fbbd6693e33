"""How fast the app's queries are on a run store at AffectNet scale.

Fills a run store with synthetic rows (287,000 training samples × 40 epochs of attention weights
and per-sample history: prediction, p(given label), p_max; a share of them relabeled each epoch;
the test set's per-sample predictions), then times the reads the pages make.

    python -m bench.store_queries                      # AffectNet scale (a few minutes to fill)
    python -m bench.store_queries --samples 5000 --epochs 3 --repeats 3   # quick check
"""
import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.results_io import write_results
from scn.labels import RelabelEvent
from scn.store import RunReader, RunWriter


TEST_SAMPLES = 4_000  # AffectNet's validation set, its usual test set


def fill(run_dir: Path, *, samples: int, epochs: int, relabel_share: float, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    writer = RunWriter(run_dir)
    writer.write_config({"epochs": epochs, "method": "scn", "class_names": [str(i) for i in range(8)]})
    labels = rng.integers(0, 8, samples)
    writer.add_samples("train", (f"train/{i:06d}.jpg" for i in range(samples)), labels)
    writer.add_samples("test", (f"test/{i:05d}.jpg" for i in range(TEST_SAMPLES)),
                       rng.integers(0, 8, TEST_SAMPLES))
    per_epoch = int(relabel_share * samples)
    for epoch in range(1, epochs + 1):
        writer.log_attention(epoch, alpha=rng.random(samples, dtype=np.float32),
                             is_high=rng.random(samples) < 0.7, labels=labels)
        p_max = rng.random(samples, dtype=np.float32)
        writer.log_history(epoch, pred=rng.integers(0, 8, samples), p_given=p_max * rng.random(samples),
                           p_max=p_max)
        probs = rng.dirichlet(np.ones(8), TEST_SAMPLES)
        writer.log_predictions(epoch, "test", pred=probs.argmax(1), probs=probs)
        chosen = rng.choice(samples, per_epoch, replace=False)
        writer.log_relabels(
            RelabelEvent(epoch, int(i) // 64, int(i), int(labels[i]), int((labels[i] + 1) % 8),
                         0.9, 0.3, 0.2, "low") for i in chosen)
        writer.log_confusion(epoch, "test", rng.integers(0, 500, (8, 8)))
        writer.log_epoch({"epoch": epoch, "test_accuracy": 0.5})
    writer.set_status("finished")
    writer.close()


def timed(fn, *, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def measure(*, samples: int = 287_000, epochs: int = 40, relabel_share: float = 0.02, repeats: int = 7) -> dict:
    """Fill a temporary store at this scale and time the page queries (median milliseconds)."""
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "affectnet-scale"
        start = time.perf_counter()
        fill(run_dir, samples=samples, epochs=epochs, relabel_share=relabel_share)
        fill_seconds = time.perf_counter() - start
        reader = RunReader(run_dir)
        middle = epochs // 2 or 1
        return {
            "samples": samples, "epochs": epochs, "relabels_per_epoch": int(relabel_share * samples),
            "db_megabytes": round((run_dir / "run.db").stat().st_size / 2**20, 1),
            "fill_seconds": round(fill_seconds, 1),
            "attention_one_epoch_ms": timed(lambda: reader.attention(middle), repeats=repeats),
            "sample_history_all_epochs_ms": timed(lambda: reader.sample_history(samples // 2),
                                                  repeats=repeats),
            "test_predictions_one_epoch_ms": timed(lambda: reader.predictions(middle), repeats=repeats),
            "relabels_one_epoch_ms": timed(lambda: reader.relabels(epoch=middle), repeats=repeats),
            "relabels_filtered_ms": timed(lambda: reader.relabels(epoch=middle, old=3, min_margin=0.5),
                                          repeats=repeats),
            "relabel_counts_all_epochs_ms": timed(reader.relabel_counts, repeats=repeats),
            "confusion_one_epoch_ms": timed(lambda: reader.confusion(middle), repeats=repeats),
            "epoch_metrics_ms": timed(reader.epoch_metrics, repeats=repeats),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=287_000)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--relabel-share", type=float, default=0.02)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    results = measure(samples=args.samples, epochs=args.epochs, relabel_share=args.relabel_share,
                      repeats=args.repeats)
    for key, value in results.items():
        print(f"{key:>30}: {value:.1f}" if isinstance(value, float) else f"{key:>30}: {value}")
    if args.json:
        write_results(args.json, results, module="bench.store_queries")


if __name__ == "__main__":
    main()
