"""ONNX export with a parity check, and an ONNX Runtime predictor for serving.

Keras models go through Keras 3's ``model.export(format="onnx")`` (tf2onnx underneath);
LightGBM estimators through ``onnxmltools``. Either way the written graph has one input
named ``"inputs"`` with a dynamic batch dimension called ``"batch"``, and the export is
checked against the framework's own predictions before the file is put in place.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_TOLERANCE = 1e-4
"""Largest accepted absolute difference between ONNX Runtime and Keras/LightGBM outputs.

Observed differences are ~1e-6 to 1e-5 (float32 kernels summing in another order); 1e-4
leaves headroom for deep stacks while still catching a wrong graph."""

INPUT_NAME = "inputs"
BATCH_DIM = "batch"
LIGHTGBM_OPSET = 15  # the installed onnxmltools converter refuses 17 for LightGBM


class OnnxParityError(RuntimeError):
    """ONNX Runtime's outputs differ from the source model's by more than the tolerance."""


@dataclass(frozen=True)
class OnnxExportReport:
    """What :func:`export_onnx` wrote and how closely it matches the source model.

    Attributes:
        path: the ``.onnx`` file.
        input_name: name of the graph input.
        input_shape: input shape with ``None`` for the batch dimension.
        output_names: graph outputs, in order.
        max_abs_diff: largest absolute difference to the source model on the sample.
        tolerance: the limit it was checked against.
        n_samples: rows in the parity sample.
        file_size_bytes: size of the written file.
    """

    path: Path
    input_name: str
    input_shape: tuple[int | None, ...]
    output_names: tuple[str, ...]
    max_abs_diff: float
    tolerance: float
    n_samples: int
    file_size_bytes: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form for metadata files."""
        return {**self.__dict__, "path": str(self.path), "input_shape": list(self.input_shape),
                "output_names": list(self.output_names)}


def _is_lightgbm(model) -> bool:
    return type(model).__module__.startswith("lightgbm")


def _reference_predictions(model, sample: np.ndarray) -> np.ndarray:
    if _is_lightgbm(model):
        return model.predict_proba(sample) if hasattr(model, "classes_") else model.predict(sample)
    return np.asarray(model(sample, training=False))


def _default_sample(shape: tuple[int, ...], rows: int = 16) -> np.ndarray:
    # A fixed seed makes the parity figure reproducible.
    return np.random.default_rng(0).standard_normal((rows, *shape)).astype(np.float32)


def _export_keras(model, destination: Path, sample: np.ndarray) -> None:
    model(sample[:1], training=False)  # Keras refuses to export a model that was never called.
    model.export(str(destination), format="onnx", verbose=False)


def _export_lightgbm(model, destination: Path, n_features: int) -> None:
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    onnx_model = onnxmltools.convert_lightgbm(
        model,
        initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        target_opset=LIGHTGBM_OPSET,
        zipmap=False,
    )
    destination.write_bytes(onnx_model.SerializeToString())


def _normalize_io_names(path: Path) -> None:
    """Names the input ``inputs`` with batch dim ``batch``, and a single output ``outputs``."""
    import onnx

    graph_model = onnx.load(str(path))
    graph = graph_model.graph
    renames = {graph.input[0].name: INPUT_NAME}
    if len(graph.output) == 1:
        renames[graph.output[0].name] = "outputs"
    for node in graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    for value in (*graph.input, *graph.output):
        value.name = renames.get(value.name, value.name)
    graph.input[0].type.tensor_type.shape.dim[0].dim_param = BATCH_DIM
    for output in graph.output:
        dims = output.type.tensor_type.shape.dim
        if dims:
            dims[0].dim_param = BATCH_DIM
    onnx.checker.check_model(graph_model)
    onnx.save(graph_model, str(path))


