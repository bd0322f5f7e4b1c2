"""ONNX export with a parity check, and an ONNX Runtime predictor for serving.

Keras models go through Keras 3's ``model.export(format="onnx")`` (tf2onnx underneath);
LightGBM estimators through ``onnxmltools``; which one is the model kind's adapter's
business (``kinds/``). The written graph keeps the model's input names and dtypes (int32
ids stay integer), has a dynamic batch dimension called ``"batch"``, and names a single
output ``"outputs"``. Every output is checked against the framework's own predictions
before the file is put in place.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ml.training_pipeline.common.tensors import check_named_inputs, generate_inputs
from ml.training_pipeline.fitting.progress import heartbeat
from ml.training_pipeline.models.kinds import kind_of
from ml.training_pipeline.models.registry import TensorSpec

DEFAULT_TOLERANCE = 1e-4
"""Largest accepted absolute difference between ONNX Runtime and Keras/LightGBM outputs.

Observed differences are ~1e-6 to 1e-5 (float32 kernels summing in another order); 1e-4
leaves headroom for deep stacks while still catching a wrong graph."""

INPUT_NAME = "inputs"
BATCH_DIM = "batch"
SINGLE_OUTPUT = "outputs"


class OnnxParityError(RuntimeError):
    """ONNX Runtime's outputs differ from the source model's by more than the tolerance."""


@dataclass(frozen=True)
class OnnxExportReport:
    """What :func:`export_onnx` wrote and how closely it matches the source model.

    Attributes:
        path: the ``.onnx`` file.
        inputs: the graph's inputs (name, per-sample shape, dtype), in declared order.
        output_names: graph outputs, in order.
        max_abs_diff: largest absolute difference to the source model over every output.
        per_output_diff: that difference per output name.
        tolerance: the limit it was checked against.
        max_scaled_diff: largest ``|onnx - model| / max(1, |model|)``: the absolute difference for values
            up to 1 and the relative one above (float32 cannot match an output of 1e5 to 1e-4 absolutely);
            this is the figure compared with ``tolerance``.
        n_samples: rows in the parity sample.
        file_size_bytes: size of the written file.
    """

    path: Path
    inputs: tuple[TensorSpec, ...]
    output_names: tuple[str, ...]
    max_abs_diff: float
    per_output_diff: dict[str, float]
    tolerance: float
    n_samples: int
    file_size_bytes: int
    max_scaled_diff: float = 0.0

    @property
    def input_name(self) -> str:
        """The first input's name (``"inputs"`` for single-window models)."""
        return self.inputs[0].name

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        """The first input's shape with ``None`` for the batch dimension."""
        return (None, *self.inputs[0].shape)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form for metadata files."""
        return {"path": str(self.path), "input_name": self.input_name, "input_shape": list(self.input_shape),
                "inputs": [s.to_dict() for s in self.inputs], "output_names": list(self.output_names),
                "max_abs_diff": self.max_abs_diff, "max_scaled_diff": self.max_scaled_diff,
                "per_output_diff": dict(self.per_output_diff),
                "tolerance": self.tolerance, "n_samples": self.n_samples, "file_size_bytes": self.file_size_bytes}


def _normalize_io_names(path: Path, declared: tuple[TensorSpec, ...], reference: Mapping[str, np.ndarray]) -> None:
    """Input names as declared (one input: renamed to its declared name), a single output named
    ``outputs``, and the batch dimension of every input and output named ``batch``."""
    import onnx

    graph_model = onnx.load(str(path))
    graph = graph_model.graph
    renames = {}
    if len(graph.input) == 1 and len(declared) == 1:
        renames[graph.input[0].name] = declared[0].name
    if len(graph.output) == 1 and len(reference) == 1:
        renames[graph.output[0].name] = next(iter(reference))
    for node in graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    for value in (*graph.input, *graph.output):
        value.name = renames.get(value.name, value.name)
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].dim_param = BATCH_DIM
    onnx.checker.check_model(graph_model)
    onnx.save(graph_model, str(path))


def export_onnx(
    model,
    path: str | os.PathLike,
    sample: np.ndarray | Mapping[str, np.ndarray] | None = None,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    log: Callable[[str], None] | None = None,
) -> OnnxExportReport:
    """Exports a Keras model or fitted LightGBM estimator to ONNX and checks parity on every output.

    The file is written next to ``path`` under a temporary name and renamed into place only
    after ONNX Runtime reproduced the source model within ``tolerance``; on failure nothing
    is left at ``path``.

    Args:
        model: a built Keras model or a fitted LightGBM estimator.
        path: destination ``.onnx`` file.
        sample: inputs for the parity check, batch first (real data is best): a dict
            ``{input name: array}``, or one array for a single-input model; default: 16
            seeded random rows of the declared inputs.
        tolerance: largest accepted difference (:data:`DEFAULT_TOLERANCE`), absolute for values up to 1 and
            relative above: ``|onnx - model| <= tolerance * max(1, |model|)`` element-wise.

    Returns:
        An :class:`OnnxExportReport`.

    Raises:
        ValueError: unsupported model, unfitted estimator or a sample of the wrong names, dtypes or shapes.
        OnnxParityError: ONNX Runtime and the model disagree by more than ``tolerance``.

    Example:
        >>> report = export_onnx(model, "model.onnx", sample=x_test[:64])  # doctest: +SKIP
        >>> report.max_abs_diff < 1e-4  # doctest: +SKIP
        True
    """
    path = Path(path)
    if path.suffix != ".onnx":
        raise ValueError(f"path must end with '.onnx'. Received: path={str(path)!r}")
    folder = path.parent
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"path cannot be written: {str(folder)!r} is a file, not a folder. Received: path={str(path)!r}")
    adapter = kind_of(model)
    declared = adapter.declared_inputs(model)
    if sample is None:
        sample = generate_inputs(declared, rows=16)
    elif isinstance(sample, Mapping) or len(declared) == 1:
        # the kind's own layout of the inputs, e.g. windows flattened for a tree model
        sample = adapter.onnx_feed(sample if isinstance(sample, Mapping) else {declared[0].name: sample})
    sample = check_named_inputs(sample, declared, where="sample")
    if len(next(iter(sample.values()))) == 0:
        raise ValueError("sample must have at least one row. Received: 0 rows")

    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(suffix=".onnx", prefix=f".{path.stem}-", dir=path.parent)
    os.close(handle)
    tmp_path = Path(tmp_name)
    try:
        with warnings.catch_warnings(), heartbeat(log, "export: converting the graph to ONNX"):
            # Keras' tf2onnx shim probes `np.object`; NumPy's FutureWarning about it is not the user's to act on
            warnings.filterwarnings("ignore", message=".*np.object.*", category=FutureWarning)
            adapter.write_onnx(model, tmp_path, sample)
        rows = len(next(iter(sample.values())))
        with heartbeat(log, f"export: parity check on {rows} rows (the model and ONNX Runtime)"):
            reference = adapter.reference_outputs(model, sample)
            _normalize_io_names(tmp_path, declared, reference)
            predictor = OnnxPredictor(tmp_path)
            onnx_out = predictor.run(sample)
        missing = sorted(set(reference) - set(onnx_out))
        if missing:
            raise OnnxParityError(f"The ONNX graph lacks the model output {missing[0]!r}; no file was written. "
                                  f"Received outputs: {', '.join(onnx_out)}")
        diffs, scaled = {}, {}
        for name, expected in reference.items():
            got = np.asarray(onnx_out[name], dtype=np.float64)
            expected = np.asarray(expected, dtype=np.float64).reshape(got.shape)
            gap = np.abs(got - expected)
            diffs[name] = float(np.max(gap))
            scaled[name] = float(np.max(gap / np.maximum(1.0, np.abs(expected))))
        max_abs_diff, max_scaled_diff = max(diffs.values()), max(scaled.values())
        if not max_scaled_diff <= tolerance:  # also catches NaN
            worst = max(scaled, key=lambda k: scaled[k] if np.isfinite(scaled[k]) else np.inf)
            raise OnnxParityError(
                f"ONNX Runtime output {worst!r} differs from the model by {max_abs_diff:.3g} (scaled "
                f"{max_scaled_diff:.3g}, tolerance {tolerance:.3g}); "
                f"no file was written. Received: model={getattr(model, 'name', type(model).__name__)!r}"
            )
        os.chmod(tmp_path, 0o644)  # mkstemp makes files private; a model file is meant to be shared
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)
    return OnnxExportReport(
        path=path,
        inputs=predictor.inputs,
        output_names=predictor.output_names,
        max_abs_diff=max_abs_diff,
        max_scaled_diff=max_scaled_diff,
        per_output_diff=diffs,
        tolerance=tolerance,
        n_samples=len(next(iter(sample.values()))),
        file_size_bytes=path.stat().st_size,
    )


_ONNX_DTYPES = {"tensor(float)": "float32", "tensor(int32)": "int32", "tensor(bool)": "bool",
                "tensor(int64)": "int32"}


class OnnxPredictor:
    """Serves an ONNX file with ONNX Runtime, validating named inputs first.

    ``predict`` returns the model's main output: regression values, or class probabilities
    for classifiers (the ``probabilities`` output when the graph has one, else ``prediction``
    or the first output); ``run`` returns every output by name.

    Args:
        path: an ``.onnx`` file written by :func:`export_onnx`.
        intra_op_threads: ONNX Runtime threads per call (0 lets it choose).

    Example:
        >>> predictor = OnnxPredictor("model.onnx")  # doctest: +SKIP
        >>> predictor.predict(x[:1]).shape  # doctest: +SKIP
        (1, 1)
        >>> OnnxPredictor("two_inputs.onnx").predict({"window": w, "ids": ids})  # doctest: +SKIP
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
        specs = []
        for meta in self.session.get_inputs():
            if meta.type not in _ONNX_DTYPES:
                raise ValueError(f"Unsupported ONNX input type {meta.type} for input {meta.name!r}")
            # Symbolic (str) or missing dims are free; ints must match.
            shape = tuple(d if isinstance(d, int) else None for d in meta.shape[1:])
            specs.append(TensorSpec(meta.name, shape, _ONNX_DTYPES[meta.type]))
        self.inputs: tuple[TensorSpec, ...] = tuple(specs)
        self._onnx_types = {meta.name: meta.type for meta in self.session.get_inputs()}
        self.input_name: str = specs[0].name
        self.input_shape: tuple[int | None, ...] = (None, *specs[0].shape)
        self.output_names: tuple[str, ...] = tuple(o.name for o in self.session.get_outputs())
        preferred = [n for n in ("probabilities", "prediction") if n in self.output_names]
        self._output = preferred[0] if preferred else self.output_names[0]

    def _feed(self, x) -> dict[str, np.ndarray]:
        checked = check_named_inputs(x, self.inputs, where="input")
        return {name: a.astype(np.int64) if self._onnx_types[name] == "tensor(int64)" else a
                for name, a in checked.items()}

    def predict(self, x) -> np.ndarray:
        """Runs the model on a batch (an array, or a dict by input name) and returns its main output."""
        return self.session.run([self._output], self._feed(x))[0]

    def run(self, x) -> dict[str, np.ndarray]:
        """Runs the model and returns every output by name."""
        outputs = self.session.run(None, self._feed(x))
        return dict(zip(self.output_names, outputs, strict=True))
