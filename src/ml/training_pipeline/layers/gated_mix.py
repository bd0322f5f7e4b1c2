"""A learned convex mix of two pathways."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="ml")
class GatedMix(keras.layers.Layer):
    """``gate * high + (1 - gate) * standard`` for inputs ``[gate, high, standard]``.

    The gate (``(batch, 1)`` in ``[0, 1]``, e.g. a sigmoid of the group's embeddings) decides per
    sample how much of the higher-capacity pathway to use; easy groups can learn to stay on the
    standard one.

    Example:
        >>> import numpy as np
        >>> out = GatedMix()([np.array([[0.25]], "float32"), np.array([[4.0]], "float32"), np.array([[0.0]], "float32")])
        >>> float(np.asarray(out)[0, 0])
        1.0
    """

    EXAMPLE = {"init_kwargs": {}, "input_shape": [(4, 1), (4, 3), (4, 3)]}

    def call(self, inputs):
        gate, high, standard = inputs
        return gate * high + (1.0 - gate) * standard

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[1])
