"""Honest metrics: every model figure is shown next to naive baselines on the same window.

Price targets: the model's predicted log return is turned into a predicted close and
compared with persistence (next close = last close) and a moving average of recent closes.
Directional accuracy is ``sign(pred_close[t+h] - close[t]) == sign(close[t+h] - close[t])``;
persistence predicts no move, so its directional accuracy is the share of bars with no
move (close to 0). Skill is ``1 - RMSE_model / RMSE_persistence``: 0 for a model that
copies the last price, negative for one that does worse.
"""

from __future__ import annotations

from typing import Any

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
        "skill": skill(model["rmse"], persistence["rmse"]),
        "n": int(len(close)),
    }
    return report


def classification_metrics(predicted: np.ndarray, actual: np.ndarray, probability: np.ndarray | None = None,
                           weight: np.ndarray | None = None) -> dict[str, float]:
    """Accuracy, precision, recall and F1 of the positive class; ROC-AUC and PR-AUC from the probabilities.

    ROC-AUC is NaN when the bars hold one class only. A constant probability gives ROC-AUC 0.5
    and PR-AUC equal to the positive rate: the honest floor of both.

    Example:
        >>> classification_metrics(np.array([1, 0]), np.array([1, 0]), np.array([0.9, 0.2]))["roc_auc"]
        1.0
    """
    from sklearn import metrics

    predicted, actual = np.asarray(predicted).astype(int), np.asarray(actual).astype(int)
    out = {
        "accuracy": float(metrics.accuracy_score(actual, predicted, sample_weight=weight)),
        "precision": float(metrics.precision_score(actual, predicted, zero_division=0, sample_weight=weight)),
        "recall": float(metrics.recall_score(actual, predicted, zero_division=0, sample_weight=weight)),
        "f1": float(metrics.f1_score(actual, predicted, zero_division=0, sample_weight=weight)),
    }
    if probability is not None:
        both = len(np.unique(actual)) == 2
        out["roc_auc"] = float(metrics.roc_auc_score(actual, probability, sample_weight=weight)) if both else float("nan")
        out["pr_auc"] = float(metrics.average_precision_score(actual, probability, sample_weight=weight)) if both \
            else float("nan")
    return out


def choose_threshold(actual: np.ndarray, probability: np.ndarray) -> tuple[float, float]:
    """The decision threshold with the best F1 on these rows, and that F1.

    Every threshold between the lowest score flagged and the highest score below it gives the same
    F1 on these rows; the midpoint of that gap is returned (the widest margin on both sides), not
    its edge, which would sit right on one validation score. Choose it on validation rows and apply
    it to test rows: picked on the test rows it would flatter. With no positive row (F1 is 0
    whatever the threshold) the threshold is 0.5.

    Example:
        >>> choose_threshold(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9]))
        (0.25, 0.8)
    """
    from sklearn.metrics import precision_recall_curve

    actual = np.asarray(actual).reshape(-1).astype(int)
    probability = np.asarray(probability, np.float64).reshape(-1)
    if not actual.any():
        return 0.5, 0.0
    precision, recall, thresholds = precision_recall_curve(actual, probability)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)[:-1]
    best = int(np.argmax(f1))
    below = probability[probability < thresholds[best]]
    threshold = (thresholds[best] + below.max()) / 2 if len(below) else thresholds[best]
    return float(threshold), float(f1[best])


def anomaly_metrics(probability: np.ndarray, actual: np.ndarray, threshold: float) -> dict[str, float]:
    """Accuracy, precision, recall, F1, false-positive rate, ROC-AUC and PR-AUC at a decision threshold.

    Example:
        >>> anomaly_metrics(np.array([0.9, 0.2, 0.7]), np.array([1, 0, 0]), 0.5)["false_positive_rate"]
        0.5
    """
    probability = np.asarray(probability, np.float64).reshape(-1)
    actual = np.asarray(actual).reshape(-1).astype(int)
    predicted = probability >= threshold
    negatives = int((actual == 0).sum())
    metrics = classification_metrics(predicted, actual, probability)
    return {**metrics, "false_positive_rate": float((predicted & (actual == 0)).sum() / negatives) if negatives
            else float("nan")}


DEFAULT_COST_BPS = 10.0
"""Cost per unit of position traded (a switch from long to short trades 2 units), in basis points: a taker fee
plus slippage on a major crypto pair."""


