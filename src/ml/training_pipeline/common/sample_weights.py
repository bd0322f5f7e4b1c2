"""Per-row sample weights from groups and classes, for plain Keras and for ``train``.

How a weight acts on the loss (Keras' ``sum_over_batch_size`` reduction): each batch's loss is
``sum_i w_i * loss_i / B`` over its ``B`` rows, so a row of weight 2 counts as two rows and a
row of weight 0 is ignored. Weights are normalised to mean 1 over the training rows, so the
weighted loss stays on the scale of the unweighted one (and the learning rate keeps its meaning);
validation rows get the same per-group factors, divided by the same training mean.

Example:
    >>> import numpy as np
    >>> groups = np.array(["easy", "easy", "easy", "hard"])
    >>> group_weights(groups, {"easy": 1.0, "hard": 5.0}).tolist()
    [0.5, 0.5, 0.5, 2.5]
    >>> group_weights(groups, "balanced").tolist()  # inverse frequency: each group weighs the same in total
    [0.6666666666666666, 0.6666666666666666, 0.6666666666666666, 2.0]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ml.training_pipeline.common.arguments import quoted

GroupWeights = Mapping[Any, float] | str | Callable[[str], float]
"""``{group: weight}``, ``"balanced"`` (inverse group frequency) or a callable ``group -> weight``."""


def check_weights(weights: Any, rows: int, where: str = "sample weights") -> np.ndarray:
    """Finite, non-negative per-row weights with a positive sum.

    Example:
        >>> check_weights([1, 3], 2).tolist()
        [1.0, 3.0]
    """
    array = np.asarray(weights)
    if array.dtype.kind not in "fiu":
        raise ValueError(f"{where} must be numeric. Received dtype={array.dtype}")
    array = array.astype(np.float64).reshape(-1)
    if len(array) != rows:
        raise ValueError(f"{where} must have one value per row ({rows}). Received: {len(array)} values")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{where} must be finite. Received {int(np.sum(~np.isfinite(array)))} NaN/inf values")
    if np.any(array < 0):
        raise ValueError(f"{where} must be >= 0. Received a weight {float(array.min())!r}")
    if array.sum() <= 0:
        raise ValueError(f"{where} must not all be 0. Received: sum=0")
    return array


def check_fit_rows(fit_rows: Any, rows: int, where: str) -> np.ndarray | None:
    """``fit_rows`` as an index array into ``rows`` rows (``None`` stays ``None``: every row).

    Example:
        >>> check_fit_rows([5], 2, "group_weights")
        Traceback (most recent call last):
        ...
        ValueError: group_weights: fit_rows must select rows 0..1 (a boolean mask of 2 or row indices). Received: fit_rows=[5]
    """
    if fit_rows is None:
        return None
    index = np.asarray(fit_rows)
    accepted = f"rows 0..{rows - 1} (a boolean mask of {rows} or row indices)"
    if index.dtype == bool:
        if index.shape != (rows,):
            raise ValueError(f"{where}: fit_rows must select {accepted}. Received: a mask of {index.size}")
        index = np.flatnonzero(index)
    elif index.ndim != 1 or (index.size and (not np.issubdtype(index.dtype, np.integer) or index.min() < -rows
                                               or index.max() >= rows)):
        raise ValueError(f"{where}: fit_rows must select {accepted}. Received: fit_rows={quoted(fit_rows)}")
    if not index.size:
        raise ValueError(f"{where}: fit_rows selects no rows; the weights are normalised over the training rows. "
                         f"Accepted: {accepted}")
    return index


def _normalise(weights: np.ndarray, fit_rows: np.ndarray | None, where: str) -> np.ndarray:
    scale = weights[fit_rows].mean() if fit_rows is not None else weights.mean()
    if not scale > 0:
        raise ValueError(f"{where} of the training rows must not all be 0. Received: all 0")
    return weights / scale


def check_group_weights(spec: GroupWeights, known_groups: Any) -> None:
    """Refuses weights for a group that does not exist, or a spec of the wrong type, before any work.

    Example:
        >>> check_group_weights({"BTCUSDT": 1.0, "SOLUSDT": 2.0}, ["BTCUSDT", "ETHUSDT"])
        Traceback (most recent call last):
        ...
        ValueError: group_weights names the group 'SOLUSDT', which the data does not have. Accepted groups: BTCUSDT, ETHUSDT. Received: group_weights={'BTCUSDT': 1.0, 'SOLUSDT': 2.0}
    """
    known = sorted({str(g) for g in np.asarray(known_groups, dtype=object).reshape(-1)})
    if isinstance(spec, str):
        if spec != "balanced":
            raise ValueError(f"group_weights must be a dict, 'balanced' or a callable. Received: group_weights={spec!r}")
        return
    if callable(spec):
        return
    if not isinstance(spec, Mapping) or not spec:
        raise ValueError(f"group_weights must be a non-empty dict, 'balanced' or a callable. Received: group_weights={spec!r}")
    for group, value in spec.items():
        if str(group) not in known:
            raise ValueError(f"group_weights names the group {str(group)!r}, which the data does not have. "
                             f"Accepted groups: {', '.join(known)}. Received: group_weights={dict(spec)!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not np.isfinite(value) or value < 0:
            raise ValueError(f"group_weights values must be numbers >= 0. Received: {str(group)!r}: {value!r}")


def group_weights(groups: Any, spec: GroupWeights, *, fit_rows: Any = None, default: float = 1.0) -> np.ndarray:
    """One weight per row from its group, normalised to mean 1 over ``fit_rows`` (all rows by default).

    Args:
        groups: the group label of each row (compared as strings).
        spec: ``{group: weight}`` (groups left out get ``default``), ``"balanced"`` (weight
            ``n_fit / (n_groups * n_group)``, counted on the fit rows) or a callable ``group -> weight``.
        fit_rows: index or boolean mask of the training rows (the normalisation and the counts use them).
        default: weight of a group the dict leaves out.

    Returns:
        ``float64`` weights, mean 1 over the fit rows.

    Raises:
        ValueError: a dict naming a group the data does not have, a negative or non-finite weight,
            or weights that are all 0 on the fit rows.

    Example:
        >>> group_weights(["a", "b", "b"], lambda g: 3.0 if g == "a" else 1.0).round(6).tolist()
        [1.8, 0.6, 0.6]
    """
    if groups is None or isinstance(groups, (str, bytes)) or not hasattr(groups, "__len__"):
        raise ValueError(f"groups must be one label per row (a list or array). Received: groups={quoted(groups)}")
    labels = np.asarray([str(g) for g in np.asarray(groups, dtype=object).reshape(-1)])
    if not len(labels):
        raise ValueError("groups has no rows: group_weights needs one label per row. Received: groups of length 0")
    check_group_weights(spec, labels)
    fit_rows = check_fit_rows(fit_rows, len(labels), "group_weights")
    fit = np.arange(len(labels)) if fit_rows is None else fit_rows
    if isinstance(spec, str):
        names, counts = np.unique(labels[fit], return_counts=True)
        table = dict(zip(names, len(labels[fit]) / (len(names) * counts), strict=True))
        absent = sorted(set(labels) - set(table))
        if absent:  # a group with no training rows cannot be weighed by its training frequency
            raise ValueError(f"group_weights='balanced' needs every group in the training rows. "
                             f"Received: no training rows of {absent[0]!r}")
        raw = np.asarray([table[g] for g in labels], dtype=np.float64)
    elif callable(spec):
        table = {g: float(spec(g)) for g in np.unique(labels)}
        raw = np.asarray([table[g] for g in labels], dtype=np.float64)
    else:
        table = {str(k): float(v) for k, v in spec.items()}
        raw = np.asarray([table.get(g, default) for g in labels], dtype=np.float64)
    return _normalise(check_weights(raw, len(raw), "group_weights"), fit_rows, "group_weights")


def class_weights(y: Any, pos_weight: float | str, *, fit_rows: Any = None) -> np.ndarray:
    """Binary targets: positives weigh ``pos_weight`` times a negative; mean 1 over ``fit_rows``.

    Args:
        y: 0/1 labels.
        pos_weight: a number > 0, or ``"balanced"`` (negatives / positives counted on the fit rows).

    Example:
        >>> class_weights([0, 0, 0, 1], "balanced").tolist()
        [0.6666666666666666, 0.6666666666666666, 0.6666666666666666, 2.0]
    """
    labels = np.asarray(y, dtype=np.float64).reshape(-1)
    if np.setdiff1d(np.unique(labels), [0.0, 1.0]).size:
        raise ValueError(f"pos_weight needs 0/1 labels. Received values {np.unique(labels)[:5].tolist()}")
    fit_rows = check_fit_rows(fit_rows, len(labels), "class_weights")
    fit = labels if fit_rows is None else labels[fit_rows]
    if pos_weight == "balanced":
        positives = fit.sum()
        if positives == 0 or positives == len(fit):
            raise ValueError(f"pos_weight='balanced' needs both classes in the training rows. Received: {int(positives)} "
                             f"positives of {len(fit)}")
        pos_weight = (len(fit) - positives) / positives
    if isinstance(pos_weight, bool) or not isinstance(pos_weight, (int, float, np.number)) or not 0 < pos_weight < np.inf:
        raise ValueError(f"pos_weight must be a number > 0 or 'balanced'. Received: pos_weight={pos_weight!r}")
    return _normalise(np.where(labels == 1.0, float(pos_weight), 1.0), fit_rows, "class weights")


def sample_weights(rows: int, *, groups: Any = None, group_spec: GroupWeights | None = None, y: Any = None,
                   pos_weight: float | str | None = None, base: Any = None, fit_rows: Any = None) -> np.ndarray | None:
    """The product of a base weight, group weights and class weights, normalised to mean 1 over ``fit_rows``.

    Returns ``None`` when no weighting is asked for (Keras then weighs every row 1).

    Example:
        >>> sample_weights(4, groups=["a", "a", "b", "b"], group_spec={"a": 1, "b": 3}, y=[0, 1, 0, 1],
        ...                pos_weight=2.0).tolist()
        [0.3333333333333333, 0.6666666666666666, 1.0, 2.0]
    """
    if base is None and group_spec is None and pos_weight is None:
        return None
    weights = np.ones(rows) if base is None else np.asarray(base, dtype=np.float64).reshape(-1)
    if group_spec is not None:
        if groups is None:
            raise ValueError("group_weights needs groups. Received: groups=None")
        weights = weights * group_weights(groups, group_spec, fit_rows=fit_rows)
    if pos_weight is not None:
        weights = weights * class_weights(y, pos_weight, fit_rows=fit_rows)
    return _normalise(weights, fit_rows, "sample weights")


def weigh_splits(data, group_spec: GroupWeights | None = None, pos_weight: float | str | None = None):
    """A problem's splits with group and class weights multiplied into their own weights.

    The normalisation (and ``"balanced"`` counts) use the training rows only; validation and test
    rows get the same factors, so validation loss and weighted metrics weigh rows as training does.

    Args:
        data: a :class:`~ml.training_pipeline.problems.ProblemData`.
        group_spec: see :func:`group_weights`; needs the problem's groups.
        pos_weight: see :func:`class_weights`; needs 0/1 targets.

    Returns:
        The same ``ProblemData`` (unchanged when nothing is asked) with new split weights.
    """
    from dataclasses import replace

    if group_spec is None and pos_weight is None:
        return data
    splits = (data.train, data.validation, data.test)
    if group_spec is not None and any(s.groups is None for s in splits):
        raise ValueError("group_weights needs a problem with groups (e.g. several symbols, or ArraysProblem(groups=...)). "
                         "Received: a problem without groups")
    sizes = np.cumsum([0, *(len(s) for s in splits)])
    concat = lambda values: np.concatenate([np.asarray(v).reshape(len(s), -1)[:, 0] if v is not None else  # noqa: E731
                                            np.ones(len(s)) for v, s in zip(values, splits, strict=True)])
    base = None if all(s.weight is None for s in splits) else concat([s.weight for s in splits])
    groups = None if group_spec is None else np.concatenate([s.groups for s in splits])
    weights = sample_weights(int(sizes[-1]), groups=groups, group_spec=group_spec,
                             y=None if pos_weight is None else concat([s.y for s in splits]), pos_weight=pos_weight,
                             base=base, fit_rows=np.arange(sizes[1]))
    new = [replace(s, weight=weights[sizes[i]:sizes[i + 1]]) for i, s in enumerate(splits)]
    return replace(data, train=new[0], validation=new[1], test=new[2])
