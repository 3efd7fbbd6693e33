import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from scn import data as data_module
from scn.data import RAFDB_IMAGE_DIR, DatasetError, load_dataset, split_validation
from scn.decoded import AUTO_DISK_BYTES, DiskImages, resolve_mode
from tests.helpers import write_affectnet, write_fer2013


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "studio-cache"
    monkeypatch.setenv("SCN_STUDIO_CACHE", str(folder))
    return folder / "decoded"


@pytest.fixture
def decodes(monkeypatch):
    """Counts the images decoded from here on."""
    count = {"n": 0}
    original = data_module._decode_one

    def counting(path, *, size):
        count["n"] += 1
        return original(path, size=size)

    monkeypatch.setattr(data_module, "_decode_one", counting)
    return count


def test_disk_pixels_are_the_in_memory_pixels_for_files_and_csv_sources(tiny_rafdb, tmp_path, cache):
    for root, format, size in ((tiny_rafdb, "rafdb", 24), (write_fer2013(tmp_path / "fer"), "fer2013", 16),
                               (write_affectnet(tmp_path / "affectnet"), "affectnet", 20)):
        memory = load_dataset(root, format=format, image_size=size, decoded_cache="memory")
        disk = load_dataset(root, format=format, image_size=size, decoded_cache="disk")
        assert disk.decoded_cache == "disk" and isinstance(disk.train.images, DiskImages)
        for split in ("train", "test"):
            ours, theirs = getattr(disk, split), getattr(memory, split)
            assert ours.names == theirs.names and torch.equal(ours.labels, theirs.labels)
            assert ours.images.shape == theirs.images.shape
            assert torch.equal(ours.images[:], theirs.images)
    stems = {p.stem.rsplit("-", 1)[0] + p.suffix for p in cache.iterdir() if p.suffix in (".json", ".npy")}
    assert stems == {f"{name}.{ext}" for ext in ("json", "npy") for name in (
        "rafdb-rafdb-24px-train", "rafdb-rafdb-24px-test", "fer-fer2013-16px-train", "fer-fer2013-16px-test",
        "fer-fer2013-16px-val", "affectnet-affectnet-20px-train", "affectnet-affectnet-20px-test")}


def test_a_second_load_reuses_the_files_and_a_changed_file_rebuilds(tiny_rafdb, cache, decodes):
    first = load_dataset(tiny_rafdb, image_size=24, decoded_cache="disk")
    assert decodes["n"] == 48 + 21
    again = load_dataset(tiny_rafdb, image_size=24, decoded_cache="disk")
    assert decodes["n"] == 48 + 21
    assert torch.equal(again.train.images[:], first.train.images[:])

    changed = tiny_rafdb / RAFDB_IMAGE_DIR / "train_00003_aligned.jpg"
    Image.new("RGB", (32, 32), (250, 10, 10)).save(changed)
    os.utime(changed, ns=(time.time_ns(), time.time_ns() + 10**9))
    rebuilt = load_dataset(tiny_rafdb, image_size=24, decoded_cache="disk")
    assert decodes["n"] == 48 + 21 + 48  # the training split alone
    red = rebuilt.train.images[rebuilt.train.names.index("train_00003.jpg")]
    assert red[0].float().mean() > 240 and red[1].float().mean() < 20
    assert len([p for p in cache.glob("*.npy")]) == 2  # rebuilt in place of the old entry


