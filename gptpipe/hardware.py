"""Hardware checks: which devices multiply bf16 matrices natively."""

from __future__ import annotations

import functools

import torch


@functools.cache
def cpu_supports_bf16() -> bool:
    """Return True when this CPU has native bf16 matrix instructions (AVX512-BF16 or AMX).

    Without them PyTorch multiplies bf16 matrices on a slow path: on a 2-core AVX2 machine a
    1024 x 1024 bf16 product ran 50 to 90 times slower than in float32.
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            flags = cpuinfo.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def fast_bf16_matmul(device: torch.device) -> bool:
    """Return True when bf16 matrix products on `device` are at least as fast as float32 ones."""
    if device.type == "cpu":
        return cpu_supports_bf16()
    return True


def default_device_has_fast_bf16() -> bool:
    """Return True when the device a run picks by default (a GPU if present, else the CPU) has fast bf16 products."""
    return fast_bf16_matmul(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
