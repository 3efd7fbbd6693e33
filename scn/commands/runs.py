"""List the runs under a runs folder with their status, accuracy and tags, then the warnings the
trainers recorded (a one-class training set, a collapsed run: scn.collapse)."""

HELP = "list runs"


def add_arguments(parser) -> None:
    parser.add_argument("--root", help="runs folder (default: $SCN_RUNS_DIR or ./runs)")
    parser.add_argument("--tag", action="append", default=[], metavar="TAG",
                        help="only the runs tagged TAG (tags are set in the app); repeat to require several")


def percent(value) -> str:
    return "" if value is None or value != value else f"{value:.1%}"


def readable_table(runs):
    """What a person scans for: state, progress and accuracy first, long descriptions last."""
    import pandas as pd

    from scn.selection import BY_LAST_EPOCH

    return pd.DataFrame({
        "run": runs["name"], "status": runs["status"],
        "epoch": [f"{e}/{t}" if t else str(e) for e, t in zip(runs["epoch"], runs["total_epochs"])],
        # Chosen on validation, reported on test; "(last)": no validation split, so the last epoch.
        "val-selected test": [percent(value) + (" (last)" if by == BY_LAST_EPOCH else "")
                              for value, by in zip(runs["selected_test_accuracy"], runs["selected_by"])],
        "last test": runs["last_test_accuracy"].map(percent),
        "method": runs["method"].fillna(""),
        "tags": [",".join(tags) for tags in runs["tags"]],
        "dataset": [text if len(text) <= 60 else text[:57] + "..." for text in runs["dataset"].fillna("")],
    })


def run(args) -> int:
    from scn.collapse import summary
    from scn.store import RunReader, list_runs, runs_root

    root = args.root or runs_root()
    runs = list_runs(root)
    if args.tag:
        runs = runs[[set(args.tag) <= set(tags) for tags in runs["tags"]]]
    if runs.empty:
        print(f"no runs under {root}" + (f" tagged {', '.join(args.tag)}" if args.tag else ""))
        return 0
    print(readable_table(runs).to_string(index=False))
    # A healthy run's problem reads as NaN once another run's is text: only text is a problem.
    for name, path, problem in zip(runs["name"], runs["path"], runs["problem"]):
        if isinstance(problem, str) and problem:
            print(f"{name}: {problem}")
            continue
        for line in summary(RunReader(path).warnings()):
            print(f"{name}: warning: {line['title']} ({line['when']}): {line['message']}")
    return 0
