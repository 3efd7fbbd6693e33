import subprocess
import sys

import pytest

from scn.cli import COMMANDS, build_parser


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


def test_eval_of_missing_run_is_a_clear_error(tmp_path, capsys):
    from scn.cli import main

    assert main(["eval", "--run", str(tmp_path / "nope")]) == 2
    assert "no run at" in capsys.readouterr().err


def test_runs_lists_a_damaged_run_with_the_reason(run_dir, capsys):
    import os

    from scn.cli import main

    os.truncate(run_dir / "run.db", 0)
    assert main(["runs", "--root", str(run_dir.parent)]) == 0
    out = capsys.readouterr().out
    assert "damaged" in out and f"{run_dir.name}: {run_dir / 'run.db'} is empty (0 bytes)" in out


def test_eval_works_from_the_checkpoints_of_a_run_whose_database_is_damaged(tiny_rafdb, tmp_path, capsys):
    import os

    from scn.cli import main
    from scn.train import train
    from tests.helpers import tiny_config

    run_dir = tmp_path / "r"
    train(tiny_config(tiny_rafdb, epochs=1), run_dir=run_dir, progress=False)
    os.truncate(run_dir / "run.db", 4096)
    assert main(["eval", "--run", str(run_dir), "--checkpoint", "last"]) == 0
    captured = capsys.readouterr()
    assert "is truncated" in captured.err and "checkpoints alone" in captured.err
    assert "last (epoch 1): test accuracy" in captured.out
