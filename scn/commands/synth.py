"""Generate the built-in expression benchmark: synthetic FACS-driven faces in RAF-DB's layout.

Writes DIR/Image/aligned/*_aligned.jpg, DIR/EmoLabel/list_patition_label.txt (1-based labels,
noisy for training images when --noise > 0), the noise files in SCN's and EAC's formats and
DIR/groundtruth.csv with the true class, noise model, annotator votes, ambiguity, expression,
identity, pose and degradations of every image. With --contact-sheet PNG it draws a sample grid
instead.
"""
import argparse
import sys

from scn.synth import contact_sheet, generate_dataset
from scn.synth.cache import DEFAULTS
from scn.synth.dataset import BALANCES
from scn.synth.noise import LABEL_SOURCES, NOISE_MODELS

HELP = "generate the built-in synthetic expression benchmark (RAF-DB layout, known ground truth)"


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--out", metavar="DIR", help="output folder (created; must be empty)")
    parser.add_argument("--train", type=int, default=DEFAULTS["train"], help="training images (%(default)s)")
    parser.add_argument("--test", type=int, default=DEFAULTS["test"], help="test images (%(default)s)")
    parser.add_argument("--size", type=int, default=DEFAULTS["size"], help="image side in pixels (%(default)s)")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="random seed (%(default)s)")
    parser.add_argument("--noise", type=float, default=DEFAULTS["noise"],
                        help="share of wrong training labels (%(default)s)")
    parser.add_argument("--noise-model", choices=NOISE_MODELS, default=DEFAULTS["noise_model"],
                        help="symmetric: flips to any other class (SCN's protocol); pairwise: to the "
                             "confusable class; annotators: simulated annotators vote on what each face "
                             "shows, so ambiguous faces get the wrong labels (%(default)s)")
    parser.add_argument("--annotators", type=int, default=DEFAULTS["annotators"],
                        help="annotators model: size of the panel (%(default)s)")
    parser.add_argument("--label-from", choices=LABEL_SOURCES, default=DEFAULTS["label_from"],
                        help="annotators model: the panel's majority vote, or a single annotator's per "
                             "face (%(default)s)")
    parser.add_argument("--balance", choices=BALANCES, default=DEFAULTS["balance"],
                        help="class distribution: RAF-DB's training split, or uniform (%(default)s)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing benchmark in --out")
    parser.add_argument("--contact-sheet", metavar="PNG", help="draw a grid of example faces to PNG instead")


def run(args) -> int:
    try:
        if args.contact_sheet:
            print(contact_sheet(args.contact_sheet))
            return 0
        if not args.out:
            raise ValueError("--out DIR is required (or --contact-sheet PNG)")
        if args.workers is not None and args.workers < 1:
            raise ValueError(f"--workers must be at least 1, got {args.workers}")
        out = generate_dataset(args.out, train=args.train, test=args.test, size=args.size, seed=args.seed,
                               noise=args.noise, noise_model=args.noise_model, annotators=args.annotators,
                               label_from=args.label_from, balance=args.balance, workers=args.workers,
                               overwrite=args.overwrite)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(out)
    return 0
