"""Prepare a folder of raw photos for training: every face found, aligned and cropped.

Each face is found with MTCNN and aligned on its five landmarks to the template predict uses
(`scn.align.TEMPLATE`: the built-in benchmark's framing), as RAF-DB's aligned images were made.
Subfolders are kept, so a class-per-folder tree stays one (`--format imagefolder`). Photos with no
face and files that cannot be read are listed at the end and in DIR/align_report.csv. An output
folder that already holds files is refused unless --overwrite.
"""
import sys
from pathlib import Path

HELP = "align the faces of a folder of photos for training (one crop per face, class folders kept)"


def add_arguments(parser) -> None:
    parser.add_argument("--input", required=True, type=Path, metavar="RAW", help="folder of photos (any depth)")
    parser.add_argument("--output", required=True, type=Path, metavar="DIR", help="folder for the aligned faces")
    parser.add_argument("--size", type=int, default=100, help="side of the aligned faces in pixels "
                                                               "(%(default)s, as RAF-DB's aligned images)")
    parser.add_argument("--largest", action="store_true",
                        help="keep only each photo's largest face (PHOTO.png instead of PHOTO_faceN.png)")
    parser.add_argument("--detector", choices=("mtcnn", "haar"), default="mtcnn",
                        help="face detector: mtcnn (aligned on 5 landmarks, default) or haar (square crops)")
    parser.add_argument("--overwrite", action="store_true", help="replace files of the same names in DIR")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    # Imported here so that `python -m scn --help` does not wait for torch and OpenCV.
    from scn.align import align_folder
    from scn.faces import DetectorUnavailableError

    try:
        report = align_folder(args.input, args.output, size=args.size, largest=args.largest,
                              detector=args.detector, overwrite=args.overwrite, progress=not args.no_progress)
    except (ValueError, OSError, DetectorUnavailableError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    problems = report[report["status"] != "aligned"]
    for row in problems.itertuples():
        print(f"{row.status}: {row.message or row.file}")
    photos = int((report["status"] == "aligned").sum())
    print(f"{int(report['written'].sum())} faces from {photos} photos written to {args.output}; "
          f"{len(problems)} files without a face crop (report: {args.output / 'align_report.csv'})")
    return 0
