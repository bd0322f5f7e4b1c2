"""The user's guide's TCN module: the receptive field and the TCN builders under the guide's import path.

The TCN itself lives in :mod:`ml.training_pipeline.models.families.tcn` and is built with
``create_model("tcn", ...)``; this module keeps ``from ml.training_pipeline.models_tcn import ...`` working.

Example:
    >>> from ml.training_pipeline.models_tcn import calculate_receptive_field
    >>> calculate_receptive_field(kernel_size=5, num_layers=5)  # two causal convolutions per level
    249
"""

from __future__ import annotations

from ml.training_pipeline.models.families.tcn import (
    CONVS_PER_BLOCK,
    GUIDE_NAMES,
    RECOMMENDED_HYPERPARAMETERS,
    calculate_receptive_field,
)

__all__ = ["CONVS_PER_BLOCK", "GUIDE_NAMES", "RECOMMENDED_HYPERPARAMETERS", "calculate_receptive_field"]
