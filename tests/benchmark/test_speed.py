"""Opt-in speed checks (`pytest tests/benchmark -m benchmark -s`): run the benchmark scripts
and hold their figures to the targets. Ratios are measured within one run."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.benchmark
BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_onnx_latency_targets():
    # main() prints the table and returns 1 when a model misses its target
    assert _load("onnx_latency").main(["--repeats", "200"]) == 0


def test_training_throughput_targets():
    bench = _load("train_speed")
    peak = bench.matmul_peak_flops()
    tcn_rate, _, tcn_flops = bench.training_throughput("tcn", 128)
    lstm_rate, _, _ = bench.training_throughput("attention_lstm", 128)
    print(f"\ntcn {100 * tcn_rate * tcn_flops / peak:.1f}% of peak; attention_lstm {lstm_rate:.0f} windows/s")
    assert tcn_rate * tcn_flops >= 0.40 * peak
    assert lstm_rate >= 4 * bench.TYPICAL_WINDOWS_PER_S["attention_lstm"]
