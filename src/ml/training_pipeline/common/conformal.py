"""Conformal prediction intervals for any point forecaster, from held-out absolute residuals.

Two methods, both model-free (they need predictions and realized targets only):

- **split conformal** (Vovk et al. 2005; Lei et al. 2018): the half-width is the
  ``ceil((n + 1) * level) / n`` quantile of ``n`` held-out absolute residuals (the validation part).
  It covers ``level`` of new rows exchangeable with those, which a calm validation part followed by a
  turbulent test part is not.
- **adaptive conformal inference** (ACI, Gibbs and Candès 2021) on a rolling window of recent
  residuals (as EnbPI does, Xu and Xie 2021): at each new bar the half-width is the ``1 - alpha_t``
  quantile of the last ``window`` residuals already *known* at that bar (a target ``delay`` bars
  ahead is realized ``delay`` bars later), and ``alpha_t`` moves by ``gamma * (alpha - miss)`` as each
  outcome arrives, so coverage tracks ``level`` when the period changes. Nothing is refitted. When
  ``alpha_t`` falls to 0 or below the interval is the largest recent residual (finite, unlike ACI's
  infinite interval there).

Example:
    >>> residuals = np.abs(np.random.default_rng(0).normal(size=1000))
    >>> round(split_half_width(residuals, 0.9), 2)
    1.56
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

ACI_GAMMA = 0.005
"""ACI's step size: Gibbs and Candès' recommended 0.005 (coverage error over T bars is at most about
``(max(alpha, 1 - alpha) + gamma) / (gamma * T)``)."""
RECENT_RESIDUALS = 720
"""Residuals the adaptive interval's quantile is taken over: 30 days of hourly bars."""


def split_half_width(abs_residuals: np.ndarray, level: float) -> float:
    """The split-conformal half-width: the ``ceil((n + 1) level) / n`` quantile of the held-out absolute residuals
    (infinite when ``n`` is too small for the level)."""
    scores = np.sort(np.asarray(abs_residuals, np.float64).reshape(-1))
    rank = math.ceil((len(scores) + 1) * level)
    return float(scores[rank - 1]) if 0 < rank <= len(scores) else float("inf")


def adaptive_half_widths(predictions: np.ndarray, actual: np.ndarray, calibration: np.ndarray, level: float,
                         delay: int = 1, gamma: float = ACI_GAMMA,
                         window: int = RECENT_RESIDUALS) -> tuple[np.ndarray, float, np.ndarray]:
    """ACI half-widths for consecutive bars whose targets are realized ``delay`` bars later.

    Args:
        predictions, actual: the bars' point forecasts and realized targets, oldest first.
        calibration: absolute residuals of the bars just before (the validation part), oldest first.
        level: nominal coverage (e.g. 0.9).
        delay: bars until a target is known (the forecast horizon).
        gamma: ACI step size.
        window: most recent known residuals the quantile is taken over.

    Returns:
        ``(half_widths, final_alpha, recent_abs_residuals)``: one half-width per bar, the miscoverage target
        after the last realized outcome, and the last ``window`` absolute residuals (what serving needs).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> y = np.r_[rng.normal(size=500), 3 * rng.normal(size=500)]  # the period turns wilder
        >>> widths, _, _ = adaptive_half_widths(np.zeros(1000), y, np.abs(rng.normal(size=500)), 0.9)
        >>> float(np.mean(np.abs(y[500:]) <= widths[500:])) > 0.8
        True
    """
    predictions = np.asarray(predictions, np.float64).reshape(-1)
    actual = np.asarray(actual, np.float64).reshape(-1)
    history = list(np.asarray(calibration, np.float64).reshape(-1)[-window:])
    residuals = np.abs(actual - predictions)
    alpha = target = 1.0 - level
    widths = np.empty(len(predictions))
    for t in range(len(predictions)):
        realized = t - delay  # the newest bar whose target is known at bar t
        if realized >= 0:
            history.append(residuals[realized])
            miss = float(residuals[realized] > widths[realized])
            alpha += gamma * (target - miss)
        recent = np.asarray(history[-window:])
        # alpha <= 0 asks for more than every residual: the widest finite interval, the largest recent residual
        widths[t] = float(np.quantile(recent, min(1.0, 1.0 - alpha)))
    # the outcomes realized after the last bar would update alpha further: serving starts from here
    return widths, float(alpha), np.asarray(history[-window:] + list(residuals[max(0, len(residuals) - delay):]))[-window:]


def conformal_report(validation_predictions: np.ndarray, validation_actual: np.ndarray,
                     test_predictions: np.ndarray, test_actual: np.ndarray, level: float,
                     delay: int = 1) -> dict[str, Any]:
    """Empirical coverage and mean width of the split and adaptive conformal intervals on the test bars.

    Everything is in the target's units. The returned ``serving`` entry is what a stored model needs to
    give the adaptive interval of its next forecast (:func:`serving_half_width`).

    Example:
        >>> rng = np.random.default_rng(1)
        >>> report = conformal_report(np.zeros(400), rng.normal(size=400), np.zeros(400), rng.normal(size=400), 0.9)
        >>> 0.85 < report["coverage"] < 0.95, report["method"]
        (True, 'conformal')
    """
    validation_abs = np.abs(np.asarray(validation_actual, np.float64).reshape(-1)
                            - np.asarray(validation_predictions, np.float64).reshape(-1))
    test_predictions = np.asarray(test_predictions, np.float64).reshape(-1)
    test_actual = np.asarray(test_actual, np.float64).reshape(-1)
    errors = np.abs(test_actual - test_predictions)
    split = split_half_width(validation_abs, level)
    widths, alpha, recent = adaptive_half_widths(test_predictions, test_actual, validation_abs, level, delay)
    return {
        "method": "conformal", "nominal": level, "n": int(len(test_actual)), "delay_bars": int(delay),
        "coverage": float(np.mean(errors <= split)), "mean_width": 2 * split, "half_width": split,
        "adaptive_coverage": float(np.mean(errors <= widths)), "adaptive_mean_width": float(np.mean(2 * widths)),
        "serving": {"adaptive_alpha": alpha, "recent_abs_residuals": [float(r) for r in recent]},
    }


def serving_half_width(stored: dict[str, Any], level: float) -> tuple[float, str]:
    """The half-width of a stored model's next interval at ``level``, and how it was found.

    At the stored nominal level: the adaptive one (the final ``alpha`` over the most recent residuals);
    at another level: the split quantile of the same recent residuals.

    Example:
        >>> serving_half_width({"nominal": 0.9, "serving": {"adaptive_alpha": 0.1,
        ...                     "recent_abs_residuals": list(np.linspace(0, 1, 101))}}, 0.9)
        (0.9, 'adaptive conformal, 101 recent residuals')
    """
    recent = np.asarray(stored["serving"]["recent_abs_residuals"], np.float64)
    if math.isclose(level, stored["nominal"]):
        alpha = stored["serving"]["adaptive_alpha"]
        return float(np.quantile(recent, min(1.0, 1.0 - alpha))), f"adaptive conformal, {len(recent)} recent residuals"
    return split_half_width(recent, level), f"split conformal on {len(recent)} recent residuals"
