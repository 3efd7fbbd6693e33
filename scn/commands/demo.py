"""Start the one-click demo: SCN and the baseline side by side on the built-in benchmark with 30%
label noise, both trainers or neither, refused while a demo pair is training. The app's "Start the
demo" button runs this in a process of its own, so a closed browser cannot interrupt it halfway.
Exit status: 0 started, 3 already training, 2 not started.
"""
import sys

HELP = "start the demo pair (SCN and the baseline on the noisy built-in benchmark)"


def add_arguments(parser) -> None:
    parser.add_argument("--root", help="runs folder (default: $SCN_RUNS_DIR or ./runs)")


def run(args) -> int:
    from scn.runs import DemoRunningError, DemoStartError, start_demo
    from scn.store import runs_root

    try:
        started = start_demo(root=args.root or runs_root())
    except DemoRunningError as exc:
        print(exc)
        return 3
    except DemoStartError as exc:
        print(exc, file=sys.stderr)
        return 2
    for run_dir, pid in started.values():
        print(f"Started {run_dir.name} (pid {pid}); it trains in the background.")
    return 0