def trading_verdict(score: np.ndarray, next_return: np.ndarray, cost_bps: float = DEFAULT_COST_BPS) -> dict[str, Any]:
    """The long/short rule ``sign(score)`` held over each period, its break-even cost and whether it pays at ``cost_bps``.

    Args:
        score: per period, centred (positive: go long), e.g. ``P(up) - 0.5``.
        next_return: the log return each position earns (the period's, signed).
        cost_bps: cost per unit of position traded, in basis points.

    Returns:
        ``gross_return`` (sum), ``trades`` (position changes), ``turnover`` (units traded), ``break_even_bps``
        (gross return per unit traded: the cost at which the rule breaks even), ``net_return`` at the cost,
        ``correlation`` of the score with the signed return, and ``tradable`` (net return above 0).

    Example:
        >>> r = np.array([0.01, -0.01, 0.01, -0.01])
        >>> verdict = trading_verdict(r, r, cost_bps=10)  # a perfect score, 4 trades of 2 units but the first
        >>> round(verdict["break_even_bps"], 2), verdict["tradable"]
        (57.14, True)
    """
    score = np.asarray(score, np.float64).reshape(-1)
    next_return = np.asarray(next_return, np.float64).reshape(-1)
    position = np.sign(score)
    gross = float(np.sum(position * next_return))
    turnover = float(np.abs(np.diff(np.r_[0.0, position])).sum())
    break_even = 1e4 * gross / turnover if turnover else float("inf") if gross > 0 else 0.0
    net = gross - turnover * cost_bps / 1e4
    both = np.std(score) > 0 and np.std(next_return) > 0
    return {"gross_return": gross, "trades": int(np.count_nonzero(np.diff(position))), "turnover": turnover,
            "break_even_bps": float(break_even), "cost_bps": float(cost_bps), "net_return": float(net),
            "correlation": float(np.corrcoef(score, next_return)[0, 1]) if both else 0.0,
            "periods": int(len(score)), "tradable": bool(net > 0)}


def format_trading(trading: dict) -> str:
    """One line: the long/short rule on the model's score, at its cost.

    Example:
        >>> r = np.array([0.01, -0.01, 0.01, -0.01])
        >>> format_trading(trading_verdict(r, r))
        'trading    long/short on the sign of the forecast at 10 bps per unit traded: gross +0.0400 over 4 periods, break-even 57.14 bps, forecast/return correlation +1.000: tradable'
    """
    return (f"trading    long/short on the sign of the forecast at {trading['cost_bps']:g} bps per unit traded: gross "
            f"{trading['gross_return']:+.4f} over {trading['periods']} periods, break-even {trading['break_even_bps']:.2f} "
            f"bps, forecast/return correlation {trading['correlation']:+.3f}: "
            + ("tradable" if trading["tradable"] else "not tradable"))


def evaluate_direction(probability_up: np.ndarray, actual: np.ndarray, majority_class: int,
                       weight: np.ndarray | None = None) -> dict:
    """Model metrics (threshold 0.5) next to the training set's majority class on the same bars."""
    probability_up = np.asarray(probability_up, dtype=np.float64).reshape(-1)
    constant = np.full(len(actual), float(majority_class))
    return {
        "model": classification_metrics(probability_up >= 0.5, actual, probability_up, weight),
        "majority": classification_metrics(constant, actual, constant, weight),
        "majority_class": int(majority_class),
        "n": int(len(actual)),
    }


