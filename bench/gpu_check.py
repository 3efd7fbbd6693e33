"""The device check: everything a lent GPU should measure, in one command and one JSON.

    bash bench/gpu_check.sh                    # on the GPU machine, within a 9-minute budget
    GPU_CHECK_TOY=1 bash bench/gpu_check.sh    # a rehearsal on a CPU at toy scale

In order of importance, each part a subprocess with its own time limit inside one overall budget,
the JSON rewritten after each, so a run cut short keeps what it measured:
  1. the built-in benchmark at RAF-DB size (12,271 train / 3,068 test) with every core;
  2. the CUDA tests (tests/test_device.py);
  3. bench.gpu_throughput: the bfloat16 ceiling, a plain PyTorch loop and our trainer (SCN and the
     baseline) at 224 and 112 px, batch 64 and 256;
  4. bench.official_loop: the official SCN training loop on the same device, data, size and batch
     (224 px, batch 64), SCN and baseline, with one DataLoader worker per core (their default is 4);
     needs official-scn/ (`bench.official_loop prepare`);
  5. `torchrun --nproc-per-node 1 -m scn train` on a small benchmark: NCCL on CUDA (gloo on a CPU);
  6. bench.gpu_step_split: where a step's time goes, at the two cells the checks care most about.
Then `check`: every throughput cell at ≥ 70% of the measured ceiling, our trainer ≥ 2.5× the
official loop's images/s at 224 px batch 64, the CUDA tests passing and the NCCL run finishing.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.results_io import write_results

ROOT = Path(__file__).resolve().parent.parent
CEILING_SHARE = 0.70
OFFICIAL_SPEEDUP = 2.5
NO_CUDA = "skipped: no CUDA"
METHODS = ("scn", "baseline")
# A part not started with less than this left: it would only be killed half-way.
MIN_PART_S = 5

SCALES = {
    "device": {"train": 12271, "test": 3068, "sizes": [224, 112], "batches": [64, 256], "steps": 30, "warmup": 5,
               "plain_workers": 8, "side_by_side": [224, 64], "official_workers": [os.cpu_count() or 4],
               "official_warmup": 10, "official_steps": 60,
               "ddp": {"train": 512, "test": 128, "image_size": 112, "batch": 64},
               "step_split": [[224, 256, "baseline"], [224, 64, "scn"]]},
    "toy": {"train": 60, "test": 20, "sizes": [32], "batches": [8], "steps": 2, "warmup": 1, "plain_workers": 0,
            "side_by_side": [32, 8], "official_workers": [0], "official_warmup": 1, "official_steps": 2,
            "ddp": {"train": 48, "test": 16, "image_size": 32, "batch": 16},
            "step_split": [[32, 8, "baseline"]]},
}


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


class Budget:
    """The seconds left of the whole check; each part gets its own limit or what is left."""

    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds

    def limit(self, seconds: float) -> float:
        return min(seconds, self.deadline - time.monotonic())


def run_part(argv: list, *, budget: Budget, limit_s: float, env: dict) -> dict:
    """Run one part; its exit status, seconds and output tail (-9 and a note when out of time)."""
    allowed = budget.limit(limit_s)
    if allowed < MIN_PART_S:
        return {"command": " ".join(argv), "skipped": "out of time"}
    start = time.monotonic()
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, errors="replace", start_new_session=True)
    try:
        output, _ = process.communicate(timeout=allowed)
        timed_out = False
    except subprocess.TimeoutExpired:
        # Its own process group: DataLoader workers and torchrun's children go with it.
        os.killpg(process.pid, 9)
        output, _ = process.communicate()
        timed_out = True
    result = {"command": " ".join(argv), "exit": process.returncode, "seconds": round(time.monotonic() - start, 1),
              "output_tail": output[-3000:]}
    if timed_out:
        result["timed_out_after_s"] = round(allowed)
    return result


def _json_of(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def check(report: dict, *, scale: dict) -> dict:
    """Pass or fail of each criterion from what the report holds; what was not measured fails."""
    items = []
    cells = (report.get("throughput") or {}).get("sizes", {})
    for size in scale["sizes"]:
        for batch in scale["batches"]:
            row = cells.get(str(size), {}).get(str(batch), {})
            for method in METHODS:
                share = row.get(f"trainer_{method}_vs_ceiling")
                items.append({"criterion": f"{method} {size} px batch {batch}: trainer ≥ {CEILING_SHARE:.0%} of "
                                           "the bf16 ceiling",
                              "measured": share, "pass": share is not None and share >= CEILING_SHARE})
    size, batch = scale["side_by_side"]
    row = cells.get(str(size), {}).get(str(batch), {})
    for method in METHODS:
        theirs = [r["images_per_s"] for r in report.get("official_loop", {}).get(method, [])
                  if r.get("images_per_s")]
        ours = row.get(f"trainer_{method}")
        ratio = ours / max(theirs) if ours and theirs else None
        items.append({"criterion": f"{method} {size} px batch {batch}: our trainer ≥ {OFFICIAL_SPEEDUP}× the "
                                   "official loop (its faster worker count)",
                      "ours_images_per_s": ours, "official_images_per_s": max(theirs) if theirs else None,
                      "measured": ratio, "pass": ratio is not None and ratio >= OFFICIAL_SPEEDUP})
    on_cuda = report["machine"]["cuda"]
    tests = report.get("cuda_tests", {})
    items.append({"criterion": "the CUDA tests pass", "pass": tests.get("exit") == 0} if on_cuda
                 else {"criterion": "the CUDA tests pass", "pass": None, "note": NO_CUDA})
    ddp = report.get("torchrun", {})
    items.append({"criterion": f"torchrun --nproc-per-node 1 finishes on {ddp.get('expected_backend')}",
                  "pass": ddp.get("exit") == 0 and ddp.get("backend") == ddp.get("expected_backend"),
                  **({} if on_cuda else {"note": "nccl " + NO_CUDA + "; gloo on the CPU instead"})})
    failed = [item["criterion"] for item in items if item["pass"] is False]
    verdict = ("pass" if not failed else "fail") if on_cuda else NO_CUDA + " (a rehearsal of the control flow)"
    return {"verdict": verdict, "failed": failed, "items": items}


def gpu_check(*, toy: bool, out: Path, budget_s: float, python: str = sys.executable) -> dict:
    scale = SCALES["toy" if toy else "device"]
    on_cuda = cuda_available()
    device = "cuda" if on_cuda else "cpu"
    report = {"command": "bash bench/gpu_check.sh" + (" (GPU_CHECK_TOY=1)" if toy else ""),
              "started": time.strftime("%Y-%m-%d %H:%M:%S"), "scale": "toy" if toy else "device",
              "machine": {"cuda": on_cuda, "cores": os.cpu_count()}, "settings": scale}
    out.parent.mkdir(parents=True, exist_ok=True)

    def save():
        report["check"] = check(report, scale=scale)
        write_results(out, report, module="bench.gpu_check", argv=[])

    budget = Budget(budget_s)
    work = Path(tempfile.mkdtemp(prefix="gpu_check-"))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.setdefault("SCN_STUDIO_CACHE", str(work / "cache"))
    try:
        data, small = work / "rafdb", work / "rafdb-small"
        report["synth"] = run_part([python, "-m", "scn", "synth", "--out", str(data), "--train", str(scale["train"]),
                                    "--test", str(scale["test"]), "--workers", str(os.cpu_count() or 1)],
                                   budget=budget, limit_s=120, env=env)
        save()
        if report["synth"].get("exit") != 0:
            return report

        report["cuda_tests"] = run_part([python, "-m", "pytest", "tests/test_device.py", "-q", "-p",
                                         "no:cacheprovider", "-o", "addopts="], budget=budget, limit_s=100,
                                        env=env) if on_cuda else {"skipped": NO_CUDA}
        save()

        throughput = work / "throughput.json"
        report["throughput_run"] = run_part(
            [python, "-m", "bench.gpu_throughput", "--data", str(data), "--json", str(throughput), "--device", device,
             "--sizes", *map(str, scale["sizes"]), "--batches", *map(str, scale["batches"]),
             "--steps", str(scale["steps"]), "--warmup", str(scale["warmup"]),
             "--workers", str(scale["plain_workers"])], budget=budget, limit_s=240, env=env)
        report["throughput"] = _json_of(throughput)
        save()

        size, batch = scale["side_by_side"]
        report["official_loop"] = {}
        for method in METHODS:
            for workers in scale["official_workers"]:
                result = work / f"official-{method}-{workers}.json"
                part = run_part([python, "-m", "bench.official_loop", "time", "--data", str(data), "--size",
                                 str(size), "--batch", str(batch), "--method", method, "--device", device,
                                 "--workers", str(workers), "--warmup", str(scale["official_warmup"]),
                                 "--steps", str(scale["official_steps"]), "--json", str(result)],
                                budget=budget, limit_s=90, env=env)
                report["official_loop"].setdefault(method, []).append(_json_of(result) or part)
                save()

        ddp = scale["ddp"]
        synth_small = run_part([python, "-m", "scn", "synth", "--out", str(small), "--train", str(ddp["train"]),
                                "--test", str(ddp["test"]), "--workers", str(os.cpu_count() or 1)],
                               budget=budget, limit_s=60, env=env)
        run_dir = work / "torchrun-run"
        part = run_part([python, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1",
                         "-m", "scn", "train", "--data", str(small), "--run-dir", str(run_dir), "--device", device,
                         "--epochs", "1", "--image-size", str(ddp["image_size"]), "--batch-size", str(ddp["batch"]),
                         "--no-progress"], budget=budget, limit_s=120, env=env) \
            if synth_small.get("exit") == 0 else {"synth": synth_small}
        log = run_dir / "train.log"
        log_text = log.read_text(errors="replace") if log.is_file() else ""
        backend = next((b for b in ("nccl", "gloo") if f"(torchrun, {b})" in log_text), None)
        report["torchrun"] = part | {"expected_backend": "nccl" if on_cuda else "gloo", "backend": backend,
                                     "log_tail": log_text[-2000:]}
        save()

        report["step_split"] = []
        for size, batch, method in scale["step_split"]:
            result = work / f"split-{method}-{size}-{batch}.json"
            part = run_part([python, "-m", "bench.gpu_step_split", "--data", str(data), "--size", str(size),
                             "--batch", str(batch), "--method", method, "--device", device, "--json", str(result)],
                            budget=budget, limit_s=120, env=env)
            report["step_split"].append({"size": size, "batch": batch, "method": method} | (_json_of(result) or part))
            save()
    finally:
        report["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
        save()
        shutil.rmtree(work, ignore_errors=True)
    return report


def _parts_ok(report: dict) -> bool:
    parts = [report.get("synth", {}), report.get("cuda_tests", {}), report.get("throughput_run", {}),
             report.get("torchrun", {}), *[r for runs in report.get("official_loop", {}).values() for r in runs],
             *report.get("step_split", [])]
    return all(part.get("skipped") == NO_CUDA or ("skipped" not in part and part.get("exit", 0) == 0)
               for part in parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--toy", action="store_true", help="toy scale: a rehearsal of the control flow on a CPU")
    parser.add_argument("--json", type=Path, help="the report (default bench/results/gpu_check.json; "
                                                  "with --toy bench/out/gpu_check_toy.json)")
    parser.add_argument("--budget-s", type=float, default=540, help="seconds for the whole check (540)")
    args = parser.parse_args(argv)
    out = args.json or ROOT / ("bench/out/gpu_check_toy.json" if args.toy else "bench/results/gpu_check.json")
    report = gpu_check(toy=args.toy, out=out, budget_s=args.budget_s)
    if os.environ.get("OUT") and Path(os.environ["OUT"]).is_dir():
        shutil.copy(out, Path(os.environ["OUT"]) / "gpu_check.json")
    for item in report["check"]["items"]:
        shown = "pass" if item["pass"] else ("fail" if item["pass"] is False else item.get("note"))
        measured = item.get("measured")
        print(f"{shown:>6}  {item['criterion']}" + (f"  ({measured:.2f})" if measured is not None else ""))
    print(f"check: {report['check']['verdict']}; report: {out}")
    return 0 if _parts_ok(report) else 1


if __name__ == "__main__":
    raise SystemExit(main())
