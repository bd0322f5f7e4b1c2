"""``train(config) -> TrainingResult``: the one place that wires data, model, callbacks,
fitting, evaluation, ONNX export and the model store together.

Example:
    >>> from ml.training_pipeline.config import TrainingConfig
    >>> from ml.training_pipeline.pipeline import train
    >>> result = train(TrainingConfig(symbol="BTCUSDT", model_type="tcn", days=365))  # doctest: +SKIP
    >>> print(result.table())  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np

from ml.training_pipeline.config import TrainingConfig
from ml.training_pipeline.datasets import PreparedData, prepare_data, to_tf_dataset
from ml.training_pipeline.evaluation import evaluate_direction, evaluate_returns, format_report
from ml.training_pipeline.features import WARMUP_BARS, build_features, build_target
from ml.training_pipeline.ingestion import load_ohlcv
from ml.training_pipeline.models import get_spec
from ml.training_pipeline.registry import ESTIMATOR
from ml.training_pipeline.store import ModelStore

ONNX_PARITY_ROWS = 256
FEATURE_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class TrainingResult:
    """What one training run produced.

    Attributes:
        version_dir: the stored version folder.
        config: the run's configuration.
        report: test-window metrics with baselines (see ``evaluation``).
        history: per-epoch logs.
        onnx: the ONNX export report as a dict.
        data: source, layout, rows and date range of the data used.
        row_counts: windows per split.
        timings: seconds per stage.
    """

    version_dir: Path
    config: TrainingConfig
    report: dict
    history: dict
    onnx: dict
    data: dict
    row_counts: dict
    timings: dict = field(default_factory=dict)

    def table(self) -> str:
        """The compact end-of-training table."""
        lines = [
            f"model      {self.config.model_type} ({self.config.variant}), target={self.config.target}, "
            f"epochs run={len(next(iter(self.history.values()), []))}",
            f"data       {self.data['source']} [{self.data['layout']}], {self.data['timeframe']}, "
            f"{self.data['start'][:16]} .. {self.data['end'][:16]}",
            f"windows    train {self.row_counts['train_windows']}, validation {self.row_counts['validation_windows']}, "
            f"test {self.row_counts['test_windows']}",
            format_report(self.report),
            f"onnx       parity max |diff| {self.onnx['max_abs_diff']:.2e} (tolerance {self.onnx['tolerance']:.0e})",
            f"stored     {self.version_dir}",
        ]
        return "\n".join(lines)


def _library_versions() -> dict[str, str]:
    versions = {}
    for package in ("atb-ml", "tensorflow-cpu", "tensorflow", "keras", "onnxruntime", "tf2onnx", "lightgbm", "numpy", "pandas"):
        try:
            versions[package] = importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


def _summary(report: dict) -> dict[str, float]:
    """The few numbers `atb models list` shows, each next to its baseline."""
    if "skill" in report:
        return {"rmse": report["model"]["rmse"], "persistence_rmse": report["persistence"]["rmse"],
                "skill": report["skill"], "directional_accuracy": report["model"]["directional_accuracy"]}
    return {"accuracy": report["model"]["accuracy"], "f1": report["model"]["f1"],
            "majority_accuracy": report["majority"]["accuracy"]}


def load_and_prepare(config: TrainingConfig):
    """Data, features, target and windows for a config: (LoadedData, PreparedData)."""
    data = load_ohlcv(config.symbol, config.data_path, config.timeframe, config.days, config.start_date,
                      config.end_date, exchange=config.exchange)
    features = build_features(data.frame)
    close = data.frame["close"].reindex(features.index)
    target = build_target(data.frame["close"], config.target, config.horizon).reindex(features.index)
    prepared = prepare_data(features, target, close, config.sequence_length, config.horizon,
                            config.validation_fraction, config.test_fraction, scale_target=config.target == "return")
    return data, prepared


def _build_model(config: TrainingConfig, prepared: PreparedData, **defaults: Any):
    """The factory call for this run: the config's kwargs and learning rate win over ``defaults``."""
    from ml.training_pipeline.models import create_model

    kwargs = {**defaults, **config.model_kwargs}
    if config.learning_rate is not None:
        kwargs["learning_rate"] = config.learning_rate
    return create_model(config.model_type, (config.sequence_length, len(prepared.feature_names)),
                        variant=config.variant, task=config.task, **kwargs)


