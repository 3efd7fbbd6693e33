"""Data parallelism: the rank arithmetic, the gathered loss's gradient on two gloo processes, and
`torchrun --nproc-per-node 2 -m scn train` on the CPU against a single-process run.

Batch norm is per process on the CPU (SyncBatchNorm has no CPU kernels; on CUDA the trainer
converts to it), so two processes see other batch statistics than one: their losses agree with a
single process's within a few percent, not exactly. The loss itself is checked exactly on a model
without batch norm."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from scn import runs
from scn.checkpoint import load_checkpoint
from scn.distributed import Ranks
from scn.config import make_config
from scn.losses import high_group_size
from scn.store import RunReader
from scn.train import step_losses, train
from tests.helpers import tiny_config

ROOT = Path(__file__).resolve().parent.parent


def test_shares_tile_the_global_batch_in_rank_order():
    shares = [Ranks(rank=r, world=3).share(10) for r in range(3)]
    assert [(s.start, s.stop) for s in shares] == [(0, 4), (4, 7), (7, 10)]
    assert Ranks(rank=0, world=3).sizes(10) == [4, 3, 3]
    single = Ranks()
    x = torch.arange(5.0)
    assert single.gather(x, total=5) is x and single.sum(x) is x and single.is_main and not single.active


def _gradient_worker(rank, world, port, queue):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        queue.put((rank, _scn_loss_gradient(Ranks(rank=rank, world=world, backend="gloo"))))
    finally:
        torch.distributed.destroy_process_group()


def _scn_loss_gradient(ranks: Ranks):
    """The trainer's loss (scn.train.step_losses) on a batch of 7 (shares 4 and 3 on two ranks),
    reduced as DDP does, with a wide margin_1 so rank regularization contributes."""
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 4)
    x, targets = torch.randn(7, 5), torch.randint(0, 3, (7,))
    rows = ranks.share(7)
    out = model(x[rows])
    config = make_config(data="unused", margin_1=0.9, alpha_normalize=True)
    loss_wce, loss_rr, _, _ = step_losses(torch.sigmoid(out[:, 3]), out[:, :3], targets[rows], config=config,
                                          epoch=1, ranks=ranks, total=7)
    assert loss_rr > 0
    (loss_wce + loss_rr).backward()
    grads = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    if ranks.active:
        torch.distributed.all_reduce(grads)
        grads /= ranks.world
    return grads


@pytest.mark.slow
def test_two_processes_get_the_single_process_gradient_of_the_global_batch_loss():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    context = torch.multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_gradient_worker, args=(r, 2, port, queue)) for r in range(2)]
    for w in workers:
        w.start()
    results = dict(queue.get(timeout=120) for _ in workers)
    for w in workers:
        w.join(timeout=30)
    assert all(w.exitcode == 0 for w in workers)
    single = _scn_loss_gradient(Ranks())
    assert torch.allclose(results[0], single, atol=1e-6) and torch.equal(results[0], results[1])


def options_of(config) -> dict:
    from scn.config import option_specs

    return {name: getattr(config, name) for name in option_specs()}


def live_processes(run_dir) -> list:
    """Pids of non-zombie processes whose command line names `run_dir`."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and proc.name != str(os.getpid()):
            try:
                state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
                command = (proc / "cmdline").read_bytes()
            except (OSError, IndexError):
                continue
            if state not in ("Z", "X") and str(run_dir).encode() in command:
                found.append(int(proc.name))
    return found


def torchrun(config, *, run_dir, resume=False, processes=2):
    argv = runs.train_command(run_dir=run_dir, options=options_of(config) | {"processes": processes},
                              resume=resume) + ["--no-progress"]
    if processes == 1:
        # train_command starts one process without torchrun; a user may still launch it under torchrun.
        argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=1", *argv[1:]]
    process = subprocess.Popen(argv, cwd=ROOT, env=runs._child_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=240)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 0, output
    assert not live_processes(run_dir)
    return output


