"""`scn <command>` (installed by `pip install -e .`) or `python -m scn <command>`: one module per
command under scn/commands/.

Each command module defines HELP (one line), `add_arguments(parser)` and `run(args) -> int`, and
imports torch and the heavy modules inside `run`, so that `--help` answers at once.
"""
import argparse
import importlib
import sys
from pathlib import Path

COMMANDS = ("train", "eval", "runs", "synth", "pretrain", "predict", "align", "demo")


def program_name() -> str:
    """`scn` when started by the installed console script, else `python -m scn`."""
    return "scn" if Path(sys.argv[0]).name == "scn" else "python -m scn"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=program_name(), description="Self-Cure Network training, inspection and prediction."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"scn.commands.{name}")
        sub = subparsers.add_parser(name, help=module.HELP, description=module.__doc__)
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)