def test_bad_images_on_disk_say_what_memory_says_and_a_skip_bad_rerun_reuses_the_build(tiny_rafdb, cache,
                                                                                       decodes):
    (tiny_rafdb / RAFDB_IMAGE_DIR / "train_00004_aligned.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError) as in_memory:
        load_dataset(tiny_rafdb, image_size=24, decoded_cache="memory")
    with pytest.raises(DatasetError) as on_disk:
        load_dataset(tiny_rafdb, image_size=24, decoded_cache="disk")
    assert str(on_disk.value) == str(in_memory.value) and "--skip-bad" in str(on_disk.value)
    decoded_before = decodes["n"]
    skipped = load_dataset(tiny_rafdb, image_size=24, decoded_cache="disk", skip_bad=True)
    assert decodes["n"] == decoded_before + 21  # only the test split, which the error stopped short of
    memory = load_dataset(tiny_rafdb, image_size=24, decoded_cache="memory", skip_bad=True)
    assert skipped.train.names == memory.train.names and skipped.train.bad == memory.train.bad
    assert torch.equal(skipped.train.images[:], memory.train.images)


def test_the_validation_split_and_subsets_are_views_of_the_file(tiny_rafdb, cache):
    disk = load_dataset(tiny_rafdb, image_size=24, decoded_cache="disk")
    memory = load_dataset(tiny_rafdb, image_size=24, decoded_cache="memory")
    train, val = split_validation(disk.train, fraction=0.25, seed=1)
    expected_train, expected_val = split_validation(memory.train, fraction=0.25, seed=1)
    for view, expected in ((train, expected_train), (val, expected_val)):
        assert isinstance(view.images, DiskImages) and view.images.array is disk.train.images.array
        assert view.names == expected.names and torch.equal(view.images[:], expected.images)
    nested = val.subset([2, 0])
    assert nested.images.array is disk.train.images.array
    assert torch.equal(nested.images[:], expected_val.images[[2, 0]])
    assert torch.equal(val.images[torch.tensor([1, 1])], expected_val.images[[1, 1]])
    assert torch.equal(val.images[3], expected_val.images[3]) and torch.equal(val.images[1:4], expected_val.images[1:4])


SLOW_BUILD = """
import sys, time
from scn import data
original = data._decode_one
def slow(path, *, size):
    time.sleep(0.05)
    return original(path, size=size)
data._decode_one = slow
data.load_dataset(sys.argv[1], image_size=24, decoded_cache="disk", workers=1)
"""


def test_a_killed_build_is_never_used(tiny_rafdb, cache, decodes):
    builder = subprocess.Popen([sys.executable, "-c", SLOW_BUILD, str(tiny_rafdb)], env=os.environ.copy())
    try:
        deadline = time.monotonic() + 240  # a loaded machine can take a minute to import torch
        while not (cache.is_dir() and any(p.stat().st_size > 10_000 for p in cache.glob(".*.tmp"))):
            assert time.monotonic() < deadline and builder.poll() is None, "the build never started writing"
            time.sleep(0.05)
    finally:
        builder.send_signal(signal.SIGKILL)
        builder.wait()
    assert not list(cache.glob("*.json")) and not list(cache.glob("*.npy"))
    data = load_dataset(tiny_rafdb, image_size=24, decoded_cache="disk")
    assert decodes["n"] == 48 + 21
    assert not list(cache.glob(".*"))  # the killed build's scratch file is gone
    assert torch.equal(data.train.images[:], load_dataset(tiny_rafdb, image_size=24, decoded_cache="memory").train.images)


def test_a_file_without_its_manifest_or_of_the_wrong_size_is_rebuilt(tiny_rafdb, cache, decodes):
    load_dataset(tiny_rafdb, image_size=24, decoded_cache="disk")
    (train_manifest,) = cache.glob("*-train-*.json")
    train_manifest.unlink()  # killed between the file's rename and the manifest's
    (test_file,) = cache.glob("*-test-*.npy")
    with open(test_file, "r+b") as file:  # cut short behind the manifest's back
        file.truncate(test_file.stat().st_size // 2)
    decodes["n"] = 0
    data = load_dataset(tiny_rafdb, image_size=24, decoded_cache="disk")
    assert decodes["n"] == 48 + 21
    assert torch.equal(data.test.images[:], load_dataset(tiny_rafdb, image_size=24, decoded_cache="memory").test.images)


def test_auto_chooses_disk_above_the_documented_size():
    per_image = 3 * 112 * 112
    assert resolve_mode("auto", images=AUTO_DISK_BYTES // per_image, size=112) == "memory"
    assert resolve_mode("auto", images=AUTO_DISK_BYTES // per_image + 1, size=112) == "disk"
    assert resolve_mode("memory", images=287_000, size=112) == "memory"
    assert resolve_mode("disk", images=10, size=32) == "disk"
    with pytest.raises(ValueError, match="auto, memory, disk, not 'ram'"):
        resolve_mode("ram", images=10, size=32)


def test_disk_images_read_batches_into_a_buffer(tmp_path):
    array = np.arange(6 * 3 * 2 * 2, dtype=np.uint8).reshape(6, 3, 2, 2)
    np.save(tmp_path / "x.npy", array)
    images = DiskImages(np.load(tmp_path / "x.npy", mmap_mode="c")).take([5, 1, 3])
    out = torch.empty((2, 3, 2, 2), dtype=torch.uint8)
    assert images.gather(torch.tensor([2, 0]), out=out) is out
    assert out.numpy().tolist() == array[[3, 5]].tolist()
    assert len(images) == 3 and images.shape == (3, 3, 2, 2) and images.dtype == torch.uint8


def test_disk_images_refuse_a_read_only_map_and_gather_with_torch(tmp_path):
    array = np.arange(5 * 3 * 2 * 2, dtype=np.uint8).reshape(5, 3, 2, 2)
    np.save(tmp_path / "x.npy", array)
    with pytest.raises(ValueError, match="copy-on-write memory map"):
        DiskImages(np.load(tmp_path / "x.npy", mmap_mode="r"))
    images = DiskImages(np.load(tmp_path / "x.npy", mmap_mode="c"))
    assert torch.equal(images[2], torch.from_numpy(array[2])) and images[2].data_ptr() != images.pixels[2].data_ptr()
    assert torch.equal(images[torch.tensor([4, 0])], torch.from_numpy(array[[4, 0]]))
    assert torch.equal(images[1:3], torch.from_numpy(array[1:3]))
