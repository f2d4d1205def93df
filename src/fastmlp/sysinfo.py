"""What the core runs on here: ``fm.show_config()``.

The core picks its GEMM kernels at import from what the CPU runs (AVX-512, AVX2 + FMA,
or scipy's BLAS on other CPUs); the thread count comes from ``fm.set_num_threads``,
``OMP_NUM_THREADS`` or the available cores. Benchmark numbers mean little without these,
so every report should carry them.
"""
import os
import platform
import sys
from typing import Optional, TextIO

import numpy as np

from fastmlp import _blas
from fastmlp._version import __version__
from fastmlp.fpmode import get_flush_denormal
from fastmlp.threads import get_num_threads

#: CPU flags worth naming (as /proc/cpuinfo spells them).
_FLAGS = ("avx2", "fma", "avx512f", "avx512vl", "avx512bw", "avx512dq", "avx512_bf16",
          "avx512_vnni")


def _cpu():
    """(model name with its family and model numbers, the flags of _FLAGS this CPU has),
    from /proc/cpuinfo where it exists (a VM may name only the brand: AMD family 25 is
    Zen 3/4, family 26 Zen 5)."""
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "cpu family", "model", "flags") and key not in info:
                    info[key] = value.strip()
                if "flags" in info:
                    break
    except OSError:
        pass
    model = info.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in info:
        model += f" (family {info['cpu family']}, model {info.get('model', '?')})"
    flags = set(info.get("flags", "").split())
    return model, [f for f in _FLAGS if f in flags]


def config() -> dict:
    """The configuration ``show_config`` prints, as a dict."""
    from threadpoolctl import threadpool_info
    model, flags = _cpu()
    isa = _blas.gemm_isa()
    return {
        "fastmlp": __version__, "python": sys.version.split()[0], "numpy": np.__version__,
        "machine": platform.machine(), "cpu": model, "cpu_flags": flags,
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "gemm_isa": isa, "gemm_best_isa": _blas.best_gemm_isa(),
        "gemm_tile_f32": _blas.gemm_tile(False), "gemm_tile_f64": _blas.gemm_tile(True),
        "gemm_tile_f32_plain": _blas.gemm_tile(False, plain_a=True),
        "gemm_env": os.environ.get("FASTMLP_GEMM_ISA"),
        "threads": get_num_threads(), "pool_workers": _blas.pool_workers(),
        "gemm_tail": _blas.gemm_tail(), "gemm_tail_state": _blas.gemm_tail_state(),
        "flush_denormal": get_flush_denormal(),
        "blas_fallback": [f"{p['internal_api']} {p.get('version')} ({p['prefix']}, "
                          f"{p.get('architecture')}, {p['num_threads']} threads)"
                          for p in threadpool_info() if p["user_api"] == "blas"],
    }


def _tail_line(tail, state):
    """How split products use the guided tail (gemm.h), for show_config."""
    sixteenths, _, _, _, adaptive = tail
    if not sixteenths:
        return ""
    share = f"{sixteenths}/16 of the work in small chunks"
    if not adaptive:
        return f", then {share}"
    on, ratio = state
    return (f", then {share} while the threads' chunks take unequal times "
            f"({'on' if on else 'off'} now: the slowest took {ratio:.2f}x the fastest)")


def show_config(file: Optional[TextIO] = None) -> dict:
    """Print what the core runs on: CPU and ISA, the GEMM kernels in use (family and
    register tile), thread counts, and the BLAS behind the fallback path; return it as a
    dict.

    Examples
    --------
    >>> import fastmlp as fm
    >>> cfg = fm.show_config()            # doctest: +SKIP
    fastmlp 0.1.0, Python 3.11.7, NumPy 2.4.6
    CPU: AMD EPYC (x86_64, 2 cores) avx2 fma avx512f ...
    GEMM kernels: avx512 (8 x 32 float32 (12 x 32 over a plain A), 8 x 16 float64 tiles; best here: avx512)
    ...
    """
    c = config()
    out = file or sys.stdout
    tile = lambda t: f"{t[0]} x {t[1]}" if t[0] else "-"
    lines = [
        f"fastmlp {c['fastmlp']}, Python {c['python']}, NumPy {c['numpy']}",
        f"CPU: {c['cpu']} ({c['machine']}, {c['cores']} cores) {' '.join(c['cpu_flags'])}",
        f"GEMM kernels: {c['gemm_isa']} ({tile(c['gemm_tile_f32'])} float32"
        + (f" ({tile(c['gemm_tile_f32_plain'])} over a plain A)"
           if c["gemm_tile_f32_plain"] != c["gemm_tile_f32"] else "") + ", "
        f"{tile(c['gemm_tile_f64'])} float64 tiles; best here: {c['gemm_best_isa']}"
        + (f"; FASTMLP_GEMM_ISA={c['gemm_env']}" if c["gemm_env"] else "") + ")",
        f"threads: {c['threads']} (the core's team has started {c['pool_workers']} workers)",
        "split products: one chunk a thread" + _tail_line(c["gemm_tail"], c["gemm_tail_state"]),
        "training steps: subnormals " + ("flushed to zero (FTZ/DAZ; fm.set_flush_denormal)"
                                         if c["flush_denormal"] else "kept (IEEE)"),
        f"BLAS (fallback path): {'; '.join(c['blas_fallback']) or 'none found'}",
    ]
    print("\n".join(lines), file=out)
    return c
