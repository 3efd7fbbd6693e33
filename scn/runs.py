"""Run lifecycle for the app and scripts: start, stop and resume trainers as background processes.

Training never happens inside the caller: `start_run` spawns `python -m scn train` in its own
process session, with stdout/stderr appended to the run's train.log, so closing the browser or
restarting Streamlit leaves it running. The trainer's run lock (scn.lock) is the single source of
truth for "is a trainer alive"; the spawn lock here only closes the window between spawning a
trainer and that trainer taking its run lock, in which a second click or browser tab could spawn a
duplicate. The demo pair is started under a lock of its own in the runs folder, both or neither
(`start_demo`), from a detached launcher process (`launch_demo`).
"""
import fcntl
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from scn import lock
from scn.config import BUILT_IN_START, PRESETS, option_argv
from scn.store import CONFIG_NAME, DB_NAME, LOG_NAME, RunNotFoundError, checkpoint_path

SPAWN_LOCK_NAME = "spawn.lock"
# In the runs folder: held while a demo pair is checked and started, and the pids it started.
DEMO_LOCK_NAME = ".demo.lock"
DEMO_MARKER_NAME = ".demo.json"
STOP_REQUEST_NAME = "stop.request"
# In UTF-8 bytes, which file systems count (255 a folder name): 80 letters of Latin script, 26 of
# Chinese, with room to spare for the time stamp in front.
MAX_NAME_BYTES = 80
PROJECT_ROOT = Path(__file__).resolve().parent.parent

# The one-click demo: SCN and the baseline side by side at the demo preset's scale and settings
# (scn.config PRESETS["demo"], the new-run form's defaults too), both from dlib's face-recognition
# network (nothing to build: its weights ship in a package), one thread each on the CPU so both
# share a 2-core laptop. The options are spelled out rather than named by the preset so that the
# trainer's command line shows them.
DEMO_SIZE = ("synth_train", "synth_test", "synth_noise", "image_size", "epochs", "relabel_epoch",
             "backbone_lr_scale", "relabel_scope")
DEMO_DATA = {name: PRESETS["demo"][name] for name in DEMO_SIZE} | {
    "preset": "demo", "threads": 1, "device": "cpu", "pretrained": BUILT_IN_START}
DEMO_RUNS = {"scn": DEMO_DATA | {"method": "scn"}, "baseline": DEMO_DATA | {"method": "baseline"}}


DEMO_MEASUREMENT = PROJECT_ROOT / "bench" / "results" / "demo.json"


def demo_minutes() -> int | None:
    """The demo's measured wall time from an empty cache (bench/demo.py), in whole minutes rounded
    up; None when the measurement is not there."""
    try:
        seconds = json.loads(DEMO_MEASUREMENT.read_text())["wall_seconds_first_seed_from_empty_cache"]
    except (OSError, ValueError, KeyError):
        return None
    return math.ceil(seconds / 60)


class TrainerExitedError(RuntimeError):
    """Raised when a freshly spawned trainer fails before start_run has seen it hold its run lock
    (bad options, or a dataset it cannot read); the message holds the trainer's `error:` line."""


def train_command(*, run_dir, options: dict, resume: bool = False) -> list:
    """The argv that trains `run_dir` with `options` (config.json names; None means "default").
    Unknown names raise KeyError and out-of-range values ValueError (see scn.config.option_argv).

    With `processes` above 1 (or, on resume, a run that was started so) the trainer is started
    under torchrun, one process per GPU of this machine (`--standalone`: a free rendezvous port)."""
    argv = ["-m", "scn", "train", "--run-dir", str(Path(run_dir).resolve()), *option_argv(options)]
    processes = options.get("processes") or (_stored_processes(run_dir) if resume else 1)
    if processes > 1:
        argv = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}", *argv]
    argv = [sys.executable, *argv]
    return argv + ["--resume"] if resume else argv


def _stored_processes(run_dir) -> int:
    try:
        return int(json.loads((Path(run_dir) / CONFIG_NAME).read_text()).get("processes") or 1)
    except (OSError, ValueError):
        return 1


def run_name(label: str) -> str:
    """`label` as one harmless path component: a name typed into the form must not climb out of
    the runs folder (`../x`), nest folders the app never lists (`a/b`), hide itself (`.x`) or
    carry NUL and control characters."""
    name = re.sub(r"[^\w.+-]+", "-", str(label))
    name = re.sub(r"\.{2,}", ".", name).strip(".-")
    return name.encode()[:MAX_NAME_BYTES].decode(errors="ignore").rstrip(".-") or "run"


