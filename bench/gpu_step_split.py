"""Where a trainer epoch's time goes on a GPU: the host's gather of one batch, one train step on a
batch already on the device (host time to launch it, and to finish it), a whole epoch, and the
profiler's table of a further epoch by host time. Run where a GPU is lent; for a regression, run it
in folders holding older commits' scn/ (`git archive COMMIT scn bench | tar x -C DIR`, then
`cd DIR && PYTHONPATH=. python -m bench.gpu_step_split ...`) on the same machine.

    python -m bench.gpu_step_split --data DIR --size 224 --batch 256 --method baseline --json OUT.json
"""
import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from bench.results_io import write_results
from scn import pipeline
from scn.config import make_config
from scn.store import RunWriter
from scn.train import StopSignal, Trainer, _on_device, _on_host


def gather(cache, positions, *, out):
    # Commits before the cache on disk gathered in-memory rows with index_select and had no pipeline.gather.
    if hasattr(pipeline, "gather"):
        return pipeline.gather(cache, positions, out=out)
    return torch.index_select(cache, 0, positions, out=out)


def split_epoch(*, data: str, size: int, batch: int, method: str, device: torch.device, steps: int = 20) -> dict:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    log = logging.getLogger("bench.gpu_step_split")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    result = {"threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        config = make_config(data=data, image_size=size, batch_size=batch, method=method, epochs=1000,
                             relabel_epoch=1, val_fraction=0.0, seed=0, device=device.type)
        writer = RunWriter(Path(tmp) / "run")
        writer.write_config(config.to_dict())
        trainer = Trainer(config, run_dir=Path(tmp) / "run", writer=writer, log=log, stop=StopSignal(),
                          checkpoint=None, progress=False)
        cache = trainer.cache
        in_memory = isinstance(cache, torch.Tensor)
        # None: the cache is on disk (scn.decoded.DiskImages), gathered from the file.
        result |= {"log_every": config.log_every, "cache_pinned": cache.is_pinned() if in_memory else None,
                   "cache_contig": cache.is_contiguous() if in_memory else None}
        trainer.train_epoch(1)
        sync()
        positions = torch.randperm(len(trainer.train_split))[:batch]
        buffer = torch.empty((batch, *cache.shape[1:]), dtype=torch.uint8, pin_memory=device.type == "cuda")
        start = time.perf_counter()
        for _ in range(steps):
            gather(cache, positions, out=buffer)
        result["gather_ms"] = (time.perf_counter() - start) / steps * 1000
        images, generator = buffer.to(device), torch.Generator(device).manual_seed(0)
        # Copied once: a copy from pageable memory inside the loop would wait for the GPU every step,
        # and the host's time would no longer be its own.
        device_positions = positions.to(device)
        trainer.record = _on_device(trainer.record, device)
        for _ in range(3):
            trainer._train_step(2, 0, device_positions, images, generator)
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            trainer._train_step(2, 0, device_positions, images, generator)
        result["step_host_ms"] = (time.perf_counter() - start) / steps * 1000
        sync()
        result["step_ms"] = (time.perf_counter() - start) / steps * 1000
        trainer.record = _on_host(trainer.record)
        start = time.perf_counter()
        trainer.train_epoch(2)
        sync()
        result["epoch_s"] = time.perf_counter() - start
        result["images_per_s"] = len(trainer.train_split) / result["epoch_s"]
        with profile(activities=[ProfilerActivity.CPU]) as profiler:
            trainer.train_epoch(3)
            sync()
        result["table"] = profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=25,
                                                             max_name_column_width=60)
        writer.close()
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--method", choices=("scn", "baseline"), default="baseline")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    result = split_epoch(data=args.data, size=args.size, batch=args.batch, method=args.method,
                         device=torch.device(args.device))
    print(json.dumps({k: v for k, v in result.items() if k != "table"}))
    print(result["table"])
    if args.json:
        write_results(args.json, result, module="bench.gpu_step_split", argv=argv)


if __name__ == "__main__":
    main()
