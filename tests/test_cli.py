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
