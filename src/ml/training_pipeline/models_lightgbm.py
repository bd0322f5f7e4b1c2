"""The user's guide's LightGBM module: the baseline's functions under the guide's import path.

Example:
    >>> from ml.training_pipeline.models_lightgbm import create_lightgbm_model  # doctest: +SKIP
    >>> model = create_lightgbm_model(n_estimators=1000, learning_rate=0.05)  # doctest: +SKIP
"""

from __future__ import annotations

from ml.training_pipeline.fitting.boosting import train_lightgbm_with_early_stopping
from ml.training_pipeline.models.families.lightgbm import (
    RECOMMENDED_HYPERPARAMETERS,
    create_lightgbm_model,
    engineer_features_for_lgb,
    get_feature_importance,
)

__all__ = ["RECOMMENDED_HYPERPARAMETERS", "create_lightgbm_model", "engineer_features_for_lgb",
           "get_feature_importance", "train_lightgbm_with_early_stopping"]
