"""Every architecture on the same data: the benchmark that `atb benchmark` and the pytest suite run.

One :class:`BenchmarkData` holds the chronological train / validation / test windows of a symbol,
built exactly as ``atb train`` builds them (same features, scaling and gaps), so every model and the
naive baselines are judged on the same test bars. :func:`benchmark_model` trains one model on them
and measures what a user compares: parameters, training seconds and windows per second, the share
of this machine's measured matmul ceiling, single-window latency of Keras ``predict`` and of ONNX
Runtime, and RMSE / MAE / MAPE / directional accuracy / skill against persistence on the test bars.

Example:
    >>> from ml.training_pipeline.comparison import load_benchmark_data, BenchmarkConfig, benchmark_model
    >>> data = load_benchmark_data("BTCUSDT", days=365)  # doctest: +SKIP
    >>> X_train, y_train, X_val, y_val = data  # doctest: +SKIP
    >>> result = benchmark_model("tcn", "default", X_train, y_train, X_val, y_val,
    ...                          BenchmarkConfig(epochs=20, data=data))  # doctest: +SKIP
    >>> result.rmse, result.skill  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
import math
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ml.training_pipeline.common.arguments import check_positive_int
from ml.training_pipeline.common.hardware import cpu_info, describe_ceiling, forward_flops, measured_peak
from ml.training_pipeline.common.metrics import price_metrics
from ml.training_pipeline.common.plots import plot_comparison
from ml.training_pipeline.config import TrainingConfig
from ml.training_pipeline.export import OnnxPredictor, export_onnx
from ml.training_pipeline.models import create_model, declared_inputs, list_models
from ml.training_pipeline.models.kinds import get_kind
from ml.training_pipeline.models.kinds.base import FitData, FitSettings
from ml.training_pipeline.models.registry import DEFAULT_INPUT_NAME, KNOWN_INPUT, get_spec
from ml.training_pipeline.pipeline import library_versions
from ml.training_pipeline.problems import PriceReturn

LATENCY_CALLS = 50
"""Single-window calls timed per model for the p50 latencies (after two warm-up calls)."""


@dataclass(frozen=True)
class BenchmarkData:
    """The chronological splits of one symbol, built as ``atb train`` builds them.

    Unpacks as the guide's ``X_train, y_train, X_val, y_val``; the test part and what the baselines need
    are attributes. Targets are the scaled next-bar log returns the models are fitted on.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    test_close: np.ndarray
    test_future_close: np.ndarray
    test_moving_average: np.ndarray
    target_mean: float
    target_scale: float
    other_inputs: Mapping[str, Mapping[str, np.ndarray]] = field(default_factory=dict)
    """``{split: {input name: array}}``: inputs beside the window (the calendar ``known``) for models that read them."""
    description: Mapping[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[np.ndarray]:
        return iter((self.X_train, self.y_train, self.X_val, self.y_val))

    def to_log_return(self, fitted: np.ndarray) -> np.ndarray:
        """Model outputs (scaled) back to log returns."""
        return np.asarray(fitted, np.float64).reshape(-1) * self.target_scale + self.target_mean

    def score(self, predicted_log_return: np.ndarray) -> dict[str, float]:
        """Metrics of next-bar log-return forecasts on the test bars.

        ``rmse`` and ``mae`` are in log-return units (what the models forecast; the guide's acceptance criteria
        such as ``rmse < 0.05`` read them), ``price_rmse`` in price units, ``mape`` is the % error of the implied
        next close, ``directional_accuracy`` the share of bars whose up/down move is called right (a flat forecast
        calls none), ``skill`` = 1 - RMSE / persistence RMSE (persistence forecasts a zero return).
        """
        predicted = np.asarray(predicted_log_return, np.float64).reshape(-1)
        actual = np.log(self.test_future_close / self.test_close)
        price = price_metrics(self.test_close * np.exp(predicted), self.test_close, self.test_future_close)
        rmse = float(np.sqrt(np.mean((predicted - actual) ** 2)))
        return {"rmse": rmse, "mae": float(np.mean(np.abs(predicted - actual))), "mape": price["mape"],
                "directional_accuracy": price["directional_accuracy"], "price_rmse": price["rmse"],
                "skill": 1 - rmse / float(np.sqrt(np.mean(actual**2)))}

    def baselines(self) -> dict[str, dict[str, float]]:
        """Persistence (zero return) and moving-average (return to the 20-bar mean) on the test bars."""
        return {"persistence": self.score(np.zeros(len(self.test_close))),
                "moving_average": self.score(np.log(self.test_moving_average / self.test_close))}


def load_benchmark_data(symbol: str = "BTCUSDT", days: int | None = 365, sequence_length: int = 60,
                        timeframe: str = "1h", data_path: str | None = None) -> BenchmarkData:
    """The splits of ``symbol`` (the bundled sample unless ``data_path`` is given), as ``atb train`` makes them.

    Raises:
        ValueError: an unknown symbol, timeframe or too few bars for the splits (the pipeline's messages).
    """
    config = TrainingConfig(symbol=symbol, model_type="tcn", days=days, sequence_length=sequence_length,
                            timeframe=timeframe, data_path=data_path)
    data = PriceReturn().prepare(config)
    prepared, _ = data.context
    scaler = prepared.target_scaler
    others = {split: {k: v for k, v in getattr(data, part).inputs.items() if k != DEFAULT_INPUT_NAME}
              for split, part in (("train", "train"), ("val", "validation"), ("test", "test"))}
    test = prepared.test
    return BenchmarkData(
        X_train=data.train.inputs[DEFAULT_INPUT_NAME], y_train=data.train.y,
        X_val=data.validation.inputs[DEFAULT_INPUT_NAME], y_val=data.validation.y,
        X_test=data.test.inputs[DEFAULT_INPUT_NAME], y_test=data.test.y,
        test_close=test.close, test_future_close=test.future_close, test_moving_average=test.moving_average,
        target_mean=float(scaler.mean[0]), target_scale=float(scaler.scale[0]), other_inputs=others,
        description={"symbol": config.symbol, "timeframe": timeframe, "days": days, "sequence_length": sequence_length,
                     "source": data.data.get("source"), "splits": data.splits, "windows": dict(data.row_counts)},
    )


@dataclass(frozen=True)
class BenchmarkConfig:
    """How each model is trained and measured; the same for every model of a comparison.

    Attributes:
        epochs: most epochs (boosting rounds for LightGBM: the preset's unless given).
        batch_size: training batch size.
        patience: early-stopping patience on the validation loss.
        seed: seed for weights, shuffling and dropout.
        data: the :class:`BenchmarkData` the arrays come from: its test part is where the metrics are
            measured and it provides the inputs beside the window; without it, metrics are on the validation
            part (which early stopping has seen: optimistic, and the result says so).
        latency: measure Keras and ONNX single-window latency (exports the model to a temporary file).
        peak: the machine's measured matmul ceiling in FLOP/s (:func:`ml.training_pipeline.common.hardware.measured_peak`);
            ``None``: no share of peak.
        model_kwargs: hyperparameters every model gets (must exist in each model).
    """

    epochs: int = 30
    batch_size: int = 128
    patience: int = 8
    seed: int = 42
    data: BenchmarkData | None = None
    latency: bool = True
    peak: float | None = None
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    boosting_rounds: int | None = None
    """Most boosting rounds of tree models (``None``: the preset's ``n_estimators``; ``epochs`` is for networks)."""


@dataclass(frozen=True)
class BenchmarkResult:
    """One model's row of the comparison: its cost and its metrics on the test bars (see :meth:`BenchmarkData.score`).

    ``params`` counts weights (trees for LightGBM); ``epochs`` counts epochs run (boosting rounds for LightGBM).
    """

    model: str
    variant: str
    params: int
    train_s: float
    epochs: int
    windows_per_s: float | None
    gflops: float | None
    peak_share: float | None
    keras_p50_ms: float | None
    onnx_p50_ms: float | None
    rmse: float
    mae: float
    mape: float
    directional_accuracy: float
    skill: float
    evaluated_on: str
    price_rmse: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _p50_ms(call, calls: int = LATENCY_CALLS) -> float:
    call(), call()  # warm-up: the first calls trace and allocate
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


def _named(model_inputs: Sequence[Any], window: np.ndarray, others: Mapping[str, np.ndarray], model: str
           ) -> dict[str, np.ndarray]:
    named = {DEFAULT_INPUT_NAME: window}
    for spec in model_inputs:
        if spec.name in named:
            continue
        if spec.name not in others or len(others[spec.name]) != len(window):
            raise ValueError(f"model_type={model!r} needs the input {spec.name!r}, which the benchmark data does not "
                             f"provide for these rows. Provided: {', '.join([DEFAULT_INPUT_NAME, *others])}")
        named[spec.name] = others[spec.name]
    return named


def benchmark_model(model_type: str, variant: str, X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray,
                    y_val: np.ndarray, config: BenchmarkConfig | None = None) -> BenchmarkResult:
    """Trains one model on the given splits and measures it (the guide's ``benchmark_model``).

    Args:
        model_type: a registered model name.
        variant: its preset (``default``, ``lightweight``, ``deep``, ``tiny``...).
        X_train, y_train, X_val, y_val: windows ``(n, steps, features)`` and scaled targets, as
            :func:`load_benchmark_data` gives them.
        config: training and measuring settings; ``config.data`` supplies the test bars.

    Returns:
        A :class:`BenchmarkResult`.

    Raises:
        ValueError: unknown model or variant, or a model needing inputs the data does not have.
    """
    import keras


    config = config or BenchmarkConfig()
    spec = get_spec(model_type)
    adapter = get_kind(spec.kind)
    keras.utils.set_random_seed(config.seed)
    model = create_model(spec.name, input_shape=tuple(X_train.shape[1:]), variant=variant, **config.model_kwargs)
    declared = declared_inputs(spec.name, tuple(X_train.shape[1:]), variant, **config.model_kwargs)
    others = dict(config.data.other_inputs) if config.data is not None else {}
    train = FitData(_named(declared, X_train, others.get("train", {}), spec.name), np.asarray(y_train))
    val = FitData(_named(declared, X_val, others.get("val", {}), spec.name), np.asarray(y_val))
    is_network = adapter.supports_gradients
    start = time.perf_counter()
    history = adapter.fit(model, train, val, FitSettings(epochs=config.epochs if is_network else config.boosting_rounds,
                                                       batch_size=config.batch_size,
                                                       patience=config.patience, seed=config.seed,
                                                       callback_settings=spec.callback_settings))
    train_s = time.perf_counter() - start
    epochs = len(next(iter(history.values()), [])) if history else 0
    rate = len(X_train) * epochs / train_s if is_network and epochs else None
    forward = forward_flops(model) if is_network else None
    flops = 3 * forward if forward else 0.0  # training ~ forward + 2x backward
    gflops = rate * flops / 1e9 if rate and flops else None
    share = gflops * 1e9 / config.peak if gflops and config.peak else None

    if config.data is not None:
        test = _named(declared, config.data.X_test, others.get("test", {}), spec.name)
        metrics, evaluated_on = config.data.score(config.data.to_log_return(adapter.predict(model, test))), "test"
    else:  # no test part given: the validation bars in fitted units, which early stopping has seen
        test, evaluated_on = val.inputs, "validation (seen by early stopping)"
        predicted = adapter.predict(model, test).reshape(-1).astype(np.float64)
        actual = np.asarray(y_val, np.float64).reshape(-1)
        rmse = float(np.sqrt(np.mean((predicted - actual) ** 2)))
        metrics = {"rmse": rmse, "mae": float(np.mean(np.abs(predicted - actual))), "mape": float("nan"),
                   "directional_accuracy": float(np.mean(np.sign(predicted) == np.sign(actual))),
                   "skill": 1 - rmse / float(np.sqrt(np.mean(actual**2))), "price_rmse": None}

    keras_ms = onnx_ms = None
    if config.latency:
        one = {name: array[:1] for name, array in test.items()}
        keras_ms = _p50_ms(lambda: adapter.predict(model, one))
        if spec.capabilities.onnx_exportable:
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "model.onnx"
                export_onnx(model, path, sample={name: array[:64] for name, array in test.items()})
                predictor = OnnxPredictor(path)
                # the graph's own input shapes (a tree model's graph takes the flattened window)
                feed = {s.name: one[s.name].reshape((1, *s.shape)) for s in predictor.inputs}
                onnx_ms = _p50_ms(lambda: predictor.predict(feed))
    return BenchmarkResult(model=spec.name, variant=variant, params=int(adapter.size(model)), train_s=train_s,
                           epochs=epochs, windows_per_s=rate, gflops=gflops, peak_share=share, keras_p50_ms=keras_ms,
                           onnx_p50_ms=onnx_ms, evaluated_on=evaluated_on, **metrics)


def window_models() -> list[str]:
    """The registered models that read a price window (and at most the calendar ``known``): all of them except
    the ones made for other data (log events, id sequences, row sets)."""
    return [name for name in list_models()
            if {s.name for s in declared_inputs(name, (60, 15))} <= {DEFAULT_INPUT_NAME, KNOWN_INPUT}]


@dataclass
class Comparison:
    """A finished comparison: results, baselines on the same test bars, and where it ran."""

    results: list[BenchmarkResult]
    baselines: dict[str, dict[str, float]]
    setup: dict[str, Any]

    def rows(self) -> list[dict[str, Any]]:
        """One dict per model, then one per baseline (empty cost columns)."""
        rows = [r.to_dict() for r in self.results]
        for name, m in self.baselines.items():
            rows.append({"model": name, "variant": "baseline", "params": 0, "train_s": 0.0, "epochs": 0,
                         "windows_per_s": None, "gflops": None, "peak_share": None, "keras_p50_ms": None,
                         "onnx_p50_ms": None, **m, "evaluated_on": "test"})
        return rows

    def table(self) -> str:
        """The comparison as a Markdown table (what the benchmark prints and the docs page shows)."""
        def cell(value, fmt):
            return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)

        head = ("| model | variant | params | train s | windows/s | % peak | Keras p50 ms | ONNX p50 ms "
                "| RMSE (x1e-3) | MAE (x1e-3) | price RMSE | MAPE % | dir. acc | skill |")
        lines = [head, "|" + "---|" * (head.count("|") - 1)]
        for r in self.rows():
            share = None if r["peak_share"] is None else 100 * r["peak_share"]
            # above 100% the measured ceiling (or the FLOP count) is wrong, not the model fast: say so, not a number
            shown = ">100: ceiling underestimated" if share is not None and share > 100 else cell(share, '.1f')
            lines.append(f"| {r['model']} | {r['variant']} | {r['params']:,} | {cell(r['train_s'], '.1f')} | "
                         f"{cell(r['windows_per_s'], ',.0f')} | {shown} | {cell(r['keras_p50_ms'], '.1f')} | "
                         f"{cell(r['onnx_p50_ms'], '.2f')} | {1e3 * r['rmse']:.3f} | {1e3 * r['mae']:.3f} | "
                         f"{cell(r.get('price_rmse'), '.2f')} | {cell(r['mape'], '.3f')} | "
                         f"{r['directional_accuracy']:.3f} | {r['skill']:+.4f} |")
        return "\n".join(lines)

    def best(self) -> dict[str, str]:
        """The best model by each measure (baselines excluded)."""
        if not self.results:
            return {}
        pick = lambda key, lowest=True: (min if lowest else max)(self.results, key=lambda r: getattr(r, key)).model  # noqa: E731
        best = {"rmse": pick("rmse"), "mae": pick("mae"), "directional_accuracy": pick("directional_accuracy", False),
                "train_s": pick("train_s")}
        timed = [r for r in self.results if r.keras_p50_ms is not None]
        if timed:
            best["keras_p50_ms"] = min(timed, key=lambda r: r.keras_p50_ms).model
        return best

    def save(self, folder: str | Path) -> dict[str, Path]:
        """Writes ``comparison.json`` (results, baselines, setup with library versions), ``comparison.csv`` and
        ``comparison.png``; returns their paths."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {"json": folder / "comparison.json", "csv": folder / "comparison.csv", "png": folder / "comparison.png"}
        payload = {"setup": self.setup, "results": [r.to_dict() for r in self.results], "baselines": self.baselines}
        paths["json"].write_text(json.dumps(payload, indent=2, default=float))
        rows = self.rows()
        with paths["csv"].open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        plot_comparison(rows, paths["png"], f"{self.setup.get('symbol', '')} test window: RMSE and training time")
        return paths

    @classmethod
    def load(cls, path: str | Path) -> Comparison:
        payload = json.loads(Path(path).read_text())
        return cls([BenchmarkResult(**r) for r in payload["results"]], payload["baselines"], payload["setup"])


def run_comparison(models: Sequence[str] | None = None, variant: str = "default", symbol: str = "BTCUSDT",
                   days: int | None = 365, epochs: int = 30, batch_size: int = 128, patience: int = 8, seed: int = 42,
                   latency: bool = True, data_path: str | None = None, log=print) -> Comparison:
    """Benchmarks ``models`` (default: every model that reads a price window) on the same splits.

    Example:
        >>> comparison = run_comparison(["tcn", "lightgbm"], days=120, epochs=2)  # doctest: +SKIP
        >>> print(comparison.table())  # doctest: +SKIP
    """
    # every argument is checked before the first model trains
    names = [get_spec(m).name for m in models] if models else window_models()
    for name in names:
        if variant not in get_spec(name).variants:
            raise ValueError(f"model_type={name!r} has no variant {variant!r}. "
                             f"Accepted: {', '.join(get_spec(name).presets)}")
    for option, value in (("days", days), ("epochs", epochs), ("batch_size", batch_size), ("patience", patience)):
        if value is not None:
            check_positive_int(f"--{option.replace('_', '-')}", value)
    if data_path is not None and not Path(data_path).is_file():
        raise ValueError(f"data file not found. Received: --data {data_path!r}")
    data = load_benchmark_data(symbol, days=days, data_path=data_path)
    peak = measured_peak()
    config = BenchmarkConfig(epochs=epochs, batch_size=batch_size, patience=patience, seed=seed, data=data,
                             latency=latency, peak=peak)
    results = []
    for index, name in enumerate(names, 1):
        log(f"[{index}/{len(names)}] {name} ({variant})")
        results.append(benchmark_model(name, variant, *data, config))
    return Comparison(results, data.baselines(), describe_setup(data, config, variant))


def describe_setup(data: BenchmarkData, config: BenchmarkConfig, variant: str) -> dict[str, Any]:
    """Where and how a comparison ran: the data, the training budget, the CPU and its ceiling, library versions."""
    info = cpu_info()
    return {**data.description, "variant": variant, "epochs": config.epochs, "batch_size": config.batch_size,
            "patience": config.patience, "seed": config.seed, "test_bars": int(len(data.X_test)),
            "ceiling": describe_ceiling(config.peak, info) if config.peak else None,
            "peak_gflops": config.peak / 1e9 if config.peak else None, "cpu": info.model,
            "library_versions": library_versions(), "created_at": datetime.now(UTC).isoformat(timespec="seconds")}


def _verdict(comparison: Comparison, best: dict[str, str]) -> str:
    """One sentence: how many models beat persistence, and which is best *against the baselines* (or that none is)."""
    winners = sum(r.skill > 0 for r in comparison.results)
    others = ", ".join(f"{k} {v}" for k, v in best.items() if k != "rmse")
    if not winners:
        return (f"No model beats persistence on these bars (the lowest RMSE, {best.get('rmse')}'s, is still above "
                f"it): none is best against the baselines. Best by other measures: {others}.")
    return (f"{winners} of {len(comparison.results)} models beat persistence on these bars; best against the "
            f"baselines (lowest RMSE): {best.get('rmse')}. Best by other measures: {others}.")


def docs_page(comparison: Comparison, image: str | None = "comparison.png") -> str:
    """The Markdown page ``docs/benchmarks.md`` generated from a comparison (``atb benchmark --docs``).

    Args:
        comparison: a finished or loaded :class:`Comparison`.
        image: the plot's path relative to the page (``None``: no image).
    """
    s = comparison.setup
    best = comparison.best()
    others = sorted(set(list_models()) - {r.model for r in comparison.results})
    versions = ", ".join(f"{k} {v}" for k, v in s.get("library_versions", {}).items())
    lines = [
        "# Architecture comparison",
        "",
        "Generated from `comparison.json` (`pytest tests/benchmark/test_model_architectures.py` or `atb benchmark`, then "
        "`atb benchmark --from-json benchmark_results/comparison.json --docs docs/benchmarks.md`); do not edit by hand.",
        "",
        f"- Data: {s.get('symbol')} {s.get('timeframe')}, last {s.get('days')} days ({s.get('source')}); "
        f"windows of {s.get('sequence_length')} bars; chronological splits "
        + ", ".join(f"{part} {span[0][:10]} .. {span[1][:10]}" for part, span in (s.get("splits") or {}).items())
        + " (scaling fitted on train; gaps between the parts).",
        f"- Every model: variant `{s.get('variant')}`, up to {s.get('epochs')} epochs, batch {s.get('batch_size')}, "
        f"early stopping patience {s.get('patience')} on the validation loss, seed {s.get('seed')}.",
        f"- Metrics on the {s.get('test_bars')} test bars: RMSE and MAE of the next-bar log return (x1e-3), RMSE of "
        "the implied next close in price units, MAPE of that close, directional accuracy (a flat forecast calls no "
        "direction: persistence scores 0), skill = 1 - RMSE / persistence RMSE (above 0 beats \"next close = this "
        "close\").",
        "- Cost: windows/s = training windows x epochs / training seconds; % peak = estimated training FLOP/s "
        "(3x the forward pass of Conv1D, Dense, LSTM and attention layers; blank where a model's blocks are not "
        "counted) over the ceiling below; p50 latency of one window through Keras `predict` and ONNX Runtime.",
        f"- Machine: {s.get('ceiling')}.",
        f"- Versions: {versions}. Run at {s.get('created_at')}.",
        "",
        comparison.table(),
        "",
        _verdict(comparison, best),
        "",
        "One run, one seed: differences of a few per mille in skill are within run-to-run noise. For LightGBM "
        "`params` counts trees and the predict column is its own `predict`.",
        "",
    ]
    if others:
        lines += [f"Not in this table: {', '.join(others)}: they read other inputs than a price window (log events, "
                  "id sequences, row sets) and are compared on their own data (`benchmarks/log_anomaly.py`, "
                  "`tests/benchmark/test_grouped_mheight.py`).", ""]
    if image:
        lines += [f"![RMSE and training time per model]({image})", ""]
    return "\n".join(lines)
