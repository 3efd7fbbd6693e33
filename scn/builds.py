"""Shared builds: what trainers make once and reuse (the built-in benchmark, the synth-face
backbone). Each is built under an exclusive OS file lock in the studio cache, so two runs that need
it at once build it once and the second waits. The builder writes its progress to a file beside the
lock, removed when the build ends, so a run that waits can show how far the build is (the app's
status panel) rather than an empty log.
"""
import fcntl
import time
from contextlib import contextmanager
from pathlib import Path

from scn.lock import file_is_locked

PROGRESS_SUFFIX = ".progress"


@contextmanager
def exclusive(lock_path: Path):
    """Hold the build's lock, waiting while another process holds it."""
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@contextmanager
def progress(lock_path: Path, *, what: str, log=None):
    """Inside a held `exclusive(lock_path)`: yields a function that passes a line of the build's
    progress to `log` and appends it to the progress file, whose first line says what is built."""
    path = Path(lock_path).with_suffix(PROGRESS_SUFFIX)

    def line(message: str) -> None:
        if log is not None:
            log(message)
        with open(path, "a") as handle:
            handle.write(f"{time.strftime('%H:%M:%S')} {message}\n")

    path.write_text("")
    line(f"building {what}")
    try:
        yield line
    finally:
        path.unlink(missing_ok=True)


def in_progress(cache: Path) -> list:
    """The progress lines of every build under `cache` (one folder deep) that is running now; a
    progress file a killed builder left behind is not one (its lock is free)."""
    running = []
    for path in sorted(Path(cache).glob(f"*/*{PROGRESS_SUFFIX}")):
        if file_is_locked(path.with_suffix(".lock")):
            try:
                running.append(path.read_text().splitlines())
            except FileNotFoundError:
                continue  # finished while listing
    return running

