"""The run lock: an OS file lock that a live trainer holds on its run folder.

The kernel drops it when the process dies, however it dies, so "is the lock held" answers "is a
trainer alive for this run" without trusting pids (which get reused) or clocks.
"""
import fcntl
import os
import time
from pathlib import Path

LOCK_NAME = "trainer.lock"


class RunLockedError(RuntimeError):
    """Raised when another trainer already holds a run's lock."""


def acquire(run_dir) -> int:
    """Take the lock for the lifetime of this process; returns the file descriptor to keep open."""
    path = Path(run_dir) / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    # A reader probing with is_held() holds a shared lock for microseconds; retry briefly so
    # such a probe is never mistaken for a second trainer.
    for _ in range(20):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            time.sleep(0.05)
    else:
        os.close(fd)
        raise RunLockedError(f"a trainer is already running for {run_dir}")
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def is_held(run_dir) -> bool:
    """True while some process holds the run's lock."""
    return file_is_locked(Path(run_dir) / LOCK_NAME)


def file_is_locked(path) -> bool:
    """True while some process holds an flock on `path` (the probe holds a shared lock for microseconds)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
