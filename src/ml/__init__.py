"""atb-ml: a Keras 3 model factory for time-series and event-sequence models.

Importing :mod:`ml` is cheap: TensorFlow, LightGBM and ONNX Runtime are imported only
when a model is built, trained or exported.

Example:
    >>> import ml
    >>> ml.__version__
    '0.1.0'
"""

__version__ = "0.1.0"
__all__ = ["__version__", "quiet"]


def quiet() -> None:
    """Silences TensorFlow's and Keras' notices in a notebook (opt-in; ``atb`` does the same for its commands).

    Sets ``TF_CPP_MIN_LOG_LEVEL=3`` (effective when called before TensorFlow is imported), lowers the
    ``tensorflow``, ``absl`` and ``h5py`` loggers to errors (tf.function retracing warnings, absl notices) and
    ignores Keras' and TensorFlow's Python ``UserWarning`` category. Errors still raise. Imports nothing heavy.

    Example:
        >>> import ml
        >>> ml.quiet()
        >>> import os; os.environ["TF_CPP_MIN_LOG_LEVEL"]
        '3'
    """
    import logging
    import os
    import warnings

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    for name in ("tensorflow", "absl", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for module in ("keras", "tensorflow"):
        warnings.filterwarnings("ignore", category=UserWarning, module=module)
