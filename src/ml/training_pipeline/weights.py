"""The README's import path for sample weights; they live in :mod:`ml.training_pipeline.common.sample_weights`.

Example:
    >>> from ml.training_pipeline.weights import group_weights
    >>> group_weights(["a", "a", "b"], "balanced").round(2).tolist()
    [0.75, 0.75, 1.5]
"""

from ml.training_pipeline.common.sample_weights import (
    check_group_weights,
    check_weights,
    class_weights,
    group_weights,
    sample_weights,
    weigh_splits,
)

__all__ = ["check_group_weights", "check_weights", "class_weights", "group_weights", "sample_weights", "weigh_splits"]
