"""Getting uint8 batches from the decoded cache onto the training device.

On CUDA an in-memory cache lives in pinned memory, each batch is gathered into a pinned buffer and
copied on a side stream one step ahead, so the copy overlaps the previous step's compute and the CPU
never waits for the GPU. A cache on disk (scn.decoded.DiskImages) is never pinned: pinning would
lock the whole file in memory; its batches are read from the file straight into the pinned buffer.
On the CPU there is nothing to overlap: batches are gathered when asked.
"""
import torch


def pin(images, device: torch.device):
    """The cache as the pipeline wants it: pinned when an in-memory cache feeds a GPU (asynchronous
    copies need page-locked memory), unchanged otherwise."""
    return images.pin_memory() if device.type == "cuda" and isinstance(images, torch.Tensor) else images


def gather(images, positions: torch.Tensor, *, out: torch.Tensor) -> torch.Tensor:
    """The rows of `images` (a uint8 tensor or DiskImages) at `positions`, written into `out`."""
    if isinstance(images, torch.Tensor):
        return torch.index_select(images, 0, positions, out=out)
    return images.gather(positions, out=out)


class Prefetcher:
    """Iterates over `batches` (index tensors into `images`, a uint8 tensor or DiskImages) and
    yields each batch's rows `rows` (a slice: this rank's share, or all of it) on `device`, as uint8."""

    def __init__(self, images, batches: list, *, device: torch.device, rows=None):
        self.images, self.batches, self.device = images, batches, device
        self.rows = rows or (lambda total: slice(0, total))
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None

    def _gather(self, positions: torch.Tensor) -> torch.Tensor:
        positions = positions[self.rows(len(positions))]
        if self.stream is None:
            return self.images[positions]
        buffer = torch.empty((len(positions), *self.images.shape[1:]), dtype=self.images.dtype,
                             pin_memory=True)
        gather(self.images, positions, out=buffer)
        with torch.cuda.stream(self.stream):
            # The caching host allocator keeps `buffer` alive until this copy has run.
            return buffer.to(self.device, non_blocking=True)

    def iterate(self, *, first: int = 0):
        """(step, images) from step `first` on."""
        if first >= len(self.batches):
            return
        upcoming = self._gather(self.batches[first])
        for step in range(first, len(self.batches)):
            current = upcoming
            if self.stream is not None:
                torch.cuda.current_stream(self.device).wait_stream(self.stream)
                current.record_stream(torch.cuda.current_stream(self.device))
            if step + 1 < len(self.batches):
                upcoming = self._gather(self.batches[step + 1])
            yield step, current