def new_run_dir(*, root, label: str) -> Path:
    """Create and return a fresh folder directly under `root`, named by time and `label` (e.g. the
    method). Creating it here, not at spawn, reserves the name: two starts in the same second
    get two folders instead of racing for one."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    base = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{run_name(label)}"
    candidate, n = base, 1
    while True:
        if candidate.resolve().parent != root.resolve():
            raise ValueError(f"run name {label!r} does not name a folder inside {root}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            n += 1
            candidate = base.with_name(f"{base.name}-{n}")


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


class CannotResumeError(RuntimeError):
    """Raised when a run cannot be resumed as asked: still training, or no `last` checkpoint."""


def resume_run(run_dir, *, reviewed_labels: bool = False, epochs: int | None = None,
               wait_s: float = 60.0) -> int:
    """Restart a stopped, interrupted or finished run from checkpoints/last.pt; the trainer restores
    the run's configuration, labels and relabel history from that checkpoint. `epochs` trains it
    on to that many epochs in all; `reviewed_labels` first applies the labels as reviewed
    (scn.review), recorded as review events.

    Raises CannotResumeError while a trainer of the run is alive or when it has no `last`
    checkpoint, and TrainerExitedError when the trainer refuses (e.g. no epoch left to train)."""
    name = Path(run_dir).name
    if lock.is_held(run_dir):
        raise CannotResumeError(f"{name} is still training; stop it or let it finish before resuming")
    if not checkpoint_path(run_dir, "last").is_file():
        raise CannotResumeError(f"{name} has no last checkpoint to resume from "
                                f"({checkpoint_path(run_dir, 'last')} is missing)")
    options = {"epochs": epochs, "reviewed_labels": reviewed_labels or None}
    argv = train_command(run_dir=run_dir, options=options, resume=True)
    return _spawn(run_dir=run_dir, argv=argv, wait_s=wait_s)


def stop_run(run_dir) -> bool:
    """Ask the trainer to stop gracefully (SIGTERM: it finishes its step, writes last.pt and marks
    the run stopped). Only the trainer is signalled, not its process group, so data-loader workers
    are shut down by the trainer rather than dying under it. False when no trainer is alive.

    The request is recorded in the run folder (a control file, with the trainer's pid) so that
    every page and tab can show "stopping" instead of offering Stop again."""
    pid = trainer_pid(run_dir)
    if pid is None:
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    (Path(run_dir) / STOP_REQUEST_NAME).write_text(str(pid))
    return True


def stop_requested(run_dir) -> bool:
    """True while the live trainer of `run_dir` has been asked to stop and has not exited yet; a
    request left by an earlier trainer of the run names another pid and does not count."""
    pid = trainer_pid(run_dir)
    try:
        return pid is not None and (Path(run_dir) / STOP_REQUEST_NAME).read_text().strip() == str(pid)
    except OSError:
        return False


def delete_run(run_dir) -> None:
    """Remove the run folder `run_dir` and everything in it (records, checkpoints, log).

    Refused with RunLockedError while a trainer trains it or is being started for it (checked
    under the spawn lock, so a Resume clicked at the same moment cannot slip in between), and with
    RunNotFoundError for a folder that is not a run (no run.db or config.json), so a wrong path
    never deletes something else.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or not ((run_dir / DB_NAME).exists() or (run_dir / CONFIG_NAME).exists()):
        raise RunNotFoundError(f"{run_dir} is not a run folder (no {DB_NAME} or {CONFIG_NAME}); nothing deleted")
    with _file_lock(run_dir / SPAWN_LOCK_NAME):
        if lock.is_held(run_dir) or run_dir.name in demo_runs_alive(root=run_dir.parent):
            pid = trainer_pid(run_dir)
            raise lock.RunLockedError(f"{run_dir.name} is training{f' (trainer pid {pid})' if pid else ''}: "
                                      "stop it, and let it finish its step, before deleting it")
        shutil.rmtree(run_dir)


class DemoRunningError(RuntimeError):
    """Raised when a demo pair is already training (or still starting) in the runs folder."""


class DemoStartError(RuntimeError):
    """Raised when one of the demo's trainers could not be started; the other was stopped and both
    run folders removed, so no half pair is left."""


def demo_runs_alive(*, root) -> list:
    """Names of the demo runs under `root` whose trainer is alive or still starting: a demo run
    whose trainer holds its run lock, or one that start_demo spawned whose process still lives
    (it takes its lock only after importing torch, which can outlast start_run's wait)."""
    root = Path(root)
    alive = {p.name for p in root.glob("*-demo-*") if p.is_dir() and lock.is_held(p)}
    try:
        spawned = json.loads((root / DEMO_MARKER_NAME).read_text())
    except (OSError, ValueError):
        spawned = {}
    alive |= {name for name, pid in spawned.items() if _trainer_alive(pid, run_dir=root / name)}
    return sorted(alive)


def start_demo(*, root, wait_s: float = 60.0) -> dict:
    """Start the one-click demo (DEMO_RUNS, side by side) in `root`: both trainers or neither.

    Returns {label: (run_dir, pid)}. The whole check-and-start happens under an OS file lock in
    `root`, so two callers (two tabs, two app servers, two scripts) cannot both pass the check;
    the second gets DemoRunningError. If a trainer fails to start, the ones already started are
    killed and their folders removed, and DemoStartError says why.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with _file_lock(root / DEMO_LOCK_NAME):
        alive = demo_runs_alive(root=root)
        if alive:
            raise DemoRunningError(f"The demo is already training ({', '.join(alive)}).")
        started, pids = {}, {}
        try:
            for label, options in DEMO_RUNS.items():
                run_dir = new_run_dir(root=root, label=f"demo-{label}")
                started[label] = (run_dir, None)
                pid = start_run(run_dir=run_dir, options=options, wait_s=wait_s)
                started[label], pids[run_dir.name] = (run_dir, pid), pid
                (root / DEMO_MARKER_NAME).write_text(json.dumps(pids))
        except BaseException as exc:
            for run_dir, pid in started.values():
                _discard(run_dir, pid=pid)
            (root / DEMO_MARKER_NAME).unlink(missing_ok=True)
            if not isinstance(exc, Exception):
                raise
            raise DemoStartError(f"The demo was not started: {exc}") from exc
        return started


def launch_demo(*, root, wait_s: float = 180.0) -> tuple:
    """Run start_demo in a detached `python -m scn demo` process and wait for its answer:
    (exit status, what it printed). Detached, so that a browser tab closed or an app server
    stopped mid-click cannot leave one trainer of the pair started and the other not.
    The status is 0 (started), 3 (already training), 2 (not started) or None (still starting
    after `wait_s`; the launcher carries on)."""
    argv = [sys.executable, "-m", "scn", "demo", "--root", str(Path(root).resolve())]
    process = subprocess.Popen(argv, cwd=PROJECT_ROOT, env=_child_env(), stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        output, _ = process.communicate(timeout=wait_s)
    except subprocess.TimeoutExpired:
        return None, "The demo is still starting; it will appear in the runs table."
    return process.returncode, output.strip()


def _trainer_alive(pid, *, run_dir) -> bool:
    """Whether `pid` is a live (not zombie) trainer of `run_dir`; the command line is checked
    where /proc has it, so a pid reused by another process does not count."""
    proc = Path(f"/proc/{pid}")
    if not Path("/proc/self/stat").exists():
        try:
            os.kill(int(pid), 0)
        except (OSError, ValueError):
            return False
        return True
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        command = (proc / "cmdline").read_bytes().split(b"\0")
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X") and str(Path(run_dir).resolve()).encode() in command


def _discard(run_dir, *, pid) -> None:
    """Kill a trainer that start_demo started (its whole session: it was started as a session
    leader) and remove its folder."""
    if pid is not None:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 30.0
        while _trainer_alive(pid, run_dir=run_dir) and time.monotonic() < deadline:
            time.sleep(0.05)
    shutil.rmtree(run_dir, ignore_errors=True)


@contextmanager
def _file_lock(path):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _child_env() -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    return env


def _exit_reason(log_path: Path, *, start: int) -> str:
    """Why a trainer exited, from what it wrote to its log after byte `start`: its `error:` line
    (the reason, where the last line would be the end of a traceback), else the last line."""
    with open(log_path, "rb") as log:
        log.seek(start)
        lines = log.read().decode("utf-8", errors="replace").strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    return errors[0][len("error: "):] if errors else lines[-1] if lines else "no output"


def discard_unstarted(run_dir) -> bool:
    """Remove a run folder whose trainer exited before creating its database (weights it could
    not load, say): the app never lists such a folder, so it would only pile up. True if removed."""
    run_dir = Path(run_dir)
    if (run_dir / DB_NAME).exists() or lock.is_held(run_dir):
        return False
    shutil.rmtree(run_dir, ignore_errors=True)
    return True


def _spawn(*, run_dir, argv: list, wait_s: float) -> int:
    """Start `argv` detached, then wait until it holds the run lock (or exits, or `wait_s` passes),
    all under the spawn lock, so a concurrent caller sees the run as held and is refused."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with _file_lock(run_dir / SPAWN_LOCK_NAME):
        if lock.is_held(run_dir):
            raise lock.RunLockedError(f"a trainer is already running for {run_dir}")
        with open(run_dir / LOG_NAME, "ab") as log:
            log_start = log.tell()
            process = subprocess.Popen(argv, cwd=PROJECT_ROOT, env=_child_env(), stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        # Whoever spawned it (often a Streamlit server that runs for days) must collect its exit
        # status, or every finished trainer stays behind as a defunct child.
        threading.Thread(target=process.wait, name=f"reap-{process.pid}", daemon=True).start()
        deadline = time.monotonic() + wait_s
        while not lock.is_held(run_dir):
            code = process.poll()
            if code == 0:
                break  # a tiny run can take and release its lock between two polls
            if code is not None:
                raise TrainerExitedError(f"the trainer exited with code {code}: "
                                         f"{_exit_reason(run_dir / LOG_NAME, start=log_start)} "
                                         f"(log: {run_dir / LOG_NAME})")
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
    return process.pid
