"""The user's guide's Attention-LSTM module: attention maps and presets under the guide's import path.

Importing it registers the library's custom layers, so a model saved by the pipeline loads in a fresh
process with ``tf.keras.models.load_model`` (or ``keras.models.load_model``) right after this import.

Example:
    >>> from ml.training_pipeline.models_attention_lstm import extract_attention_weights  # doctest: +SKIP
    >>> model = tf.keras.models.load_model("model.keras")  # doctest: +SKIP
    >>> extract_attention_weights(model, X_test[:10]).shape  # doctest: +SKIP
    (10, 60, 60)
"""

from __future__ import annotations

import ml.training_pipeline.layers  # noqa: F401  (registers the custom layers for load_model)
import ml.training_pipeline.models.kinds.fast_predict  # noqa: F401  (the factory's model class)
import ml.training_pipeline.models.losses  # noqa: F401  (and the custom losses)
from ml.training_pipeline.models import extract_attention_weights
from ml.training_pipeline.models.families.recurrent import RECOMMENDED_HYPERPARAMETERS as _RECURRENT

RECOMMENDED_HYPERPARAMETERS = {"attention_lstm": _RECURRENT["attention_lstm"]}

__all__ = ["RECOMMENDED_HYPERPARAMETERS", "extract_attention_weights"]
