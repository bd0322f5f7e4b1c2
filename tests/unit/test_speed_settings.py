"""The speed setting the factory applies (steps per execution) and the hardware
ceiling the speed benchmark divides by. Speed itself is measured in benchmarks/train_speed.py, not here."""

from __future__ import annotations

import numpy as np
import pytest

from ml.training_pipeline.common.hardware import CpuInfo, cpu_info, describe_ceiling, measured_peak, theoretical_peak
from ml.training_pipeline.models import create_model


def test_keras_models_run_several_steps_per_execution_unless_their_spec_says_otherwise():
    from ml.training_pipeline.models.kinds.keras_kind import DEFAULT_COMPILE_SETTINGS

    model = create_model("tcn", (24, 3), variant="tiny")
    assert model.steps_per_execution == DEFAULT_COMPILE_SETTINGS["steps_per_execution"] > 1
    # fewer batches than steps per execution still trains every batch once per epoch
    x = np.random.default_rng(0).standard_normal((40, 24, 3)).astype("float32")
    history = model.fit(x, x[:, -1, :1], batch_size=16, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_a_fit_traces_its_training_step_once(precision):
    """Keras built the optimizer's slots and the compiled metrics inside the first traced step, and variables
    made in a trace make TensorFlow trace it again: the adapter builds them first (fitting/tracing.py)."""
    from ml.training_pipeline.models.kinds.base import FitData, FitSettings
    from ml.training_pipeline.models.kinds.keras_kind import KerasKind

    model = create_model("tcn", (24, 3), variant="tiny")
    x = np.random.default_rng(0).standard_normal((40, 24, 3)).astype("float32")
    traces = []
    with pytest.MonkeyPatch.context() as patch:  # the twin is a new model: count the traces of any model's step
        import keras

        step = keras.Model.train_step
        patch.setattr(keras.Model, "train_step", lambda self, data: traces.append(1) or step(self, data))
        KerasKind().fit(model, FitData({"inputs": x}, x[:, -1, :1]), FitData({"inputs": x[:8]}, x[:8, -1, :1]),
                        FitSettings(epochs=2, batch_size=16, patience=3, seed=0, precision=precision))
    assert len(traces) == 1


def test_steps_per_epoch_makes_an_epoch_that_many_batches_from_the_repeated_training_set():
    """40 rows at batch 16 are 3 batches a pass; 5 steps an epoch read past a pass's end (the set repeats)."""
    from ml.training_pipeline.models.kinds.base import FitData, FitSettings
    from ml.training_pipeline.models.kinds.keras_kind import KerasKind

    model = create_model("tcn", (24, 3), variant="tiny")
    x = np.random.default_rng(0).standard_normal((40, 24, 3)).astype("float32")
    history = KerasKind().fit(model, FitData({"inputs": x}, x[:, -1, :1]), FitData({"inputs": x[:8]}, x[:8, -1, :1]),
                              FitSettings(epochs=2, batch_size=16, patience=3, seed=0, steps_per_epoch=5))
    assert len(history["loss"]) == 2 and int(model.optimizer.iterations) == 10


@pytest.mark.parametrize("name", ["tft", "transformer", "mcdropout_transformer", "bayesian_transformer", "mamba", "xlstm"])
def test_families_with_long_steps_run_one_step_per_execution_so_progress_comes_every_step(name):
    from ml.training_pipeline.models.registry import ONE_STEP_PER_EXECUTION, get_spec

    assert dict(get_spec(name).compile_settings) == dict(ONE_STEP_PER_EXECUTION)


def test_predicting_parts_of_different_lengths_traces_once_per_batch_shape_not_per_part():
    """With 16 steps per execution Keras passes its predict function a list of as many batches as the part
    has (up to 16): each new count traced a new graph (the walk-forward's retracing warnings)."""
    model = create_model("tcn", (24, 3), variant="tiny")
    rng = np.random.default_rng(0)
    parts = [rng.standard_normal((rows, 24, 3)).astype("float32") for rows in (70, 130, 200, 90)]
    whole = np.concatenate(parts)
    outputs = [model.predict(part, batch_size=32, verbose=0) for part in parts]
    # batches of 32 and the remainders: at most one trace per batch shape, then generalised by Keras
    assert model.predict_function.experimental_get_tracing_count() <= 3
    assert model.steps_per_execution == 16  # training keeps its grouped steps
    np.testing.assert_allclose(np.concatenate(outputs), model.predict(whole, batch_size=32, verbose=0), atol=1e-5)

def test_the_cpu_is_described_and_the_sgemm_ceiling_is_measured():
    info = cpu_info()
    assert info.cores >= 1 and info.simd in ("AVX-512", "AVX2", "SSE") and info.fp32_lanes in (16, 8, 4)
    peak = measured_peak(sizes=(256,), repeats=2, rounds=1)
    assert peak > 1e8  # any machine that runs this suite does 0.1 GFLOP/s
    line = describe_ceiling(peak, info)
    assert "GFLOP/s" in line and info.simd in line


def test_theoretical_peak_is_cores_fma_lanes_and_clock():
    info = CpuInfo("test CPU", cores=2, simd="AVX2", fp32_lanes=8, clock_ghz=3.0)
    assert theoretical_peak(info) == pytest.approx(2 * 2 * 8 * 2 * 3.0e9)  # the AMD EPYC figure, ~189 at 2.95
    assert theoretical_peak(CpuInfo("no clock", 2, "SSE", 4, None)) is None
    # Zen 4 runs AVX-512 on 256-bit FMA units: half the arithmetic of full-width units at the same clock
    zen4 = CpuInfo("AMD EPYC", cores=2, simd="AVX-512", fp32_lanes=16, clock_ghz=2.6, fma_lanes=8)
    assert theoretical_peak(zen4) == pytest.approx(2 * 2 * 8 * 2 * 2.6e9)
    assert "8 per FMA" in describe_ceiling(1e11, zen4)


def test_zen4_is_recognised_from_cpuinfo(monkeypatch):
    from ml.training_pipeline.common import hardware

    fields = {"vendor_id": "AuthenticAMD", "cpu family": "25", "model name": "AMD EPYC", "flags": "fma avx2 avx512f"}
    monkeypatch.setattr(hardware, "_cpuinfo", lambda: fields)
    assert hardware.cpu_info().lanes_per_fma == 8
    monkeypatch.setattr(hardware, "_cpuinfo", lambda: {**fields, "vendor_id": "GenuineIntel", "cpu family": "6"})
    assert hardware.cpu_info().lanes_per_fma == 16
