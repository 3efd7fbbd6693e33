"""Build the synth-face backbone: a ResNet-18 trained to tell synthetic people apart, with no
expression label (this project's stand-in for SCN's MS-Celeb-1M face-recognition start).

Without --out it builds the default backbone once into the cache, where `--pretrained synth-face`
finds it (runs on the built-in benchmark use it by default and build it when it is missing). With
--out it writes a backbone of your own recipe to that file, for `--pretrained FILE`.
"""
import sys

HELP = "build the synth-face backbone (identity pretraining, no expression labels)"


def add_arguments(parser) -> None:
    parser.add_argument("--out", metavar="FILE", help="write a backbone of this recipe here instead of the cache")
    # No defaults here: they are scn.pretrain's recipe, and importing it (torch) would make --help slow.
    parser.add_argument("--people", type=int, help="synthetic people (default: the recipe's); with --out")
    parser.add_argument("--images-per-person", type=int,
                        help="images of each person (default: the recipe's); with --out")
    parser.add_argument("--epochs", type=int, help="training epochs (default: the recipe's); with --out")
    parser.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def run(args) -> int:
    import torch

    from scn.pretrain import (EPOCHS, IMAGES_PER_PERSON, PEOPLE, backbone_path, backbone_problem, build_backbone,
                              ensure_backbone)

    if args.threads:
        torch.set_num_threads(args.threads)
    default = {"people": PEOPLE, "images_per_person": IMAGES_PER_PERSON, "epochs": EPOCHS}
    recipe = {name: value if getattr(args, name) is None else getattr(args, name) for name, value in default.items()}
    if recipe != default and not args.out:
        print("error: --people, --images-per-person and --epochs change the recipe; give --out FILE "
              "so the cached synth-face backbone stays the default one", file=sys.stderr)
        return 2
    try:
        if args.out:
            checkpoint = build_backbone(**recipe, progress=args.progress)
            torch.save(checkpoint, args.out)
            path = args.out
        else:
            cached = backbone_problem(backbone_path()) is None
            path = ensure_backbone(progress=args.progress)
            if cached:
                print(f"already built: {path}")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    built = torch.load(path, map_location="cpu", weights_only=True)["recipe"]
    print(f"{path}: {built['people']} people, held-out identity accuracy {built['identity_accuracy']:.1%} "
          f"(chance {built['chance']:.2%}), built in {built['seconds']:.0f} s")
    return 0