def _fit_keras(config: TrainingConfig, prepared: PreparedData, verbose: int):
    from ml.training_pipeline.models import get_model_callbacks

    model = _build_model(config, prepared)
    train, validation = prepared.train, prepared.validation
    history = model.fit(
        to_tf_dataset(train.x, prepared.fit_targets(train), config.batch_size, shuffle=True, seed=config.seed),
        validation_data=to_tf_dataset(validation.x, prepared.fit_targets(validation), 1024, shuffle=False),
        epochs=config.epochs,
        callbacks=get_model_callbacks(config.model_type, patience=config.patience),
        verbose=verbose,
        shuffle=False,  # the training dataset shuffles itself, with the config's seed
    )
    predictions = prepared.to_target(model.predict(prepared.test.x, batch_size=1024, verbose=0))
    return model, {k: [float(v) for v in vs] for k, vs in history.history.items()}, predictions


def _fit_lightgbm(config: TrainingConfig, prepared: PreparedData):
    from ml.training_pipeline.lightgbm_baseline import train_lightgbm_with_early_stopping

    flat = lambda ws: ws.x.reshape(len(ws), -1)  # noqa: E731  (windows -> rows)
    model = _build_model(config, prepared, random_state=config.seed)
    train_lightgbm_with_early_stopping(
        model, flat(prepared.train), prepared.fit_targets(prepared.train), flat(prepared.validation),
        prepared.fit_targets(prepared.validation), early_stopping_rounds=max(config.patience, 20))
    x_test = flat(prepared.test)
    raw = model.predict_proba(x_test)[:, 1] if config.task == "binary" else model.predict(x_test)
    predictions = prepared.to_target(raw)
    history = {f"val_{name}": [float(v) for v in values] for name, values in model.evals_result_["valid_0"].items()}
    return model, history, predictions


def feature_schema(config: TrainingConfig, prepared: PreparedData, layout: str) -> dict[str, Any]:
    """What a stored model expects: features in order, scaler, window and input layout."""
    n_features = len(prepared.feature_names)
    shape = [config.sequence_length * n_features] if layout == "flat" else [config.sequence_length, n_features]
    return {
        "schema_version": FEATURE_SCHEMA_VERSION,
        "feature_names": list(prepared.feature_names),
        "sequence_length": config.sequence_length,
        "horizon": config.horizon,
        "timeframe": config.timeframe,
        "target": config.target,
        "warmup_bars": WARMUP_BARS,
        "input_layout": layout,
        "input_shape": shape,
        "scaler": prepared.scaler.to_dict(),
        "target_scaler": prepared.target_scaler.to_dict() if prepared.target_scaler else None,
    }


