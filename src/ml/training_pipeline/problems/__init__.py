"""One object per problem: how its target is built, its naive baselines, its metrics, the summary
``atb models list`` shows, inverse scaling and plots.

A :class:`~ml.training_pipeline.config.TrainingConfig` names an OHLCV problem by ``target``
(``return``, ``direction``, ``volatility``); a user's own arrays come as an
:class:`ArraysProblem` object passed to ``train(config, problem=...)``.
"""

from __future__ import annotations

from ml.training_pipeline.problems.anomaly import LogAnomalyProblem
from ml.training_pipeline.problems.arrays import ArraysProblem
from ml.training_pipeline.problems.base import (
    CONFIG_PROBLEMS,
    PROBLEM_TYPES,
    Problem,
    ProblemData,
    check_weights,
    problem_type,
)
from ml.training_pipeline.problems.price import PriceDirection, PriceProblem, PriceReturn, RealizedVolatility
from ml.training_pipeline.problems.symbols import SymbolsProblem
from ml.training_pipeline.validation import unknown_name_error


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


__all__ = ["ArraysProblem", "CONFIG_PROBLEMS", "LogAnomalyProblem", "PROBLEM_TYPES", "PriceDirection", "PriceProblem", "PriceReturn",
           "Problem", "ProblemData", "RealizedVolatility", "SymbolsProblem", "check_weights", "get_problem", "problem_type"]
