"""How fast the built-in benchmark renders: RAF-DB size (12,271 train + 3,068 test at 100x100).

    python -m bench.synth_speed [--train 12271] [--test 3068] [--size 100] [--workers N]

Prints images/s and seconds for the whole generation (rendering, JPEG encoding, writing files and
labels), into a temporary folder that is deleted afterwards. It also prints the CPU seconds of this
process and its workers: on a shared machine the wall time depends on the other load, while CPU
seconds / workers is what the same run takes on otherwise idle cores.
"""
import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from scn.synth import generate_dataset


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=12271)
    parser.add_argument("--test", type=int, default=3068)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    workers = args.workers or len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        generate_dataset(Path(scratch) / "synth", train=args.train, test=args.test, size=args.size,
                         noise=0.1, workers=workers, progress=False)
        seconds = time.perf_counter() - start
    total = args.train + args.test
    cpu = sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
              for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    print(f"{total} images at {args.size}px with {workers} workers: {seconds:.1f} s wall, "
          f"{total / seconds:.0f} images/s; {cpu:.1f} CPU s ({cpu / workers:.1f} s per worker)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
