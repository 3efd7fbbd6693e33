"""Decoded images on disk: one memory-mapped `.npy` file per split, built once, reused by later runs.

At AffectNet's size (~287,000 training images) the decoded uint8 pixels are 10.8 GB at 112 px: too
much to hold in memory, and too slow to decode again for every run. `cached_split` decodes a split
once into `<studio cache>/decoded/<entry>.npy` ([N, 3, S, S] uint8) and returns it as `DiskImages`,
whose batches are read from the file's pages on demand; the pages are file-backed, so the kernel
can drop them under memory pressure instead of the process holding them.

An entry is named by the dataset root, its format, the image size and the split, and its manifest
(`<entry>.json`) records a digest of the listed files (their names, sizes and modification times),
so a second run on the same files reuses it, and a changed, added or removed file rebuilds it in
place of the old one. The file is written under a temporary name and renamed when complete, the
manifest last, so a build that is killed leaves nothing that a later run would use.
"""
import fcntl
import hashlib
import json
import os
import tempfile
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from scn.config import DECODED_CACHES

MANIFEST_VERSION = 1
# `auto` keeps a dataset in memory up to this many decoded bytes (all splits together): beyond it
# the pixels, with the model and the optimizer, would pass the 4 GB a training process may hold.
AUTO_DISK_BYTES = 2 * 2**30


def decoded_folder() -> Path:
    """The folder of the decoded caches: `decoded/` in the studio cache (scn.synth.cache)."""
    from scn.synth.cache import studio_cache  # the generator's package needs OpenCV: import on use

    return studio_cache() / "decoded"


def resolve_mode(mode: str, *, images: int, size: int) -> str:
    """`memory` or `disk` for `mode` (one of DECODED_CACHES) and a dataset of `images` images
    decoded at `size` px: `auto` chooses disk above AUTO_DISK_BYTES."""
    if mode not in DECODED_CACHES:
        raise ValueError(f"decoded cache must be one of {', '.join(DECODED_CACHES)}, not {mode!r}")
    if mode != "auto":
        return mode
    return "disk" if images * 3 * size * size > AUTO_DISK_BYTES else "memory"


class DiskImages:
    """Some rows of a memory-mapped uint8 array [N, 3, S, S], read only when asked for.

    Indexing with an int, a slice or positions (a tensor, array or list) returns a uint8 tensor
    holding a copy of just those rows; `take(positions)` returns a view of some rows without reading
    any pixels, so subsets of a split (the validation split) cost an index array, not a copy.

    `array` is a copy-on-write memory map (`np.load(..., mmap_mode="c")`): torch can view it without
    a copy, so rows are gathered by torch.index_select on every thread. numpy's take reads on one
    thread, 15 ms a batch of 256 at 224 px on a 16-core GPU machine, longer than the step it feeds.
    Nothing writes to it, and a write would stay in this process's memory, never reach the file.
    """

    def __init__(self, array: np.ndarray, rows: np.ndarray | None = None, *, path: Path | None = None):
        if not array.flags.writeable:
            raise ValueError("DiskImages needs a copy-on-write memory map (np.load(..., mmap_mode='c')), "
                             "not a read-only one: torch cannot view a read-only array")
        self.array, self.path = array, path
        self.pixels = torch.from_numpy(array)
        self.rows = np.arange(len(array), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.rows), *self.array.shape[1:]))

    @property
    def dtype(self) -> torch.dtype:
        return torch.uint8

    def _file_rows(self, index) -> np.ndarray:
        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy()
        return self.rows[index]

    def __getitem__(self, index) -> torch.Tensor:
        rows = self._file_rows(index)
        if rows.ndim == 0:
            return self.pixels[int(rows)].clone()
        return torch.index_select(self.pixels, 0, torch.from_numpy(rows))

    def take(self, positions) -> "DiskImages":
        """The rows at `positions` of this view, as a view."""
        return DiskImages(self.array, self._file_rows(positions), path=self.path)

    def gather(self, positions, *, out: torch.Tensor) -> torch.Tensor:
        """Read the rows at `positions` straight into `out` (a pinned buffer, say) and return it."""
        return torch.index_select(self.pixels, 0, torch.from_numpy(self._file_rows(positions)), out=out)


def listing_digest(items) -> str:
    """A digest of what determines a split's pixels besides the decoder: each item's name (a path,
    or a scn.formats source with its csv line or face box) and its file's size and modification
    time; a missing file counts as such, so its appearance changes the digest."""
    stamps, digest = {}, hashlib.sha256()
    for item in items:
        file = item if isinstance(item, Path) else item.path
        if file not in stamps:
            try:
                stat = os.stat(file)
                stamps[file] = f"{stat.st_size}:{stat.st_mtime_ns}"
            except OSError:
                stamps[file] = "missing"
        digest.update(f"{item}\t{getattr(item, 'box', '')}\t{stamps[file]}\n".encode())
    return digest.hexdigest()


def entry_name(*, root: Path, format: str, size: int, split: str) -> str:
    """`<root name>-<format>-<size>px-<split>-<hash of the absolute root>`: one entry per split."""
    root = Path(root).resolve()
    tag = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    return f"{root.name or 'root'}-{format}-{size}px-{split}-{tag}"


