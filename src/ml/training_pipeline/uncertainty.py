"""Predictive uncertainty: sampling for models that sample, quantile outputs for quantile models.

Two sources chosen from the model itself, and a third for any regression model:

- **sampling** (``bayesian_transformer``, ``mcdropout_transformer``: the spec's ``samples``
  capability): ``n_samples`` forward passes with ``training=True`` draw weights from the
  posterior, or dropout masks; the mean, standard deviation and central interval are taken over
  the samples. Binary models also get the predictive entropy of the mean probability and the
  mutual information (the part of it due to the weights: epistemic).
- **quantiles** (any model compiled with ``task="quantile"``, e.g. ``tft``): the interval is read
  from the quantile outputs (the interval's two quantiles must be among them), the median is the
  centre, and ``std`` is the interval width over the normal interval's width (an approximation).

- **conformal** (``method="conformal"``, every point regression model): the split-conformal interval
  from held-out absolute residuals (:mod:`ml.training_pipeline.common.conformal`, which also has the
  adaptive variant that training reports and ``atb predict`` serves).

ONNX files hold the deterministic forward pass (``training=False``): the posterior mean weights,
dropout off, or the quantiles; never samples.

Example:
    >>> from ml.training_pipeline.uncertainty import predict_with_uncertainty
    >>> result = predict_with_uncertainty(model, x, n_samples=100)  # doctest: +SKIP
    >>> result.lower.shape == result.mean.shape  # doctest: +SKIP
    True
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

from ml.training_pipeline.common.conformal import split_half_width
from ml.training_pipeline.common.tensors import model_argument
from ml.training_pipeline.models import get_spec, list_models
from ml.training_pipeline.models.kinds import kind_of
from ml.training_pipeline.models.kinds.base import QUANTILES, SAMPLING

DEFAULT_INTERVAL = 0.8
_BATCH = 1024
SAMPLING_ROWS = 256
"""Most rows of one sampling pass when several draws share it (draws x rows). Measured (benchmarks/mc_sampling.py):
100 draws of one window in one pass instead of 100 were 4.2x faster; a pass of a few hundred rows is bound by its
arithmetic already, and stacking 2 draws of 364 rows was slower (0.9x), so bigger parts keep one pass per draw."""


@dataclass(frozen=True)
class UncertainPrediction:
    """Predictions with their uncertainty, each ``(rows, outputs)``.

    Attributes:
        mean: the centre (sample mean, or the median quantile).
        std: the predictive standard deviation.
        lower, upper: the central ``interval`` bounds.
        interval: nominal coverage of ``[lower, upper]`` (e.g. 0.8).
        method: ``"sampling"`` or ``"quantiles"``.
        n_samples: forward passes drawn (sampling) or members (ensemble).
        entropy: binary and multiclass: predictive entropy (nats) of the mean probabilities, ``(rows,)``.
        mutual_information: sampling classifiers: entropy minus the mean entropy of the samples, ``(rows,)``.
        samples: the ``(n_samples, rows, outputs)`` draws when asked for.
    """

    mean: np.ndarray
    std: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    interval: float
    method: str
    n_samples: int | None = None
    entropy: np.ndarray | None = None
    mutual_information: np.ndarray | None = None
    samples: np.ndarray | None = field(default=None, repr=False)


def calibration_scale(prediction: UncertainPrediction, y: np.ndarray) -> float:
    """Split-conformal widening of an interval, from held-out rows (e.g. the validation part).

    The score of a row is how far its target falls outside the interval, in half-widths:
    ``max(lower - y, y - upper) / ((upper - lower) / 2)`` (negative inside). The scale is the
    score's ``ceil((n + 1) * interval) / n`` quantile, so ``[lower - s w, upper + s w]`` covers
    ``interval`` of exchangeable new rows (Romano et al., 2019, conformalized quantile regression).
    ``s > 0`` widens an over-confident interval, ``s < 0`` narrows a timid one.

    Example:
        >>> p = UncertainPrediction(np.zeros((4, 1)), np.ones((4, 1)), -np.ones((4, 1)), np.ones((4, 1)), 0.5, "sampling")
        >>> calibration_scale(p, np.array([0.0, 0.5, 2.0, 3.0]))  # scores -1, -0.5, 1, 2; level ceil(5 * 0.5) / 4
        2.0
    """
    y = np.asarray(y, np.float64).reshape(len(y), -1)[:, :1]
    lower, upper = prediction.lower[:, :1], prediction.upper[:, :1]
    half = np.maximum((upper - lower) / 2, 1e-12)
    scores = (np.maximum(lower - y, y - upper) / half).reshape(-1)
    level = min(1.0, np.ceil((len(scores) + 1) * prediction.interval) / len(scores))
    return float(np.quantile(scores, level, method="higher"))


def widened(prediction: UncertainPrediction, scale: float) -> UncertainPrediction:
    """The interval moved out by ``scale`` half-widths on each side (see :func:`calibration_scale`)."""
    half = (prediction.upper - prediction.lower) / 2
    return dataclasses.replace(prediction, lower=prediction.lower - scale * half, upper=prediction.upper + scale * half,
                               std=prediction.std * max(1 + scale, 0.0))


def uncertainty_method(model) -> str | None:
    """``"quantiles"``, ``"sampling"`` or ``None`` (a deterministic point model): its kind adapter answers."""
    try:
        return kind_of(model).uncertainty_method(model)
    except ValueError:  # not a model any kind owns: nothing to sample
        return None


def require_uncertainty(model, label: str | None = None) -> str:
    """The model's uncertainty method; refuses a deterministic point model in one line naming the models that give one.

    Args:
        model: a Keras model.
        label: how to name the model in the error (default: ``model '<name>'``).
    """
    method = uncertainty_method(model)
    if method is None:
        samplers = [name for name in list_models() if get_spec(name).capabilities.samples]
        label = label or f"model {getattr(model, 'name', type(model).__name__)!r}"
        raise ValueError(f"{label} is deterministic and has no quantile outputs, so it has no uncertainty to give. "
                         f"Accepted: a model that samples ({', '.join(samplers)}) or one built with task='quantile'")
    return method


def check_interval(interval: Any) -> float:
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not 0 < interval < 1:
        raise ValueError(f"interval must be a coverage in (0, 1), e.g. 0.8. Received: interval={interval!r}")
    return float(interval)


def check_n_samples(n_samples: Any) -> int:
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 2:
        raise ValueError(f"n_samples must be an int >= 2 (a spread needs two draws). Received: n_samples={n_samples!r}")
    return int(n_samples)


def _entropy(p: np.ndarray) -> np.ndarray:
    """Entropy in nats of probabilities ``(..., outputs)``; one output is a binary probability."""
    p = np.clip(p, 1e-12, 1 - 1e-12)
    if p.shape[-1] == 1:
        p = np.concatenate([1 - p, p], axis=-1)
    return -np.sum(p * np.log(p), axis=-1)


def _is_classifier(model) -> bool:
    activation = getattr(getattr(model, "layers", [None])[-1], "activation", None)
    return getattr(activation, "__name__", "") in ("sigmoid", "softmax")


def predict_with_uncertainty(model, x: np.ndarray | Mapping[str, np.ndarray], n_samples: int = 100,
                             interval: float = DEFAULT_INTERVAL, keep_samples: bool = False, method: str | None = None,
                             calibration: tuple[Any, np.ndarray] | None = None,
                             progress: Callable[[int, int], None] | None = None) -> UncertainPrediction:
    """Mean, standard deviation and central interval of a model's predictions.

    Args:
        model: a Keras model that samples (``bayesian_transformer``, ``mcdropout_transformer``) or
            that was built with ``task="quantile"``; with ``method="conformal"``, any regression model
            (Keras or LightGBM).
        x: its inputs: one array, or ``{input name: array}``.
        n_samples: forward passes for sampling models (>= 2; ignored for quantile models).
        interval: nominal coverage of the interval (0.8: from the 10% to the 90% quantile).
        keep_samples: also return the draws.
        method: ``None`` (the model's own: sampling or quantiles), ``"conformal"``: the split-conformal interval
            from the absolute residuals on ``calibration`` (:mod:`~ml.training_pipeline.common.conformal`; held-out
            rows, e.g. the validation part, never the training rows), or ``"ensemble"``: the spread of a seed
            ensemble's members (``train(..., ensemble=N)``), their mean being the model's own output.
        calibration: ``(inputs, targets)`` of held-out rows, for ``method="conformal"``.
        progress: called as ``progress(draws done, n_samples)`` after each sampling pass (long runs: see
            :func:`~ml.training_pipeline.fitting.progress.step_progress`).

    Returns:
        An :class:`UncertainPrediction`.

    Raises:
        ValueError: a deterministic point model, ``n_samples < 2``, an interval outside (0, 1), or
            quantile outputs that lack the interval's bounds.

    Example:
        >>> model = create_model("mcdropout_transformer", input_shape=(60, 15), variant="tiny")  # doctest: +SKIP
        >>> predict_with_uncertainty(model, x, n_samples=50).std.shape  # doctest: +SKIP
        (len(x), 1)
    """

    interval = check_interval(interval)
    _check_rows(x)
    if method == "conformal":
        return _conformal(model, x, interval, calibration)
    if method == "ensemble":
        return _ensemble(model, x, interval, keep_samples)
    if method is not None:
        raise ValueError(f"method must be None (the model's own), 'conformal' or 'ensemble'. Received: method={method!r}")
    method = require_uncertainty(model)
    named = x if isinstance(x, Mapping) else {model.inputs[0].name: x}
    named = {k: np.asarray(v) for k, v in named.items()}
    if method == QUANTILES:
        return _from_quantiles(model, named, interval)
    n_samples = check_n_samples(n_samples)
    samples = _draw(model, named, n_samples, progress)
    tail = (1 - interval) / 2
    mean = samples.mean(axis=0)
    entropy = mutual_information = None
    if _is_classifier(model):
        entropy = _entropy(mean)
        mutual_information = entropy - _entropy(samples).mean(axis=0)
    return UncertainPrediction(mean=mean, std=samples.std(axis=0, ddof=1), lower=np.quantile(samples, tail, axis=0),
                               upper=np.quantile(samples, 1 - tail, axis=0), interval=interval, method=SAMPLING,
                               n_samples=n_samples, entropy=entropy, mutual_information=mutual_information,
                               samples=samples if keep_samples else None)


def draws_per_pass(model, rows: int, n_samples: int) -> int:
    """How many draws of the same rows share one forward pass: up to :data:`SAMPLING_ROWS` rows for a model whose
    rows draw their own sample (``Capabilities.samples_per_row``), else 1.

    Example:
        >>> from ml.training_pipeline.models import create_model
        >>> draws_per_pass(create_model("mcdropout_transformer", (8, 2), variant="tiny"), rows=1, n_samples=100)
        100
        >>> draws_per_pass(create_model("bayesian_transformer", (8, 2), variant="tiny"), rows=1, n_samples=100)
        1
    """
    try:
        per_row = get_spec(getattr(model, "name", "")).capabilities.samples_per_row
    except ValueError:  # a model the registry does not name: one draw per pass is always right
        per_row = False
    return max(1, min(n_samples, SAMPLING_ROWS // max(rows, 1))) if per_row else 1


def _draw(model, named: Mapping[str, np.ndarray], n_samples: int, progress) -> np.ndarray:
    """``(n_samples, rows, outputs)`` training-mode draws; stacked several to a pass where the model allows it
    (the latest window's 100 MC-dropout draws: one pass instead of 100)."""
    rows = len(next(iter(named.values())))
    sample = _sampling_pass(model)
    group = draws_per_pass(model, min(rows, _BATCH), n_samples)
    draws: list[np.ndarray] = []
    while len(draws) < n_samples:
        copies = min(group, n_samples - len(draws))
        parts = []
        for i in range(0, rows, _BATCH):
            chunk = {k: np.concatenate([v[i:i + _BATCH]] * copies) for k, v in named.items()}
            out = np.asarray(sample(model_argument(model, chunk)))
            parts.append(out.reshape(copies, len(out) // copies, -1))
        draws.extend(np.concatenate(parts, axis=1))
        if progress is not None:
            progress(len(draws), n_samples)
    return np.stack(draws).astype(np.float64)


def _conformal(model, x, interval: float, calibration) -> UncertainPrediction:
    """Point predictions with the split-conformal interval of ``calibration``'s absolute residuals."""
    if calibration is None or len(calibration) != 2:
        raise ValueError("method='conformal' needs calibration=(inputs, targets) of held-out rows. "
                         f"Received: calibration={type(calibration).__name__}")
    adapter = kind_of(model)

    def named(inputs):
        return inputs if isinstance(inputs, Mapping) else {adapter.declared_inputs(model)[0].name: inputs}

    calibration_inputs, targets = calibration
    fitted = adapter.predict(model, named(calibration_inputs))
    targets = np.asarray(targets, np.float64).reshape(len(fitted), -1)
    if fitted.shape[1] != 1:
        raise ValueError(f"method='conformal' needs a model with one regression output. Received: {fitted.shape[1]} "
                         "outputs")
    half = split_half_width(np.abs(targets - fitted), interval)
    mean = adapter.predict(model, named(x)).astype(np.float64)
    std = np.full_like(mean, half / NormalDist().inv_cdf(0.5 + interval / 2))  # the normal interval's width
    return UncertainPrediction(mean=mean, std=std, lower=mean - half, upper=mean + half, interval=interval,
                               method="conformal")


def _check_rows(x) -> None:
    """At least one row, and finite numbers in every float input (a NaN would come back as a NaN forecast)."""
    arrays = x.items() if isinstance(x, Mapping) else [("x", x)]
    for name, values in arrays:
        values = np.asarray(values)
        if values.ndim == 0 or len(values) == 0:
            raise ValueError(f"{name} has no rows: predict_with_uncertainty needs at least one. Received: shape "
                             f"{values.shape}")
        if np.issubdtype(values.dtype, np.floating) and not np.isfinite(values).all():
            row = int(np.argwhere(~np.isfinite(values.reshape(len(values), -1)))[0][0])
            raise ValueError(f"{name} has {int((~np.isfinite(values)).sum())} NaN/inf value(s), first in row {row}: "
                             "predictions need finite inputs")


def _ensemble(model, x, interval: float, keep_samples: bool) -> UncertainPrediction:
    """Each member's prediction (the sub-models named ``<family>_member_<k>`` of a seed ensemble) as one draw."""
    members = [layer for layer in getattr(model, "layers", []) if layer.name.startswith(f"{model.name}_member_")]
    if len(members) < 2:
        raise ValueError(f"method='ensemble' needs a seed ensemble (train(..., ensemble=N), N >= 2). Received: "
                         f"{getattr(model, 'name', type(model).__name__)!r} with {len(members)} members")
    named = x if isinstance(x, Mapping) else {model.inputs[0].name: x}
    argument = model_argument(model, {k: np.asarray(v) for k, v in named.items()})
    samples = np.stack([np.asarray(member.predict(argument, batch_size=_BATCH, verbose=0), np.float64)
                        for member in members])
    samples = samples.reshape(len(members), len(samples[0]), -1)
    tail = (1 - interval) / 2
    return UncertainPrediction(mean=samples.mean(axis=0), std=samples.std(axis=0, ddof=1),
                               lower=np.quantile(samples, tail, axis=0), upper=np.quantile(samples, 1 - tail, axis=0),
                               interval=interval, method="ensemble", n_samples=len(members),
                               samples=samples if keep_samples else None)


_SAMPLING_PASSES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _sampling_pass(model):
    """``model(x, training=True)`` as one traced TensorFlow function, kept per model.

    Called eagerly, each of the ``n_samples`` passes re-ran every layer's Python (4.3 s for 100 passes of the tiny
    MC-dropout encoder on 184 windows here); traced once, the passes are graph calls. The dropout masks and weight
    draws still differ per call: Keras' seed generators are variables the graph advances on every call.
    """
    import tensorflow as tf

    if model not in _SAMPLING_PASSES:
        # the function holds the model weakly: a strong reference from the cached value would keep every model
        # that was ever sampled alive (a WeakKeyDictionary drops an entry only when nothing else holds its key)
        held = weakref.ref(model)
        _SAMPLING_PASSES[model] = tf.function(lambda x: held()(x, training=True), reduce_retracing=True)
    return _SAMPLING_PASSES[model]


def _from_quantiles(model, named: Mapping[str, np.ndarray], interval: float) -> UncertainPrediction:
    levels = [float(q) for q in model.loss.quantiles]
    tail = (1 - interval) / 2
    wanted = {"lower": tail, "upper": 1 - tail}
    found = {}
    for bound, level in wanted.items():
        close = [i for i, q in enumerate(levels) if abs(q - level) < 1e-6]
        if not close:
            raise ValueError(f"a {interval:g} interval needs the quantiles {tail:g} and {1 - tail:g}; the model "
                             f"predicts {levels}. Received: interval={interval!r}")
        found[bound] = close[0]
    out = np.asarray(model.predict(model_argument(model, named), batch_size=_BATCH, verbose=0), np.float64)
    lower, upper = out[:, [found["lower"]]], out[:, [found["upper"]]]
    median = [i for i, q in enumerate(levels) if abs(q - 0.5) < 1e-6]
    centre = out[:, median] if median else out.mean(axis=1, keepdims=True)
    z = NormalDist().inv_cdf(1 - tail)
    return UncertainPrediction(mean=centre, std=(upper - lower) / (2 * z), lower=lower, upper=upper,
                               interval=interval, method=QUANTILES)


def interval_report(prediction: UncertainPrediction, y: np.ndarray, to_target=None) -> dict[str, Any]:
    """Coverage of the interval on held-out targets, next to its nominal level.

    Args:
        prediction: from :func:`predict_with_uncertainty`.
        y: the held-out targets, in the model's output units.
        to_target: an increasing map from the model's output units to the target's (e.g. undoing
            target scaling), so the widths are reported in the target's units; coverage is unchanged.

    Example:
        >>> p = UncertainPrediction(np.zeros((4, 1)), np.ones((4, 1)), -np.ones((4, 1)), np.ones((4, 1)), 0.8, "sampling")
        >>> interval_report(p, np.array([0.0, 0.5, 2.0, -3.0]))["coverage"]
        0.5
    """
    convert = (lambda a: np.asarray(a, np.float64).reshape(len(a), -1)[:, :1]) if to_target is None else \
        (lambda a: np.asarray(to_target(np.asarray(a, np.float64)[:, :1]), np.float64).reshape(len(a), -1)[:, :1])
    y, lower, upper = convert(np.asarray(y).reshape(len(y), -1)), convert(prediction.lower), convert(prediction.upper)
    inside = (y >= lower) & (y <= upper)
    return {"nominal": prediction.interval, "coverage": float(inside.mean()), "method": prediction.method,
            "mean_width": float(np.mean(upper - lower)), "n": int(len(y)),
            **({"n_samples": prediction.n_samples} if prediction.n_samples else {})}
