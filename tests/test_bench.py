"""Every benchmark script runs end to end at toy scale, so the commands in docs/results.md keep working.

The figures themselves come from full-scale runs (docs/results.md); nothing here asserts a speed.
"""
import argparse
import json
import subprocess
import sys

import numpy as np
import pytest

from bench import (ablation, batch_gather, gpu_step_split, gpu_throughput, linear_probe, noise_models,
                   noise_robustness, paper_grid, precision_accuracy, predict_latency, realism, relabel_quality, results_io,
                   speed_report, standing_start, store_queries, synth_calibration, synth_speed, train_throughput)
from scn.classes import CLASS_NAMES
from scn.synth.expressions import ACTION_UNITS
from scn.store import RunReader

pytestmark = pytest.mark.slow

TOY = ["--train", "40", "--test", "14", "--image-size", "32", "--epochs", "1"]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SCN_STUDIO_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def tiny_face_backbone(cache):
    """A synth-face backbone of 3 people put where the default one is cached, so toy runs that start
    from synth-face (in their own processes) find it instead of building the real one."""
    import torch

    from scn import pretrain

    path = pretrain.backbone_path()
    path.parent.mkdir(parents=True)
    torch.save(pretrain.build_backbone(people=3, images_per_person=3, image_size=32, epochs=1,
                                       log=lambda m: None, progress=False), path)


def test_noise_grid_then_relabel_quality(tmp_path, cache, capsys):
    runs = str(tmp_path / "runs")
    pretrain = ["--pretrain-train", "40", "--pretrain-epochs", "1"]
    noise_robustness.main([*TOY, *pretrain, "--seeds", "0", "--noise", "0.3", "--relabel-epoch", "1",
                           "--runs-dir", runs, "--json", str(tmp_path / "grid.json"),
                           "--plot", str(tmp_path / "grid.png")])
    report = json.loads((tmp_path / "grid.json").read_text())
    assert {r["variant"] for r in report["table"]} == {"baseline", "scn", "scn_no_attention", "scn_no_rank_reg",
                                                      "scn_no_relabel"}
    assert report["pretrain"]["run"] == "pretrain-40x1-32px"
    started_from = RunReader(tmp_path / "runs" / "noise0.3-scn-seed0").config()["pretrained"]
    assert started_from.endswith("pretrain-40x1-32px/checkpoints/last.pt")
    assert (tmp_path / "grid.png").stat().st_size > 0
    assert "| 30% | scn | 1 |" in capsys.readouterr().out

    relabel_quality.main([*TOY, *pretrain, "--seeds", "0", "--relabel-epoch", "1", "--folds", "2",
                          "--runs-dir", runs, "--json", str(tmp_path / "relabel.json")])
    quality = json.loads((tmp_path / "relabel.json").read_text())
    assert quality["cleanlab"]["folds"] == 2 and 0 <= quality["cleanlab"]["recall"] <= 1
    # Scored on SCN's own training samples (its validation images left out), so on the same wrong labels.
    scn_run, cleanlab_run = quality["scn"][0], quality["cleanlab"]["per_scn_run"][0]
    assert (cleanlab_run["samples"], cleanlab_run["wrong_labels"]) == (scn_run["samples"], scn_run["wrong_labels"])
    assert scn_run["samples"] == len(RunReader(tmp_path / "runs" / "noise0.3-scn-seed0").samples("train")) < 40
    assert len(quality["scn"][0]["alpha_auroc_by_epoch"]) == 1
    assert len(quality["scn"][0]["alpha_auroc_wrong_now_by_epoch"]) == 1
    assert len(quality["alpha_auroc_subtle_by_epoch_mean"]) == 1
    out = capsys.readouterr().out
    assert "cleanlab find_label_issues" in out and "| 1 |" in out.split("AUROC low α → subtle")[1]


