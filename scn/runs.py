"""Run lifecycle for the app and scripts: start, stop and resume trainers as background processes.

Training never happens inside the caller: `start_run` spawns `python -m scn train` in its own
process session, with stdout/stderr appended to the run's train.log, so closing the browser or
restarting Streamlit leaves it running. The trainer's run lock (scn.lock) is the single source of
truth for "is a trainer alive"; the spawn lock here only closes the window between spawning a
trainer and that trainer taking its run lock, in which a second click or browser tab could spawn a
duplicate.
"""
import fcntl
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from scn import lock
from scn.store import LOG_NAME

SPAWN_LOCK_NAME = "spawn.lock"
PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Option name (as in config.json) -> trainer flag. Booleans listed in SWITCHES are "on" by default
# and are turned off by their flag; everything else takes a value.
FLAGS = {
    "data": "--data", "format": "--format", "method": "--method",
    "relabel_scope": "--relabel-scope", "epochs": "--epochs", "batch_size": "--batch-size",
    "image_size": "--image-size", "lr": "--lr", "preset": "--preset",
    "relabel_epoch": "--relabel-epoch", "beta": "--beta", "margin_1": "--margin1",
    "margin_2": "--margin2", "pretrained": "--pretrained", "device": "--device",
    "threads": "--threads", "seed": "--seed", "val_fraction": "--val-fraction",
    "noise_file": "--noise-file", "synth_train": "--synth-train", "synth_test": "--synth-test",
    "synth_noise": "--synth-noise", "precision": "--precision", "drop_rate": "--drop-rate",
    "log_every": "--log-every", "alpha_warmup_epochs": "--alpha-warmup-epochs",
    "alpha_bias_init": "--alpha-bias-init", "relabel_min_val_accuracy": "--relabel-min-val-acc",
}
SWITCHES = {"attention": "--no-attention", "rank_reg": "--no-rank-reg", "relabel": "--no-relabel",
            "channels_last": "--no-channels-last"}

# The one-click demo: SCN and the baseline side by side on the built-in benchmark with 30% label
# noise, both from the synth-face backbone (the trainer's default there; the first demo builds it),
# at 64 px, the size that backbone is trained at, so both finish in a few minutes sharing a 2-core
# laptop CPU (one thread each). bench/standing_start.py measures it at these settings.
DEMO_DATA = {"synth_train": 2000, "synth_test": 500, "synth_noise": 0.3, "image_size": 64,
             "epochs": 10, "relabel_epoch": 5, "threads": 1, "device": "cpu", "pretrained": "synth-face"}
DEMO_RUNS = {"scn": DEMO_DATA | {"method": "scn"}, "baseline": DEMO_DATA | {"method": "baseline"}}


class TrainerExitedError(RuntimeError):
    """Raised when a freshly spawned trainer fails before start_run has seen it hold its run lock
    (bad options, or a dataset it cannot read); the message ends with the log's last line."""


def train_command(*, run_dir, options: dict, resume: bool = False) -> list:
    """The argv that trains `run_dir` with `options` (config.json names; None means "default")."""
    unknown = set(options) - set(FLAGS) - set(SWITCHES)
    if unknown:
        raise KeyError(f"unknown training option(s): {', '.join(sorted(unknown))}")
    argv = [sys.executable, "-m", "scn", "train", "--run-dir", str(Path(run_dir).resolve())]
    for name, value in options.items():
        if name in SWITCHES:
            if not value:
                argv.append(SWITCHES[name])
        elif value is not None:
            argv += [FLAGS[name], str(value)]
    if resume:
        argv.append("--resume")
    return argv


def new_run_dir(*, root, label: str) -> Path:
    """A fresh, not yet existing folder under `root` named by time and `label` (e.g. the method)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(root) / f"{stamp}-{label}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def is_running(run_dir) -> bool:
    return lock.is_held(run_dir)


def trainer_pid(run_dir) -> int | None:
    """The pid of the live trainer of `run_dir` (written into the lock file by its holder)."""
    if not lock.is_held(run_dir):
        return None
    text = (Path(run_dir) / lock.LOCK_NAME).read_text().strip()
    return int(text) if text.isdigit() else None


def start_run(*, run_dir, options: dict, wait_s: float = 60.0) -> int:
    """Spawn a trainer for `run_dir` and return its pid; see `_spawn`."""
    return _spawn(run_dir=run_dir, argv=train_command(run_dir=run_dir, options=options),
                  wait_s=wait_s)


def resume_run(run_dir, *, wait_s: float = 60.0) -> int:
    """Restart a stopped or interrupted run from checkpoints/last.pt; the trainer restores the
    run's configuration, labels and relabel history from that checkpoint."""
    argv = train_command(run_dir=run_dir, options={}, resume=True)
    return _spawn(run_dir=run_dir, argv=argv, wait_s=wait_s)


def stop_run(run_dir) -> bool:
    """Ask the trainer to stop gracefully (SIGTERM: it finishes its step, writes last.pt and marks
    the run stopped). Only the trainer is signalled, not its process group, so data-loader workers
    are shut down by the trainer rather than dying under it. False when no trainer is alive."""
    pid = trainer_pid(run_dir)
    if pid is None:
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True


@contextmanager
def _spawn_lock(run_dir):
    fd = os.open(Path(run_dir) / SPAWN_LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _spawn(*, run_dir, argv: list, wait_s: float) -> int:
    """Start `argv` detached, then wait until it holds the run lock (or exits, or `wait_s` passes),
    all under the spawn lock, so a concurrent caller sees the run as held and is refused."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with _spawn_lock(run_dir):
        if lock.is_held(run_dir):
            raise lock.RunLockedError(f"a trainer is already running for {run_dir}")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
        with open(run_dir / LOG_NAME, "ab") as log:
            process = subprocess.Popen(argv, cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        deadline = time.monotonic() + wait_s
        while not lock.is_held(run_dir):
            code = process.poll()
            if code == 0:
                break  # a tiny run can take and release its lock between two polls
            if code is not None:
                lines = (run_dir / LOG_NAME).read_text(errors="replace").strip().splitlines()
                raise TrainerExitedError(f"the trainer exited with code {code}: "
                                         f"{lines[-1] if lines else 'no output'} (log: {run_dir / LOG_NAME})")
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
    return process.pid
