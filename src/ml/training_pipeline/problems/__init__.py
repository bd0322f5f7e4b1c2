"""One object per problem: how its target is built, its naive baselines, its metrics, the summary
``atb models list`` shows, inverse scaling and plots.

A :class:`~ml.training_pipeline.config.TrainingConfig` names an OHLCV problem by ``target``
(``return``, ``direction``, ``volatility``); a user's own arrays come as an
:class:`ArraysProblem` object passed to ``train(config, problem=...)``.

The package's names load on first use (PEP 562): importing one problem module, such as the log formats that
``atb --help`` lists, does not import pandas and every other problem. Any name taken from here imports every
problem module first, so the problem registries (``PROBLEM_TYPES``, ``CONFIG_PROBLEMS``) are complete.

Example:
    >>> from ml.training_pipeline.problems import PROBLEM_TYPES
    >>> sorted(PROBLEM_TYPES)
    ['arrays', 'direction', 'log_anomaly', 'return', 'symbols', 'volatility']
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ml.training_pipeline.common.arguments import unknown_name_error

if TYPE_CHECKING:
    import pandas as pd

    from ml.training_pipeline.problems.base import Problem

__all__ = ["ArraysProblem", "CONFIG_PROBLEMS", "LogAnomalyProblem", "PROBLEM_TYPES", "PriceDirection", "PriceProblem",
           "PriceReturn", "Problem", "ProblemData", "RealizedVolatility", "SymbolsProblem", "build_target",
           "check_weights", "get_problem", "problem_type"]


def _every_problem() -> dict[str, Any]:
    """Imports every problem module (each registers its problems) and returns the package's public classes."""
    # function-level on purpose: see the module docstring (pandas and every problem only when one is used)
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
    from ml.training_pipeline.problems.price.forecasts import (
        PriceDirection,
        PriceProblem,
        PriceReturn,
        RealizedVolatility,
    )
    from ml.training_pipeline.problems.price.symbols import SymbolsProblem

    return {"ArraysProblem": ArraysProblem, "CONFIG_PROBLEMS": CONFIG_PROBLEMS, "LogAnomalyProblem": LogAnomalyProblem,
            "PROBLEM_TYPES": PROBLEM_TYPES, "PriceDirection": PriceDirection, "PriceProblem": PriceProblem,
            "PriceReturn": PriceReturn, "Problem": Problem, "ProblemData": ProblemData,
            "RealizedVolatility": RealizedVolatility, "SymbolsProblem": SymbolsProblem, "check_weights": check_weights,
            "problem_type": problem_type}


def __getattr__(name: str) -> Any:
    exported = _every_problem()
    if name not in exported:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals().update(exported)  # later lookups are plain module attributes
    return exported[name]


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def get_problem(target: str, horizon: int | None = None, symbols: tuple[str, ...] = ()) -> Problem:
    """The OHLCV problem a config's ``target`` names (over several symbols when ``symbols`` has more than one).

    Example:
        >>> get_problem("volatility").horizon
        24
    """
    problems = _every_problem()
    if target not in problems["CONFIG_PROBLEMS"]:
        raise unknown_name_error("target", target, problems["CONFIG_PROBLEMS"])
    problem = problems["CONFIG_PROBLEMS"][target](horizon=horizon)
    return problems["SymbolsProblem"](problem, tuple(symbols)) if len(symbols) > 1 else problem


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
