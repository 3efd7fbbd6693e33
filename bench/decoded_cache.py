"""The decoded-image cache on disk at AffectNet's size: build rate, disk size, memory, training speed.

Writes an AffectNet download's layout (Manually_Annotated_file_lists/training.csv and
validation.csv, JPEG photos under Manually_Annotated_Images/<folder>/<hex name>.jpg, each with a
face box), then, each in a fresh process so that its memory is its own:
  * builds the cache (scn.decoded) through load_dataset(decoded_cache="disk"), as a run does;
  * trains the real trainer (scn.train.Trainer) for some rounds of steps on all the images from
    the cache on disk, the validation split carved out of it as a view;
  * trains two trainers on a subset that fits in memory (default 20,000 images), one reading the
    cache on disk and one decoded into memory, taking turns round by round so that other load on
    the machine slows both alike: images/s of the two paths on equal terms.
Each process's resident memory is sampled from /proc every 0.1 s: anonymous (the process's own,
what counts against a memory limit) and file-backed (pages of mapped files, which the kernel can
drop and read again).

Rendering 287,000 distinct faces with scn.synth would take over an hour of CPU, so the photos are
made from a smaller pool of rendered faces (`--pool`), each file with its own crop offset, mirror,
brightness and JPEG quality: files as large and as costly to decode and resize as distinct ones.
Labels follow AffectNet's manual training-set balance over its 7 basic expressions (no contempt).

    python -m bench.decoded_cache --json bench/results/decoded_cache.json     # 287,000 photos, AffectNet size
    python -m bench.decoded_cache --train 2000 --test 200 --pool 40 --memory-subset 500 --steps 3 --rounds 2   # quick check

Everything it writes (photos and cache) is deleted at the end unless --keep.
"""
import argparse
import csv
import hashlib
import json
import multiprocessing
import os
import shutil
import statistics
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image

from bench.results_io import write_results
from scn.classes import CLASS_NAMES, class_index
from scn.formats import affectnet

# AffectNet's manually annotated training set, images per expression (neutral … anger).
AFFECTNET_COUNTS = (74_874, 134_415, 25_459, 14_090, 6_378, 3_803, 24_882)
JITTER = 16  # pixels of crop offset: faces are rendered this much larger than the photos
CSV_HEADER = ["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height", "facial_landmarks",
              "expression", "valence", "arousal"]


class PeakMemory:
    """Resident memory of this process when the `with` block starts and its peak within, anonymous
    and file-backed (RssAnon, RssFile of /proc/self/status, in bytes, sampled every 0.1 s)."""

    def __enter__(self):
        self.anon = self.file = 0
        self._read()
        self.start_anon, self.start_file = self.anon, self.file
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines()
                      if line.startswith(("RssAnon", "RssFile")))
        self.anon = max(self.anon, int(fields["RssAnon"].split()[0]) * 1024)
        self.file = max(self.file, int(fields["RssFile"].split()[0]) * 1024)

    def _sample(self) -> None:
        while not self._done.wait(0.1):
            self._read()

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()
        self._read()

    def report(self) -> dict:
        return {"start_anon_gb": round(self.start_anon / 1e9, 3), "start_file_gb": round(self.start_file / 1e9, 3),
                "peak_anon_gb": round(self.anon / 1e9, 3), "peak_file_gb": round(self.file / 1e9, 3)}


def render_pool(count: int, *, size: int, workers: int) -> dict:
    """{canonical class: [faces]} of `count` faces rendered by scn.synth at `size` px, the classes
    in AffectNet's proportions (at least one face each)."""
    from scn.synth.config import SynthConfig
    from scn.synth.sample import draw_sample, render, sample_rng

    config = SynthConfig()
    shares = np.array(AFFECTNET_COUNTS) / sum(AFFECTNET_COUNTS)
    classes = [CLASS_NAMES[class_index(affectnet.EXPRESSIONS[code])]
               for code, n in enumerate(np.maximum(1, np.round(shares * count)).astype(int)) for _ in range(n)]

    def one(index: int):
        rng = sample_rng(seed=0, split="train", index=index)
        return classes[index], render(draw_sample(rng, classes[index], config=config), size=size)[0]

    pool = {}
    with ThreadPoolExecutor(max_workers=workers) as threads:
        for name, face in threads.map(one, range(len(classes))):
            pool.setdefault(name, []).append(face)
    return pool


