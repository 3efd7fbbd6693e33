"""The one way a benchmark script writes its results file.

Every file under bench/results/ is written by `write_results`: indented, keys sorted, a trailing
newline, and the command line that produced it plus the versions of the packages the figures depend
on, so `python -m bench.report` can put the command beside each finding.
"""
import json
import platform
import shlex
import sys
from importlib import metadata
from pathlib import Path

VERSIONED_PACKAGES = ("torch", "torchvision", "numpy", "streamlit", "facenet-pytorch")


def command_line(module: str, argv: list | None) -> str:
    """`python -m MODULE ARGS` as typed: `argv` when main() was called with one, else this process's."""
    return shlex.join(["python", "-m", module, *map(str, sys.argv[1:] if argv is None else argv)])


def package_versions() -> dict:
    versions = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def write_results(path, payload: dict, *, module: str, argv: list | None = None) -> Path:
    """Write `payload` to `path` as JSON, adding `command` and `versions` unless it holds them."""
    path = Path(path)
    record = {"command": command_line(module, argv), "versions": package_versions(), **payload}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, sort_keys=True, default=str) + "\n")
    return path