def train(config: TrainingConfig, verbose: int | None = None, log=None) -> TrainingResult:
    """Trains, evaluates, exports and stores one model.

    Args:
        config: the run's settings.
        verbose: Keras verbosity; default: progress bars on a terminal, one line per
            epoch otherwise.
        log: called with one line per stage (data loaded, training, export...).

    Returns:
        A :class:`TrainingResult`; the version folder is complete when this returns.

    Raises:
        ValueError: bad data or settings (nothing is written to the store).

    Example:
        >>> result = train(TrainingConfig(symbol="BTCUSDT", model_type="lstm", days=120, epochs=3))  # doctest: +SKIP
    """
    timings: dict[str, float] = {}
    started = time.perf_counter()
    log = log or (lambda line: None)
    # Data first: bad input fails in a fraction of a second, before TensorFlow is even imported.
    data, prepared = load_and_prepare(config)
    timings["data_s"] = time.perf_counter() - started

    import keras
    import tensorflow as tf

    from ml.training_pipeline.export import export_onnx
    from ml.training_pipeline.plots import plot_history, plot_predictions

    keras.utils.set_random_seed(config.seed)
    # Identical metrics for the same config and seed, at a small cost in speed.
    tf.config.experimental.enable_op_determinism()
    verbose = (1 if sys.stdout.isatty() else 2) if verbose is None else verbose
    described = data.describe()
    log(f"data: {described['rows']} {data.timeframe} bars from {data.source}, layout {data.layout}, "
        f"{described['start'][:16]} .. {described['end'][:16]}")
    for note in data.notes:
        log(f"data: {note}")
    log(f"windows: train {len(prepared.train)}, validation {len(prepared.validation)}, test {len(prepared.test)} "
        f"(gap {prepared.row_counts['gap_rows']} bars between parts; scaler fitted on train only)")
    log(f"training {config.model_type} ({config.variant}) for up to {config.epochs} epochs ...")
    spec = get_spec(config.model_type)
    fit_start = time.perf_counter()
    if spec.kind == ESTIMATOR:
        model, history, predictions = _fit_lightgbm(config, prepared)
        layout, parity_sample = "flat", prepared.test.x[:ONNX_PARITY_ROWS].reshape(-1, prepared.test.x[0].size)
    else:
        model, history, predictions = _fit_keras(config, prepared, verbose)
        layout, parity_sample = "window", prepared.test.x[:ONNX_PARITY_ROWS]
    timings["fit_s"] = time.perf_counter() - fit_start

    test = prepared.test
    if config.target == "return":
        report = evaluate_returns(predictions, test.close, test.future_close, test.moving_average)
    else:
        majority = int(prepared.train.y.mean() >= 0.5)
        report = evaluate_direction(predictions, test.y, majority)

    store = ModelStore(config.models_dir)
    log("exporting to ONNX (with parity check) and storing ...")
    with store.new_version(config.symbol, config.target) as staging:
        onnx_report = export_onnx(model, staging / "model.onnx", sample=parity_sample)
        if spec.kind == ESTIMATOR:
            model.booster_.save_model(str(staging / "model.txt"))
        else:
            model.save(staging / "model.keras")
        schema = feature_schema(config, prepared, layout)
        (staging / "feature_schema.json").write_text(json.dumps(schema, indent=2))
        title = f"{config.symbol} {config.model_type} ({config.variant})"
        plot_history(history, staging / "training_history.png", title)
        if config.target == "return":
            plot_predictions(test.time, test.future_close, test.close * np.exp(predictions), test.close,
                             staging / "predictions.png", f"{title}: next close on the test window", "close")
        else:
            plot_predictions(test.time, test.y, predictions, None, staging / "predictions.png",
                             f"{title}: P(up) on the test window", "up")
        timings["total_s"] = time.perf_counter() - started
        metadata = {
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "config": config.to_dict(),
            "data": data.describe(),
            "row_counts": prepared.row_counts,
            # bars the model saw while fitting or early stopping end here: `atb evaluate` flags them
            "splits": {"train": [prepared.train.time[0].isoformat(), prepared.train.time[-1].isoformat()],
                       "validation": [prepared.validation.time[0].isoformat(), prepared.validation.time[-1].isoformat()],
                       "test": [prepared.test.time[0].isoformat(), prepared.test.time[-1].isoformat()]},
            "metrics": report,
            "summary": _summary(report),
            "onnx": {k: v for k, v in onnx_report.to_dict().items() if k != "path"},
            "history": history,
            "timings": timings,
            "library_versions": _library_versions(),
            "python": sys.version.split()[0],
            "pid": os.getpid(),
        }
        (staging / "metadata.json").write_text(json.dumps(metadata, indent=2, default=str))
    return TrainingResult(store.last_committed, config, report, history, metadata["onnx"], data.describe(),
                          prepared.row_counts, timings)
