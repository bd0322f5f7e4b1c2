"""Serving a stored OHLCV model on a data file: the next bar's prediction, or every window's metrics.

These are the ``predict_file`` / ``evaluate_file`` of :class:`~.forecasts.PriceProblem`: the stored version
(:class:`ml.training_pipeline.inference.StoredModel`, passed in) reads the file, scales it as at training time
and runs its model; this module turns that into the problem's answer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ml.training_pipeline.common.windows import windows_for_rows


def predict_price_file(stored: Any, data_path: str | None, uncertainty: bool = False, n_samples: int = 100,
                       interval: float | None = None) -> dict:
    """:func:`predict_next` for an OHLCV problem (``PriceProblem.predict_file``)."""
    problem = stored.price_problem()
    native = stored.uncertain_model() if uncertainty else None  # refuses a deterministic model before data is read
    data = stored.load_data(data_path)
    features, scaled = stored.scaled_features(data)
    window = scaled[-stored.schema["sequence_length"]:][None]
    inputs = stored.window_inputs(problem, window, features.index[-1:], _last_extras(stored, problem, data, features))
    value = float(stored.to_target(stored.predict(inputs))[0])
    last_close = float(data.frame["close"].loc[features.index[-1]])
    result = {**stored.identity(), "target": problem.name, "as_of": features.index[-1].isoformat(),
              "horizon_bars": stored.schema["horizon"], "timeframe": stored.schema["timeframe"],
              "last_close": last_close, "data": data.describe()}
    result.update(problem.next_prediction(value, last_close))
    result["text"] = problem.next_line(result)
    conformal = stored.conformal(value, problem, last_close, interval)
    if conformal is not None:
        result["interval"] = conformal
    if native is not None:
        result["uncertainty"] = stored.uncertainty(native, inputs, problem, last_close, n_samples, interval)
    result["notes"] = stored.data_notes(data, data_path)
    return result


def _last_extras(stored: Any, problem: Any, data: Any, features: pd.DataFrame) -> dict[str, np.ndarray] | None:
    """The problem's baseline values at the last bar, for a model that adds its baseline (``None`` otherwise).

    Raises:
        ValueError: the file is too short for the baseline (HAR-RV needs a month of bars).
    """
    if not stored.schema.get("offset"):
        return None
    extras = problem.extras(data.frame, stored.schema["timeframe"]).reindex(features.index[-1:])
    if extras.isna().any(axis=None):
        missing = [c for c in extras.columns if extras[c].isna().any()]
        raise ValueError(f"This model adds its baseline, which needs more history than the file has: {missing[0]!r} "
                         f"is unknown at the last bar. Received: {len(data.frame)} bars; give at least a month more")
    return {c: extras[c].to_numpy(np.float64) for c in extras.columns}


def evaluate_price_file(stored: Any, data_path: str | None) -> dict:
    """:func:`evaluate_stored` for an OHLCV problem (``PriceProblem.evaluate_file``)."""
    problem = stored.price_problem()
    data = stored.load_data(data_path)
    features, scaled = stored.scaled_features(data)
    length, horizon, timeframe = stored.schema["sequence_length"], stored.schema["horizon"], stored.schema["timeframe"]
    close = data.frame["close"]
    target_values = problem.target(close, timeframe).reindex(features.index).to_numpy(np.float64)
    extras = problem.extras(data.frame, timeframe)
    extras = None if extras is None else extras.reindex(features.index)
    if len(features) < length:
        raise ValueError(f"No window with a known outcome: need more than {length + horizon} bars after warm-up")
    windows = windows_for_rows(scaled, target_values, close.reindex(features.index), horizon, length, 0,
                               len(features), extras)
    if not len(windows):
        raise ValueError(f"No window with a known outcome: need more than {length + horizon} bars after warm-up")
    predictions = stored.to_target(stored.predict(stored.window_inputs(problem, windows.x, windows.time, windows.extras)))
    report = problem.evaluate_windows(predictions, windows, stored.schema.get("baselines")
                                      or {"majority_class": stored.metadata["metrics"].get("majority_class", 1)})
    # Bars from the start of the training part to the end of the validation part were used
    # for fitting or early stopping: figures on them are in-sample.
    splits = stored.metadata.get("splits")
    seen = [pd.Timestamp(t) for t in ((splits["train"][0], splits["validation"][1]) if splits
                                      else (stored.metadata["data"]["start"], stored.metadata["data"]["end"]))]
    in_sample = int(np.sum((windows.time >= seen[0]) & (windows.time <= seen[1])))
    return {**stored.identity(), "target": problem.name, "data": data.describe(), "report": report,
            "in_sample_bars": in_sample, "model_fitted_on": [t.isoformat() for t in seen],
            "notes": stored.data_notes(data, data_path)}
