"""The run lifecycle through the functions the app's buttons call, against the real trainer."""
import os
import signal
import sys
import time

import pytest

from scn import lock, runs
from scn.store import RunReader


def wait_for(condition, *, what: str, limit_s: float = 180.0):
    """Poll until `condition()` is truthy; the limit only keeps a broken trainer from hanging CI."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")


def tiny_options(data, **overrides):
    return {"data": str(data), "epochs": 4, "batch_size": 16, "image_size": 32, "threads": 1,
            "device": "cpu", "log_every": 1, "relabel_epoch": 1, "relabel_scope": "all",
            "margin_2": 0.05} | overrides


def steps_logged(run_dir):
    return (run_dir / "run.db").exists() and len(RunReader(run_dir).step_metrics()) > 0


def test_train_command_maps_options_to_flags(tmp_path):
    argv = runs.train_command(run_dir=tmp_path / "r", options={
        "method": "scn", "rank_reg": False, "relabel": True, "margin_1": 0.07, "synth_noise": 0.3,
        "lr": None})
    assert argv[:4] == [sys.executable, "-m", "scn", "train"]
    assert argv[4:6] == ["--run-dir", str((tmp_path / "r").resolve())]
    assert argv[6:] == ["--method", "scn", "--no-rank-reg", "--margin1", "0.07", "--synth-noise", "0.3"]
    assert runs.train_command(run_dir="r", options={}, resume=True)[-1] == "--resume"
    with pytest.raises(KeyError, match="colour"):
        runs.train_command(run_dir="r", options={"colour": "red"})


def test_new_run_dir_never_reuses_a_folder(tmp_path):
    first = runs.new_run_dir(root=tmp_path, label="scn")
    first.mkdir()
    second = runs.new_run_dir(root=tmp_path, label="scn")
    assert second != first and second.name.startswith(first.name) and not second.exists()


def test_demo_runs_are_scn_and_baseline_on_the_noisy_benchmark():
    assert [o["method"] for o in runs.DEMO_RUNS.values()] == ["scn", "baseline"]
    for options in runs.DEMO_RUNS.values():
        assert options["synth_noise"] == 0.3 and "data" not in options
        runs.train_command(run_dir="r", options=options)


def test_start_stop_resume_finish(tiny_rafdb, tmp_path):
    run_dir = tmp_path / "runs" / "life"
    pid = runs.start_run(run_dir=run_dir, options=tiny_options(tiny_rafdb))
    assert runs.is_running(run_dir) and runs.trainer_pid(run_dir) == pid
    with pytest.raises(lock.RunLockedError):
        runs.start_run(run_dir=run_dir, options=tiny_options(tiny_rafdb))
    wait_for(lambda: steps_logged(run_dir), what="the first step row")
    assert RunReader(run_dir).status()["state"] == "running"
    assert runs.stop_run(run_dir)
    wait_for(lambda: not runs.is_running(run_dir), what="the trainer to stop")
    reader = RunReader(run_dir)
    assert reader.status()["state"] == "stopped"
    assert reader.checkpoint_path("last").exists()
    assert not runs.stop_run(run_dir)
    stopped_at = len(reader.epoch_metrics())
    assert stopped_at < 4

    runs.resume_run(run_dir)
    wait_for(lambda: reader.status()["state"] == "finished", what="the resumed run to finish")
    assert reader.epoch_metrics()["epoch"].tolist() == [1, 2, 3, 4]
    assert "resumed at epoch" in (run_dir / "train.log").read_text()


def test_a_killed_trainer_is_detected_as_interrupted(tiny_rafdb, tmp_path):
    run_dir = tmp_path / "runs" / "killed"
    pid = runs.start_run(run_dir=run_dir, options=tiny_options(tiny_rafdb, epochs=50))
    wait_for(lambda: steps_logged(run_dir), what="the first step row")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not lock.is_held(run_dir), what="the kernel to drop the lock")
    status = RunReader(run_dir).status()
    assert status["state"] == "interrupted" and status["pid"] == pid and not status["alive"]
    assert not runs.stop_run(run_dir)


def test_a_trainer_that_cannot_start_is_reported(tmp_path):
    run_dir = tmp_path / "runs" / "bad-flag"
    with pytest.raises(runs.TrainerExitedError, match="exited with code 2: .*invalid choice: 'parquet'"):
        runs.start_run(run_dir=run_dir, options={"format": "parquet", "threads": 1})


def test_a_trainer_that_fails_on_its_data_is_marked_failed(tmp_path):
    run_dir = tmp_path / "runs" / "bad-data"
    try:
        runs.start_run(run_dir=run_dir, options={"data": str(tmp_path / "nowhere"), "threads": 1})
    except runs.TrainerExitedError as exc:  # it can fail before start_run sees it hold its lock
        assert "dataset folder not found" in str(exc)
    wait_for(lambda: not lock.is_held(run_dir), what="the trainer to give up")
    status = RunReader(run_dir).status()
    assert status["state"] == "failed" and "dataset folder not found" in status["message"]


def test_demo_starts_from_the_face_backbone_and_new_options_map_to_flags():
    assert all(options["pretrained"] == "synth-face" for options in runs.DEMO_RUNS.values())
    argv = runs.train_command(run_dir="r", options={"alpha_warmup_epochs": 2, "alpha_bias_init": 3.0,
                                                    "relabel_min_val_accuracy": 0.5})
    assert argv[-6:] == ["--alpha-warmup-epochs", "2", "--alpha-bias-init", "3.0", "--relabel-min-val-acc", "0.5"]
    from scn.cli import build_parser

    args = build_parser().parse_args(["train", "--run-dir", "r", *argv[-6:]])
    assert (args.alpha_warmup_epochs, args.alpha_bias_init, args.relabel_min_val_accuracy) == (2, 3.0, 0.5)
