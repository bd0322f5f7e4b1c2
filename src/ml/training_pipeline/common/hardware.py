"""What this machine can do: the CPU, its SIMD width, and a fp32 arithmetic ceiling tied to the hardware.

Speed figures mean little without the ceiling they are a share of. TensorFlow's own large matmul
moves from run to run (75 to 215 GFLOP/s on machines of one kind), so :func:`measured_peak` times
NumPy's BLAS sgemm (several sizes and repeats, the best run) and names the BLAS and the kernel that
ran; :func:`theoretical_peak` computes cores x FMA units x SIMD lanes x 2 x clock from the CPU's
flags and clock. Benchmarks divide by the measured sgemm peak and print both.

Example:
    >>> info = cpu_info()  # doctest: +SKIP
    >>> info.model, info.simd, info.fp32_lanes  # doctest: +SKIP
    ('Intel(R) Xeon(R) Platinum 8488C', 'AVX-512', 16)
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

FMA_UNITS = 2
"""FMA units per core on the x86 server cores this runs on (Skylake-SP and later, Zen 2 and later)."""


@dataclass(frozen=True)
class CpuInfo:
    """The CPU, as Linux reports it.

    Attributes:
        model: the model name.
        cores: logical CPUs this process may use.
        simd: the widest fp32 vector extension with FMA (``AVX-512``, ``AVX2``, ``SSE``).
        fp32_lanes: fp32 values per vector register of that extension.
        clock_ghz: the highest clock Linux reports (cpufreq's maximum, else the current MHz), or None.
        fma_lanes: fp32 lanes one FMA unit retires per cycle: ``fp32_lanes``, except on AMD Zen 4 (family 25
            with AVX-512), which runs a 512-bit FMA as two 256-bit halves (8 lanes).
    """

    model: str
    cores: int
    simd: str
    fp32_lanes: int
    clock_ghz: float | None
    fma_lanes: int | None = None

    @property
    def lanes_per_fma(self) -> int:
        return self.fma_lanes or self.fp32_lanes

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity; all of the machine's where the OS has none).

    Example:
        >>> available_cores() >= 1
        True
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)



def _cpuinfo() -> dict[str, str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    first = text.split("\n\n", 1)[0]
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in first.splitlines()) if k.strip()}


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux lists them in ``/proc/cpuinfo`` (``avx2``, ``avx512_bf16``...); empty elsewhere."""
    return frozenset(_cpuinfo().get("flags", "").split())


def cpu_info() -> CpuInfo:
    """The CPU model, usable cores, SIMD width and clock (Linux; other systems get what is known)."""
    fields = _cpuinfo()
    flags = cpu_flags()
    if "avx512f" in flags:
        simd, lanes = "AVX-512", 16
    elif "avx2" in flags and "fma" in flags:
        simd, lanes = "AVX2", 8
    else:
        simd, lanes = "SSE", 4
    clock = None
    try:
        clock = int(Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text()) / 1e6
    except (OSError, ValueError):
        try:
            clock = float(fields["cpu MHz"]) / 1000
        except (KeyError, ValueError):
            clock = None
    cores = available_cores()
    # Zen 4 (AMD family 25 with AVX-512) has 256-bit FMA units: AVX-512 doubles the instructions' width, not the
    # arithmetic per cycle (Zen 5 has full-width units)
    double_pumped = lanes == 16 and fields.get("vendor_id") == "AuthenticAMD" and fields.get("cpu family") == "25"
    return CpuInfo(fields.get("model name", "unknown CPU"), cores, simd, lanes, clock, 8 if double_pumped else lanes)


def theoretical_peak(info: CpuInfo | None = None) -> float | None:
    """cores x FMA units x fp32 lanes per FMA x 2 FLOPs x clock, in FLOP/s (None when the clock is unknown).

    Logical cores are counted as cores: on a VM with 2 vCPUs that may be 2 hyperthreads of one core. A VM
    often reports the base clock only, so a boosting CPU can run above this figure.
    """
    info = info or cpu_info()
    if info.clock_ghz is None:
        return None
    return info.cores * FMA_UNITS * info.lanes_per_fma * 2 * info.clock_ghz * 1e9


def blas_info() -> str:
    """The BLAS NumPy calls and the kernel it picked (threadpoolctl), e.g. ``openblas 0.3.27 SkylakeX, 2 threads``."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown BLAS (threadpoolctl not installed)"
    pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    if not pools:
        return "unknown BLAS"
    pool = pools[0]
    return (f"{pool.get('internal_api')} {pool.get('version') or ''} {pool.get('architecture') or ''}".replace("  ", " ")
            + f", {pool.get('num_threads')} threads").strip()


def measured_peak(sizes: tuple[int, ...] = (1024, 2048, 3072), repeats: int = 5, rounds: int = 3) -> float:
    """The best fp32 sgemm rate NumPy's BLAS reaches here, in FLOP/s (best of ``rounds`` x sizes).

    Example:
        >>> measured_peak(sizes=(256,), repeats=1, rounds=1) > 0
        True
    """
    rng = np.random.default_rng(0)
    best = 0.0
    for n in sizes:
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        a @ b  # warm up: threads started, pages touched
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(repeats):
                a @ b
            best = max(best, 2 * n**3 * repeats / (time.perf_counter() - start))
    return best


def describe_ceiling(peak: float, info: CpuInfo | None = None) -> str:
    """One line: the CPU, its SIMD width, the measured sgemm ceiling and the theoretical FMA peak."""
    info = info or cpu_info()
    theory = theoretical_peak(info)
    clock = f" at {info.clock_ghz:.2f} GHz" if info.clock_ghz else ""
    width = f"{info.fp32_lanes} fp32 lanes" + (f", {info.lanes_per_fma} per FMA" if info.lanes_per_fma != info.fp32_lanes
                                               else "")
    return (f"{info.model}, {info.cores} logical cores, {info.simd} ({width}){clock}; "
            f"ceiling = NumPy sgemm best of runs {peak / 1e9:.1f} GFLOP/s [{blas_info()}]"
            + (f"; theoretical FMA peak {theory / 1e9:.1f} GFLOP/s" if theory else ""))


_COUNTED = ("Conv1D", "Dense", "LSTM", "MultiHeadAttention", "TemporalAttention")
UNCOUNTED_TOLERANCE = 0.05
"""Largest share of a model's weights that may sit in layers :func:`forward_flops` cannot count."""


def _counted_kind(layer) -> str | None:
    """The counted class ``layer`` is or derives from (a training twin's ``FusedLSTM`` is an LSTM), else None."""
    return next((cls.__name__ for cls in type(layer).__mro__ if cls.__name__ in _COUNTED), None)


def forward_flops(model) -> float | None:
    """Estimated FLOPs of one forward pass of one window (2 x multiply-adds of the layers that dominate).

    Counts Conv1D, Dense, LSTM, Keras ``MultiHeadAttention`` (projections and the two score products) and
    ``TemporalAttention``. When more than 5% of the weights sit in other layers (Mamba and xLSTM blocks, TFT
    gates), the estimate would be too low to mean anything and ``None`` is returned. Training costs about 3x
    the forward pass.

    Example:
        >>> forward_flops(create_model("tcn", (60, 15)))  # doctest: +SKIP
        41206784.0
    """
    weights = max(1, model.count_params())
    uncounted = sum(layer.count_params() for layer in model.layers if _counted_kind(layer) is None)
    if uncounted / weights > UNCOUNTED_TOLERANCE:
        return None
    total = 0.0
    for layer in model.layers:
        kind = _counted_kind(layer)
        try:
            in_shape, out_shape = layer.input.shape, layer.output.shape
        except (AttributeError, ValueError):
            continue
        if isinstance(in_shape, (list, tuple)) and in_shape and isinstance(in_shape[0], (list, tuple)):
            in_shape = in_shape[0]  # a layer called on (query, value): the query's shape
        if isinstance(out_shape, (list, tuple)) and out_shape and isinstance(out_shape[0], (list, tuple)):
            out_shape = out_shape[0]
        if kind == "Conv1D":
            total += 2 * out_shape[1] * layer.kernel_size[0] * in_shape[-1] * layer.filters
        elif kind == "Dense":
            steps = in_shape[1] if len(in_shape) == 3 else 1
            total += 2 * steps * in_shape[-1] * layer.units
        elif kind == "LSTM":
            total += 2 * in_shape[1] * 4 * layer.units * (in_shape[-1] + layer.units)
        elif kind == "MultiHeadAttention":
            steps, width = in_shape[1], in_shape[-1]
            inner = layer.num_heads * layer.key_dim
            total += 2 * steps * width * inner * 4 + 2 * 2 * steps * steps * inner
        elif kind == "TemporalAttention":
            total += 2 * in_shape[1] * (in_shape[-1] * layer.units + layer.units) + 2 * in_shape[1] * in_shape[-1]
    return total