def _photo(face: np.ndarray, rng: np.random.Generator, *, size: int) -> tuple:
    """A photo of `size` px cut from a pool face at a random offset, maybe mirrored, brightened or
    darkened, and the face box around its centre: (JPEG bytes, box)."""
    dx, dy = rng.integers(0, JITTER + 1, 2)
    pixels = face[dy:dy + size, dx:dx + size]
    if rng.random() < 0.5:
        pixels = pixels[:, ::-1]
    table = np.clip(np.arange(256) * rng.uniform(0.75, 1.25), 0, 255).astype(np.uint8)
    image = Image.fromarray(np.ascontiguousarray(table[pixels]))
    margin = size // 14
    box = (margin + int(rng.integers(-4, 5)), margin + int(rng.integers(-4, 5)), size - 2 * margin, size - 2 * margin)
    buffer = BytesIO()
    image.save(buffer, "JPEG", quality=int(rng.integers(70, 96)))
    return buffer.getvalue(), box


def write_affectnet(root: Path, *, train: int, test: int, pool: dict, size: int, workers: int) -> dict:
    """AffectNet's layout under `root`: lists and photos. Returns counts, bytes and seconds."""
    started = time.perf_counter()
    images = root / affectnet.IMAGE_DIR
    shares = np.array(AFFECTNET_COUNTS) / sum(AFFECTNET_COUNTS)
    rng = np.random.default_rng(0)
    plan = {"train": rng.choice(len(shares), size=train, p=shares),
            # AffectNet's validation set is balanced: 500 per expression.
            "test": np.arange(test) % len(shares)}
    total_bytes = 0

    def write(job):
        split, start, codes = job
        rows, written = [], 0
        local = np.random.default_rng([1, start, len(split)])
        for offset, code in enumerate(codes):
            index = start + offset
            faces = pool[CLASS_NAMES[class_index(affectnet.EXPRESSIONS[code])]]
            data, box = _photo(faces[local.integers(len(faces))], local, size=size)
            name = f"{index % 1000 + 1}/{hashlib.sha1(f'{split}{index}'.encode()).hexdigest()}.jpg"
            (images / name).write_bytes(data)
            written += len(data)
            rows.append([name, *box, "", int(code), 0.0, 0.0])
        return rows, written

    for folder in range(1, 1001):
        (images / str(folder)).mkdir(parents=True, exist_ok=True)
    (root / affectnet.LIST_DIR).mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=workers) as threads:
        for split, codes in plan.items():
            chunk = 1000
            jobs = [(split, start, codes[start:start + chunk]) for start in range(0, len(codes), chunk)]
            with open(root / affectnet.LIST_DIR / affectnet.LISTS[split], "w", newline="") as handle:
                out = csv.writer(handle)
                out.writerow(CSV_HEADER)
                for rows, written in threads.map(write, jobs):
                    out.writerows(rows)
                    total_bytes += written
    seconds = time.perf_counter() - started
    return {"train": train, "test": test, "photo_size": size, "jpeg_gb": round(total_bytes / 1e9, 3),
            "seconds": round(seconds, 1), "files_per_s": round((train + test) / seconds, 1)}


def build_cache(root: str, *, size: int, workers: int) -> dict:
    """Decode every image into the cache on disk, as a run's first load does (own process)."""
    from scn.data import load_dataset

    with PeakMemory() as memory:
        started = time.perf_counter()
        data = load_dataset(root, format="affectnet", image_size=size, decoded_cache="disk", workers=workers,
                            progress=True)
        seconds = time.perf_counter() - started
    files = [data.train.images.path, data.test.images.path]
    count = len(data.train) + len(data.test)
    return {"images": count, "seconds": round(seconds, 1), "images_per_s": round(count / seconds, 1),
            "workers": workers, "cache_gb": round(sum(f.stat().st_size for f in files) / 1e9, 3), **memory.report()}


