"""The README's import path for curriculum phases; they live in :mod:`ml.training_pipeline.fitting.curriculum`.

Example:
    >>> from ml.training_pipeline.curriculum import parse_curriculum
    >>> [(phase.groups, phase.epochs) for phase in parse_curriculum("BTCUSDT:10,all:40")]
    [(('BTCUSDT',), 10), (None, 40)]
"""

from ml.training_pipeline.fitting.curriculum import Phase, check_phases, fit_curriculum, parse_curriculum

__all__ = ["Phase", "check_phases", "fit_curriculum", "parse_curriculum"]
