"""atb-ml: a Keras 3 model factory for time-series and event-sequence models.

Importing :mod:`ml` is cheap: TensorFlow, LightGBM and ONNX Runtime are imported only
when a model is built, trained or exported.

Example:
    >>> import ml
    >>> ml.__version__
    '0.1.0'
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
