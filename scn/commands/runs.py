"""List the runs under a runs folder with their status and accuracy."""
from scn.store import list_runs, runs_root

HELP = "list runs"


def add_arguments(parser) -> None:
    parser.add_argument("--root", help="runs folder (default: $SCN_RUNS_DIR or ./runs)")


def run(args) -> int:
    root = args.root or runs_root()
    runs = list_runs(root)
    if runs.empty:
        print(f"no runs under {root}")
        return 0
    shown = runs[["name", "status", "method", "epoch", "total_epochs", "best_test_accuracy",
                  "last_test_accuracy", "dataset"]]
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    for name, problem in zip(runs["name"], runs["problem"]):
        if problem:
            print(f"{name}: {problem}")
    return 0