def test_ablation_reports_each_part_with_its_spread_over_seeds(tmp_path, cache, capsys):
    # margin_1 1 keeps the rank-regularization hinge open on every step (alpha lies in (0, 1)).
    ablation.main([*TOY, "--seeds", "0", "1", "--pretrained", "none", "--relabel-epoch", "1", "--margin1", "1",
                   "--margin2", "0.05", "--runs-dir", str(tmp_path / "runs"), "--json", str(tmp_path / "a.json")])
    report = json.loads((tmp_path / "a.json").read_text())
    assert [r["arm"] for r in report["arms"]] == ["baseline", "wce", "wce_rr", "wce_rr_relabel"]
    by_run = {(r["arm"], r["seed"]): r for r in report["runs"]}
    assert len(by_run) == 8
    shares = {arm: by_run[(arm, 0)]["rr_active_share_last"] for arm in ablation.ARMS}
    assert shares == {"baseline": None, "wce": None, "wce_rr": 1.0, "wce_rr_relabel": 1.0}
    assert RunReader(tmp_path / "runs" / "symmetric-noise0.3-wce-seed1").config()["rank_reg"] is False
    assert by_run[("wce_rr", 0)]["relabel_precision"] is None  # relabeling off
    assert 0 <= by_run[("wce_rr_relabel", 0)]["alpha_auroc_wrong_now_last"] <= 1
    rank_reg = next(e for e in report["effects"] if e["part"] == "rank regularization")
    differences = [by_run[("wce_rr", s)]["last_test_accuracy"] - by_run[("wce", s)]["last_test_accuracy"]
                   for s in (0, 1)]
    assert rank_reg["last_test_accuracy"]["differences"] == pytest.approx(differences)
    assert rank_reg["last_test_accuracy"]["mean"] == pytest.approx(np.mean(differences))
    assert rank_reg["last_test_accuracy"]["sd"] == pytest.approx(np.std(differences, ddof=1))
    assert "sample standard deviation" in report["spread"]
    assert "| rank regularization | 2 |" in capsys.readouterr().out


def test_paper_grid_pairs_scn_with_the_baseline_and_correlates_alpha_with_ambiguity(tmp_path, cache, capsys):
    paper_grid.main([*TOY, "--seeds", "0", "--pretrained", "none", "--relabel-epoch", "1",
                     "--settings", "annotators:0.2", "--runs-dir", str(tmp_path / "runs"),
                     "--json", str(tmp_path / "grid.json")])
    report = json.loads((tmp_path / "grid.json").read_text())
    by_arm = {r["arm"]: r for r in report["runs"]}
    assert set(by_arm) == {"baseline", "wce_rr_relabel"} and report["failed"] == report["not_started"] == []
    config = RunReader(tmp_path / "runs" / "annotators-noise0.2-wce_rr_relabel-seed0").config()
    assert (config["margin_1"], config["relabel_scope"], config["synth_noise_model"]) == (0.15, "low", "annotators")
    assert by_arm["baseline"]["alpha_spearman"] is None
    assert set(by_arm["wce_rr_relabel"]["alpha_spearman"]) == {"ambiguity", "intensity", "blur", "occluded"}
    effect = report["table"][0]["scn_minus_baseline"]["last_test_accuracy"]
    assert effect["differences"] == pytest.approx(
        [by_arm["wce_rr_relabel"]["last_test_accuracy"] - by_arm["baseline"]["last_test_accuracy"]])
    assert "| annotators:0.2 | 1 |" in capsys.readouterr().out

    paper_grid.main([*TOY, "--seeds", "1", "--pretrained", "none", "--settings", "annotators:0.2", "--deadline-s", "0",
                     "--runs-dir", str(tmp_path / "runs"), "--json", str(tmp_path / "late.json")])
    late = json.loads((tmp_path / "late.json").read_text())
    assert late["runs"] == [] and len(late["not_started"]) == 2

    paper_grid.main([*TOY, "--seeds", "0", "--pretrained", "none", "--settings", "annotators:0.2",
                     "--merge", str(tmp_path / "grid.json"), "--runs-dir", str(tmp_path / "elsewhere"),
                     "--json", str(tmp_path / "merged.json")])
    merged = json.loads((tmp_path / "merged.json").read_text())
    assert not (tmp_path / "elsewhere").exists()  # the merged seed is not trained again
    assert merged["runs"] == [{"device": "cpu"} | run for run in report["runs"]] and merged["devices"] == ["cpu"]
    assert merged["table"] == report["table"]