def _trainer(root: str, *, mode: str, size: int, batch: int, run_dir: Path):
    import logging

    from scn.config import make_config
    from scn.store import RunWriter
    from scn.train import StopSignal, Trainer

    config = make_config(data=root, format="affectnet", image_size=size, batch_size=batch, epochs=1000,
                         pretrained="none", decoded_cache=mode, log_every=10, seed=0)
    log = logging.getLogger("bench.decoded_cache")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    writer = RunWriter(run_dir)
    writer.write_config(config.to_dict())
    return Trainer(config, run_dir=run_dir, writer=writer, log=log, stop=StopSignal(), checkpoint=None,
                   progress=False)


class _Enough(Exception):
    """Ends a timed round after its steps, without the checkpoint a stop request would write."""


def _timed_steps(trainer, *, epoch: int, steps: int) -> float:
    """Images/s of the first `steps` steps of `epoch` (the first step not timed: it follows a
    pause), the batch gathering between steps included."""
    marks, step = [], trainer._train_step

    def counted(*args):
        result = step(*args)
        marks.append(time.perf_counter())
        if len(marks) == steps:
            raise _Enough
        return result

    trainer._train_step = counted
    try:
        trainer.train_epoch(epoch)
    except _Enough:
        pass
    finally:
        trainer._train_step = step
    return trainer.config.batch_size * (len(marks) - 1) / (marks[-1] - marks[0])


def train_rounds(root: str, *, modes: tuple, size: int, batch: int, steps: int, rounds: int, run_dir: str) -> dict:
    """The trainer (scn.train.Trainer) on the dataset at `root`, one per decoded-cache mode, in one
    process: `rounds` rounds of `steps` steps, the modes taking turns so that other load on the
    machine slows them alike; the first round warms up and is dropped. Images/s (median of the
    rounds), seconds to load the data, and the process's peak memory."""
    with PeakMemory() as memory:
        trainers, results = {}, {}
        for mode in modes:
            started = time.perf_counter()
            trainers[mode] = _trainer(root, mode=mode, size=size, batch=batch, run_dir=Path(run_dir) / mode)
            results[mode] = {"load_seconds": round(time.perf_counter() - started, 1),
                             "train_images": len(trainers[mode].train_split),
                             "val_images": len(trainers[mode].val_split),
                             "val_is_view": type(trainers[mode].val_split.images).__name__ == "DiskImages",
                             "images_per_s_by_round": []}
        for epoch in range(1, rounds + 1):
            for mode, trainer in trainers.items():
                results[mode]["images_per_s_by_round"].append(round(_timed_steps(trainer, epoch=epoch, steps=steps), 1))
    for row in results.values():
        row["images_per_s"] = statistics.median(row["images_per_s_by_round"][1:] or row["images_per_s_by_round"])
    return {"modes": results, "batch": batch, "steps_per_round": steps, "rounds": rounds, **memory.report()}


def subset_of(root: Path, target: Path, *, count: int) -> Path:
    """An AffectNet folder listing the first `count` training photos of `root` (and all its
    validation photos), sharing its photo folder."""
    (target / affectnet.LIST_DIR).mkdir(parents=True)
    (target / affectnet.IMAGE_DIR).symlink_to(root / affectnet.IMAGE_DIR)
    for split, keep in (("train", count + 1), ("test", None)):
        lines = (root / affectnet.LIST_DIR / affectnet.LISTS[split]).read_text().splitlines(keepends=True)
        (target / affectnet.LIST_DIR / affectnet.LISTS[split]).write_text("".join(lines[:keep]))
    return target


def _in_own_process(function, **kwargs):
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as process:
        return process.submit(function, **kwargs).result()


