"""One OHLCV model trained on several symbols at once: each symbol is a group.

Each symbol goes through its own problem's data path (features, chronological splits, scaling
fitted on that symbol's training part), so the model sees every symbol on the same scale; the
windows are then pooled, each tagged with its symbol as its group (for group weights, curriculum
phases and per-symbol reports). Every symbol is judged against its own naive baselines on its own
test window; the overall figures are the row-weighted mean over the symbols (prices of different
symbols are in different units, so their errors are not pooled).

Example:
    >>> config = TrainingConfig(symbol="BTCUSDT", symbols=("ETHUSDT",), data_paths={"ETHUSDT": "eth.csv"},
    ...                         model_type="tcn", curriculum="BTCUSDT:10,all:40")  # doctest: +SKIP
    >>> train(config).report["by_group"]["ETHUSDT"]["skill"]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import numpy as np

from ml.data import bundled_sample_path
from ml.training_pipeline.common.memory import check_memory
from ml.training_pipeline.common.metrics import group_summary
from ml.training_pipeline.common.plots import plot_history, plot_predictions
from ml.training_pipeline.common.tensors import LazyInputs
from ml.training_pipeline.common.windows import GatheredWindows
from ml.training_pipeline.models.kinds import window_value_bytes
from ml.training_pipeline.models.kinds.base import FitData
from ml.training_pipeline.models.registry import STATIC_INPUT, TensorSpec
from ml.training_pipeline.models.tasks import Task
from ml.training_pipeline.problems.base import Problem, ProblemData, problem_type, register_problem
from ml.training_pipeline.problems.price.forecasts import PriceProblem, PriceReturn

POOLED_ROW_FEATURE_BYTES = 8.0
"""Bytes per row and feature the pooling adds: every symbol's scaled rows joined into one float32 array (their
windows are starts in it, :class:`~ml.training_pipeline.common.windows.GatheredWindows`), for the training part and
again for the evaluation parts (4 bytes each, rounded up)."""


def _joined(parts: list[FitData], name: str) -> np.ndarray | GatheredWindows:
    """One input of every symbol's part, pooled: windows as starts in the symbols' joined rows (never a copy of
    every window), other inputs (ids, calendar rows) concatenated."""
    arrays = [p.inputs[name] for p in parts]
    pooled = GatheredWindows.pooled(arrays)
    return pooled if pooled is not None else np.concatenate([np.asarray(a) for a in arrays])


def _pool(parts: list[FitData], symbols: tuple[str, ...]) -> FitData:
    names = parts[0].inputs.keys()
    pooled = LazyInputs({}, {name: functools.partial(_joined, parts, name) for name in names})
    # the symbol's position as a static id, for the models that read one (tft with static_vocab=len(symbols))
    pooled[STATIC_INPUT] = np.concatenate([np.full((len(p), 1), i, np.int32) for i, p in enumerate(parts)])
    return FitData(pooled,
                   np.concatenate([p.y for p in parts]), None,
                   np.concatenate([np.full(len(p), s) for p, s in zip(parts, symbols, strict=True)]))


class SymbolsProblem(Problem):
    """Several symbols of one OHLCV problem (``return``, ``direction`` or ``volatility``) in one model.

    Args:
        base: the per-symbol problem.
        symbols: the symbols, the first being the config's ``symbol``.
    """

    type_name = "symbols"

    def __init__(self, base: PriceProblem, symbols: tuple[str, ...]):
        if len(symbols) < 2:
            raise ValueError(f"SymbolsProblem needs >= 2 symbols. Received: {symbols!r}")
        self.base, self.symbols = base, tuple(symbols)

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.base.name

    @property
    def store_key(self) -> str:
        return self.base.store_key

    @property
    def task(self) -> Task:
        return self.base.task

    @classmethod
    def example(cls) -> tuple[SymbolsProblem, dict[str, Any]]:
        """Two series in one model: the bundled BTCUSDT bars, and the same file under a second name."""
        symbols = ("BTCUSDT", "BTCCOPY")
        return cls(PriceReturn(), symbols), {"symbol": "BTCUSDT", "symbols": symbols[1:], "model_type": "lightgbm",
                                             "days": 60, "data_paths": {"BTCCOPY": str(bundled_sample_path())}}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "base": self.base.describe(), "symbols": list(self.symbols)}

    def prepare(self, config) -> ProblemData:
        prepared = {}
        for symbol in self.symbols:
            single = dataclasses.replace(config, symbol=symbol, symbols=(), data_paths={},
                                         data_path=config.data_path_of(symbol), group_weights=None, curriculum=None)
            try:
                prepared[symbol] = self.base.prepare(single)
            except ValueError as error:
                raise ValueError(f"{symbol}: {error}") from None
        first = prepared[self.symbols[0]]
        self._check_pooled_memory(config, prepared)
        for symbol, data in prepared.items():
            if data.schema.get("feature_names") != first.schema.get("feature_names"):
                raise ValueError(f"{symbol}'s features differ from {self.symbols[0]}'s: "
                                 f"{data.schema.get('feature_names')} vs {first.schema.get('feature_names')}")
        pooled = {split: _pool([getattr(prepared[s], split) for s in self.symbols], self.symbols)
                  for split in ("train", "validation", "test")}
        shared = {k: v for k, v in first.schema.items() if k not in ("scaler", "target_scaler", "baselines")}
        schema = {**shared, "symbols": {s: d.schema for s, d in prepared.items()},
                  "inputs": [*shared["inputs"], TensorSpec(STATIC_INPUT, (1,), "int32", len(self.symbols)).to_dict()]}
        counts: dict[str, int] = {}
        for data in prepared.values():
            for key, value in data.row_counts.items():
                counts[key] = counts.get(key, 0) + value
        starts = [d.data.get("start") for d in prepared.values() if d.data.get("start")]
        ends = [d.data.get("end") for d in prepared.values() if d.data.get("end")]
        described = {"source": ", ".join(f"{s}: {d.data.get('source')}" for s, d in prepared.items()),
                     "rows": sum(d.data.get("rows", 0) for d in prepared.values()),
                     "timeframe": first.data.get("timeframe"), "layout": first.data.get("layout"),
                     "start": min(starts) if starts else None, "end": max(ends) if ends else None,
                     "symbols": {s: d.data for s, d in prepared.items()}}
        splits = {split: [min(d.splits[split][0] for d in prepared.values()),
                          max(d.splits[split][1] for d in prepared.values())] for split in first.splits}
        return ProblemData(
            train=pooled["train"], validation=pooled["validation"], test=pooled["test"],
            inputs=(*first.inputs, TensorSpec(STATIC_INPUT, (1,), "int32", len(self.symbols))),
            optional=(*first.optional, STATIC_INPUT),
            schema=schema, data=described, row_counts=counts,
            splits={**splits, "by_symbol": {s: d.splits for s, d in prepared.items()}},
            notes=tuple(f"{s}: {note}" for s, d in prepared.items() for note in d.notes), context=prepared)

    @staticmethod
    def _check_pooled_memory(config, prepared: dict[str, ProblemData]) -> None:
        """Pooling joins every symbol's rows once more (:data:`POOLED_ROW_FEATURE_BYTES`): the memory estimate
        counts it with the model kind's own, and a run that would not fit is refused before it is made."""
        rows = sum(data.row_counts.get("feature_rows", 0) for data in prepared.values())
        length, features = next(iter(prepared.values())).schema["input_shape"]
        check_memory(rows, length, features, window_value_bytes=window_value_bytes(config.model_type),
                     extra_row_feature_bytes=POOLED_ROW_FEATURE_BYTES)

    def _slices(self, data: ProblemData) -> dict[str, slice]:
        edges = np.cumsum([0, *(len(data.context[s].test) for s in self.symbols)])
        return {s: slice(int(edges[i]), int(edges[i + 1])) for i, s in enumerate(self.symbols)}

    def to_prediction(self, outputs, data):
        # each symbol's outputs go back through its own target scaler
        return np.concatenate([self.base.to_prediction(np.asarray(outputs)[part], data.context[s])
                               for s, part in self._slices(data).items()])

    def evaluate(self, predictions, data):
        by_group = {s: self.base.evaluate(predictions[part], data.context[s]) for s, part in self._slices(data).items()}
        rows = np.array([r["n"] for r in by_group.values()], dtype=np.float64)
        first = next(iter(by_group.values()))
        report: dict[str, Any] = {}
        for key, value in first.items():  # overall: row-weighted mean of each symbol's figure
            if isinstance(value, dict):
                report[key] = {m: float(np.average([r[key][m] for r in by_group.values()], weights=rows))
                               for m in value if all(np.isfinite(r[key].get(m, np.nan)) for r in by_group.values())}
            elif key.startswith("skill"):
                report[key] = float(np.average([r[key] for r in by_group.values()], weights=rows))
        report["n"] = int(rows.sum())
        metric = "skill" if "skill" in first else next(iter(first["model"]))
        values = {s: r[metric] if metric == "skill" else r["model"][metric] for s, r in by_group.items()}
        report["by_group"] = by_group
        report["groups"] = {**group_summary(values, metric), "table_metric": next(iter(first["model"])),
                            "overall": "row-weighted mean over the symbols"}
        return report

    def summary(self, report):
        return {"base_type": self.base.type_name, "worst_group": report["groups"]["worst"],
                "by_symbol": {s: self.base.summary(r) for s, r in report["by_group"].items()}}

    @classmethod
    def summary_line(cls, m):
        base = problem_type(m["base_type"])
        return "; ".join(f"{s}: {base.summary_line(v)}" for s, v in m["by_symbol"].items())

    def plot(self, predictions, data, history, folder: Path, title: str) -> None:
        plot_history(history, folder / "training_history.png", title)
        for symbol, part in self._slices(data).items():
            windows = data.context[symbol].context[0].test
            actual, predicted, baseline, ylabel, caption = self.base.plot_series(predictions[part], windows)
            plot_predictions(windows.time, actual, predicted, baseline, folder / f"predictions_{symbol}.png",
                             f"{title} [{symbol}]: {caption}", ylabel)


register_problem(SymbolsProblem)
