"""Named tensors: the spec of one model input, checking arrays against declared inputs, generated inputs.

Used wherever arrays meet a model: the pipeline before fitting, ``export_onnx`` for its
parity sample, ``OnnxPredictor.predict`` and a stored model's ``predict``. A bare array is
accepted for a single-input model; several inputs come as a dict keyed by input name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ml.training_pipeline.common.arguments import unknown_name_error

DEFAULT_INPUT_NAME = "inputs"
"""Name of the single float window input of the classic ``(timesteps, features)`` models."""

KNOWN_INPUT = "known"
"""Name of the inputs known in advance (calendar), one step longer than the window: its last row is the forecast bar."""

STATIC_INPUT = "static"
"""Name of the per-series id input (e.g. the symbol of a several-symbols model)."""

PADDING_MASK = "padding_mask"
"""Name of the boolean mask input of the sequence models that take padded windows (True on real steps)."""

DEFAULT_MAX_LENGTH = 512
"""The longest sequence a sinusoidal position table covers unless a model's ``max_length`` says otherwise."""

DTYPES: tuple[str, ...] = ("float32", "int32", "bool")


class LazyInputs(MutableMapping):
    """``{input name: array}`` whose optional inputs are computed when first read, so a model that never reads one
    never pays for it.

    A problem offers every input some model may read (the price problems: the window and its calendar ``known``,
    ``(rows, length + 1, 4)`` floats, as big as a 4-feature window); the pipeline then keeps the ones the model
    declares. Built eagerly, the calendar of 1M windows took 3.6 GB and 28 s for models that never read it.

    Example:
        >>> inputs = LazyInputs({"inputs": np.zeros((2, 3))}, {"known": lambda: np.ones((2, 4))})
        >>> sorted(inputs), inputs.computed
        (['inputs', 'known'], ['inputs'])
        >>> inputs["known"].shape, inputs.computed
        ((2, 4), ['inputs', 'known'])
    """

    def __init__(self, ready: Mapping[str, np.ndarray], later: Mapping[str, Callable[[], np.ndarray]] | None = None):
        self._values = dict(ready)
        self._makers = {name: make for name, make in (later or {}).items() if name not in self._values}

    @property
    def computed(self) -> list[str]:
        """The names whose arrays exist now."""
        return list(self._values)

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._values:
            self._values[name] = self._makers.pop(name)()  # KeyError for a name never offered, as a dict's
        return self._values[name]

    def __setitem__(self, name: str, value: np.ndarray) -> None:
        self._makers.pop(name, None)
        self._values[name] = value

    def __delitem__(self, name: str) -> None:
        if self._makers.pop(name, None) is None:
            del self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter([*self._values, *self._makers])

    def __len__(self) -> int:
        return len(self._values) + len(self._makers)

    def __repr__(self) -> str:
        return f"LazyInputs(computed={self.computed}, later={list(self._makers)})"


