"""Honest metrics: every model figure is shown next to naive baselines on the same window.

Price targets: the model's predicted log return is turned into a predicted close and
compared with persistence (next close = last close) and a moving average of recent closes.
Directional accuracy is ``sign(pred_close[t+h] - close[t]) == sign(close[t+h] - close[t])``;
persistence predicts no move, so its directional accuracy is the share of bars with no
move (close to 0). Skill is ``1 - RMSE_model / RMSE_persistence``: 0 for a model that
copies the last price, negative for one that does worse.
"""

from __future__ import annotations

import numpy as np


def price_metrics(predicted_close: np.ndarray, close: np.ndarray, future_close: np.ndarray) -> dict[str, float]:
    """RMSE, MAE, MAPE (%) on price and directional accuracy against the last close.

    Example:
        >>> price_metrics(np.array([2.0]), np.array([1.0]), np.array([3.0]))["directional_accuracy"]
        1.0
    """
    error = predicted_close - future_close
    return {
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mae": float(np.mean(np.abs(error))),
        "mape": float(np.mean(np.abs(error) / np.abs(future_close)) * 100.0),
        "directional_accuracy": float(np.mean(np.sign(predicted_close - close) == np.sign(future_close - close))),
    }


def evaluate_returns(
    predicted_log_return: np.ndarray,
    close: np.ndarray,
    future_close: np.ndarray,
    moving_average: np.ndarray,
) -> dict:
    """Model, persistence and moving-average metrics on the same bars, plus skill.

    Returns:
        ``{"model": {...}, "persistence": {...}, "moving_average": {...}, "skill": float, "n": int}``
    """
    predicted_log_return = np.asarray(predicted_log_return, dtype=np.float64).reshape(-1)
    model = price_metrics(close * np.exp(predicted_log_return), close, future_close)
    persistence = price_metrics(close.copy(), close, future_close)
    report = {
        "model": model,
        "persistence": persistence,
        "moving_average": price_metrics(moving_average, close, future_close),
        "skill": 1.0 - model["rmse"] / persistence["rmse"] if persistence["rmse"] > 0 else 0.0,
        "n": int(len(close)),
    }
    return report


def classification_metrics(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    """Accuracy, precision, recall and F1 of the positive (up) class."""
    predicted, actual = predicted.astype(int), actual.astype(int)
    tp = int(np.sum((predicted == 1) & (actual == 1)))
    fp = int(np.sum((predicted == 1) & (actual == 0)))
    fn = int(np.sum((predicted == 0) & (actual == 1)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"accuracy": float(np.mean(predicted == actual)), "precision": precision, "recall": recall, "f1": f1}


def evaluate_direction(probability_up: np.ndarray, actual: np.ndarray, majority_class: int) -> dict:
    """Model metrics (threshold 0.5) next to the training set's majority class on the same bars."""
    probability_up = np.asarray(probability_up, dtype=np.float64).reshape(-1)
    return {
        "model": classification_metrics(probability_up >= 0.5, actual),
        "majority": classification_metrics(np.full(len(actual), majority_class), actual),
        "majority_class": int(majority_class),
        "n": int(len(actual)),
    }


def format_report(report: dict) -> str:
    """A compact text table of a report from :func:`evaluate_returns` or :func:`evaluate_direction`.

    Example:
        >>> print(format_report(report))  # doctest: +SKIP
    """
    rows = [name for name in ("model", "persistence", "moving_average", "majority") if name in report]
    columns = list(report["model"])
    widths = [max(12, len(c) + 2) for c in columns]
    header = f"{'':<16}" + "".join(f"{c:>{w}}" for c, w in zip(columns, widths, strict=True))
    lines = [f"evaluated on {report['n']} bars (model and baselines on the same bars)", header]
    for name in rows:
        values = report[name]
        lines.append(f"{name:<16}" + "".join(f"{values[c]:>{w}.6g}" for c, w in zip(columns, widths, strict=True)))
    if "skill" in report:
        lines.append(f"skill vs persistence (1 - RMSE_model / RMSE_persistence): {report['skill']:+.4f}")
    return "\n".join(lines)
