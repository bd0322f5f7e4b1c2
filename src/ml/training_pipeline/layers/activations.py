"""Activations that export to ONNX."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="ml")
def gelu_tanh(x):
    """GELU with the tanh approximation.

    Exact GELU makes tf2onnx emit ``Erfc``, which ONNX Runtime rejects; the approximation
    exports and differs from it by < 1e-3.

    Example:
        >>> import numpy as np
        >>> round(float(gelu_tanh(np.float32(1.0))), 4)
        0.8412
    """
    return keras.activations.gelu(x, approximate=True)
