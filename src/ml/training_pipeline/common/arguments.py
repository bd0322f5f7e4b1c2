"""Small validation helpers that produce the project's one-line error messages.

Every message names what was received and what is accepted, and suggests the closest
accepted name when the received one looks like a typo.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

QUOTE_LIMIT = 60
"""The most characters of a user's value any message quotes (a file of NUL bytes is one huge 'value')."""


def quoted(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)`` for a message, cut to ``limit`` characters (arrays as lists).

    Example:
        >>> quoted("x" * 100)[-20:]
        '... (102 characters)'
    """
    return shortened(repr(value.tolist() if hasattr(value, "tolist") else value), limit)


def shortened(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was.

    Example:
        >>> shortened("abc"), shortened("x" * 70)[-19:]
        ('abc', '... (70 characters)')
    """
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def suggest(received: str, accepted: Iterable[str]) -> str:
    """Returns a " Did you mean 'x'?" suffix for the closest accepted name, or "".

    Example:
        >>> suggest("tnc", ["tcn", "lstm"])
        " Did you mean 'tcn'?"
    """
    close = difflib.get_close_matches(str(received), list(accepted), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


def unknown_name_error(what: str, received: object, accepted: Iterable[str]) -> ValueError:
    """Builds the ValueError for a name that is not among ``accepted``.

    Example:
        >>> str(unknown_name_error("variant", "big", ["default", "deep"]))
        "Unknown variant 'big'. Accepted: deep, default. Received: variant='big'"
    """
    accepted = sorted(accepted)
    hint = suggest(str(received), accepted)
    return ValueError(
        f"Unknown {what} {received!r}.{hint} Accepted: {', '.join(accepted)}. "
        f"Received: {what.replace(' ', '_')}={received!r}"
    )


def check_input_shape(input_shape: object, min_ndim: int = 1, max_ndim: int = 2) -> tuple[int, ...]:
    """Validates a per-sample input shape (no batch dimension) and returns it as a tuple.

    Args:
        input_shape: e.g. ``(60, 15)`` for 60 time steps of 15 features.
        min_ndim: fewest dimensions accepted.
        max_ndim: most dimensions accepted.

    Returns:
        The shape as a tuple of positive ints.

    Example:
        >>> check_input_shape([60, 15])
        (60, 15)
    """
    try:
        shape = tuple(input_shape)  # type: ignore[arg-type]
    except TypeError:
        raise ValueError(
            f"input_shape must be a tuple like (timesteps, features). Received: input_shape={input_shape!r}"
        ) from None
    # NumPy integers (a shape read off an array, np.int64(60)) are ints too
    shape = tuple(int(d) if isinstance(d, np.integer) else d for d in shape)
    valid = min_ndim <= len(shape) <= max_ndim and all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape
    )
    if not valid:
        expected = "(timesteps, features)" if max_ndim == 2 and min_ndim == 2 else f"{min_ndim} to {max_ndim} positive ints"
        raise ValueError(
            f"input_shape must be {expected} without the batch dimension. Received: input_shape={input_shape!r}"
        )
    return shape


def check_units(name: str, value: object) -> tuple[int, ...]:
    """Validates a layer-size list such as ``lstm_units=(128, 64)``; an int means one layer.

    Example:
        >>> check_units("units", 32)
        (32,)
    """
    units = (value,) if isinstance(value, int) else value
    try:
        units = tuple(units)  # type: ignore[arg-type]
    except TypeError:
        units = ()
    if not units or not all(isinstance(u, int) and not isinstance(u, bool) and u >= 1 for u in units):
        raise ValueError(f"{name} must be a positive int or a non-empty list of them. Received: {name}={value!r}")
    return units


def check_positive_int(name: str, value: object, minimum: int = 1) -> int:
    """Validates an int hyperparameter such as ``kernel_size``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}. Received: {name}={value!r}")
    return value


def check_rate(name: str, value: object) -> float:
    """Validates a dropout-like rate in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{name} must be a float in [0, 1). Received: {name}={value!r}")
    return float(value)


def check_learning_rate(value: object, name: str = "learning_rate") -> float:
    """A finite number > 0 (ints are accepted and made floats, as Keras' optimizers need).

    Example:
        >>> check_learning_rate(1)
        1.0
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a number > 0. Received: {name}={value!r}")
    return float(value)


def _same_kind(default: object, value: object) -> bool:
    """Whether ``value`` can stand where the preset has ``default`` (numbers for numbers, sizes for sizes...)."""
    number = (int, float, np.integer, np.floating)
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) == isinstance(value, bool)
    if isinstance(default, (tuple, list)):
        return isinstance(value, (tuple, list, int, np.integer))  # an int means one layer
    if isinstance(default, number):
        return isinstance(value, number)
    if isinstance(default, str):
        return isinstance(value, str)
    return True


def check_param_kinds(model_type: str, preset: Mapping[str, Any], params: Mapping[str, Any]) -> None:
    """Refuses a hyperparameter of the wrong kind (text for a size, a list for a rate) and a bad learning rate.

    Example:
        >>> check_param_kinds("tcn", {"filters": 64}, {"filters": "many"})
        Traceback (most recent call last):
        ...
        ValueError: filters must be a number like the preset's 64 for model_type='tcn'. Received: filters='many'
    """
    for key, value in params.items():
        if key == "learning_rate":
            check_learning_rate(value)
            continue
        default = preset.get(key)
        if key in preset and default is not None and not _same_kind(default, value):
            kind = ("a list of sizes (or one int)" if isinstance(default, (tuple, list)) else "true or false"
                    if isinstance(default, bool) else "a number" if not isinstance(default, str) else "a name")
            raise ValueError(f"{key} must be {kind} like the preset's {default!r} for model_type={model_type!r}. "
                             f"Received: {key}={value!r}")


def check_attention_params(params: Mapping[str, Any]) -> None:
    """Cheap checks of the sizes every attention model shares (run before TensorFlow is imported).

    Example:
        >>> check_attention_params({"d_model": 10, "num_heads": 4})
        Traceback (most recent call last):
        ...
        ValueError: d_model must be divisible by num_heads. Received: d_model=10, num_heads=4
    """
    d_model = check_positive_int("d_model", params["d_model"])
    heads = check_positive_int("num_heads", params["num_heads"])
    if d_model % heads:
        raise ValueError(f"d_model must be divisible by num_heads. Received: d_model={d_model}, num_heads={heads}")
    for name in ("ff_dim", "num_layers", "max_length"):
        if name in params:
            check_positive_int(name, params[name])
    check_rate("dropout", params["dropout"])
    if "prior_sigma" in params and not (isinstance(params["prior_sigma"], (int, float)) and params["prior_sigma"] > 0):
        raise ValueError(f"prior_sigma must be a number > 0. Received: prior_sigma={params['prior_sigma']!r}")
    if "kl_weight" in params and not (isinstance(params["kl_weight"], (int, float)) and params["kl_weight"] >= 0):
        raise ValueError(f"kl_weight must be a number >= 0. Received: kl_weight={params['kl_weight']!r}")
