"""Single-sample inference latency: ONNX Runtime against ``model.predict``.

For every registered model's default variant at input (60, 15) (LightGBM: the same window
flattened to 900 columns, fitted briefly on real BTCUSDT returns), prints the p50 and p90
latency of one-sample calls through ONNX Runtime, through Keras' own ``keras.Model.predict``
(with its per-call set-up: data adapter, iterator, callbacks) and through the factory model's
``predict`` (which runs one small batch through the compiled function directly), measured in the
same run. The 100x target compares ONNX with Keras' own predict.

Usage:
    python benchmarks/onnx_latency.py [--repeats 200] [--shape 60 15] [--models tcn lstm]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

TARGET_ONNX_MS = {"keras": 1.0, "estimator": 0.2}
# The 100x goal is for the neural families, whose predict() pays Keras' per-call overhead;
# LightGBM's own predict is already a thin C call, so its ratio is reported, not judged.
TARGET_SPEEDUP = {"keras": 100.0, "estimator": 0.0}


def percentiles(fn, repeats: int, warmup: int = 10) -> tuple[float, float]:
    """p50 and p90 wall time of ``fn()`` in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 90) * 1e3)


def real_windows(shape: tuple[int, int], n: int) -> np.ndarray:
    """Windows of real BTCUSDT features (scaled returns and ranges) for realistic inputs."""
    import pandas as pd

    from ml.data import bundled_sample_path

    frame = pd.read_csv(bundled_sample_path("BTCUSDT")).iloc[-(n + shape[0] + 50):]
    cols = ["open", "high", "low", "close", "volume", "assetvolume", "trade_count",
            "taker_buy_asset_volume", "taker_buy_quote_volume"]
    values = np.log(frame[cols].to_numpy(float) + 1.0)
    values = np.diff(values, axis=0)
    values = np.concatenate([values] * (shape[1] // values.shape[1] + 1), axis=1)[:, : shape[1]]
    values = (values - values.mean(0)) / (values.std(0) + 1e-9)
    return np.stack([values[i:i + shape[0]] for i in range(n)]).astype(np.float32)


def bench_model(name: str, shape: tuple[int, int], repeats: int, workdir: Path) -> dict:
    from ml.training_pipeline.common.tensors import generate_inputs, model_argument
    from ml.training_pipeline.export import OnnxPredictor, export_onnx
    from ml.training_pipeline.models import create_model, declared_inputs
    from ml.training_pipeline.models.kinds import get_kind
    from ml.training_pipeline.models.kinds.base import FitData, FitSettings
    from ml.training_pipeline.models.registry import get_spec

    spec = get_spec(name)
    adapter = get_kind(spec.kind)
    x = real_windows(shape, 512)
    target = np.roll(x[:, -1, 3], -1).astype(np.float32)  # the next window's last close return
    # the real window, and random arrays of the declared shapes for a model's other inputs (the TFT's calendar)
    inputs = {**generate_inputs(declared_inputs(name, shape), len(x)), "inputs": x}
    # a fixed 300 trees (no early stopping) so a tree model's size is the same on every run
    extra = {"n_estimators": 300} if "n_estimators" in spec.variants["default"] else {}
    model = create_model(name, input_shape=shape, variant="default", **extra)
    if not adapter.supports_gradients:  # estimators must be fitted before they can be exported
        adapter.fit(model, FitData(inputs, target), FitData(inputs, target), FitSettings(patience=10**6))
    one = {k: v[:1] for k, v in inputs.items()}
    params = adapter.size(model)
    native = lambda: adapter.predict(model, one)  # noqa: E731  (the factory model's predict)
    if adapter.supports_gradients:
        import keras

        keras_own = lambda: keras.Model.predict(model, model_argument(model, one), verbose=0)  # noqa: E731
    else:
        keras_own = native
    report = export_onnx(model, workdir / f"{name}.onnx", sample={k: v[:64] for k, v in inputs.items()})
    predictor = OnnxPredictor(report.path)
    feed = adapter.onnx_feed(one)
    onnx_p50, onnx_p90 = percentiles(lambda: predictor.run(feed), repeats)
    native_p50, native_p90 = percentiles(native, max(20, repeats // 5), warmup=3)
    keras_p50, _ = percentiles(keras_own, max(20, repeats // 5), warmup=3)
    return {
        "model": name, "kind": spec.kind, "size": params, "parity": report.max_abs_diff,
        "onnx_p50": onnx_p50, "onnx_p90": onnx_p90, "native_p50": native_p50, "native_p90": native_p90,
        "keras_p50": keras_p50, "speedup": keras_p50 / onnx_p50,
    }


def window_models() -> list[str]:
    """Models that read the OHLCV window (named "inputs"), alone or with inputs known in advance (the TFT)."""
    from ml.training_pipeline.models import declared_inputs, list_models

    return [n for n in list_models() if [s.name for s in declared_inputs(n, (60, 15))][:1] == ["inputs"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--shape", type=int, nargs=2, default=(60, 15))
    parser.add_argument("--models", nargs="*", default=window_models())
    args = parser.parse_args(argv)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            rows.append(bench_model(name, tuple(args.shape), args.repeats, Path(tmp)))

    print(f"\nSingle-sample latency at input {tuple(args.shape)}, default variants, {os.cpu_count()} CPU cores")
    header = (f"{'model':<22}{'params/trees':>13}{'parity':>10}{'ONNX p50 ms':>13}{'ONNX p90 ms':>13}"
              f"{'Keras predict p50':>19}{'factory predict p50':>21}{'speedup':>9}  target")
    print(header)
    print("-" * len(header))
    failures = 0
    for r in rows:
        ok = r["onnx_p50"] <= TARGET_ONNX_MS[r["kind"]] and r["speedup"] >= TARGET_SPEEDUP[r["kind"]]
        failures += not ok
        print(f"{r['model']:<22}{r['size']:>13,}{r['parity']:>10.1e}{r['onnx_p50']:>13.3f}{r['onnx_p90']:>13.3f}"
              f"{r['keras_p50']:>19.2f}{r['native_p50']:>21.2f}{r['speedup']:>8.0f}x  {'met' if ok else 'MISSED'}")
    print(f"\ntargets: ONNX p50 <= {TARGET_ONNX_MS['keras']} ms (neural), <= {TARGET_ONNX_MS['estimator']} ms "
          f"(LightGBM), neural >= {TARGET_SPEEDUP['keras']:.0f}x faster than Keras' own predict; the factory's "
          "predict (ms per window) is what model.predict(X[:1]) costs a notebook user")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
