"""Training-set augmentation that respects groups.

Two kinds, both on the training rows only (validation, test and export never see them):
- noise: :class:`~ml.training_pipeline.layers.FeatureNoise` in the model, Gaussian noise scaled by
  each feature's spread, active only while training;
- interpolation (here): new rows ``t * a + (1 - t) * b`` between two training rows ``a``, ``b`` of the
  **same** group, the target interpolated alike (in log space for positive targets, so a geometric
  mean of two heights, not an arithmetic one). A mix of two valid samples need not look like one: an
  augmented row whose statistics (each float input's row mean and row std, and the target) fall
  outside the range its group shows in the training rows is rejected, and the count is reported.

Example:
    >>> import numpy as np
    >>> rows = interpolate_within_groups({"x": np.arange(8.0)[:, None]}, np.arange(8.0) + 1,
    ...                                  np.array(list("aaaabbbb")), 4, seed=0)
    >>> sorted(str(g) for g in set(rows.groups)), rows.report["candidates"]
    (['a', 'b'], 4)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Augmented:
    """Augmented rows: named inputs, targets, groups, the parent row of each, and a report."""

    inputs: dict[str, np.ndarray]
    y: np.ndarray
    groups: np.ndarray
    parents: np.ndarray
    report: dict[str, Any] = field(default_factory=dict)


def _row_statistics(inputs: Mapping[str, np.ndarray], y: np.ndarray, log_target: bool) -> np.ndarray:
    columns = []
    for array in inputs.values():
        if array.dtype.kind == "f":
            flat = array.reshape(len(array), -1)
            columns += [flat.mean(axis=1), flat.std(axis=1)]
    target = np.log(y.reshape(len(y), -1)[:, 0]) if log_target else y.reshape(len(y), -1)[:, 0]
    return np.column_stack([*columns, target])


def interpolate_within_groups(inputs: Mapping[str, np.ndarray], y: np.ndarray, groups: np.ndarray, count: int, *,
                              seed: int = 0, log_target: bool = False, tolerance: float = 0.0) -> Augmented:
    """``count`` candidate rows mixed from random same-group pairs, less the rejected ones.

    Float inputs and the target are interpolated with one ``t ~ U(0, 1)`` per row; integer and
    boolean inputs are taken from the nearer parent. Groups with fewer than two rows get none.

    Args:
        inputs: ``{name: array}`` of the training rows.
        y: their targets.
        groups: their group labels.
        count: candidate rows to draw (spread over the groups in proportion to their size).
        seed: random seed.
        log_target: interpolate ``log y`` (positive targets).
        tolerance: widening of each group's accepted range, as a fraction of its width.

    Returns:
        An :class:`Augmented` with ``report = {"candidates", "accepted", "rejected", "by_group"}``.

    Raises:
        ValueError: rows of inputs, targets and groups disagree, or a negative count.
    """
    labels = np.asarray(groups).astype(str)
    y = np.asarray(y)
    rows = {name: len(a) for name, a in inputs.items()} | {"y": len(y), "groups": len(labels)}
    if len(set(rows.values())) != 1:
        raise ValueError(f"inputs, y and groups must have the same rows. Received: {rows}")
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise ValueError(f"count must be an int >= 0. Received: count={count!r}")
    if log_target and np.any(y <= 0):
        raise ValueError("log_target needs targets > 0. Received a value <= 0")
    rng = np.random.default_rng(seed)
    stats = _row_statistics(inputs, y, log_target)
    names, sizes = np.unique(labels, return_counts=True)
    first, second, mixes, kept_by_group = [], [], [], {}
    for name, size in zip(names, sizes, strict=True):
        members = np.flatnonzero(labels == name)
        wanted = int(round(count * size / len(labels)))
        if size < 2 or wanted == 0:
            continue
        a = rng.choice(members, wanted)
        b = rng.choice(members, wanted)
        b = np.where(a == b, members[(np.searchsorted(members, b) + 1) % size], b)
        t = rng.uniform(0.0, 1.0, wanted)
        first.append(a)
        second.append(b)
        mixes.append(t)
        kept_by_group[str(name)] = wanted
    if not first:
        empty = {k: v[:0] for k, v in inputs.items()}
        return Augmented(empty, y[:0], labels[:0], np.zeros(0, int), {"candidates": 0, "accepted": 0, "rejected": 0,
                                                                       "by_group": {}})
    a, b, t = np.concatenate(first), np.concatenate(second), np.concatenate(mixes)
    new_inputs = {}
    for key, array in inputs.items():
        if array.dtype.kind == "f":
            shape = (len(t),) + (1,) * (array.ndim - 1)
            new_inputs[key] = (t.reshape(shape) * array[a] + (1 - t.reshape(shape)) * array[b]).astype(array.dtype)
        else:
            new_inputs[key] = np.where((t >= 0.5).reshape((len(t),) + (1,) * (array.ndim - 1)), array[a], array[b])
    if log_target:
        new_y = np.exp(t * np.log(y[a]) + (1 - t) * np.log(y[b])).astype(y.dtype)
    else:
        new_y = (t.reshape((len(t),) + (1,) * (y.ndim - 1)) * y[a] + (1 - t.reshape((len(t),) + (1,) * (y.ndim - 1)))
                 * y[b]).astype(y.dtype)
    new_groups = labels[a]
    new_stats = _row_statistics(new_inputs, new_y, log_target)
    keep = np.ones(len(t), bool)
    by_group = {}
    for name in kept_by_group:
        own = stats[labels == name]
        low, high = own.min(axis=0), own.max(axis=0)
        margin = tolerance * (high - low)
        rows_of = new_groups == name
        inside = np.all((new_stats[rows_of] >= low - margin) & (new_stats[rows_of] <= high + margin), axis=1)
        keep[rows_of] = inside
        by_group[name] = {"candidates": int(rows_of.sum()), "rejected": int((~inside).sum())}
    report = {"candidates": int(len(t)), "accepted": int(keep.sum()), "rejected": int((~keep).sum()),
              "by_group": by_group}
    return Augmented({k: v[keep] for k, v in new_inputs.items()}, new_y[keep], new_groups[keep], a[keep], report)
