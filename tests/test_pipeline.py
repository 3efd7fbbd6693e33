import torch

from scn.pipeline import Prefetcher, pin


def test_cpu_prefetcher_yields_each_batch_from_the_first_step_asked():
    images = torch.arange(10 * 3 * 2 * 2, dtype=torch.uint8).reshape(10, 3, 2, 2)
    batches = list(torch.split(torch.tensor([4, 1, 7, 0, 9, 2, 3, 5, 6, 8]), 4))
    cpu = torch.device("cpu")
    assert pin(images, cpu) is images
    steps = list(Prefetcher(images, batches, device=cpu).iterate(first=1))
    assert [step for step, _ in steps] == [1, 2]
    assert all(torch.equal(got, images[batches[step]]) for step, got in steps)
    share = list(Prefetcher(images, batches, device=cpu, rows=lambda total: slice(1, 3)).iterate())
    assert torch.equal(share[0][1], images[batches[0][1:3]])
    assert list(Prefetcher(images, batches, device=cpu).iterate(first=3)) == []


def test_a_cache_on_disk_is_never_pinned_and_yields_the_same_batches(tmp_path):
    import numpy as np

    from scn.decoded import DiskImages
    from scn.pipeline import gather

    images = torch.arange(10 * 3 * 2 * 2, dtype=torch.uint8).reshape(10, 3, 2, 2)
    np.save(tmp_path / "cache.npy", images.numpy())
    on_disk = DiskImages(np.load(tmp_path / "cache.npy", mmap_mode="c"))
    # Pinning would lock the whole file in memory: a GPU run gathers each batch into a pinned buffer.
    assert pin(on_disk, torch.device("cuda")) is on_disk
    batches = list(torch.split(torch.tensor([4, 1, 7, 0, 9, 2, 3, 5, 6, 8]), 4))
    steps = list(Prefetcher(on_disk, batches, device=torch.device("cpu")).iterate())
    assert all(torch.equal(got, images[batches[step]]) for step, got in steps)
    for source in (images, on_disk):
        out = torch.empty((4, 3, 2, 2), dtype=torch.uint8)
        assert torch.equal(gather(source, batches[1], out=out), images[batches[1]])
