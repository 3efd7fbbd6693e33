import importlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from scn.cli import COMMANDS, build_parser, main


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert f"python -m scn {command}" in out and "--" in out


def test_module_entry_point_lists_commands():
    result = subprocess.run([sys.executable, "-m", "scn", "--help"], capture_output=True, text=True, check=True)
    for command in COMMANDS:
        assert command in result.stdout


# Runs `python -m scn ARGS` in this interpreter and says whether torch was imported by then.
HELP_IMPORTS_TORCH = """
import runpy, sys
sys.argv = ["scn", *sys.argv[1:]]
try:
    runpy.run_module("scn", run_name="__main__")
except SystemExit:
    pass
print("torch imported" if "torch" in sys.modules else "torch not imported", file=sys.stderr)
"""


@pytest.mark.parametrize("argv", [["--help"]] + [[command, "--help"] for command in COMMANDS])
def test_help_answers_without_importing_torch(argv):
    result = subprocess.run([sys.executable, "-c", HELP_IMPORTS_TORCH, *argv], capture_output=True, text=True)
    assert "usage: scn" in result.stdout
    assert result.stderr.strip().splitlines()[-1] == "torch not imported"


def test_the_installed_scn_command_is_the_cli():
    pyproject = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    module, function = pyproject["project"]["scripts"]["scn"].split(":")
    assert getattr(importlib.import_module(module), function) is main


def test_eval_of_missing_run_is_a_clear_error(tmp_path, capsys):

    assert main(["eval", "--run", str(tmp_path / "nope")]) == 2
    assert "no run at" in capsys.readouterr().err


def test_runs_lists_a_damaged_run_with_the_reason(run_dir, capsys):
    import os


    os.truncate(run_dir / "run.db", 0)
    assert main(["runs", "--root", str(run_dir.parent)]) == 0
    out = capsys.readouterr().out
    assert "damaged" in out and f"{run_dir.name}: {run_dir / 'run.db'} is empty (0 bytes)" in out


def test_eval_works_from_the_checkpoints_of_a_run_whose_database_is_damaged(tiny_rafdb, tmp_path, capsys):
    import os

    from scn.train import train
    from tests.helpers import tiny_config

    run_dir = tmp_path / "r"
    train(tiny_config(tiny_rafdb, epochs=1), run_dir=run_dir, progress=False)
    os.truncate(run_dir / "run.db", 4096)
    assert main(["eval", "--run", str(run_dir), "--checkpoint", "last"]) == 0
    captured = capsys.readouterr()
    assert "is truncated" in captured.err and "checkpoints alone" in captured.err
    assert "last (epoch 1): test accuracy" in captured.out


