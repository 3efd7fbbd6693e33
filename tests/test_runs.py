"""The run lifecycle through the functions the app's buttons call, against the real trainer."""
import os
import signal
import sys
import threading
import time
from pathlib import Path

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


def test_train_command_starts_several_processes_under_torchrun(tmp_path):
    argv = runs.train_command(run_dir=tmp_path / "r", options={"processes": 4, "device": "cuda"})
    assert argv[:5] == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=4"]
    assert argv[5:8] == ["-m", "scn", "train"] and argv[-4:] == ["--processes", "4", "--device", "cuda"]
    (tmp_path / "r" / "config.json").parent.mkdir()
    (tmp_path / "r" / "config.json").write_text('{"processes": 4}')
    resumed = runs.train_command(run_dir=tmp_path / "r", options={}, resume=True)
    assert "--nproc-per-node=4" in resumed and resumed[-1] == "--resume"
    assert runs.train_command(run_dir=tmp_path / "r", options={"processes": 1})[1:3] == ["-m", "scn"]


def test_new_run_dir_reserves_a_fresh_folder(tmp_path):
    first = runs.new_run_dir(root=tmp_path, label="scn")
    second = runs.new_run_dir(root=tmp_path, label="scn")
    assert first.is_dir() and second.is_dir() and second != first
    assert second.name.startswith(first.name)


@pytest.mark.parametrize("label", ["/../../../victim", "../victim", "a/b", "..", ".hidden",
                                   "nul\x00byte", "tab\tand\nnewline", "..\\..\\x", "/", ""])
def test_run_names_stay_one_folder_inside_the_runs_root(tmp_path, label):
    root = tmp_path / "x" / "runs" / "inner"
    run_dir = runs.new_run_dir(root=root, label=label)
    assert run_dir.parent == root and run_dir.is_dir()
    assert [p.name for p in root.iterdir()] == [run_dir.name]
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["runs"]
    name = run_dir.name.split("-", 2)[2]
    assert name and not name.startswith(".") and ".." not in name
    assert not any(c in name for c in "/\\\x00\t\n")


def test_run_names_keep_what_a_user_typed_when_it_is_harmless():
    assert runs.run_name("scn-noise30_v2.1") == "scn-noise30_v2.1"
    assert runs.run_name("/../../../victim") == "victim"
    assert runs.run_name("a/b") == "a-b"


def test_demo_runs_are_scn_and_baseline_on_the_noisy_benchmark():
    assert [o["method"] for o in runs.DEMO_RUNS.values()] == ["scn", "baseline"]
    for options in runs.DEMO_RUNS.values():
        assert options["synth_noise"] == 0.3 and "data" not in options
        runs.train_command(run_dir="r", options=options)
    scn, baseline = runs.DEMO_RUNS["scn"], runs.DEMO_RUNS["baseline"]
    # Same data and schedule for both; only SCN's own options differ.
    assert {k: v for k, v in scn.items() if k in runs.DEMO_DATA} == {k: v for k, v in baseline.items() if k != "method"}
    # SCN's options are the official preset's: the demo shows the method, not remedies.
    assert set(scn) - set(runs.DEMO_DATA) == {"method"}


@pytest.fixture
def tiny_demo(tiny_rafdb, monkeypatch):
    """The demo pair, shrunk to the test dataset; its trainers are killed at the end."""
    monkeypatch.setattr(runs, "DEMO_RUNS", {label: tiny_options(tiny_rafdb, epochs=500, method=label)
                                            for label in ("scn", "baseline")})
    pids = []
    yield pids
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.slow
def test_two_concurrent_demo_starts_start_one_pair(tmp_path, tiny_demo):
    root = tmp_path / "runs"
    outcomes = []

    def click():
        try:
            outcomes.append(runs.start_demo(root=root))
        except runs.DemoRunningError as exc:
            outcomes.append(exc)

    clicks = [threading.Thread(target=click) for _ in range(2)]
    for thread in clicks:
        thread.start()
    for thread in clicks:
        thread.join()
    started = [o for o in outcomes if isinstance(o, dict)]
    assert len(started) == 1, outcomes
    tiny_demo.extend(pid for _, pid in started[0].values())
    assert isinstance(next(o for o in outcomes if not isinstance(o, dict)), runs.DemoRunningError)
    folders = sorted(p.name for p in root.iterdir() if p.is_dir())
    assert len(folders) == 2 and sorted(f.split("-", 2)[2] for f in folders) == ["demo-baseline", "demo-scn"]
    assert sorted(runs.demo_runs_alive(root=root)) == folders
    assert all(runs._trainer_alive(pid, run_dir=run_dir) for run_dir, pid in started[0].values())
    with pytest.raises(runs.DemoRunningError, match="already training"):
        runs.start_demo(root=root)


