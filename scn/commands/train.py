"""Train an SCN (or baseline) run into a run folder that the app can watch.

Without --data the built-in synthetic benchmark is generated once into a cache and used.
Stop with Ctrl-C or SIGTERM (a checkpoint is written) and continue with --resume.
"""
import sys

from scn.config import PRECISIONS, PRESETS, make_config

HELP = "train a run (SCN, baseline or an ablation)"


def add_arguments(parser) -> None:
    data = parser.add_argument_group("data")
    data.add_argument("--data", help="dataset folder (default: the built-in synthetic benchmark)")
    data.add_argument("--format", choices=("rafdb", "imagefolder"), default="rafdb",
                      help="layout of --data (default: rafdb)")
    data.add_argument("--noise-file", help="official-format noise label file applied to RAF-DB train labels")
    data.add_argument("--skip-bad", action="store_true",
                      help="skip missing or unreadable images (listed in the run log) instead of failing")
    data.add_argument("--val-fraction", type=float,
                      help="share of training images held out to choose the best checkpoint (default 0.1)")
    data.add_argument("--synth-train", type=int, help="built-in benchmark: training images (default 3000)")
    data.add_argument("--synth-test", type=int, help="built-in benchmark: test images (default 750)")
    data.add_argument("--synth-noise", type=float, help="built-in benchmark: label noise rate (default 0)")

    method = parser.add_argument_group("method")
    method.add_argument("--method", choices=("scn", "baseline"), default="scn",
                        help="scn, or baseline: plain ResNet-18 with cross-entropy")
    method.add_argument("--no-attention", dest="attention", action="store_false",
                        help="ablation: cross-entropy on unweighted logits")
    method.add_argument("--no-rank-reg", dest="rank_reg", action="store_false",
                        help="ablation: no rank regularization")
    method.add_argument("--no-relabel", dest="relabel", action="store_false", help="ablation: no relabeling")
    method.add_argument("--relabel-scope", choices=("low", "all"),
                        help="relabel the low-importance group (paper, default) or every sample (official code)")
    method.add_argument("--preset", choices=tuple(PRESETS), default="official",
                        help="official: the official code's settings; paper: batch 1024, margin_1 0.15")
    method.add_argument("--epochs", type=int)
    method.add_argument("--batch-size", type=int)
    method.add_argument("--image-size", type=int, help="input size in pixels (preset: 224)")
    method.add_argument("--lr", type=float, help="Adam learning rate (preset: 1e-3)")
    method.add_argument("--relabel-epoch", type=int, help="first epoch (1-based) that relabels")
    method.add_argument("--beta", type=float, help="share of each batch in the high-importance group")
    method.add_argument("--margin1", dest="margin_1", type=float, help="rank regularization margin")
    method.add_argument("--margin2", dest="margin_2", type=float, help="relabel margin")
    method.add_argument("--drop-rate", type=float, help="dropout before the heads")
    method.add_argument("--pretrained",
                        help="'synth-face' (the identity-trained face backbone of `python -m scn pretrain`; "
                             "the default on the built-in benchmark), 'none' (random weights; the default "
                             "with --data), 'imagenet' (locally cached torchvision weights) or a weights "
                             "file (plain state dict, our checkpoint, or the official MS-Celeb file)")
    method.add_argument("--alpha-warmup-epochs", type=int,
                        help="first epochs with alpha fixed at 1 before the attention head switches on (default 0)")
    method.add_argument("--alpha-bias-init", type=float,
                        help="initial bias of the alpha head, e.g. 3 so alpha starts near 0.95")
    method.add_argument("--relabel-min-val-acc", dest="relabel_min_val_accuracy", type=float,
                        help="relabel only after an epoch whose validation accuracy reached this (default 0)")

    run = parser.add_argument_group("run")
    run.add_argument("--run-dir", required=True, help="run folder, e.g. runs/scn-noise30")
    run.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    run.add_argument("--device", default="auto", help="auto, cpu or cuda")
    run.add_argument("--precision", choices=PRECISIONS, default="auto",
                     help="auto: AMP on CUDA (bfloat16 where the GPU has it, else float16), bfloat16 on "
                          "CPUs that compute it natively; fp16 is CUDA only")
    run.add_argument("--no-channels-last", dest="channels_last", action="store_false",
                     help="keep the default NCHW memory layout")
    run.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    run.add_argument("--seed", type=int)
    run.add_argument("--log-every", type=int, help="steps between metric rows (default 10)")
    run.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def run(args) -> int:
    from scn.checkpoint import CheckpointError
    from scn.data import DatasetError
    from scn.lock import RunLockedError
    from scn.model import PretrainedWeightsError
    from scn.train import RunExistsError, train

    options = {k: getattr(args, k) for k in (
        "data", "format", "noise_file", "skip_bad", "val_fraction", "synth_train", "synth_test",
        "synth_noise", "method", "attention", "rank_reg", "relabel", "relabel_scope", "epochs",
        "batch_size", "image_size", "lr", "relabel_epoch", "beta", "margin_1", "margin_2", "drop_rate",
        "pretrained", "alpha_warmup_epochs", "alpha_bias_init", "relabel_min_val_accuracy", "device", "precision", "channels_last", "threads", "seed", "log_every")}
    try:
        config = make_config(preset=args.preset, **options)
        outcome = train(config, run_dir=args.run_dir, resume=args.resume,
                        progress=args.progress and sys.stderr.isatty())
    except RunLockedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except (CheckpointError, DatasetError, PretrainedWeightsError, RunExistsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{outcome}: {args.run_dir}")
    return 0
