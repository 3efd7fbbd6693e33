"""How fast the built-in benchmark renders: RAF-DB size (12,271 train + 3,068 test at 100x100).

    python -m bench.synth_speed [--train 12271] [--test 3068] [--size 100] [--workers N]
        [--json bench/results/synth_speed.json]

Times the whole generation (rendering, JPEG encoding, writing files and labels) into a temporary
folder that is deleted afterwards, and records images/s, wall seconds and the CPU seconds of this
process and its workers: on a shared machine the wall time depends on the other load, while CPU
seconds / workers is what the same run takes on otherwise idle cores.
"""
import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from bench.results_io import write_results
from scn.synth import generate_dataset


def cpu_seconds() -> float:
    """CPU time of this process and of its finished worker processes so far."""
    return sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=12271)
    parser.add_argument("--test", type=int, default=3068)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--json", default="bench/results/synth_speed.json")
    args = parser.parse_args(argv)
    workers = args.workers or len(os.sched_getaffinity(0))
    load_before = list(os.getloadavg())
    cpu_before = cpu_seconds()
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        generate_dataset(Path(scratch) / "synth", train=args.train, test=args.test, size=args.size,
                         noise=0.1, workers=workers, progress=False)
        seconds = time.perf_counter() - start
    total = args.train + args.test
    cpu = cpu_seconds() - cpu_before
    print(f"{total} images at {args.size}px with {workers} workers: {seconds:.1f} s wall, "
          f"{total / seconds:.0f} images/s; {cpu:.1f} CPU s ({cpu / workers:.1f} s per worker)")
    write_results(args.json, {"images": total, "train": args.train, "test": args.test, "size": args.size,
                              "workers": workers, "wall_seconds": round(seconds, 3),
                              "images_per_s": round(total / seconds, 1), "cpu_seconds": round(cpu, 3),
                              "cpu_seconds_per_worker": round(cpu / workers, 1),
                              "machine": {"cpus": os.cpu_count(),
                                          "load_average_before": load_before,
                                          "load_average_after": list(os.getloadavg())}},
                  module="bench.synth_speed", argv=argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