@pytest.mark.slow
def test_a_demo_whose_second_trainer_fails_leaves_no_half_pair(tmp_path, tiny_rafdb, tiny_demo, monkeypatch):
    first = tiny_options(tiny_rafdb, epochs=500)
    monkeypatch.setattr(runs, "DEMO_RUNS", {"scn": first, "baseline": first | {"format": "parquet"}})
    spawned = {}
    real_start = runs.start_run

    def start_run(*, run_dir, **kwargs):
        pid = real_start(run_dir=run_dir, **kwargs)
        spawned[pid] = run_dir
        return pid

    monkeypatch.setattr(runs, "start_run", start_run)
    root = tmp_path / "runs"
    with pytest.raises(runs.DemoStartError,
                       match="not started: format must be one of rafdb, imagefolder, fer2013, ferplus, affectnet"):
        runs.start_demo(root=root)
    tiny_demo.extend(spawned)
    assert len(spawned) == 1
    assert not any(runs._trainer_alive(pid, run_dir=run_dir) for pid, run_dir in spawned.items())
    assert [p for p in root.iterdir() if p.is_dir()] == []
    assert runs.demo_runs_alive(root=root) == []


@pytest.mark.slow
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
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), what="the exited trainer to be reaped, not defunct")

    runs.resume_run(run_dir)
    wait_for(lambda: reader.status()["state"] == "finished", what="the resumed run to finish")
    assert reader.epoch_metrics()["epoch"].tolist() == [1, 2, 3, 4]
    log = (run_dir / "train.log").read_text()
    assert "resumed at epoch" in log
    assert log.count(" epoch 4/4: ") == 1  # stdout goes into the log; the lines are not doubled


@pytest.mark.slow
def test_two_stop_signals_stop_once_with_a_checkpoint(tiny_rafdb, tmp_path):
    run_dir = tmp_path / "runs" / "twice"
    # Steps long enough (160 px) that the second signal lands inside the step the first one ends.
    pid = runs.start_run(run_dir=run_dir, options=tiny_options(tiny_rafdb, epochs=50, image_size=160))
    wait_for(lambda: steps_logged(run_dir), what="the first step row")
    assert runs.stop_run(run_dir) and runs.stop_requested(run_dir)
    time.sleep(0.05)
    os.kill(pid, signal.SIGTERM)  # a second click
    wait_for(lambda: not runs.is_running(run_dir), what="the trainer to stop")
    status = RunReader(run_dir).status()
    assert status["state"] == "stopped", status["message"]
    assert (run_dir / "checkpoints" / "last.pt").exists()
    assert "repeated stop signal(s) ignored" in (run_dir / "train.log").read_text()
    assert not runs.stop_requested(run_dir)


@pytest.mark.slow
def test_a_killed_trainer_is_detected_as_interrupted(tiny_rafdb, tmp_path):
    run_dir = tmp_path / "runs" / "killed"
    pid = runs.start_run(run_dir=run_dir, options=tiny_options(tiny_rafdb, epochs=50))
    wait_for(lambda: steps_logged(run_dir), what="the first step row")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not lock.is_held(run_dir), what="the kernel to drop the lock")
    status = RunReader(run_dir).status()
    assert status["state"] == "interrupted" and status["pid"] == pid and not status["alive"]
    assert not runs.stop_run(run_dir)


def test_bad_options_are_refused_before_a_trainer_or_folder_exists(tmp_path):
    run_dir = tmp_path / "runs" / "bad-flag"
    with pytest.raises(ValueError,
                       match="format must be one of rafdb, imagefolder, fer2013, ferplus, affectnet, not 'parquet'"):
        runs.start_run(run_dir=run_dir, options={"format": "parquet", "threads": 1})
    with pytest.raises(ValueError, match="margin2 must be at least 0"):
        runs.start_run(run_dir=run_dir, options={"margin_2": -1})
    assert not run_dir.exists()