def test_spearman_of_ranks_with_ties_and_constants():
    import pandas as pd

    alpha = pd.Series([0.1, 0.4, 0.2, 0.9])
    assert paper_grid._rho(alpha, np.array([1.0, 3.0, 2.0, 4.0])) == pytest.approx(1.0)
    assert paper_grid._rho(alpha, np.array([4.0, 2.0, 3.0, 1.0])) == pytest.approx(-1.0)
    # Ties share their mean rank: alpha's ranks (1, 3, 2, 4) against (1.5, 3.5, 1.5, 3.5).
    assert paper_grid._rho(alpha, np.array([0.0, 1.0, 0.0, 1.0])) == pytest.approx(np.corrcoef([1, 3, 2, 4], [1.5, 3.5, 1.5, 3.5])[0, 1])
    assert paper_grid._rho(alpha, np.zeros(4)) is None


def test_calibration_and_precision_scripts(tmp_path, cache, capsys):
    synth_calibration.main([*TOY, "--run-dir", str(tmp_path / "calibration"), "--json", str(tmp_path / "c.json")])
    calibration = json.loads((tmp_path / "c.json").read_text())
    assert sum(map(sum, calibration["confusion"])) == 14
    assert set(calibration["by_slice"]) >= {"intensity", "blend", "occlusion", "blur"}
    precision_accuracy.main([*TOY, "--seeds", "0", "--runs-dir", str(tmp_path / "precision"),
                             "--json", str(tmp_path / "p.json")])
    assert set(json.loads((tmp_path / "p.json").read_text())["results"]) == {"fp32", "bf16_channels_last"}


def test_throughput_and_store_measurements_at_toy_scale():
    throughput = train_throughput.measure(sizes=(32,), batch=8, steps=1, rounds=1)
    row = throughput["sizes"][32]
    assert row["trainer_scn"] > 0 and row["reference_loop"] > 0
    best = max(row["ceiling_fp32"], row["ceiling_bf16"], row["ceiling_bf16_channels_last"])
    assert row["trainer_vs_ceiling"] == pytest.approx(row["trainer_scn"] / best)
    assert row["reference_vs_ceiling"] == pytest.approx(row["reference_loop"] / best)
    assert row["scn_step_overhead_vs_baseline"] == pytest.approx(row["trainer_baseline"] / row["trainer_scn"] - 1)
    store = store_queries.measure(samples=300, epochs=2, repeats=1)
    assert store["attention_one_epoch_ms"] > 0 and store["relabels_per_epoch"] == 6
    assert store["sample_history_all_epochs_ms"] > 0 and store["test_predictions_one_epoch_ms"] > 0


def test_speed_report_table_names_every_measurement():
    results = {
        "throughput": {"machine": {"cpu": "cpu", "threads": 2, "torch": "t", "native_bf16": True}, "batch_size": 64,
                       "sizes": {112: {"ceiling_fp32": 100, "ceiling_bf16": 180, "ceiling_bf16_channels_last": 200,
                                       "reference_loop": 150, "trainer_scn": 190, "trainer_baseline": 195,
                                       "trainer_vs_ceiling": 0.95, "reference_vs_ceiling": 0.75,
                                       "scn_step_overhead_vs_baseline": 0.026}}},
        "store": {"samples": 287000, "epochs": 40, "relabels_per_epoch": 5740, "attention_one_epoch_ms": 11.0,
                  "relabels_one_epoch_ms": 24.0},
        "pages": [{"page": "app.py", "cold_s": 0.2, "warm_median_s": 0.05}],
        "predict": {"megapixels": 12.0, "stages_ms": {"predict_image total": {"median": 640.0, "best": 400.0}}},
    }
    rows, machine = speed_report.rows_from(results)
    table = speed_report.markdown(rows, machine)
    assert "| training, 112 px, batch 64: our trainer | 190 img/s | 95% of the ceiling |" in table
    assert "+2.6%" in table and "640 ms" in table and "0.05 s" in table and "11 ms" in table


def test_sensitivity_variants_override_the_grid_settings(tmp_path):
    parser = argparse.ArgumentParser()
    noise_robustness.add_scale_arguments(parser)
    args = parser.parse_args(["--pretrain-train", "0", "--runs-dir", str(tmp_path)])
    args.noise, args.sensitivity, args.pretrained_path = [0.0, 0.3], [], None
    args.ablation_noise = args.sensitivity_noise = None
    grid = noise_robustness.jobs(args)
    extra = [job for job in grid if job["variant"] in noise_robustness.SENSITIVITY]
    variants = len(noise_robustness.SENSITIVITY)
    assert len(grid) == 2 * 3 + 2 * 3 + 3 * 3 + variants * 2 and {job["noise"] for job in extra} == {0.0, 0.3}
    assert {job["seed"] for job in extra} == {0}
    job = next(job for job in extra if job["variant"] == "scn_margin2_0.4")
    command = noise_robustness.train_command(job, tmp_path / "data", tmp_path / job["name"], args)
    values = [command[i + 1] for i, option in enumerate(command) if option == "--margin2"]
    assert values == ["0.4"]