@pytest.mark.slow
def test_torchrun_two_processes_fill_the_store_as_one_process_does(tiny_rafdb, tmp_path):
    config = tiny_config(tiny_rafdb, device="cpu", threads=1)
    torchrun(config, run_dir=tmp_path / "ddp")
    train(config, run_dir=tmp_path / "single", progress=False)
    ddp, single = RunReader(tmp_path / "ddp"), RunReader(tmp_path / "single")
    assert ddp.meta("processes") == 2 and single.meta("processes") == 1
    assert ddp.status()["state"] == "finished"
    assert ddp.epoch_metrics()["epoch"].tolist() == single.epoch_metrics()["epoch"].tolist() == [1, 2]
    assert len(ddp.step_metrics()) == len(single.step_metrics()) == 6
    assert ddp.step_metrics()["global_step"].is_unique
    for epoch in (1, 2):
        attention = ddp.attention(epoch)
        assert len(attention) == 42 and attention["alpha"].between(0, 1).all()
        # The high group is chosen over each global batch (16, 16, 10): not 5 + 5 per process.
        assert attention["is_high"].sum() == sum(high_group_size(b, beta=0.7) for b in (16, 16, 10))
    checkpoint = load_checkpoint(tmp_path / "ddp" / "checkpoints" / "last.pt")
    relabels = ddp.relabels()
    assert len(relabels) == len(checkpoint["labels"]["history"])  # recorded once, by rank 0
    assert not relabels.duplicated(["epoch", "index"]).any()
    assert (ddp.confusion(2).sum(), ddp.samples("train").shape[0]) == (21, 42)
    # Same weights at the start, same global batches and augmentation: only batch norm differs.
    first_ddp, first_single = ddp.step_metrics()["loss"].iloc[0], single.step_metrics()["loss"].iloc[0]
    assert first_ddp == pytest.approx(first_single, rel=0.05)
    assert ddp.epoch_metrics()["train_loss"].iloc[0] == pytest.approx(
        single.epoch_metrics()["train_loss"].iloc[0], rel=0.1)
    log = (tmp_path / "ddp" / "train.log").read_text()
    assert "2 processes (torchrun, gloo), 8 images per process per step" in log


@pytest.mark.slow
def test_torchrun_one_process_trains_through_the_process_group_as_a_plain_process_does(tiny_rafdb, tmp_path):
    config = tiny_config(tiny_rafdb, device="cpu", threads=1, epochs=1)
    torchrun(config, run_dir=tmp_path / "ddp", processes=1)
    train(config, run_dir=tmp_path / "single", progress=False)
    log = (tmp_path / "ddp" / "train.log").read_text()
    assert "1 process (torchrun, gloo), 16 images per process per step" in log
    ddp, single = RunReader(tmp_path / "ddp"), RunReader(tmp_path / "single")
    assert ddp.status()["state"] == "finished" and ddp.meta("processes") == 1
    # One rank's gathers, sums and DDP's gradient average are the identity: the same losses.
    assert ddp.step_metrics()["loss"].tolist() == pytest.approx(single.step_metrics()["loss"].tolist(), rel=1e-5)


@pytest.mark.slow
def test_a_torchrun_run_stops_from_the_app_and_resumes(tiny_rafdb, tmp_path):
    run_dir = tmp_path / "ddp"
    config = tiny_config(tiny_rafdb, device="cpu", threads=1, epochs=4, batch_size=4)
    runs.start_run(run_dir=run_dir, options=options_of(config) | {"processes": 2}, wait_s=120)
    deadline = time.monotonic() + 120
    while not (run_dir / "run.db").exists() or len(RunReader(run_dir).step_metrics()) < 2:
        assert time.monotonic() < deadline, (run_dir / "train.log").read_text()
        time.sleep(0.2)
    assert runs.stop_run(run_dir)
    while live_processes(run_dir):
        assert time.monotonic() < deadline, (run_dir / "train.log").read_text()
        time.sleep(0.2)
    assert RunReader(run_dir).status()["state"] == "stopped", (run_dir / "train.log").read_text()
    torchrun(config, run_dir=run_dir, resume=True)
    reader = RunReader(run_dir)
    assert reader.status()["state"] == "finished"
    assert reader.epoch_metrics()["epoch"].tolist() == [1, 2, 3, 4]
    assert reader.step_metrics()["global_step"].is_unique
    assert len(reader.relabels()) == len(load_checkpoint(run_dir / "checkpoints" / "last.pt")["labels"]["history"])