def export_onnx(
    model,
    path: str | os.PathLike,
    sample: np.ndarray | None = None,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
) -> OnnxExportReport:
    """Exports a Keras model or fitted LightGBM estimator to ONNX and checks parity.

    The file is written next to ``path`` under a temporary name and renamed into place only
    after ONNX Runtime reproduced the source model within ``tolerance``; on failure nothing
    is left at ``path``.

    Args:
        model: a built Keras model or a fitted LightGBM estimator.
        path: destination ``.onnx`` file.
        sample: inputs for the parity check, batch first (real data is best); default: 16
            seeded standard-normal rows of the model's input shape.
        tolerance: largest accepted max absolute difference (:data:`DEFAULT_TOLERANCE`).

    Returns:
        An :class:`OnnxExportReport`.

    Raises:
        ValueError: unsupported model, unfitted estimator or a sample of the wrong shape.
        OnnxParityError: ONNX Runtime and the model disagree by more than ``tolerance``.

    Example:
        >>> report = export_onnx(model, "model.onnx", sample=x_test[:64])  # doctest: +SKIP
        >>> report.max_abs_diff < 1e-4  # doctest: +SKIP
        True
    """
    path = Path(path)
    if path.suffix != ".onnx":
        raise ValueError(f"path must end with '.onnx'. Received: path={str(path)!r}")
    if _is_lightgbm(model):
        n_features = getattr(model, "n_features_in_", None)
        if n_features is None:
            raise ValueError("export_onnx needs a fitted LightGBM model. Received an unfitted estimator")
        input_shape: tuple[int, ...] = (int(n_features),)
    elif hasattr(model, "export") and hasattr(model, "inputs"):
        if len(model.inputs) != 1:
            raise ValueError(f"export_onnx supports single-input models. Received {len(model.inputs)} inputs")
        input_shape = tuple(model.inputs[0].shape[1:])
    else:
        raise ValueError(
            f"export_onnx accepts a Keras model or a fitted LightGBM estimator. Received: {type(model).__name__}"
        )
    sample = _default_sample(input_shape) if sample is None else np.asarray(sample, dtype=np.float32)
    if sample.ndim != len(input_shape) + 1 or tuple(sample.shape[1:]) != input_shape or len(sample) == 0:
        raise ValueError(
            f"sample must have shape (n, {', '.join(map(str, input_shape))}) with n >= 1. Received: sample.shape={sample.shape}"
        )

    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(suffix=".onnx", prefix=f".{path.stem}-", dir=path.parent)
    os.close(handle)
    tmp_path = Path(tmp_name)
    try:
        if _is_lightgbm(model):
            _export_lightgbm(model, tmp_path, input_shape[0])
        else:
            _export_keras(model, tmp_path, sample)
        _normalize_io_names(tmp_path)
        predictor = OnnxPredictor(tmp_path)
        onnx_out = predictor.predict(sample)
        reference = _reference_predictions(model, sample).reshape(onnx_out.shape)
        max_abs_diff = float(np.max(np.abs(onnx_out.astype(np.float64) - reference.astype(np.float64))))
        if not max_abs_diff <= tolerance:  # also catches NaN
            raise OnnxParityError(
                f"ONNX Runtime output differs from the model by {max_abs_diff:.3g} (tolerance {tolerance:.3g}); "
                f"no file was written. Received: model={getattr(model, 'name', type(model).__name__)!r}"
            )
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)
    return OnnxExportReport(
        path=path,
        input_name=INPUT_NAME,
        input_shape=(None, *input_shape),
        output_names=predictor.output_names,
        max_abs_diff=max_abs_diff,
        tolerance=tolerance,
        n_samples=len(sample),
        file_size_bytes=path.stat().st_size,
    )


class OnnxPredictor:
    """Serves an ONNX file with ONNX Runtime, validating inputs first.

    ``predict`` returns the model's output: regression values, or class probabilities
    for classifiers (the ``probabilities`` output when the graph has one).

    Args:
        path: an ``.onnx`` file written by :func:`export_onnx`.
        intra_op_threads: ONNX Runtime threads per call (0 lets it choose).

    Example:
        >>> predictor = OnnxPredictor("model.onnx")  # doctest: +SKIP
        >>> predictor.predict(x[:1]).shape  # doctest: +SKIP
        (1, 1)
    """

    def __init__(self, path: str | os.PathLike, intra_op_threads: int = 0):
        import onnxruntime

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"No ONNX file at {str(path)!r}")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        try:
            self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # ORT raises its own exception types for corrupt files
            raise ValueError(f"Cannot load ONNX file {str(path)!r}: {str(error).splitlines()[0]}") from None
        self.path = path
        meta = self.session.get_inputs()[0]
        self.input_name: str = meta.name
        # Symbolic (str) or missing dims are free; ints must match.
        self.input_shape: tuple[int | None, ...] = tuple(d if isinstance(d, int) else None for d in meta.shape)
        self.output_names: tuple[str, ...] = tuple(o.name for o in self.session.get_outputs())
        self._output = "probabilities" if "probabilities" in self.output_names else self.output_names[0]

    def _validate(self, x) -> np.ndarray:
        array = np.asarray(x)
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)) or array.dtype == bool:
            raise ValueError(f"Input must be numeric (float32 preferred). Received dtype={array.dtype}")
        expected = "(" + ", ".join("batch" if d is None else str(d) for d in self.input_shape) + ")"
        fits = array.ndim == len(self.input_shape) and all(
            want is None or want == got for want, got in zip(self.input_shape, array.shape, strict=False)
        )
        if not fits:
            raise ValueError(f"Input must have shape {expected}. Received: shape={array.shape}")
        array = array.astype(np.float32, copy=False)
        if not np.all(np.isfinite(array)):
            raise ValueError("Input contains NaN or inf. Received a non-finite value")
        return array

    def predict(self, x) -> np.ndarray:
        """Runs the model on a batch and returns its (main) output as a NumPy array."""
        return self.session.run([self._output], {self.input_name: self._validate(x)})[0]

    def run(self, x) -> dict[str, np.ndarray]:
        """Runs the model and returns every output by name."""
        outputs = self.session.run(None, {self.input_name: self._validate(x)})
        return dict(zip(self.output_names, outputs, strict=True))
