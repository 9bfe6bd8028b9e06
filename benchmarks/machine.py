"""What a benchmark ran on, and the bound its training throughput is held against.

`header()` names the CPU, the kernels torch runs on it (its capability: AVX2, AVX512, ...) and the precision
`auto` picks there; `matmul_peak_gflops()` times a large matmul in the run's dtype, the machine's practical compute
peak; `bound_tokens_per_s()` is what that peak allows at 6·N FLOPs a trained token (forward 2N, backward 4N), so a
trainer's tokens/s divided by it is the fraction of the machine it uses.
"""
from __future__ import annotations

import platform
import time
from pathlib import Path

import torch

from skillexp.precision import DTYPE_OF, auto_precision, detect


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def resolve(precision: str) -> str:
    """`auto` as skillexp picks it on this machine; an explicit precision as given."""
    return auto_precision(detect())[0] if precision == "auto" else precision


def header(precision: str) -> str:
    hw = detect()
    auto, why = auto_precision(hw)
    cores = torch.get_num_threads()
    return (f"{cpu_name()}, {cores} threads; {hw.describe()}; precision {resolve(precision)} "
            f"({'auto' if precision == 'auto' else 'as set'}; auto picks {auto}: {why})")


def matmul_peak_gflops(precision: str, size: int = 2048, seconds: float = 3.0) -> float:
    """GFLOP/s of a `size`³ matmul in the precision's dtype, the best of repeated timings over ~`seconds`."""
    dtype = getattr(torch, DTYPE_OF[resolve(precision)])
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b  # warm-up
    best, spent = float("inf"), 0.0
    while spent < seconds:
        t = time.perf_counter()
        a @ b
        dt = time.perf_counter() - t
        best, spent = min(best, dt), spent + dt
    return 2 * size**3 / best / 1e9


def bound_tokens_per_s(peak_gflops: float, params: int) -> float:
    """Trained tokens/s the peak allows at 6 x params FLOPs a token (params: the matmul weights, `matmul_params`)."""
    return peak_gflops * 1e9 / (6 * params)
