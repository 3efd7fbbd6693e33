"""Evaluate a run's checkpoints on its test split: the last epoch and the best-on-validation
checkpoint are reported separately, since choosing a model on the test set overstates accuracy.
A run without a validation split has no best checkpoint: its last epoch is what it reports."""
import sys

HELP = "evaluate a run's last and best checkpoints on its test split"


def add_arguments(parser) -> None:
    parser.add_argument("--run", required=True, help="run folder, e.g. runs/scn-noise30")
    parser.add_argument("--checkpoint", choices=("last", "best", "both"), default="both",
                        help="last: the final epoch; best: chosen on the validation split; both (default; "
                             "the last alone for a run without a validation split)")


def per_class_table(confusion, class_names) -> str:
    totals = confusion.sum(axis=1)
    rows = [f"  {name:<10} {confusion[i, i] / max(totals[i], 1):7.2%}  ({totals[i]} images)"
            for i, name in enumerate(class_names)]
    return "\n".join(rows)


def _epoch_rows(reader):
    """The run's epoch metrics by epoch, or None when its database cannot be read."""
    from scn.store import RunDamagedError

    try:
        return reader.epoch_metrics().set_index("epoch", drop=False)
    except RunDamagedError:
        return None


def run(args) -> int:
    import torch

    from scn.analysis import rank_reg_activity
    from scn.checkpoint import CheckpointError, load_model
    from scn.collapse import summary
    from scn.config import TrainConfig
    from scn.data import DatasetError
    from scn.device import resolve_precision
    from scn.selection import missing_best_reason
    from scn.store import CONFIG_NAME, RunDamagedError, RunNotFoundError, RunReader
    from scn.train import evaluate, prepare_data

    try:
        reader = RunReader(args.run)
        if (status := reader.status())["state"] == "damaged":
            print(f"warning: {status['message']}; evaluating from the checkpoints alone", file=sys.stderr)
        else:
            for line in summary(reader.warnings()):
                print(f"warning from the trainer: {line['title']} ({line['when']}): {line['message']}",
                      file=sys.stderr)
        which = ("last", "best") if args.checkpoint == "both" else (args.checkpoint,)
        if "best" in which and not reader.checkpoint_path("best").is_file():
            reason = missing_best_reason(reader.run_dir / CONFIG_NAME)
            if args.checkpoint == "best":
                print(f"error: run {reader.name} has no best checkpoint: {reason}; use --checkpoint last",
                      file=sys.stderr)
                return 2
            print(f"no best checkpoint ({reason}): the last epoch is the run's reported result")
            which = ("last",)
        loaded = {w: load_model(reader.checkpoint_path(w)) for w in which}
        config = TrainConfig.from_dict(next(iter(loaded.values()))[1]["run_config"])
        config, _, _, test, _ = prepare_data(config)
    except (RunNotFoundError, CheckpointError, DatasetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    device = torch.device("cpu")
    precision = resolve_precision("auto", device)
    epochs = _epoch_rows(reader)
    for name, (model, meta) in loaded.items():
        result = evaluate(model, test, config=config, device=device, precision=precision)
        chosen = meta["best"]
        epoch = meta["epoch"] if name == "last" else chosen["epoch"]
        origin = (f"epoch {epoch}" if name == "last" else
                  f"epoch {epoch}, chosen on the {chosen['split']} split: the run's val-selected test accuracy")
        print(f"{name} ({origin}): test accuracy {result['accuracy']:.4f} on {len(test)} images")
        print(per_class_table(result["confusion"].numpy(), config.class_names))
        if epochs is not None and epoch in epochs.index:
            print("  " + rank_reg_activity(epochs.loc[epoch], rank_reg=config.uses_rank_reg))
    return 0
