"""Data parallelism under torchrun: which process this is, its share of each batch, and the few
collectives SCN needs.

`torchrun --nproc-per-node N -m scn train …` starts N trainers with RANK, WORLD_SIZE and LOCAL_RANK
in their environment; `from_environment()` turns that into a `Ranks` with the process group
initialised (NCCL on CUDA, gloo on the CPU). Under torchrun this holds for one process too, so
`torchrun --nproc-per-node 1` on one GPU takes the data-parallel path end to end (DDP, SyncBatchNorm,
the gathers) and checks a machine's NCCL before a many-GPU launch. A plain `python -m scn train`
gets a single-process `Ranks` whose collectives return their input, so the trainer has one code path.

SCN's two rules under data parallelism: the high/low split and rank regularization are
taken over the global batch (`gather` carries alpha's gradient back to the rank that computed it),
and relabel decisions are gathered so that every rank applies the same ones to its copy of the
labels. Every rank draws the same seeded permutation and takes a contiguous slice of each global
batch (`share`), so concatenating the slices in rank order gives the global batch back.
"""
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    # The process group's ("nccl" or "gloo"); None for a plain single process.
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """The one process that writes the run store, the log and the checkpoints."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """Whether collectives go through a process group."""
        return self.backend is not None

    def sizes(self, total: int) -> list:
        """Rows of a global batch of `total` held by each rank (the first ranks take one more)."""
        return [total // self.world + (r < total % self.world) for r in range(self.world)]

    def share(self, total: int) -> slice:
        """This rank's rows of a global batch of `total`."""
        sizes = self.sizes(total)
        start = sum(sizes[:self.rank])
        return slice(start, start + sizes[self.rank])

    def gather(self, tensor: torch.Tensor, *, total: int) -> torch.Tensor:
        """The global batch's rows from every rank's `tensor` (its `share(total)` rows), in rank
        order, on every rank. Differentiable: the gradient of each row returns to its rank."""
        if not self.active:
            return tensor
        return _Gather.apply(tensor, self.sizes(total))

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Elementwise sum over ranks (a new tensor; the input is left alone)."""
        if not self.active:
            return tensor
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    def any(self, flag: bool, *, device) -> bool:
        """Whether any rank's `flag` is set; a host sync, so call it only where one is due."""
        if not self.active:
            return flag
        value = torch.tensor([int(flag)], device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def check_agree(self, tensor: torch.Tensor, *, what: str) -> None:
        """Raise when `tensor` differs between ranks (compared by a fingerprint: two sums, one
        weighted by position). A host sync; the trainer calls it once an epoch."""
        if not self.active:
            return
        values = tensor.reshape(-1).double()
        weights = torch.arange(1, len(values) + 1, dtype=torch.float64, device=values.device)
        low = torch.stack([values.sum(), (values * weights).sum()])
        high = low.clone()
        dist.all_reduce(low, op=dist.ReduceOp.MIN)
        dist.all_reduce(high, op=dist.ReduceOp.MAX)
        if not torch.equal(low, high):
            raise RuntimeError(f"the training processes disagree on {what}")


class _Gather(torch.autograd.Function):
    """all_gather of unequal slices (padded to the largest), whose backward sums every rank's
    gradient of the global tensor and keeps this rank's rows: the loss computed identically on
    every rank from the gathered tensor then gets, after DDP averages gradients, exactly the
    gradient a single process would."""

    @staticmethod
    def forward(ctx, tensor, sizes):
        ctx.sizes = sizes
        longest = max(sizes)
        padded = tensor.new_zeros((longest, *tensor.shape[1:]))
        padded[:len(tensor)] = tensor
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded.contiguous())
        return torch.cat([part[:size] for part, size in zip(parts, sizes)])

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        rank = dist.get_rank()
        start = sum(ctx.sizes[:rank])
        return grad[start:start + ctx.sizes[rank]], None


class _Heads(torch.nn.Module):
    """SCN.heads as a module's forward: DDP synchronises gradients only through its wrapper's forward."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.heads(x)


def data_parallel_heads(model, *, ranks: Ranks, device: torch.device, alpha_in_loss: bool):
    """`model.heads`, wrapped in DistributedDataParallel when there are several processes. When
    the loss ignores alpha (baseline, both ablations, or an alpha warm-up) its head gets no
    gradient, which DDP must be told to expect."""
    if not ranks.active:
        return model.heads
    return torch.nn.parallel.DistributedDataParallel(
        _Heads(model), device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=not alpha_in_loss)


class SilentWriter:
    """The run writer of ranks other than 0: rank 0 alone writes the run store."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def is_rank_zero() -> bool:
    return os.environ.get("RANK", "0") == "0"


def from_environment(device_name: str) -> Ranks:
    """Ranks of this process, with the process group initialised when torchrun started several.
    The CUDA device of each process is its LOCAL_RANK, so `--device cuda` means "this process's GPU"."""
    if not launched_by_torchrun():
        return Ranks()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    use_cuda = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        # Rank 0 evaluates alone at the end of each epoch while the others wait in the next
        # collective: the timeout must outlast an evaluation of a large test set. With device_id
        # NCCL builds its communicator here, so a broken one fails at the start, not mid-epoch.
        dist.init_process_group(backend, timeout=timedelta(minutes=60),
                                device_id=torch.device("cuda", local_rank) if use_cuda else None)
    return Ranks(rank=int(os.environ["RANK"]), world=int(os.environ["WORLD_SIZE"]), local_rank=local_rank,
                 backend=dist.get_backend())


def device_for(ranks: Ranks, device: torch.device) -> torch.device:
    """This process's GPU under torchrun ('cuda' alone would put every rank on GPU 0)."""
    if ranks.active and device.type == "cuda" and device.index is None:
        return torch.device("cuda", ranks.local_rank)
    return device


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
