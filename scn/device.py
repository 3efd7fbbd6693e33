"""Where and in which precision to train: CUDA with AMP, or the CPU with bfloat16 where the cores
compute it natively (AVX-512-BF16 or AMX), where it runs a ResNet step about twice as fast."""
from contextlib import nullcontext
from functools import lru_cache
from pathlib import Path

import torch


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but PyTorch sees no CUDA device here")
    return device


def resolve_precision(precision: str, device: torch.device) -> str:
    """'bf16', 'fp16' (asked for, or CUDA without bf16) or 'fp32'."""
    if precision == "fp32":
        return "fp32"
    if precision == "fp16":
        if device.type != "cuda":
            raise ValueError("--precision fp16 needs a CUDA device; on the CPU use bf16 or fp32")
        return "fp16"
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "bf16" or cpu_has_native_bf16():
        return "bf16"
    return "fp32"


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)
