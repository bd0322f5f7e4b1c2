"""The README's import path for attention maps and variable selection; they live in
:mod:`ml.training_pipeline.models.interpretation` (the factory's ``extract_attention_weights`` uses them).

Example:
    >>> import numpy as np
    >>> from ml.training_pipeline.interpretation import variable_importance
    >>> variable_importance(np.array([[0.75, 0.25], [0.25, 0.75], [0.5, 0.5]]), ["a", "b"])
    {'a': 0.5, 'b': 0.5}
"""

from ml.training_pipeline.models.interpretation import (
    ATTENTION,
    VARIABLE_SELECTION,
    interpret,
    interpretable_layers,
    mean_attention,
    variable_importance,
)

__all__ = ["ATTENTION", "VARIABLE_SELECTION", "interpret", "interpretable_layers", "mean_attention", "variable_importance"]
