"""How long a training batch takes to gather on the host: the step that feeds a GPU (scn.pipeline).

Writes a decoded cache file of random pixels (`--images` at `--size` px, as scn.decoded lays it
out), reads it once so it sits in the page cache as a reused cache does, and times the gather of
a random batch into one buffer, three ways: from a uint8 tensor in memory (an in-memory cache);
from the file through scn.decoded.DiskImages (torch.index_select on a copy-on-write map, what a
run on a cache on disk does); and numpy's take from the same map (what DiskImages did before, on
one thread). Median milliseconds per batch over `--repeats`.

    python -m bench.batch_gather --json bench/results/batch_gather.json     # a few seconds
"""
import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.results_io import write_results
from scn.decoded import DiskImages


def timed(gather, *, repeats: int) -> float:
    gather()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        gather()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def measure(*, images: int, size: int, batch: int, repeats: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cache.npy"
        array = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(images, 3, size, size))
        for start in range(0, images, 1024):
            array[start:start + 1024] = rng.integers(0, 256, array[start:start + 1024].shape, dtype=np.uint8)
        array.flush()
        del array
        mapped = np.load(path, mmap_mode="c")
        disk = DiskImages(mapped)
        memory = torch.from_numpy(np.array(mapped))
        positions = torch.from_numpy(rng.permutation(images)[:batch])
        out = torch.empty((batch, 3, size, size), dtype=torch.uint8)
        result = {
            "memory_index_select_ms": timed(lambda: torch.index_select(memory, 0, positions, out=out), repeats=repeats),
            "disk_images_gather_ms": timed(lambda: disk.gather(positions, out=out), repeats=repeats),
            "disk_numpy_take_ms": timed(lambda: np.take(mapped, positions.numpy(), axis=0, out=out.numpy()),
                                        repeats=repeats),
        }
        del disk, mapped
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    report = {"threads": torch.get_num_threads(),
              "images": args.images, "size": args.size, "batch": args.batch, "repeats": args.repeats,
              **measure(images=args.images, size=args.size, batch=args.batch, repeats=args.repeats)}
    report["wall_seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=1))
    if args.json:
        write_results(args.json, report, module="bench.batch_gather", argv=argv)


if __name__ == "__main__":
    main()
