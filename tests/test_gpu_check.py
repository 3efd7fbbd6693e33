"""bench.gpu_check: the verdict from a report, and the parts' time limits. The whole check was
rehearsed on a CPU with `GPU_CHECK_TOY=1 bash bench/gpu_check.sh` (three minutes on two busy cores)."""
import sys

import pytest

from bench import gpu_check
from bench.gpu_check import NO_CUDA, Budget, check, run_part

SCALE = {"sizes": [224, 112], "batches": [64, 256], "side_by_side": [224, 64]}


def device_report(*, share=0.8, ours=9000.0, official=(2000.0, 3000.0)) -> dict:
    row = {"trainer_scn": ours, "trainer_baseline": ours, "trainer_scn_vs_ceiling": share,
           "trainer_baseline_vs_ceiling": share}
    return {"machine": {"cuda": True},
            "throughput": {"sizes": {str(s): {str(b): dict(row) for b in SCALE["batches"]} for s in SCALE["sizes"]}},
            "official_loop": {m: [{"images_per_s": v} for v in official] for m in gpu_check.METHODS},
            "cuda_tests": {"exit": 0},
            "torchrun": {"exit": 0, "backend": "nccl", "expected_backend": "nccl"}}


def test_a_device_report_meeting_every_criterion_passes():
    result = check(device_report(), scale=SCALE)
    assert result["verdict"] == "pass" and not result["failed"] and len(result["items"]) == 8 + 2 + 2
    side = [item for item in result["items"] if "official" in item["criterion"]]
    # Compared with the official loop's faster worker count: 9000 / 3000.
    assert [item["measured"] for item in side] == [3.0, 3.0]


def test_one_slow_cell_a_slow_side_by_side_or_a_gloo_fallback_fails_by_name():
    report = device_report(ours=7000.0)
    report["throughput"]["sizes"]["112"]["256"]["trainer_baseline_vs_ceiling"] = 0.69
    report["torchrun"]["backend"] = "gloo"
    result = check(report, scale=SCALE)
    assert result["verdict"] == "fail"
    assert result["failed"] == ["baseline 112 px batch 256: trainer ≥ 70% of the bf16 ceiling",
                                "scn 224 px batch 64: our trainer ≥ 2.5× the official loop (its faster worker count)",
                                "baseline 224 px batch 64: our trainer ≥ 2.5× the official loop "
                                "(its faster worker count)",
                                "torchrun --nproc-per-node 1 finishes on nccl"]


def test_what_was_not_measured_fails_and_a_cpu_run_is_no_verdict():
    report = {"machine": {"cuda": False}, "torchrun": {"expected_backend": "gloo"}}
    result = check(report, scale=SCALE)
    assert result["verdict"].startswith(NO_CUDA)
    measured = [item for item in result["items"] if "measured" in item]
    assert len(measured) == 10 and all(item["pass"] is False and item["measured"] is None for item in measured)
    assert next(i for i in result["items"] if "CUDA tests" in i["criterion"])["note"] == NO_CUDA


def test_a_part_runs_and_is_cut_at_its_limit_and_is_not_started_out_of_time(monkeypatch):
    done = run_part([sys.executable, "-c", "print('measured')"], budget=Budget(60), limit_s=60, env=None)
    assert done["exit"] == 0 and done["output_tail"] == "measured\n"
    monkeypatch.setattr(gpu_check, "MIN_PART_S", 0)
    cut = run_part([sys.executable, "-c", "import time; print('begun', flush=True); time.sleep(60)"],
                   budget=Budget(60), limit_s=2, env=None)
    assert cut["exit"] == -9 and cut["timed_out_after_s"] == 2 and "begun" in cut["output_tail"]
    monkeypatch.setattr(gpu_check, "MIN_PART_S", 5)
    assert run_part(["false"], budget=Budget(3), limit_s=60, env=None)["skipped"] == "out of time"


@pytest.mark.parametrize("part, ok", [({"exit": 0}, True), ({"exit": 1}, False), ({"skipped": NO_CUDA}, True),
                                      ({"skipped": "out of time"}, False), ({"images_per_s": 5.0}, True)])
def test_the_exit_status_says_whether_every_part_ran(part, ok):
    assert gpu_check._parts_ok({"synth": {"exit": 0}, "step_split": [part]}) is ok
