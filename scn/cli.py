"""`python -m scn <command>`: one module per command under scn/commands/.

Each command module defines HELP (one line), `add_arguments(parser)` and `run(args) -> int`.
"""
import argparse
import importlib

COMMANDS = ("train", "eval", "runs", "synth", "pretrain", "predict", "align", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scn", description="Self-Cure Network training, inspection and prediction."
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