def test_eval_of_a_run_without_validation_reports_its_last_epoch(run_dir, capsys):
    import json

    from scn.cli import main
    from scn.store import checkpoint_path

    checkpoint_path(run_dir, "best").unlink()  # as a run trained with --val-fraction 0 leaves it
    config = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps(config | {"val_fraction": 0.0}))
    assert main(["eval", "--run", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "no best checkpoint (it trains without a validation split" in out
    assert "last (epoch 4): test accuracy" in out and "best (" not in out
    assert "rank regularization: hinge above 0 on" in out
    assert main(["eval", "--run", str(run_dir), "--checkpoint", "best"]) == 2
    assert "has no best checkpoint" in capsys.readouterr().err


def test_every_option_of_every_command_has_help():
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    missing = [f"{name} {', '.join(action.option_strings)}" for name, sub in commands.items()
               for action in sub._actions if action.option_strings and action.dest != "help" and not action.help]
    assert missing == []


def test_runs_prints_a_readable_table(finished_runs, capsys):
    from scn.store import RunReader

    assert main(["runs", "--root", str(finished_runs["root"])]) == 0
    header, scn_line, baseline_line = capsys.readouterr().out.splitlines()
    assert header.split()[:5] == ["run", "status", "epoch", "val-selected", "test"]
    epochs = RunReader(finished_runs["scn_dir"]).epoch_metrics()
    chosen = epochs.loc[epochs["val_accuracy"].idxmax(), "test_accuracy"]
    assert scn_line.split()[:4] == ["20260101-120000-scn", "finished", "4/4", f"{chosen:.1%}"]
    assert "None" not in scn_line + baseline_line and "the built-in synthetic benchmark" in scn_line


def test_runs_shows_tags_and_filters_by_them(finished_runs, capsys):
    from scn.store import AppWriter

    AppWriter(finished_runs["scn_dir"]).annotate(tags=["noise30", "keep"])
    AppWriter(finished_runs["baseline_dir"]).annotate(tags=["noise30"])
    assert main(["runs", "--root", str(finished_runs["root"]), "--tag", "noise30", "--tag", "keep"]) == 0
    header, only = capsys.readouterr().out.splitlines()
    assert "tags" in header.split() and only.startswith("20260101-120000-scn") and "noise30,keep" in only.split()
    assert main(["runs", "--root", str(finished_runs["root"]), "--tag", "other"]) == 0
    assert capsys.readouterr().out.strip() == f"no runs under {finished_runs['root']} tagged other"


def read_only(folder, argv: list) -> list:
    """`argv` run with `folder` read-only: by its mode for a user, and for root (whom modes do not
    stop) under a read-only bind mount in a mount namespace of its own."""
    import os
    import shutil

    if os.geteuid() != 0:
        for path in [folder, *folder.rglob("*")]:
            path.chmod(path.stat().st_mode & ~0o222)
        return argv
    wrapped = ["unshare", "-m", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"', str(folder)]
    if shutil.which("unshare") is None or subprocess.run(wrapped + ["true"]).returncode != 0:
        pytest.skip("no way to make a folder read-only for root here (unshare -m)")
    return wrapped + argv


@pytest.mark.slow
def test_a_read_only_runs_folder_can_be_read_and_refuses_writes_in_one_line(tiny_rafdb, tmp_path,
                                                                           grace_hopper_path):
    import os
    from pathlib import Path

    from scn.train import train
    from tests.helpers import tiny_config

    root = tmp_path / "runs"
    train(tiny_config(tiny_rafdb, epochs=1), run_dir=root / "done", progress=False)
    project = Path(__file__).resolve().parent.parent
    env = dict(os.environ, SCN_RUNS_DIR=str(root), PYTHONPATH=str(project))

    # One process for all of it: each start of Python with torch costs seconds on a small machine.
    script = (
        "import sys\nfrom streamlit.testing.v1 import AppTest\nfrom scn.cli import main\n"
        f"runs = {str(root)!r}\n"
        "codes = [main(['runs']), main(['eval', '--run', runs + '/done']),\n"
        f"         main(['predict', {str(grace_hopper_path)!r}, '--run', runs + '/done', '--whole-image']),\n"
        f"         main(['train', '--data', {str(tiny_rafdb)!r}, '--run-dir', runs + '/new', '--epochs', '1'])]\n"
        "print('codes:', codes)\n"
        "from scn.store import AppWriter, RunReadOnlyError\n"
        "try:\n    AppWriter(runs + '/done').annotate(note='seen')\n"
        "except RunReadOnlyError as exc:\n    print('refused:', exc)\n"
        "at = AppTest.from_file('app.py', default_timeout=60)\nat.run()\n"
        "print('exceptions:', [e.value for e in at.exception], 'tables:', len(at.dataframe))\n")
    result = subprocess.run(read_only(root, [sys.executable, "-c", script]), capture_output=True, text=True,
                            env=env, cwd=project, timeout=180)
    out, err = result.stdout, result.stderr
    assert "codes: [0, 0, 0, 2]" in out and "exceptions: [] tables: 1" in out, out + err
    assert "finished" in out and "test accuracy" in out and "alpha" in out
    assert "refused: cannot write to run done: " in out and "is read-only" in out
    reason = "Read-only file system" if os.geteuid() == 0 else "Permission denied"
    assert f"error: cannot write the run folder {root / 'new'}: {reason}" in err.splitlines()
    assert "Traceback" not in out + err


def test_runs_names_only_the_damaged_run_beside_healthy_ones(tmp_path, capsys):
    import os

    from scn.cli import main
    from scn.store import RunWriter

    for name in ("healthy", "damaged"):
        writer = RunWriter(tmp_path / name)
        writer.write_config({"method": "scn", "epochs": 2})
        writer.set_status("finished", started=100.0)
        writer.close()
    os.truncate(tmp_path / "damaged" / "run.db", 0)
    assert main(["runs", "--root", str(tmp_path)]) == 0
    problems = [line for line in capsys.readouterr().out.splitlines() if ": " in line]
    assert problems == [f"damaged: {tmp_path / 'damaged' / 'run.db'} is empty (0 bytes)"]