def _manifest_matches(manifest_path: Path, array_path: Path, expected: dict) -> dict | None:
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        return None
    if {k: manifest.get(k) for k in expected} != expected:
        return None
    if not array_path.is_file() or array_path.stat().st_size != manifest.get("bytes"):
        return None
    return manifest


def _decoded_in_order(decode, items, *, workers: int):
    """decode(item) for each item, in order, by `workers` threads (PIL releases the GIL), keeping
    only a window of images in flight so a split of any size needs little memory."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = deque()
        for item in items:
            pending.append(pool.submit(decode, item))
            if len(pending) >= 32 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _build(array_path: Path, items: list, *, decode, size: int, workers: int, progress: bool,
           description: str) -> list:
    """Write the decoded split to a temporary file beside `array_path` and rename it there when
    complete; returns each item's error (None where it decoded; its row is then zeros)."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False,
              "shape": (len(items), 3, size, size)}
    blank = np.zeros((3, size, size), dtype=np.uint8)
    handle, scratch = tempfile.mkstemp(prefix=f".{array_path.stem}.", suffix=".tmp", dir=array_path.parent)
    errors = []
    try:
        with os.fdopen(handle, "wb") as file, tqdm(total=len(items), unit="img", desc=description,
                                                    disable=not progress) as bar:
            np.lib.format.write_array_header_1_0(file, header)
            for array, error in _decoded_in_order(decode, items, workers=workers):
                file.write((blank if array is None else array).tobytes())
                errors.append(error)
                bar.update(1)
            file.flush()
            # On disk before the rename, so a crash after it cannot leave a renamed, unwritten file.
            os.fsync(file.fileno())
        os.replace(scratch, array_path)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise
    return errors


def _write_manifest(path: Path, manifest: dict) -> None:
    scratch = path.with_name(f".{path.name}.tmp")
    scratch.write_text(json.dumps(manifest, indent=1))
    os.replace(scratch, path)


def cached_split(items: list, *, decode, root, format: str, size: int, split: str, workers: int = 2,
                 folder: Path | None = None, progress: bool = True, log=None) -> tuple:
    """(DiskImages of every item, each item's error or None) for one split, from its cache entry,
    decoding `items` (paths or scn.formats sources) with `decode(item) -> (array or None, error or
    None)` only when the entry is missing or its files have changed.

    `folder` defaults to `decoded_folder()`. `log` (a callable taking a message) hears when a build
    starts and ends, for a run log that has no progress bar. Rows of items that failed to decode are
    zeros; the errors are kept in the manifest so a reused entry reports them as the build did. Processes that
    ask at once (torchrun's ranks, two runs) are serialised by a lock: one builds, the others reuse.
    """
    folder = Path(folder) if folder is not None else decoded_folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"cannot create the decoded-image cache {folder}: {error.strerror or error}") from None
    name = entry_name(root=root, format=format, size=size, split=split)
    array_path, manifest_path = folder / f"{name}.npy", folder / f"{name}.json"
    expected = {"version": MANIFEST_VERSION, "root": str(Path(root).resolve()), "format": format,
                "size": size, "split": split, "count": len(items), "listing": listing_digest(items)}
    with open(folder / f"{name}.lock", "a") as lock:
        # Readers share the lock and a builder holds it alone, so no file is opened mid-rebuild.
        fcntl.flock(lock, fcntl.LOCK_SH)
        manifest = _manifest_matches(manifest_path, array_path, expected)
        if manifest is None:
            # Converting the lock lets go of it for a moment: another process may build meanwhile.
            fcntl.flock(lock, fcntl.LOCK_EX)
            manifest = _manifest_matches(manifest_path, array_path, expected)
        if manifest is None:
            manifest = _rebuild(array_path, manifest_path, items, expected=expected, decode=decode, workers=workers,
                                progress=progress, log=log)
        array = np.load(array_path, mmap_mode="c")
    errors = [None] * len(items)
    for position, error in manifest["errors"]:
        errors[position] = error
    return DiskImages(array, path=array_path), errors


def _rebuild(array_path: Path, manifest_path: Path, items: list, *, expected: dict, decode, workers: int,
             progress: bool, log) -> dict:
    """Build an entry, its manifest last, and return the manifest; the caller holds the lock alone."""
    split, size = expected["split"], expected["size"]
    # Holding the lock, scratch files of this entry are leftovers of a killed build.
    for stale in array_path.parent.glob(f".{array_path.stem}.*"):
        stale.unlink(missing_ok=True)
    manifest_path.unlink(missing_ok=True)
    if log is not None:
        log(f"decoding {len(items):,} {split} images once into {array_path} "
            f"({len(items) * 3 * size * size / 1e9:.1f} GB; later runs on these files reuse it)")
    started = time.perf_counter()
    errors = _build(array_path, items, decode=decode, size=size, workers=workers, progress=progress,
                    description=f"decoding {split} to disk")
    if log is not None:
        log(f"decoded {len(items):,} {split} images in {time.perf_counter() - started:.0f} s")
    manifest = {**expected, "bytes": array_path.stat().st_size,
                "errors": [[i, e] for i, e in enumerate(errors) if e is not None]}
    _write_manifest(manifest_path, manifest)
    return manifest
