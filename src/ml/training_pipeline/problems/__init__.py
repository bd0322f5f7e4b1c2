"""One object per problem: how its target is built, its naive baselines, its metrics, the summary
``atb models list`` shows, inverse scaling and plots.

A :class:`~ml.training_pipeline.config.TrainingConfig` names an OHLCV problem by ``target``
(``return``, ``direction``, ``volatility``); a user's own arrays come as an
:class:`ArraysProblem` object passed to ``train(config, problem=...)``.
"""

from __future__ import annotations

import pandas as pd

from ml.training_pipeline.common.arguments import unknown_name_error
from ml.training_pipeline.problems.anomaly.problem import LogAnomalyProblem
from ml.training_pipeline.problems.arrays import ArraysProblem
from ml.training_pipeline.problems.base import (
    CONFIG_PROBLEMS,
    PROBLEM_TYPES,
    Problem,
    ProblemData,
    check_weights,
    problem_type,
)
from ml.training_pipeline.problems.price.forecasts import PriceDirection, PriceProblem, PriceReturn, RealizedVolatility
from ml.training_pipeline.problems.price.symbols import SymbolsProblem


def get_problem(target: str, horizon: int | None = None, symbols: tuple[str, ...] = ()) -> Problem:
    """The OHLCV problem a config's ``target`` names (over several symbols when ``symbols`` has more than one).

    Example:
        >>> get_problem("volatility").horizon
        24
    """
    if target not in CONFIG_PROBLEMS:
        raise unknown_name_error("target", target, CONFIG_PROBLEMS)
    problem = CONFIG_PROBLEMS[target](horizon=horizon)
    return SymbolsProblem(problem, tuple(symbols)) if len(symbols) > 1 else problem


def build_target(close: pd.Series, target: str, horizon: int) -> pd.Series:
    """The value to predict at each bar for an OHLCV problem (``return``, ``direction``, ``volatility``).

    The problem object owns the definition; this is a shortcut for notebooks. The last bars,
    whose future is unknown, get NaN.

    Example:
        >>> import pandas as pd
        >>> build_target(pd.Series([1.0, 2.0, 1.0]), "direction", 1).tolist()
        [1.0, 0.0, nan]
    """
    return get_problem(target, horizon).target(close, "1h")


__all__ = ["ArraysProblem", "CONFIG_PROBLEMS", "LogAnomalyProblem", "PROBLEM_TYPES", "PriceDirection", "PriceProblem", "PriceReturn",
           "Problem", "ProblemData", "RealizedVolatility", "SymbolsProblem", "build_target", "check_weights", "get_problem", "problem_type"]
