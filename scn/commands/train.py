"""Train an SCN (or baseline) run into a run folder that the app can watch.

Without --data the built-in synthetic benchmark is generated once into a cache and used.
Stop with Ctrl-C or SIGTERM (a checkpoint is written) and continue with --resume; a resumed run
keeps its options but for --epochs (train longer) and --reviewed-labels (train on with the labels
reviewed on the Relabels page).
"""
import sys

from scn.config import RESUME_OPTIONS, add_arguments as add_config_arguments, config_from_args

HELP = "train a run (SCN, baseline or an ablation)"


def add_arguments(parser) -> None:
    add_config_arguments(parser)
    run = parser.add_argument_group("this invocation")
    run.add_argument("--run-dir", required=True, help="run folder, e.g. runs/scn-noise30")
    run.add_argument("--resume", action="store_true",
                     help="continue from the run's last checkpoint (its stored options apply, but for "
                          f"{' and '.join('--' + name.replace('_', '-') for name in RESUME_OPTIONS)})")
    run.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def run(args) -> int:
    from scn.distributed import is_rank_zero
    from scn.lock import RunLockedError
    from scn.train import USER_ERRORS, train

    try:
        config = config_from_args(args)
        # Given on the command line: argparse leaves an option not given at None (a switch at False).
        changes = {name: getattr(args, name) for name in RESUME_OPTIONS
                   if getattr(args, name) not in (None, False)}
        outcome = train(config, run_dir=args.run_dir, resume=args.resume,
                        resume_changes=changes if args.resume else None, progress=args.progress and sys.stderr.isatty())
    except RunLockedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"stopped: {args.run_dir} (interrupted; --resume continues from its last checkpoint)",
              file=sys.stderr)
        return 130
    if not is_rank_zero():
        return 0  # torchrun's other processes would repeat rank 0's line in the log
    print(f"{outcome}: {args.run_dir}")
    return 0