def test_every_trainer_option_can_be_started_with(tmp_path):
    argv = runs.train_command(run_dir=tmp_path / "r", options={"skip_bad": True, "weight_decay": 0.0})
    assert argv[-3:] == ["--skip-bad", "--weight-decay", "0.0"]


@pytest.mark.slow
def test_a_trainer_that_fails_on_its_data_is_marked_failed(tmp_path):
    run_dir = tmp_path / "runs" / "bad-data"
    try:
        runs.start_run(run_dir=run_dir, options={"data": str(tmp_path / "nowhere"), "threads": 1})
    except runs.TrainerExitedError as exc:  # it can fail before start_run sees it hold its lock
        assert "dataset folder not found" in str(exc)
    wait_for(lambda: not lock.is_held(run_dir), what="the trainer to give up")
    status = RunReader(run_dir).status()
    assert status["state"] == "failed" and "dataset folder not found" in status["message"]


@pytest.mark.slow
def test_a_trainer_refusing_its_weights_says_why_and_leaves_no_folder(tmp_path):
    weights = tmp_path / "start.pt"
    weights.write_bytes(b"not a weights file")
    run_dir = runs.new_run_dir(root=tmp_path / "runs", label="bad-weights")
    with pytest.raises(runs.TrainerExitedError) as refused:
        runs.start_run(run_dir=run_dir, options={"pretrained": str(weights), "threads": 1})
    assert f"{weights} is not a readable PyTorch weights file" in str(refused.value)
    assert runs.discard_unstarted(run_dir) and not run_dir.exists()


def test_the_exit_reason_is_the_trainers_error_line_of_this_start(tmp_path):
    log = tmp_path / "train.log"
    log.write_text("error: an earlier start's reason\n")
    start = log.stat().st_size
    with open(log, "a") as f:
        f.write("Traceback (most recent call last):\n  File x\nValueError: bad\nerror: bad value\n"
                "ignored trailing line\n")
    assert runs._exit_reason(log, start=start) == "bad value"
    assert runs._exit_reason(log, start=log.stat().st_size) == "no output"


def test_a_started_run_folder_is_never_discarded(tmp_path):
    from scn.store import RunWriter

    RunWriter(tmp_path / "started").close()
    assert not runs.discard_unstarted(tmp_path / "started") and (tmp_path / "started" / "run.db").exists()


def test_demo_starts_from_the_face_backbone_and_new_options_map_to_flags():
    assert all(options["pretrained"] == "dlib-face" for options in runs.DEMO_RUNS.values())
    argv = runs.train_command(run_dir="r", options={"alpha_warmup_epochs": 2, "alpha_bias_init": 3.0,
                                                    "relabel_min_val_accuracy": 0.5})
    assert argv[-6:] == ["--alpha-warmup-epochs", "2", "--alpha-bias-init", "3.0", "--relabel-min-val-acc", "0.5"]
    from scn.cli import build_parser

    args = build_parser().parse_args(["train", "--run-dir", "r", *argv[-6:]])
    assert (args.alpha_warmup_epochs, args.alpha_bias_init, args.relabel_min_val_accuracy) == (2, 3.0, 0.5)


def test_delete_run_refuses_while_training_and_removes_the_folder_after(run_dir, tmp_path):
    from scn.store import RunNotFoundError

    fd = lock.acquire(run_dir)  # this process plays the live trainer
    try:
        with pytest.raises(lock.RunLockedError, match=rf"demo is training \(trainer pid {os.getpid()}\): stop it"):
            runs.delete_run(run_dir)
        assert (run_dir / "run.db").exists()
    finally:
        os.close(fd)
    runs.delete_run(run_dir)
    assert not run_dir.exists()
    other = tmp_path / "not-a-run"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    for path in (other, tmp_path / "missing"):
        with pytest.raises(RunNotFoundError, match="is not a run folder"):
            runs.delete_run(path)
    assert (other / "keep.txt").exists()


def test_a_long_run_name_is_capped_by_bytes_and_makes_a_folder(tmp_path):
    name = runs.run_name("表情" * 40)  # 80 characters, 240 bytes in UTF-8
    assert len(name.encode()) <= runs.MAX_NAME_BYTES and name == "表情" * 13
    assert runs.run_name("x" * 300) == "x" * 80
    assert runs.new_run_dir(root=tmp_path, label="表情" * 40).is_dir()