def test_noise_model_grid_starts_from_synth_face_without_ablations(tmp_path):
    parser = argparse.ArgumentParser()
    noise_robustness.add_scale_arguments(parser)
    args = parser.parse_args(["--synth-face", "--noise-model", "annotators", "--no-ablations", "--runs-dir",
                              str(tmp_path)])
    args.noise, args.sensitivity, args.pretrained_path = [0.1, 0.3], None, None
    args.ablation_noise = args.sensitivity_noise = None
    grid = noise_robustness.jobs(args)
    assert {(job["noise"], job["variant"]) for job in grid} == {(n, v) for n in (0.1, 0.3) for v in ("baseline", "scn")}
    assert all(job["name"].startswith("annotators-noise") for job in grid)  # never a symmetric run's folder
    command = noise_robustness.train_command(grid[0], tmp_path / "data", tmp_path / "run", args)
    assert command[command.index("--pretrained") + 1] == "synth-face"


def test_grid_of_the_demo_s_scn_with_ablations_and_named_sensitivity_runs_elsewhere(tmp_path):
    """The synth-face grid: SCN as in the demo (alpha normalised), ablations at a level the grid
    itself does not train, and only the sensitivity variants asked for, at the levels asked for."""
    parser = argparse.ArgumentParser()
    noise_robustness.add_scale_arguments(parser)
    args = parser.parse_args(["--synth-face", "--alpha-normalize", "--margin2", "0.7", "--runs-dir", str(tmp_path)])
    args.noise, args.ablation_noise, args.pretrained_path = [0.1, 0.2], 0.3, None
    args.sensitivity, args.sensitivity_noise = ["scn_margin1_0.15"], [0.0, 0.3]
    grid = noise_robustness.jobs(args)
    by_noise = {noise: sorted({job["variant"] for job in grid if job["noise"] == noise}) for noise in (0.0, 0.1, 0.2, 0.3)}
    assert by_noise == {0.0: ["scn_margin1_0.15"], 0.1: ["baseline", "scn"], 0.2: ["baseline", "scn"],
                        0.3: sorted([*noise_robustness.ABLATIONS, "scn_margin1_0.15"])}
    def argv(variant):
        job = next(job for job in grid if job["variant"] == variant)
        return noise_robustness.train_command(job, tmp_path / "data", tmp_path / "run", args)
    sensitivity = argv("scn_margin1_0.15")
    assert "--alpha-normalize" in sensitivity and sensitivity[sensitivity.index("--margin1") + 1] == "0.15"
    assert "--alpha-normalize" not in argv("baseline") and "--no-relabel" in argv("scn_no_relabel")


