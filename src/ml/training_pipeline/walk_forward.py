"""Walk-forward evaluation: refit and test over K consecutive out-of-sample windows.

The first half of the data (by days) is always history. The second half is cut into K
consecutive test windows of equal length. Fold ``k`` trains exactly as ``atb train`` does on
everything before its test window (the last 15% of it as validation, after a gap) and is scored
on its window next to the naive baselines of the same bars. Fold ``k + 1`` adds fold ``k``'s window
to its history (an expanding window), so no test bar is ever seen by the model scored on it, and
every metric and the skill come with their spread over the folds. Nothing is stored.

Example:
    >>> from ml.training_pipeline.config import TrainingConfig
    >>> from ml.training_pipeline.walk_forward import walk_forward
    >>> report = walk_forward(TrainingConfig(symbol="BTCUSDT", model_type="tcn", days=365, epochs=10), folds=4)  # doctest: +SKIP
    >>> print(report.table())  # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ml.training_pipeline.config import TrainingConfig
from ml.training_pipeline.models.registry import get_spec
from ml.training_pipeline.pipeline import evaluate_fitted, fit_model, plan_run, prepare
from ml.training_pipeline.problems.price.features import build_features
from ml.training_pipeline.problems.price.ohlcv import load_ohlcv
from ml.training_pipeline.store.versions import ModelStore, NoStoredModel, read_metadata

HISTORY_SHARE = 0.5
"""Share of the days that is history for every fold (the K test windows split the rest)."""
MIN_FRACTION, MAX_FRACTION = 0.05, 0.4  # TrainingConfig's accepted test_fraction


@dataclass(frozen=True)
class Fold:
    """One refit: where it trained and tested, and its summary metrics on its test window."""

    fold: int
    train: list[str]
    validation: list[str]
    test: list[str]
    test_bars: int
    metrics: dict[str, float]


@dataclass(frozen=True)
class WalkForwardReport:
    """Every fold and, per metric, its mean, standard deviation (ddof 1), min and max over the folds."""

    model_type: str
    variant: str
    folds: list[Fold]
    spread: dict[str, dict[str, float]]

    def to_dict(self) -> dict[str, Any]:
        return {"model_type": self.model_type, "variant": self.variant,
                "folds": [f.__dict__ for f in self.folds], "spread": self.spread}

    def table(self) -> str:
        """Folds as rows, then the mean and spread of each metric."""
        names = list(self.spread)
        head = f"{'fold':<6}{'test window':<35}{'bars':>6}" + "".join(f"{n:>22}" for n in names)
        lines = [head]
        for f in self.folds:
            lines.append(f"{f.fold:<6}{f.test[0][:16] + ' .. ' + f.test[1][:16]:<35}{f.test_bars:>6}"
                         + "".join(f"{f.metrics[n]:>22.5f}" for n in names))
        for stat in ("mean", "std", "min", "max"):
            lines.append(f"{stat:<47}" + "".join(f"{self.spread[n][stat]:>22.5f}" for n in names))
        return "\n".join(lines)


def walk_forward_config(symbol: str, models_dir: str | None = None, *, version: str | None = None,
                        target: str | None = None, timeframe: str | None = None, model_type: str | None = None,
                        variant: str | None = None, **overrides: Any):
    """The settings to walk forward with: the stored model's (the one ``atb predict`` would choose), or
    ``model_type``'s defaults when nothing is stored; ``variant`` and ``overrides`` (``days``, ``epochs``,
    ``data_path``...) replace the stored values.

    Raises:
        ValueError: nothing stored and no ``model_type``, or a setting ``TrainingConfig`` refuses.
    """
    from dataclasses import fields

    overrides = {k: v for k, v in {**overrides, "models_dir": models_dir}.items() if v is not None}
    try:
        stored = ModelStore(models_dir).find(symbol, version, target, timeframe,
                                             get_spec(model_type).name if model_type else None)
    except NoStoredModel:  # only when nothing is stored: 'several models, choose one' reaches the user as it is
        if model_type is None:
            raise ValueError(f"No stored model for {symbol} to take the settings from; give --model-type "
                             "(and --variant) to walk forward without one") from None
        return TrainingConfig(symbol=symbol, model_type=model_type, variant=variant or "default",
                              target=target or "return", timeframe=timeframe or "1h", **overrides)
    config = read_metadata(stored)["config"]
    # grouping settings name several symbols' files: a walk forward refits the one symbol asked for
    keep = {f.name for f in fields(TrainingConfig)} - {"curriculum", "group_weights", "data_paths", "symbols", "distribute"}
    settings = {k: v for k, v in config.items() if k in keep}
    if variant:
        settings["variant"] = variant
    return TrainingConfig(**{**settings, **overrides})


def check_folds(folds: object) -> int:
    """K must be an int >= 2 (whether the data has room for K windows is checked once it is loaded)."""
    if not isinstance(folds, int) or isinstance(folds, bool) or folds < 2:
        raise ValueError(f"walk-forward needs K >= 2 folds. Received: K={folds!r}")
    return folds


def fold_plan(days: list, folds: int) -> list[tuple[int, int]]:
    """``(first day index of the test window, last day index)`` per fold, over the sorted distinct ``days``.

    Raises:
        ValueError: ``folds`` below 2, or more folds than the days allow (at least one day per window).

    Example:
        >>> fold_plan(list(range(10)), 2)
        [(5, 6), (7, 9)]
    """
    check_folds(folds)
    history = int(len(days) * HISTORY_SHARE)
    width = (len(days) - history) // folds
    if width < 1:
        raise ValueError(f"K={folds} is too large for {len(days)} days of data: each test window needs a day. "
                         f"Accepted: 2 <= K <= {max(2, len(days) - history)}")
    plan = [(history + k * width, history + (k + 1) * width - 1) for k in range(folds)]
    return plan[:-1] + [(plan[-1][0], len(days) - 1)]  # the last window takes the remainder


def walk_forward(config, folds: int, problem=None, log=None) -> WalkForwardReport:
    """Refits ``config``'s model on an expanding history and scores it on K consecutive test windows.

    Args:
        config: a :class:`~ml.training_pipeline.config.TrainingConfig` (its ``days``/dates bound the data).
        folds: K, the number of consecutive out-of-sample windows (>= 2).
        problem: an OHLCV problem (default: the one ``config.target`` names).
        log: called with a line per fold.

    Returns:
        A :class:`WalkForwardReport`.

    Raises:
        ValueError: K < 2, K too large for the data (the message says the largest K that fits), or bad data.
    """
    plan = plan_run(config, problem)
    problem = plan.problem
    loaded = load_ohlcv(config.symbol, config.data_path, config.timeframe, config.days, config.start_date,
                        config.end_date, exchange=config.exchange, covariates=config.covariates)
    rows = build_features(loaded.frame).index  # the feature rows prepare() splits by fractions
    days = sorted(set(rows.normalize()))
    settings = _fold_settings(days, rows, folds)
    bad = [fraction for _, fraction, _ in settings if not MIN_FRACTION <= fraction <= MAX_FRACTION]
    if bad:
        largest = max((k for k in range(2, 41) if _fits(days, rows, k)), default=None)
        raise ValueError(f"K={folds} is too {'large' if bad[0] < MIN_FRACTION else 'small'} for {len(days)} days of "
                         f"data: a test window would be {bad[0]:.1%} of its fold's bars (accepted "
                         f"{MIN_FRACTION:.0%}..{MAX_FRACTION:.0%}). "
                         + (f"Accepted here: 2 <= K <= {largest}" if largest else "Use more data (--days)"))
    results = []
    start = days[0].date().isoformat()
    for index, (end_day, fraction, test_bars) in enumerate(settings, 1):
        fold_config = replace(config, days=None, start_date=start, end_date=end_day, test_fraction=float(fraction))
        fold_plan = plan.with_config(fold_config)
        data = prepare(fold_plan)
        model, _ = fit_model(fold_plan, data)
        data, _, report = evaluate_fitted(model, fold_plan, data)
        summary = {k: float(v) for k, v in problem.summary(report).items() if isinstance(v, (int, float))}
        if "interval" in report:  # the conformal interval's coverage on the fold's test bars
            summary["coverage_split"] = report["interval"]["coverage"]
            summary["coverage_adaptive"] = report["interval"]["adaptive_coverage"]
        fold = Fold(index, data.splits["train"], data.splits["validation"], data.splits["test"],
                    int(data.row_counts.get("test_windows", test_bars)), summary)
        if results and fold.test[0] <= results[-1].test[1]:
            raise RuntimeError(f"fold {index}'s test window overlaps fold {index - 1}'s")  # a bug, never the user's
        results.append(fold)
        if log:
            log(f"fold {index}/{len(settings)}: test {fold.test[0][:16]} .. {fold.test[1][:16]} ({fold.test_bars} "
                f"windows): " + ", ".join(f"{k} {v:.5g}" for k, v in summary.items()))
    names = list(results[0].metrics)
    spread = {}
    for name in names:
        values = np.array([f.metrics[name] for f in results], dtype=np.float64)
        spread[name] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else math.nan,
                        "min": float(values.min()), "max": float(values.max())}
    return WalkForwardReport(config.model_type, config.variant, results, spread)


def _fold_settings(days, rows, folds: int) -> list[tuple[str, float, int]]:
    """``(last day, test_fraction, test bars)`` per fold; ``int(n * test_fraction)`` is the window's bar count in
    the pipeline's split of the fold's ``n`` feature rows."""
    settings = []
    for first, last in fold_plan(days, folds):
        end = days[last] + np.timedelta64(1, "D")
        test_bars = int(((rows >= days[first]) & (rows < end)).sum())
        settings.append((days[last].date().isoformat(), (test_bars + 0.5) / max(1, int((rows < end).sum())),
                         test_bars))
    return settings


def _fits(days, rows, folds: int) -> bool:
    """Whether K folds give every test window an accepted share of its fold's bars."""
    try:
        return all(MIN_FRACTION <= f <= MAX_FRACTION for _, f, _ in _fold_settings(days, rows, folds))
    except ValueError:
        return False
