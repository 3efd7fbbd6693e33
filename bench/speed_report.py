"""Speed against limits, in one table: training loop vs a plain PyTorch loop vs the compute
ceiling, the SCN step vs the baseline step, run-store queries at AffectNet scale, page render time
at RAF-DB scale, and predict + Grad-CAM latency on a 12-megapixel photo.

    python -m bench.speed_report                       # about 15 minutes on 2 cores
    python -m bench.speed_report --quick               # minutes: small sizes, one round

Each row names the script that measures it alone, for a closer look.
"""
import argparse
import tempfile
from pathlib import Path

from bench.results_io import write_results
from bench import app_speed, predict_latency, store_queries, train_throughput


def rows_from(results: dict) -> list:
    rows = []
    machine = results["throughput"]["machine"]
    for size, t in results["throughput"]["sizes"].items():
        batch = results["throughput"]["batch_size"]
        ceiling = max(t["ceiling_fp32"], t["ceiling_bf16"], t["ceiling_bf16_channels_last"])
        rows += [
            (f"training, {size} px, batch {batch}: our trainer", f"{t['trainer_scn']:.0f} img/s",
             f"{t['trainer_vs_ceiling']:.0%} of the ceiling", "bench.train_throughput"),
            (f"training, {size} px: plain PyTorch loop (DataLoader + v2 transforms)",
             f"{t['reference_loop']:.0f} img/s", f"{t['reference_vs_ceiling']:.0%} of the ceiling",
             "bench.train_throughput"),
            (f"training, {size} px: ceiling (bare fwd+bwd+step, fastest of fp32 / bf16 / bf16+channels_last)",
             f"{ceiling:.0f} img/s",
             f"fp32 {t['ceiling_fp32']:.0f}, bf16 {t['ceiling_bf16']:.0f}, "
             f"bf16+CL {t['ceiling_bf16_channels_last']:.0f}", "bench.train_throughput"),
            (f"SCN step vs baseline step, {size} px", f"{t['scn_step_overhead_vs_baseline']:+.1%}",
             f"baseline {t['trainer_baseline']:.0f} img/s", "bench.train_throughput"),
        ]
    s = results["store"]
    rows += [
        (f"store: one epoch's attention weights ({s['samples']:,} samples, {s['epochs']} epochs)",
         f"{s['attention_one_epoch_ms']:.0f} ms", "target < 200 ms", "bench.store_queries"),
        (f"store: one epoch's relabel events ({s['relabels_per_epoch']:,})", f"{s['relabels_one_epoch_ms']:.0f} ms",
         "target < 200 ms", "bench.store_queries"),
    ]
    for page in results["pages"]:
        rows.append((f"page render: {page['page']} (RAF-DB-size run, warm rerun)", f"{page['warm_median_s']:.2f} s",
                     f"first run {page['cold_s']:.2f} s; target < 1 s", "bench.app_speed"))
    p = results["predict"]["stages_ms"]["predict_image total"]
    rows.append((f"predict + Grad-CAM, {results['predict']['megapixels']:.0f}-megapixel photo, one face",
                 f"{p['median']:.0f} ms", f"best {p['best']:.0f} ms; target < 1500 ms", "bench.predict_latency"))
    return rows, machine


def markdown(rows: list, machine: dict) -> str:
    lines = [f"Machine: {machine['cpu']}, {machine['threads']} threads, torch {machine['torch']}, "
             f"native bfloat16: {machine['native_bf16']}.", "",
             "| measurement | value | context | script |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | `python -m {d}` |" for a, b, c, d in rows]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes and one round, to check the script")
    parser.add_argument("--json", default="bench/results/speed_report.json")
    args = parser.parse_args(argv)
    quick = args.quick
    results = {
        "throughput": train_throughput.measure(sizes=(64,) if quick else (112, 224), batch=16 if quick else 64,
                                               steps=2 if quick else 6, rounds=1 if quick else 3),
        "store": store_queries.measure(samples=5000 if quick else 287_000, epochs=3 if quick else 40,
                                       repeats=1 if quick else 7),
        "predict": predict_latency.measure(repeats=1 if quick else 7),
    }
    with tempfile.TemporaryDirectory() as tmp:
        results["pages"] = app_speed.bench_pages(Path(tmp) / "runs", Path(tmp) / "rafdb",
                                                 samples=500 if quick else 12_271, epochs=3 if quick else 40,
                                                 repeats=1 if quick else 3)
    rows, machine = rows_from(results)
    table = markdown(rows, machine)
    print(table)
    write_results(args.json, results | {"table": table}, module="bench.speed_report", argv=argv)


if __name__ == "__main__":
    main()