def test_gpu_throughput_runs_at_toy_scale_on_the_cpu(tiny_rafdb, tmp_path):
    out = tmp_path / "gpu.json"
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps({"cuda_tests": {"exit": 0}}))
    gpu_throughput.main(["--data", str(tiny_rafdb), "--sizes", "32", "--batches", "8", "--steps", "2",
                         "--warmup", "1", "--workers", "0", "--device", "cpu", "--extra", str(extra),
                         "--json", str(out)])
    report = json.loads(out.read_text())
    row = report["sizes"]["32"]["8"]
    assert report["cuda_tests"] == {"exit": 0} and report["machine"]["device"] == "cpu"
    assert report["train_images"] == 48 and "finished" in report
    assert all(row[k] > 0 for k in ("ceiling", "plain_loop", "trainer_scn", "trainer_baseline"))
    for measured in ("trainer_scn", "trainer_baseline", "plain_loop"):
        assert row[f"{measured}_vs_ceiling"] == pytest.approx(row[measured] / row["ceiling"])
    # The GPU machine has what `scn train` needs and not the app's packages.
    probe = subprocess.run([sys.executable, "-c", "import json, sys, bench.gpu_throughput; "
                            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"],
                           capture_output=True, text=True, check=True)
    assert not {"streamlit", "plotly", "pytorch_grad_cam", "matplotlib"} & set(json.loads(probe.stdout))


def test_gpu_step_split_on_the_cpu_splits_gather_step_and_epoch(tiny_rafdb, tmp_path, capsys):
    out = tmp_path / "split.json"
    gpu_step_split.main(["--data", str(tiny_rafdb), "--size", "32", "--batch", "8", "--device", "cpu",
                         "--json", str(out)])
    report = json.loads(out.read_text())
    assert report["cache_pinned"] is False and report["cache_contig"] is True
    assert all(report[k] > 0 for k in ("gather_ms", "step_host_ms", "step_ms", "epoch_s"))
    # An epoch is the whole training split (no validation split is carved): 48 images.
    assert report["images_per_s"] * report["epoch_s"] == pytest.approx(48)
    assert report["step_ms"] >= report["step_host_ms"]  # the device's time includes the host's
    assert "aten::" in report["table"] and "gather_ms" in capsys.readouterr().out


def test_batch_gather_times_memory_disk_and_numpy(tmp_path):
    out = tmp_path / "gather.json"
    batch_gather.main(["--images", "40", "--size", "16", "--batch", "8", "--repeats", "2", "--json", str(out)])
    report = json.loads(out.read_text())
    assert report["command"] == f"python -m bench.batch_gather --images 40 --size 16 --batch 8 --repeats 2 --json {out}"
    assert (report["images"], report["size"], report["batch"], report["repeats"]) == (40, 16, 8, 2)
    assert all(report[k] > 0 for k in ("memory_index_select_ms", "disk_images_gather_ms", "disk_numpy_take_ms"))


@pytest.mark.slow
def test_standing_start_demo_part(tmp_path, tiny_face_backbone, capsys):
    standing_start.main(["--demo-train", "40", "--demo-test", "14", "--image-size", "32", "--demo-epochs", "1",
                         "--demo-relabel-epoch", "1", "--part", "demo", "--seeds", "0",
                         "--runs-dir", str(tmp_path / "runs"), "--json", str(tmp_path / "ss.json")])
    report = json.loads((tmp_path / "ss.json").read_text())
    assert {(r["noise"], r["variant"]) for r in report["table"]} == {(0.3, "baseline"), (0.3, "scn"),
                                                                     (0.0, "baseline"), (0.0, "scn")}
    run = next(r for r in report["runs"] if r["variant"] == "scn")
    config = RunReader(tmp_path / "runs" / run["name"]).config()
    assert config["pretrained"] == "synth-face" and config["synth_train"] == 40
    assert all(config[k] == v for k, v in standing_start.SYNTH_FACE_PAIR["scn"].items())
    assert isinstance(run["warnings"], dict) and "best-on-val" in capsys.readouterr().out
    assert run["start_weights"].startswith("pretrained weights: synth-face backbone")
    assert 0 <= run["last_auroc_wrong_now"] <= 1 and len(run["relabel_precision_by_epoch"]) == len(run["test_accuracy_by_epoch"])


def test_standing_start_remedies_start_from_random_weights():
    args = argparse.Namespace(part=["remedies"], remedy_seeds=[0], seeds=[0], demo_noise=[0.3, 0.0])
    jobs = standing_start.jobs(args)
    assert [(j["noise"], j["variant"]) for j in jobs] == [(0.3, "baseline"), (0.3, "scn")] + [
        (0.0, variant) for variant in standing_start.REMEDIES]
    assert {j["start"] for j in jobs} == {"none"}
    args = argparse.Namespace(train=40, test=14, image_size=32, epochs=1, relabel_epoch=1)
    argv = standing_start.command(next(j for j in jobs if j["variant"] == "scn_all_three"), "run", args)
    assert argv[argv.index("--pretrained") + 1] == "none" and "--alpha-warmup-epochs" in argv


def test_standing_start_scale_part_runs_both_noise_models_at_its_own_size():
    args = argparse.Namespace(part=["scale"], remedy_seeds=[0], seeds=[0], demo_noise=[0.3], train=40, test=14,
                              image_size=32, epochs=1, relabel_epoch=1, demo_train=400, demo_test=100,
                              demo_epochs=3, demo_relabel_epoch=2)
    jobs = standing_start.jobs(args)
    assert {(j["noise_model"], j["variant"]) for j in jobs} == {
        (model, variant) for model, variants in standing_start.SCALE_RUNS.items() for variant in variants}
    assert len({j["name"] for j in jobs}) == len(jobs)
    job = next(j for j in jobs if j["variant"] == "scn_alpha_normalize_no_relabel")
    argv = standing_start.command(job, "run", args)
    for flag, value in (("--synth-train", "400"), ("--epochs", "3"), ("--relabel-epoch", "2"),
                        ("--pretrained", "synth-face"), ("--synth-noise-model", "symmetric")):
        assert argv[argv.index(flag) + 1] == value
    assert "--alpha-normalize" in argv and "--no-relabel" in argv



def test_linear_probe_compares_three_starts(tmp_path, tiny_face_backbone):
    linear_probe.main(["--starts", "random", "synth-face", "expression", "--train", "40", "--test", "14",
                       "--image-size", "32", "--expression-train", "40",
                       "--expression-epochs", "1", "--runs-dir", str(tmp_path / "runs"),
                       "--json", str(tmp_path / "probe.json")])
    report = json.loads((tmp_path / "probe.json").read_text())
    assert set(report["results"]) == {"random", "synth-face", "expression"}
    assert all(0 <= r["test_accuracy"] <= 1 for r in report["results"].values())
    assert report["synth_face_recipe"]["people"] == 3


def test_noise_models_table(tmp_path, capsys):
    out = tmp_path / "noise_models.json"
    assert noise_models.main(["--train", "40", "--size", "32", "--workers", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["models"] == ["annotators", "symmetric", "pairwise"]
    assert result["wrong_label_rate"] == pytest.approx(0.2, abs=0.03)
    assert sum(row["faces"] for row in result["rows"] if row["slice"].startswith("intensity")) == 40
    assert "| AUROC: ambiguity flags a wrong label |" in capsys.readouterr().out


def test_decoded_cache_bench_at_toy_scale(tmp_path, capsys):
    from bench import decoded_cache

    results = decoded_cache.main(["--train", "120", "--test", "14", "--pool", "8", "--photo-size", "40",
                                  "--image-size", "32", "--memory-subset", "40", "--batch", "4", "--steps", "2",
                                  "--rounds", "1", "--workers", "2", "--dir", str(tmp_path / "scratch"),
                                  "--json", str(tmp_path / "cache.json")])
    assert results["dataset"]["train"] == 120 and results["build"]["images"] == 134
    assert results["build"]["cache_gb"] == pytest.approx(134 * 3 * 32 * 32 / 1e9, abs=1e-3)
    everything = results["train_disk_all"]["modes"]["disk"]
    assert everything["train_images"] + everything["val_images"] == 120 and everything["val_is_view"]
    compared = results["train_subset_disk_vs_memory"]["modes"]
    assert set(compared) == {"disk", "memory"} and not compared["memory"]["val_is_view"]
    assert all(row["images_per_s"] > 0 for row in compared.values())
    assert results["train_disk_all"]["peak_anon_gb"] > 0 and results["build"]["peak_file_gb"] > 0
    assert json.loads((tmp_path / "cache.json").read_text())["settings"]["train"] == 120
    assert not (tmp_path / "scratch").exists()  # photos and cache deleted


def test_realism_report_at_toy_size(tmp_path, capsys):
    out, sheet = tmp_path / "realism.json", tmp_path / "sheet.png"
    realism.main(["--per-class", "3", "--probe-people", "1", "--search-rounds", "1", "--json", str(out),
                  "--sheet", str(sheet)])
    report = json.loads(out.read_text())
    for name in ("benchmark", "undegraded"):
        scored = report[name]["images"]
        assert scored == sum(row["images"] for row in report[name]["by_class"].values())
        assert sum(map(sum, report[name]["confusion"])) == scored
        assert report[name]["overall"] == pytest.approx(
            sum(report[name]["confusion"][i][i] for i in range(7)) / scored)
    assert set(report["action_units_alone"]["by_action_unit"]) >= {"AU4", "AU6", "AU9", "AU15", "AU26"}
    assert report["real_photos"][0]["photo"] == "grace_hopper.jpg" and report["real_photos"][0]["top"] == "neutral"
    reachable = report["reachable_by_action_units"]
    assert sorted(reachable) == sorted(CLASS_NAMES)  # results files sort their keys
    assert all(0.0 <= row["best_mean_probability"] <= 1.0 for row in reachable.values())
    assert sheet.stat().st_size > 0
    assert "| **overall** |" in capsys.readouterr().out


def test_realism_search_finds_the_action_units_a_class_is_read_from(monkeypatch):
    targets = np.random.default_rng(3).uniform(0, 1, (len(CLASS_NAMES), len(ACTION_UNITS)))

    def read_by_distance(reference, faces, vectors, *, box):
        # A stand-in classifier: each class is read the more, the closer the units are to its target.
        closeness = 1.0 - np.abs(vectors[:, None, :] - targets[None]).mean(2)
        return np.repeat(closeness[:, None, :], len(faces), axis=1)

    monkeypatch.setattr(realism, "probe", read_by_distance)
    found = realism.reachable(None, [None, None], box=None, rounds=12)
    assert all(found[name]["best_mean_probability"] > 0.9 for name in CLASS_NAMES)
    one = realism.reachable(None, [None, None], box=None, rounds=1)
    assert all(found[name]["best_mean_probability"] > one[name]["best_mean_probability"] for name in CLASS_NAMES)


def test_face_detection_matching_counts_faces_false_boxes_and_ignored_regions():
    from bench.face_detection import match, score

    photo = {"faces": [{"box": [100, 100, 100, 100], "tags": ["small"], "note": "a"},
                       {"box": [300, 100, 100, 100], "tags": [], "note": "b"}],
             "ignore": [{"box": [0, 400, 100, 100], "note": "painted face"}]}
    detections = [
        {"box": [90, 90, 130, 130], "score": 0.99},  # centre inside face a, a little larger: found
        {"box": [110, 110, 80, 80], "score": 0.97},  # face a again: a second box on a found face is false
        {"box": [330, 130, 30, 30], "score": 0.99},  # centre in face b but under half its side: false
        {"box": [20, 420, 40, 40], "score": 0.9},  # in the ignore region: neither way
        {"box": [600, 600, 50, 50], "score": 0.5},  # nothing there: false
    ]
    found, false = match(detections, photo)
    assert found == {0} and [d["box"] for d in false] == [[330, 130, 30, 30], [110, 110, 80, 80], [600, 600, 50, 50]]
    scored = score({"p.jpg": photo}, {"p.jpg": detections}, min_probability=0.95)
    assert (scored["found"], scored["faces"], scored["false_positives"]) == (1, 2, 2)
    assert scored["recall_by_tag"]["small"] == "1/1" and scored["per_photo"]["p.jpg"]["missed"] == ["b"]


@pytest.mark.slow
def test_predict_latency_writes_its_json(tmp_path):
    predict_latency.main(["--image-size", "64", "--repeats", "1", "--json", str(tmp_path / "latency.json")])
    stages = json.loads((tmp_path / "latency.json").read_text())["stages_ms"]
    assert all(ms["median"] > 0 for ms in stages.values()) and len(stages) >= 3
    assert all(ms["median"] == ms["best"] for ms in stages.values())  # one repeat: its time is both


def test_results_are_written_with_sorted_keys_a_trailing_newline_the_command_and_versions(tmp_path):
    out = results_io.write_results(tmp_path / "deep" / "r.json", {"zeta": 1, "alpha": {"b": 2, "a": 1}},
                                   module="bench.example", argv=["--size", "64", "--json", "a b.json"])
    text = out.read_text()
    record = json.loads(text)
    assert text.endswith("}\n") and list(record) == sorted(record) and list(record["alpha"]) == ["a", "b"]
    assert record["command"] == "python -m bench.example --size 64 --json 'a b.json'"
    assert {"python", "torch", "numpy"} <= set(record["versions"])


def test_a_command_the_script_records_itself_is_kept(tmp_path):
    out = results_io.write_results(tmp_path / "r.json", {"command": "bash bench/gpu_check.sh"}, module="bench.x", argv=[])
    assert json.loads(out.read_text())["command"] == "bash bench/gpu_check.sh"


def test_synth_speed_writes_its_json(tmp_path, cache):
    out = tmp_path / "speed.json"
    assert synth_speed.main(["--train", "6", "--test", "2", "--size", "32", "--workers", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert (result["images"], result["workers"]) == (8, 1)
    assert result["wall_seconds"] > 0 and result["cpu_seconds"] > 0
    assert result["command"].startswith("python -m bench.synth_speed --train 6")