@dataclass(frozen=True)
class TensorSpec:
    """One named model input (or output): per-sample shape and dtype.

    Attributes:
        name: the Keras ``Input`` name, which is also the ONNX input name and the key of the
            input dict that ``fit``/``predict``/``OnnxPredictor.predict`` take.
        shape: per-sample shape (no batch dimension); ``None`` marks a free (dynamic) length.
        dtype: ``"float32"``, ``"int32"`` (ids for an ``Embedding``) or ``"bool"`` (masks).
        vocab_size: for int ids, the number of distinct ids (values lie in ``[0, vocab_size)``).

    Example:
        >>> TensorSpec("ids", (3,), "int32", vocab_size=10).to_dict()
        {'name': 'ids', 'shape': [3], 'dtype': 'int32', 'vocab_size': 10}
    """

    name: str
    shape: tuple[int | None, ...]
    dtype: str = "float32"
    vocab_size: int | None = None

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise unknown_name_error("dtype", self.dtype, DTYPES)
        object.__setattr__(self, "shape", tuple(self.shape))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form stored in the feature schema."""
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "vocab_size": self.vocab_size}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TensorSpec:
        return cls(data["name"], tuple(data["shape"]), data["dtype"], data.get("vocab_size"))


def model_argument(model: Any, inputs: Mapping[str, np.ndarray]) -> Any:
    """What to hand a Keras model: a bare array for a single-input model, else the dict of named arrays.

    Keras warns when a single-input model receives a dict (a structure mismatch), so it gets the array.

    Example:
        >>> class OneInput:
        ...     inputs = ["x"]
        >>> model_argument(OneInput(), {"x": np.zeros(2)}).shape
        (2,)
    """
    return next(iter(inputs.values())) if len(model.inputs) == 1 else dict(inputs)

_KIND = {"float32": "f", "int32": "iu", "bool": "b"}
_ACCEPTED = {"float32": "a float (or integer) array", "int32": "an integer array", "bool": "a boolean array"}


def _dtype_fits(array: np.ndarray, dtype: str) -> bool:
    if dtype == "float32":
        return array.dtype.kind in "fiu"  # integer features are safely cast to float
    return array.dtype.kind in _KIND[dtype]


FINITE_CHECK_ROWS = 4096


def _all_finite(array: np.ndarray) -> bool:
    """Whether every value is finite, checked by blocks of rows: windows that view shared rows (millions of them,
    each 60 x 15) are never expanded into one boolean array."""
    return all(np.isfinite(array[start:start + FINITE_CHECK_ROWS]).all()
               for start in range(0, len(array), FINITE_CHECK_ROWS))


def check_named_inputs(
    arrays: Any,
    declared: Sequence[TensorSpec],
    where: str = "inputs",
    check_finite: bool = True,
) -> dict[str, np.ndarray]:
    """Validates arrays against declared inputs and casts them to the declared dtypes.

    Args:
        arrays: a dict ``{input name: array}``, or one array when exactly one input is declared.
        declared: the model's :class:`TensorSpec` inputs.
        where: what to call the arrays in error messages.
        check_finite: reject NaN/inf in float inputs.

    Returns:
        ``{name: array}`` in declared order, each of the declared dtype.

    Raises:
        ValueError: an unknown or missing input name, a wrong dtype, a wrong per-sample shape,
            inputs with different numbers of rows, ids outside the vocabulary, or NaN/inf.

    Example:
        >>> spec = [TensorSpec("inputs", (2,), "float32")]
        >>> check_named_inputs(np.zeros((4, 2)), spec)["inputs"].dtype
        dtype('float32')
    """
    names = [spec.name for spec in declared]
    if not isinstance(arrays, Mapping):
        if len(declared) != 1:
            raise ValueError(f"{where} must be a dict with the keys {names} for a model with {len(declared)} inputs. "
                             f"Received: {type(arrays).__name__}")
        arrays = {names[0]: arrays}
    unknown = [name for name in arrays if name not in names]
    if unknown:
        raise ValueError(f"{where} has an input the model does not declare: {unknown[0]!r}. Accepted: {', '.join(names)}. "
                         f"Received: {', '.join(map(str, arrays))}")
    missing = [name for name in names if name not in arrays]
    if missing:
        raise ValueError(f"{where} lacks the input {missing[0]!r}. Accepted: {', '.join(names)}. "
                         f"Received: {', '.join(map(str, arrays)) or 'none'}")
    from ml.training_pipeline.common.windows import GatheredWindows  # pandas' module: imported when checked

    checked: dict[str, np.ndarray] = {}
    for spec in declared:
        array = arrays[spec.name]
        # windows held as starts in their rows are checked on their rows: never expanded
        array = array if isinstance(array, GatheredWindows) else np.asarray(array)
        if not _dtype_fits(array, spec.dtype):
            raise ValueError(f"{where}[{spec.name!r}] must be {_ACCEPTED[spec.dtype]} ({spec.dtype}). "
                             f"Received dtype={array.dtype}")
        shape_text = "(batch, " + ", ".join("any" if d is None else str(d) for d in spec.shape) + ")"
        fits = array.ndim == len(spec.shape) + 1 and all(
            want is None or want == got for want, got in zip(spec.shape, array.shape[1:], strict=False))
        if not fits:
            raise ValueError(f"{where}[{spec.name!r}] must have shape {shape_text}. Received: shape={array.shape}")
        array = array.astype(spec.dtype, copy=False)
        if check_finite and spec.dtype == "float32" and not (
                array.all_finite() if isinstance(array, GatheredWindows) else _all_finite(array)):
            raise ValueError(f"{where}[{spec.name!r}] contains NaN or inf. Received a non-finite value")
        if spec.vocab_size is not None and array.size and (array.min() < 0 or array.max() >= spec.vocab_size):
            raise ValueError(f"{where}[{spec.name!r}] holds ids outside [0, {spec.vocab_size}). "
                             f"Received ids in [{array.min()}, {array.max()}]")
        checked[spec.name] = array
    rows = {name: len(a) for name, a in checked.items()}
    if len(set(rows.values())) > 1:
        raise ValueError(f"{where} must have the same number of rows in every input. Received: {rows}")
    return checked


def generate_inputs(declared: Sequence[TensorSpec], rows: int, seed: int = 0,
                    free_length: int = 8) -> dict[str, np.ndarray]:
    """Random arrays of the declared shapes and dtypes (normal floats, ids within the vocabulary, masks
    whose first step is always set), for tests and default parity samples.

    Example:
        >>> generate_inputs([TensorSpec("ids", (3,), "int32", vocab_size=5)], rows=2)["ids"].shape
        (2, 3)
    """
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for spec in declared:
        shape = (rows, *(free_length if d is None else d for d in spec.shape))
        if spec.dtype == "float32":
            out[spec.name] = rng.standard_normal(shape).astype(np.float32)
        elif spec.dtype == "int32":
            out[spec.name] = rng.integers(0, spec.vocab_size or 2, size=shape).astype(np.int32)
        else:
            mask = rng.random(shape) < 0.8
            mask[(slice(None), *([0] * (len(shape) - 1)))] = True
            out[spec.name] = mask
    return out


def take_rows(inputs: Mapping[str, np.ndarray], index) -> dict[str, np.ndarray]:
    """The same rows of every named input."""
    return {name: array[index] for name, array in inputs.items()}