def measure(*, train: int, test: int, pool: int, photo_size: int, image_size: int, memory_subset: int,
            batch: int, steps: int, rounds: int, workers: int, folder: Path, report=print) -> dict:
    """Every figure of the module docstring, for a dataset written under `folder`; `report(message,
    results so far)` hears after each part, so a run cut short keeps what it measured."""
    os.environ["SCN_STUDIO_CACHE"] = str(folder / "studio-cache")
    root = folder / "affectnet"
    started = time.perf_counter()
    faces = render_pool(pool, size=photo_size + JITTER, workers=workers)
    pool_seconds = time.perf_counter() - started
    results = {"pool": {"faces": sum(map(len, faces.values())), "seconds": round(pool_seconds, 1)}}
    report(f"rendered {results['pool']['faces']} faces in {pool_seconds:.0f} s", results)
    results["dataset"] = write_affectnet(root, train=train, test=test, pool=faces, size=photo_size, workers=workers)
    del faces
    report(f"wrote {train + test:,} photos: {results['dataset']}", results)
    results["build"] = _in_own_process(build_cache, root=str(root), size=image_size, workers=workers)
    report(f"built the cache: {results['build']}", results)
    common = dict(size=image_size, batch=batch, steps=steps, rounds=rounds)
    results["train_disk_all"] = _in_own_process(train_rounds, root=str(root), modes=("disk",),
                                                run_dir=str(folder / "runs-all"), **common)
    report(f"trained on all images from disk: {results['train_disk_all']}", results)
    subset = subset_of(root, folder / "subset", count=min(memory_subset, train))
    results["train_subset_disk_vs_memory"] = _in_own_process(train_rounds, root=str(subset),
                                                             modes=("disk", "memory"),
                                                             run_dir=str(folder / "runs-subset"), **common)
    report(f"trained on {min(memory_subset, train):,} images: {results['train_subset_disk_vs_memory']}", results)
    results["in_memory_all_would_need_gb"] = round((train + test) * 3 * image_size ** 2 / 1e9, 2)
    return results


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=287_000, help="training photos (default 287,000)")
    parser.add_argument("--test", type=int, default=4_000, help="validation photos, the test split (default 4,000)")
    parser.add_argument("--pool", type=int, default=1_000, help="faces rendered to make the photos from (default 1,000)")
    parser.add_argument("--photo-size", type=int, default=224, help="photo side in pixels (default 224)")
    parser.add_argument("--image-size", type=int, default=112, help="decoded and training size (default 112)")
    parser.add_argument("--memory-subset", type=int, default=20_000,
                        help="training photos of the memory-versus-disk comparison (default 20,000)")
    parser.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    parser.add_argument("--steps", type=int, default=12, help="training steps per round (default 12)")
    parser.add_argument("--rounds", type=int, default=4,
                        help="training rounds per mode, the first a warm-up (default 4)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="decoding and writing threads (default: one per core)")
    parser.add_argument("--dir", help="scratch folder for photos and cache (default: a new temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the photos and the cache")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    if args.steps < 2 or args.rounds < 1:
        parser.error("a measurement needs --steps 2 or more and --rounds 1 or more")
    folder = Path(args.dir or tempfile.mkdtemp(prefix="decoded-cache-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    previous = os.environ.get("SCN_STUDIO_CACHE")
    started = time.perf_counter()
    settings = {k: v for k, v in vars(args).items() if k not in ("dir", "keep", "json")}

    def report(message: str, results: dict) -> None:
        print(message, flush=True)
        if args.json:
            write_results(args.json, {**results, "complete": False, "settings": settings},
                          module="bench.decoded_cache", argv=argv)

    try:
        results = measure(train=args.train, test=args.test, pool=args.pool, photo_size=args.photo_size,
                          image_size=args.image_size, memory_subset=args.memory_subset, batch=args.batch,
                          steps=args.steps, rounds=args.rounds, workers=args.workers, folder=folder,
                          report=report)
    finally:
        if previous is None:
            os.environ.pop("SCN_STUDIO_CACHE", None)
        else:
            os.environ["SCN_STUDIO_CACHE"] = previous
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    results["complete"], results["settings"] = True, settings
    results["machine"] = {"cpus": os.cpu_count(), "load_average": os.getloadavg()}
    print(json.dumps(results, indent=1))
    if args.json:
        write_results(args.json, results, module="bench.decoded_cache", argv=argv)
    return results


if __name__ == "__main__":
    main()