def log_volatility_metrics(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    """RMSE and MAE of log realized volatility, and QLIKE on the implied variance.

    QLIKE (``v / v_hat - log(v / v_hat) - 1`` with ``v = exp(2 * log_vol)``) is the loss
    volatility forecasts are usually ranked by: robust to noise in the realized measure.

    Example:
        >>> log_volatility_metrics(np.array([0.0]), np.array([0.0]))["qlike"]
        0.0
    """
    predicted, actual = np.asarray(predicted, np.float64), np.asarray(actual, np.float64)
    error = predicted - actual
    ratio = np.exp(2.0 * (actual - predicted))
    return {"rmse": float(np.sqrt(np.mean(error**2))), "mae": float(np.mean(np.abs(error))),
            "qlike": float(np.mean(ratio - np.log(ratio) - 1.0))}


def skill(model_rmse: float, baseline_rmse: float) -> float:
    """``1 - RMSE_model / RMSE_baseline``: 0 for a model as good as the baseline, negative when worse."""
    return 1.0 - model_rmse / baseline_rmse if baseline_rmse > 0 else 0.0


def _number(value: float) -> str:
    """Fixed decimals, so a column reads the same for every row (no 0.00027571 under 0.5108)."""
    if not np.isfinite(value):
        return "nan"
    return f"{value:.2f}" if abs(value) >= 1000 else f"{value:.4f}"


def format_report(report: dict) -> str:
    """A compact text table: one row per model or baseline, then every skill figure.

    Example:
        >>> print(format_report(report))  # doctest: +SKIP
    """
    columns = list(report["model"])
    # a row is a forecaster scored like the model (other dicts, e.g. the baselines' thresholds, are not rows)
    rows = [name for name, value in report.items() if isinstance(value, dict) and any(c in value for c in columns)
            and name not in ("by_group", "groups", "uncertainty", "interval", "trading")]
    widths = [max(12, len(c) + 2) for c in columns]
    first = max(16, *(len(name) + 2 for name in rows)) if rows else 16
    header = f"{'':<{first}}" + "".join(f"{c:>{w}}" for c, w in zip(columns, widths, strict=True))
    lines = [f"evaluated on {report['n']} rows (model and baselines on the same rows)", header]
    for name in rows:
        values = report[name]
        lines.append(f"{name:<{first}}" + "".join(f"{_number(values.get(c, float('nan'))):>{w}}"
                                             for c, w in zip(columns, widths, strict=True)))
    for key, value in report.items():
        if key.startswith("skill"):
            against = key.removeprefix("skill").strip("_") or "persistence"
            metric = report.get("error_metric", "RMSE")
            lines.append(f"skill vs {against} (1 - {metric}_model / {metric}_{against}): {value:+.4f}")
    if report.get("trading"):
        lines.append(format_trading(report["trading"]))
    if report.get("interval"):
        lines.append(format_conformal(report["interval"]))
    if report.get("uncertainty"):
        lines.append(format_interval(report["uncertainty"]))
    if report.get("by_group"):
        lines.append(format_group_table(report))
    return "\n".join(lines)


def format_conformal(interval: dict) -> str:
    """One line: the conformal interval's coverage on the test targets, split and adaptive, next to its nominal level.

    Example:
        >>> format_conformal({"nominal": 0.9, "coverage": 0.85, "mean_width": 0.9, "adaptive_coverage": 0.895,
        ...                   "adaptive_mean_width": 1.02, "n": 300})
        'interval   90% conformal interval covers 89.5% of 300 test targets (adaptive, mean width 1.02); split on validation: 85.0% (width 0.9)'
    """
    return (f"interval   {interval['nominal']:.0%} conformal interval covers {interval['adaptive_coverage']:.1%} of "
            f"{interval['n']} test targets (adaptive, mean width {interval['adaptive_mean_width']:.4g}); split on "
            f"validation: {interval['coverage']:.1%} (width {interval['mean_width']:.4g})")


def format_interval(interval: dict) -> str:
    """One line: the interval's coverage on held-out targets next to its nominal level.

    Example:
        >>> format_interval({"nominal": 0.8, "coverage": 0.74, "method": "sampling", "n_samples": 50,
        ...                  "mean_width": 0.01, "n": 200})
        'interval   80% interval covers 74.0% of 200 test targets (nominal 80%; sampling, 50 samples; mean width 0.01)'
    """
    how = interval["method"] + (f", {interval['n_samples']} samples" if interval.get("n_samples") else "")
    line = (f"interval   {interval['nominal']:.0%} interval covers {interval['coverage']:.1%} of {interval['n']} test "
            f"targets (nominal {interval['nominal']:.0%}; {how}; mean width {interval['mean_width']:.4g})")
    if "calibrated_coverage" in interval:
        line += (f"\n           calibrated on validation (x{1 + interval['calibration_scale']:.3g} half-width): covers "
                 f"{interval['calibrated_coverage']:.1%} (mean width {interval['calibrated_mean_width']:.4g})")
    return line


LOWER_IS_BETTER = ("rmse", "mae", "mape", "log2_mse", "pinball", "log_loss", "qlike", "mse", "false_positive_rate")
"""Metrics where smaller is better; every other metric (accuracy, f1, skill...) is larger-is-better."""


def group_summary(values: dict[str, float], metric: str) -> dict:
    """The worst and best group on one metric and the spread between them.

    Args:
        values: ``{group: value of the metric}``.
        metric: the metric's name (its direction comes from :data:`LOWER_IS_BETTER`).

    Example:
        >>> group_summary({"a": 1.0, "b": 3.0}, "rmse")["worst"]
        'b'
        >>> group_summary({"a": 0.1, "b": -0.2}, "skill")["worst"]
        'b'
    """
    finite = {g: float(v) for g, v in values.items() if np.isfinite(v)}
    lower = metric in LOWER_IS_BETTER or metric.rsplit("_", 1)[-1] in LOWER_IS_BETTER
    if not finite:
        return {"metric": metric, "lower_is_better": lower, "worst": None, "best": None, "spread": float("nan")}
    ordered = sorted(finite, key=finite.get, reverse=lower)
    return {"metric": metric, "lower_is_better": lower, "worst": ordered[0], "best": ordered[-1],
            "worst_value": finite[ordered[0]], "best_value": finite[ordered[-1]],
            "spread": abs(finite[ordered[0]] - finite[ordered[-1]])}


def format_group_table(report: dict) -> str:
    """One row per group: rows, then the headline metric of the model and of each baseline, worst group marked.

    Example:
        >>> print(format_group_table(report))  # doctest: +SKIP
    """
    summary = report["groups"]
    metric, groups = summary.get("table_metric", summary["metric"]), report["by_group"]
    first = next(iter(groups.values()))
    sources = [k for k, v in first.items() if isinstance(v, dict)]
    skills = [k for k in first if k.startswith("skill")]
    header = f"{'group':<16}{'n':>7}" + "".join(f"{s[:18]:>20}" for s in [*sources, *skills])
    lines = [f"per group ({metric} of the model and each baseline on the group's rows; worst by "
             f"{summary['metric']}: {summary['worst']}, spread {summary['spread']:.4g}):", header]
    for group, values in groups.items():
        mark = " <- worst" if group == summary["worst"] else ""
        lines.append(f"{group[:15]:<16}{values.get('n', 0):>7}" + "".join(
            f"{values[s].get(metric, float('nan')):>20.5g}" for s in sources) + "".join(
            f"{values[k]:>+20.4f}" for k in skills) + mark)
    return "\n".join(lines)
