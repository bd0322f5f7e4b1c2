"""Chronological splits, train-only scaling and sliding windows.

The feature rows are split in time order into train, validation and test parts with a gap
of ``max(sequence_length, horizon)`` rows between parts, so no window or target of one
part overlaps another. The scaler is fitted on the training rows only. A window ending at
bar ``t`` holds rows ``t - L + 1 .. t`` and is labelled with the target at ``t`` (which
looks ``horizon`` bars ahead).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

MIN_WINDOWS_PER_SPLIT = 10
MOVING_AVERAGE_WINDOW = 20
"""Bars averaged by the moving-average baseline."""
TRANSFORM_BLOCK_ROWS = 65_536
SHUFFLE_BY_PERMUTATION_WINDOWS = 250_000
"""More training windows than this are shuffled as one permutation tensor of their indices per epoch (8 bytes a
window) instead of by tf.data's shuffle buffer, which holds each index as a tensor of its own: 360 MB for 1.82M
windows (about 200 bytes a window, measured), the largest cost per row left on one-minute bars. A seed gives the same
orders either way, but not the same as each other: the bundled data (17k windows) keeps tf.data's, and with it the
figures reported so far."""
GATHER_IN_NUMPY_BYTES = 16 * 2**20
"""Rows bigger than this (about 280k rows of 15 float32 features) are cut into each batch's windows by NumPy inside
the input pipeline instead of by TensorFlow, which would hold a copy of them (60 bytes per such row: at 2.6M one-minute
rows the peak fell from 1.97 to 1.76 GB). The two gathers train at the same windows/s within noise
(``benchmarks/window_throughput.py``); smaller rows keep TensorFlow's, the path the earlier figures were measured on."""


@dataclass(frozen=True)
class StandardScaler:
    """Per-feature ``(x - mean) / scale``, with parameters stored in the feature schema.

    Example:
        >>> scaler = StandardScaler.fit(np.array([[1.0], [3.0]]))
        >>> scaler.transform(np.array([[3.0]])).tolist()
        [[1.0]]
    """

    mean: tuple[float, ...]
    scale: tuple[float, ...]

    @classmethod
    def fit(cls, values: np.ndarray) -> StandardScaler:
        std = values.std(axis=0)
        # constant features (scale 0) pass through centred instead of dividing by zero
        return cls(tuple(map(float, values.mean(axis=0))), tuple(float(s) if s > 0 else 1.0 for s in std))

    def transform(self, values: np.ndarray) -> np.ndarray:
        # by blocks of rows: the float64 temporaries stay the size of a block, not of millions of rows
        values = np.asarray(values)
        out = np.empty(values.shape, np.float32)
        mean, scale = np.asarray(self.mean), np.asarray(self.scale)
        for start in range(0, len(values), TRANSFORM_BLOCK_ROWS):
            block = slice(start, start + TRANSFORM_BLOCK_ROWS)
            out[block] = (values[block] - mean) / scale
        return out

    def inverse_transform(self, values: np.ndarray) -> np.ndarray:
        return values * np.asarray(self.scale) + np.asarray(self.mean)

    def to_dict(self) -> dict:
        return {"type": "standard", "mean": list(self.mean), "scale": list(self.scale)}

    @classmethod
    def from_dict(cls, data: dict) -> StandardScaler:
        return cls(tuple(data["mean"]), tuple(data["scale"]))


@dataclass(frozen=True)
class WindowSet:
    """Windows of one split and what evaluation needs next to them.

    Attributes:
        x: ``(n, sequence_length, features)`` float32 windows.
        y: ``(n,)`` targets.
        time: bar time ``t`` of each window's last row.
        close: close at ``t``.
        future_close: close at ``t + horizon``.
        moving_average: mean of the last :data:`MOVING_AVERAGE_WINDOW` closes at ``t``.
    """

    x: np.ndarray
    y: np.ndarray
    time: pd.DatetimeIndex
    close: np.ndarray
    future_close: np.ndarray
    moving_average: np.ndarray
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    """Per-window values a problem's baselines need (e.g. past realized volatility), at bar ``t``."""

    def __len__(self) -> int:
        return len(self.x)


@dataclass(frozen=True)
class PreparedData:
    """The three window sets, the fitted scaler and row bookkeeping."""

    train: WindowSet
    validation: WindowSet
    test: WindowSet
    scaler: StandardScaler
    feature_names: tuple[str, ...]
    row_counts: dict
    target_scaler: StandardScaler | None = None
    """For regression targets: the model learns ``(y - mean) / scale`` (train-fitted), since raw
    hourly log returns (~1e-3) are too small for a well-conditioned loss."""

    def fit_targets(self, windows: WindowSet) -> np.ndarray:
        """Targets as the model is trained on them."""
        if self.target_scaler is None:
            return windows.y
        return self.target_scaler.transform(windows.y[:, None]).reshape(-1)

    def to_target(self, predictions: np.ndarray) -> np.ndarray:
        """Model outputs back in target units (log return or probability)."""
        predictions = np.asarray(predictions, dtype=np.float64).reshape(-1)
        if self.target_scaler is None:
            return predictions
        return self.target_scaler.inverse_transform(predictions[:, None]).reshape(-1)


def sliding_windows(values: np.ndarray, length: int, copy: bool = True) -> np.ndarray:
    """All windows of ``length`` consecutive rows, shape ``(n - length + 1, length, features)``: a contiguous copy,
    or (``copy=False``) a read-only strided view of ``values`` that costs no memory.

    Example:
        >>> sliding_windows(np.arange(4.0).reshape(4, 1), 2, copy=False)[:, :, 0]
        array([[0., 1.],
               [1., 2.],
               [2., 3.]])
    """
    view = np.lib.stride_tricks.sliding_window_view(values, length, axis=0).transpose(0, 2, 1)
    return np.ascontiguousarray(view) if copy else view


def window_rows(array: np.ndarray) -> tuple[np.ndarray, int] | None:
    """The ``(rows, features)`` array and the window length behind a sliding-window view (as
    :func:`sliding_windows` with ``copy=False`` makes, or a slice of one); ``None`` for any other array.

    Example:
        >>> rows = np.arange(10.0, dtype=np.float32).reshape(5, 2)
        >>> base, length = window_rows(sliding_windows(rows, 3, copy=False)[1:])
        >>> base.tolist(), length
        ([[2.0, 3.0], [4.0, 5.0], [6.0, 7.0], [8.0, 9.0]], 3)
        >>> window_rows(sliding_windows(rows, 3)) is None  # a copy is just windows
        True
    """
    if not isinstance(array, np.ndarray) or array.ndim != 3 or len(array) == 0 or array.flags.c_contiguous \
            or array.strides[0] != array.strides[1]:
        return None
    length, features = array.shape[1:]
    base = np.lib.stride_tricks.as_strided(array, shape=(len(array) + length - 1, features),
                                           strides=(array.strides[0], array.strides[2]), writeable=False)
    return base, length


class GatheredWindows:
    """Windows of ``length`` rows cut from ``rows`` at ``starts``, without a copy of every window.

    A sliding-window view (:func:`sliding_windows` with ``copy=False``) holds every window of a run of rows; a
    set with gaps does not fit one: the windows of several symbols pooled (none crosses from one symbol's rows
    into the next's), or the known windows of a series with a missing value mid-series. This holds such a set as
    its rows (``rows x features``, 4 bytes a value in float32) and one start per window, where the copy of every
    window would take ``length`` times as much (3.6 KB per 60 x 15 window).

    It stands for the ``(len(starts), length, features)`` array where the pipeline reads windows: ``len``,
    ``shape``, ``dtype``, indexing (a copy of the picked windows only) and ``np.asarray`` (a copy of them all).
    :func:`to_tf_dataset` and the Keras kind's ``predict`` cut each batch's windows from the rows, and
    :func:`flat_column_chunks` gives LightGBM zero-copy runs of its columns.

    Example:
        >>> rows = np.arange(12.0, dtype=np.float32).reshape(6, 2)
        >>> windows = GatheredWindows(rows, np.array([0, 1, 4]), 2)
        >>> windows.shape, windows[2].tolist()
        ((3, 2, 2), [[8.0, 9.0], [10.0, 11.0]])
        >>> bool((np.asarray(windows)[1] == rows[1:3]).all())
        True
    """

    ndim = 3

    def __init__(self, rows: np.ndarray, starts: np.ndarray, length: int):
        starts = np.asarray(starts, np.int64)
        if len(starts) and (starts.min() < 0 or starts.max() + length > len(rows)):
            raise ValueError(f"Window starts must lie in [0, {len(rows) - length}] for {len(rows)} rows and windows of "
                             f"{length}. Received: starts from {starts.min()} to {starts.max()}")
        self.rows, self.starts, self.length = rows, starts, int(length)

    @classmethod
    def pooled(cls, parts: list[np.ndarray]) -> GatheredWindows | None:
        """Several sets of windows of one length as one, their rows joined (one copy of the rows, never of the
        windows); ``None`` when a part is neither a sliding-window view nor a :class:`GatheredWindows`.

        Example:
            >>> a, b = np.zeros((5, 2), np.float32), np.ones((4, 2), np.float32)
            >>> pooled = GatheredWindows.pooled([sliding_windows(a, 3, copy=False), sliding_windows(b, 3, copy=False)])
            >>> pooled.shape, pooled.starts.tolist(), float(pooled[3].sum())
            ((5, 3, 2), [0, 1, 2, 5, 6], 6.0)
        """
        pieces = []
        for part in parts:
            if isinstance(part, GatheredWindows):
                pieces.append((part.rows, part.starts, part.length))
            elif (view := window_rows(part)) is not None:
                pieces.append((view[0], np.arange(len(part), dtype=np.int64), view[1]))
            else:
                return None
        if not pieces or len({length for _, _, length in pieces}) != 1:
            return None
        offsets = np.cumsum([0, *(len(rows) for rows, _, _ in pieces[:-1])])
        return cls(np.concatenate([rows for rows, _, _ in pieces]),
                   np.concatenate([starts + offset for (_, starts, _), offset in zip(pieces, offsets, strict=True)]),
                   pieces[0][2])

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self.starts), self.length, self.rows.shape[1])

    @property
    def dtype(self) -> np.dtype:
        return self.rows.dtype

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, key):
        if isinstance(key, tuple):  # windows first, then the rest of the key on the picked windows
            return self[key[0]][(slice(None), *key[1:])] if not np.isscalar(key[0]) else self[key[0]][key[1:]]
        starts = self.starts[key]
        if np.ndim(starts) == 0:
            return self.rows[int(starts):int(starts) + self.length]
        return self.rows[starts[:, None] + np.arange(self.length)]

    def astype(self, dtype, copy: bool = True) -> GatheredWindows:
        """The same windows over rows of ``dtype`` (no copy when they have it and ``copy=False``)."""
        return GatheredWindows(self.rows.astype(dtype, copy=copy), self.starts, self.length)

    def all_finite(self) -> bool:
        """Whether every value of every window is finite, checked on the rows some window holds (never expanded)."""
        edges = np.zeros(len(self.rows) + 1, np.int64)
        np.add.at(edges, self.starts, 1)
        np.add.at(edges, self.starts + self.length, -1)
        held = np.cumsum(edges[:-1]) > 0
        return bool(np.isfinite(self.rows).all(axis=1)[held].all())

    def __array__(self, dtype=None, copy=None):
        values = self[:]
        return values if dtype is None else values.astype(dtype)

    def runs(self) -> list[tuple[int, int]]:
        """``(first window, end)`` of each run of windows whose starts follow one another."""
        breaks = np.flatnonzero(np.diff(self.starts) != 1) + 1
        edges = [0, *breaks.tolist(), len(self.starts)]
        return [(edges[i], edges[i + 1]) for i in range(len(edges) - 1) if edges[i + 1] > edges[i]]


def cut_per_batch(array) -> bool:
    """Whether ``array`` is windows that :func:`to_tf_dataset` cuts per batch from their rows: a sliding-window view
    or :class:`GatheredWindows`."""
    return isinstance(array, GatheredWindows) or window_rows(array) is not None


def flat_column_chunks(array) -> list[list[np.ndarray]]:
    """:func:`flat_columns` in chunks: one chunk per run of consecutive windows of a :class:`GatheredWindows` (each
    a slice of its rows stored column by column, so no window is copied), one chunk otherwise. Every column has
    the same chunk lengths.

    Example:
        >>> rows = np.arange(8.0, dtype=np.float32).reshape(4, 2)
        >>> [[c.tolist() for c in column] for column in flat_column_chunks(GatheredWindows(rows, [0, 2], 2))[:2]]
        [[[0.0], [4.0]], [[1.0], [5.0]]]
    """
    if not isinstance(array, GatheredWindows):
        return [[column] for column in flat_columns(array)]
    by_feature = np.ascontiguousarray(np.asarray(array.rows, np.float32).T)
    runs = [(int(array.starts[first]), stop - first) for first, stop in array.runs()]
    return [[by_feature[j, start + k:start + k + size] for start, size in runs]
            for k in range(array.length) for j in range(by_feature.shape[0])]


def flat_columns(array: np.ndarray) -> list[np.ndarray]:
    """The columns of ``array`` flattened per row (column ``k * features + j`` of a window is step ``k``, feature
    ``j``), each a contiguous float32 array. A sliding-window view's columns are slices of its rows stored column
    by column, so millions of windows cost their rows once, not ``length`` times; any other array is copied column
    by column.

    Example:
        >>> rows = np.arange(8.0, dtype=np.float32).reshape(4, 2)
        >>> [c.tolist() for c in flat_columns(sliding_windows(rows, 2, copy=False))]
        [[0.0, 2.0, 4.0], [1.0, 3.0, 5.0], [2.0, 4.0, 6.0], [3.0, 5.0, 7.0]]
    """
    array = np.asarray(array, np.float32)
    windows = window_rows(array)
    if windows is None:
        flat = array.reshape(len(array), -1)
        return [np.ascontiguousarray(flat[:, i]) for i in range(flat.shape[1])]
    base, length = windows
    by_feature = np.ascontiguousarray(base.T)  # (features, rows): each feature's rows contiguous
    return [by_feature[j, k:k + len(array)] for k in range(length) for j in range(base.shape[1])]


def _gatherer(array: np.ndarray):
    """``index -> rows`` of one array for a batch of indices: windows cut from their rows, or rows taken."""
    import tensorflow as tf

    if isinstance(array, GatheredWindows):
        rows, starts, length = array.rows, array.starts, array.length
    elif (view := window_rows(array)) is not None:
        (rows, length), starts = view, None
    else:
        values = tf.constant(np.asarray(array))
        return lambda index: tf.gather(values, index)
    rows = np.ascontiguousarray(rows)
    if rows.nbytes > GATHER_IN_NUMPY_BYTES:
        return _numpy_window_gather(rows, starts, length)
    values, offsets = tf.constant(rows), tf.range(length, dtype=tf.int64)
    if starts is None:
        return lambda index: tf.gather(values, index[:, None] + offsets[None, :])
    firsts = tf.constant(starts)
    return lambda index: tf.gather(values, tf.gather(firsts, index)[:, None] + offsets[None, :])


def _numpy_window_gather(rows: np.ndarray, starts: np.ndarray | None, length: int):
    """``index -> windows`` cut by NumPy from ``rows`` (window ``i`` starts at row ``starts[i]``, or ``i``), inside the
    input pipeline: TensorFlow never holds a copy of the rows (:data:`GATHER_IN_NUMPY_BYTES`)."""
    import tensorflow as tf

    offsets = np.arange(length)

    def cut(index: np.ndarray) -> np.ndarray:
        return rows[(index if starts is None else starts[index])[:, None] + offsets]

    def take(index):
        windows = tf.numpy_function(cut, [index], tf.as_dtype(rows.dtype), stateful=False)
        windows.set_shape((None, length, rows.shape[1]))
        return windows

    return take


def windows_for_rows(
    scaled: np.ndarray,
    target: np.ndarray,
    close: pd.Series,
    horizon: int,
    sequence_length: int,
    start: int,
    stop: int,
    extras: pd.DataFrame | None = None,
) -> WindowSet:
    """Windows whose rows all lie in ``[start, stop)`` and whose target (and every extra) is known."""
    # the strided view costs nothing, and stays a view when the known windows are one run (the usual case: only
    # the last `horizon` targets are unknown); known windows with holes (an extra missing mid-series) are their
    # starts in the rows. Either way to_tf_dataset cuts each batch's windows from the rows: no copy of every window.
    x = sliding_windows(scaled[start:stop], sequence_length, copy=False)
    ends = np.arange(start + sequence_length - 1, stop)
    known = ~np.isnan(target[ends])
    if extras is not None:
        known &= extras.iloc[ends].notna().all(axis=1).to_numpy()
    kept = np.flatnonzero(known)
    one_run = len(kept) > 0 and kept[-1] - kept[0] + 1 == len(kept)
    ends, x = ends[known], (x[kept[0]:kept[-1] + 1] if one_run else
                            GatheredWindows(scaled[start:stop], kept, sequence_length))
    closes = close.to_numpy()
    moving_average = close.rolling(MOVING_AVERAGE_WINDOW, min_periods=1).mean().to_numpy()
    future = np.full(len(closes), np.nan)
    future[:-horizon] = closes[horizon:]
    return WindowSet(x=x, y=target[ends].astype(np.float32), time=close.index[ends], close=closes[ends],
                     future_close=future[ends], moving_average=moving_average[ends],
                     extras={} if extras is None else {c: extras[c].to_numpy(np.float64)[ends] for c in extras.columns})


def check_finite_columns(values: np.ndarray, columns, index) -> None:
    """Refuses a NaN or infinite feature value (naming column, bar and value) before it reaches a scaler or a model.

    Example:
        >>> check_finite_columns(np.array([[1.0, np.inf]]), ["a", "b"], ["bar 0"])
        Traceback (most recent call last):
        ...
        ValueError: Feature 'b' is inf at bar 0: check the data around that bar (a feature must be finite)
    """
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        raise ValueError(f"Feature {columns[col]!r} is {values[row, col]:g} at {index[row]}: check the data around "
                         "that bar (a feature must be finite)")


def prepare_data(
    features: pd.DataFrame,
    target: pd.Series,
    close: pd.Series,
    sequence_length: int,
    horizon: int,
    validation_fraction: float = 0.15,
    test_fraction: float = 0.15,
    scale_target: bool = False,
    extras: pd.DataFrame | None = None,
) -> PreparedData:
    """Splits, scales and windows the feature rows.

    Args:
        features: feature rows (from :func:`ml.training_pipeline.problems.price.features.build_features`).
        target: target per bar, aligned to ``features`` (NaN where unknown).
        close: close prices aligned to ``features``.
        sequence_length: rows per window.
        horizon: bars ahead the target looks.
        validation_fraction, test_fraction: sizes of the later parts.
        scale_target: fit a target scaler on the training windows (regression).
        extras: per-bar values aligned to ``features`` that the problem's baselines need;
            windows where one is unknown are dropped from every split alike.

    Returns:
        A :class:`PreparedData`.

    Raises:
        ValueError: when a split would get fewer than :data:`MIN_WINDOWS_PER_SPLIT` windows.

    Example:
        >>> data = prepare_data(features, target, close, sequence_length=60, horizon=1)  # doctest: +SKIP
    """
    n = len(features)
    gap = max(sequence_length, horizon)
    n_test, n_val = int(n * test_fraction), int(n * validation_fraction)
    n_train = n - n_test - n_val - 2 * gap
    bounds = {"train": (0, n_train), "validation": (n_train + gap, n_train + gap + n_val),
              "test": (n - n_test, n)}
    needed = sequence_length + horizon + MIN_WINDOWS_PER_SPLIT
    if min(n_train, n_val, n_test) < needed:
        minimum = int(np.ceil(max(needed / min(validation_fraction, test_fraction), 3 * needed + 2 * gap)))
        raise ValueError(
            f"Too few rows: {n} bars after feature warm-up give train/validation/test parts of "
            f"{max(n_train, 0)}/{n_val}/{n_test} bars, each needs >= {needed} for sequence_length={sequence_length}, "
            f"horizon={horizon} (about {minimum} bars in all). Use more data (--days) or a shorter --sequence-length"
        )
    values = features.to_numpy(dtype=np.float64)
    check_finite_columns(values, features.columns, features.index)
    scaler = StandardScaler.fit(values[:n_train])
    scaled = scaler.transform(values)
    target_values = target.to_numpy(dtype=np.float64)
    sets = {name: windows_for_rows(scaled, target_values, close, horizon, sequence_length, a, b, extras)
            for name, (a, b) in bounds.items()}
    short = {name: len(ws) for name, ws in sets.items() if len(ws) < MIN_WINDOWS_PER_SPLIT}
    if short:
        raise ValueError(f"Too few usable windows (target and baselines known) in {', '.join(short)}: {short}; "
                         f"each split needs >= {MIN_WINDOWS_PER_SPLIT}. Use more data (--days)")
    check_target_varies(sets["train"].y)
    counts = {f"{name}_windows": len(ws) for name, ws in sets.items()}
    counts.update({"feature_rows": n, "gap_rows": gap})
    target_scaler = StandardScaler.fit(sets["train"].y[:, None].astype(np.float64)) if scale_target else None
    return PreparedData(sets["train"], sets["validation"], sets["test"], scaler, tuple(features.columns), counts,
                        target_scaler)


def split_sequences(sequences: np.ndarray, targets: np.ndarray, validation_fraction: float = 0.2
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Chronological train / validation split of windows: the last ``validation_fraction`` is validation.

    Never shuffled: validation windows all come after the training ones, as they will in production. For
    windows that overlap, :func:`prepare_data` (which also leaves a gap between the parts) is the safer split.

    Args:
        sequences: ``(n, steps, features)`` windows, oldest first.
        targets: ``n`` targets.
        validation_fraction: share of the windows held out, in (0, 1).

    Returns:
        ``X_train, y_train, X_val, y_val``.

    Example:
        >>> X_train, y_train, X_val, y_val = split_sequences(np.zeros((10, 3, 2)), np.arange(10))
        >>> len(X_train), y_val.tolist()
        (8, [8, 9])
    """
    sequences, targets = np.asarray(sequences), np.asarray(targets)
    if len(sequences) != len(targets):
        raise ValueError(f"sequences and targets must have the same number of rows. Received: {len(sequences)} "
                         f"and {len(targets)}")
    if isinstance(validation_fraction, bool) or not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1). Received: validation_fraction={validation_fraction!r}")
    cut = len(sequences) - max(1, int(round(len(sequences) * validation_fraction)))
    if cut < 1:
        raise ValueError(f"Too few windows to split: {len(sequences)}")
    return sequences[:cut], targets[:cut], sequences[cut:], targets[cut:]


def check_target_varies(y: np.ndarray, where: str = "the training part", max_share: float | None = 0.99) -> None:
    """Refuses a target with (almost) no variation: there is nothing to learn, and every metric would flatter.

    A constant price gives zero returns and a constant direction: RMSE 0 and accuracy 1.0 for any model.

    Example:
        >>> check_target_varies(np.zeros(10))
        Traceback (most recent call last):
        ...
        ValueError: The target is constant over the training part (every value 0): nothing to learn. Check the data (a constant price, a frozen feed?)
    """
    values = np.asarray(y, dtype=np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        return
    spread = float(values.max() - values.min())
    if spread <= 1e-9 * max(1.0, float(np.abs(values).max())):
        raise ValueError(f"The target is constant over {where} (every value {values[0]:g}): nothing to learn. "
                         "Check the data (a constant price, a frozen feed?)")
    share = float(np.mean(values == np.median(values)))
    if max_share is not None and share >= max_share:
        raise ValueError(f"The target is near-constant over {where}: {share:.1%} of the values equal "
                         f"{float(np.median(values)):g}. Check the data (a constant price, a frozen feed?)")


def _permutations(indices: np.ndarray, seed: int | None):
    """``indices`` in a new random order at every pass over the dataset (a seed gives the same orders), held as one
    int64 tensor (:data:`SHUFFLE_BY_PERMUTATION_WINDOWS`)."""
    import tensorflow as tf

    values = tf.constant(indices)

    def permuted(pass_seed):
        order = tf.random.experimental.stateless_shuffle(tf.range(tf.size(values, out_type=tf.int64)),
                                                         seed=tf.stack([pass_seed, tf.constant(0, tf.int64)]))
        return tf.data.Dataset.from_tensor_slices(tf.gather(values, order))

    # one seed per pass, drawn anew each time the dataset is iterated (an epoch, or a pass of repeat())
    return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1).flat_map(permuted)


def to_tf_dataset(x, y: np.ndarray, batch_size: int, shuffle: bool, seed: int | None = None,
                  sample_weight: np.ndarray | None = None, repeat: bool = False,
                  shard: tuple[int, int, int] | None = None, rows: np.ndarray | None = None):
    """A batched, prefetched ``tf.data.Dataset``; only training data should be shuffled.

    Args:
        x: one array, or a dict ``{input name: array}`` for a multi-input model.
        y: targets.
        batch_size: rows per batch.
        shuffle: reshuffle every epoch (training data only); above :data:`SHUFFLE_BY_PERMUTATION_WINDOWS` windows
            by one permutation tensor per epoch rather than tf.data's shuffle buffer.
        seed: shuffle seed.
        sample_weight: optional per-row weights; they scale the loss and the weighted metrics.
        repeat: endless, reshuffled at every pass (for ``steps_per_epoch``: an epoch's batches then come from
            the whole shuffled range, and the batches stay full across a pass's end).
        shard: ``(pipelines, this pipeline, global batch)`` for one worker of several (``tf.distribute``'s
            ``InputContext``): the worker keeps every ``pipelines``-th of the shuffled indices, from its own
            offset, and cuts only those windows; ``batch_size`` is then the per-replica batch. With the same seed on
            every worker, one step's batches together are the global batch a single process would draw. Only whole
            global batches are kept (at most ``global batch - 1`` windows a pass left out, others at each reshuffle)
            so every worker runs the same number of steps.
        rows: train on these rows only (indices into ``x`` and ``y``, e.g. a curriculum phase's groups), cut from
            the full arrays: no copy of the subset's windows (the order a seed draws is the one a copy would get).

    Example:
        >>> dataset = to_tf_dataset({"window": x, "ids": ids}, y, 128, shuffle=True, seed=1)  # doctest: +SKIP
    """
    import tensorflow as tf

    parts = (x, y) if sample_weight is None else (x, y, np.asarray(sample_weight, dtype=np.float32))
    arrays = list(x.values()) if isinstance(x, dict) else [x]
    count = len(y) if rows is None else len(rows)
    permuted = shuffle and count > SHUFFLE_BY_PERMUTATION_WINDOWS
    if rows is not None or permuted or any(cut_per_batch(a) for a in arrays):
        # windows cut per batch from the rows they view: indices are shuffled, never windows (the same order as
        # shuffling the windows themselves: tf.data's shuffle draws the same permutation for any elements)
        if permuted:
            dataset = _permutations(np.arange(len(y), dtype=np.int64) if rows is None else np.asarray(rows, np.int64),
                                    seed)
        else:
            dataset = (tf.data.Dataset.range(len(y)) if rows is None else
                       tf.data.Dataset.from_tensor_slices(np.asarray(rows, np.int64)))
        gather = tf.nest.map_structure(_gatherer, parts)
        pick = lambda index: tf.nest.map_structure(lambda take: take(index), gather)  # noqa: E731
    else:
        dataset = tf.data.Dataset.from_tensor_slices(parts)
        pick = None
    if shuffle and not permuted:
        dataset = dataset.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    if shard is not None:
        pipelines, index, global_batch = shard
        dataset = dataset.take(count // global_batch * global_batch).shard(pipelines, index)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size)
    if pick is not None:
        dataset = dataset.map(pick)
    # tf.data's autotuner left training idle at every epoch boundary (about 1.7 s per epoch here, see
    # benchmarks/tf_data_autotune.py); the data are in memory, so a fixed prefetch loses nothing
    options = tf.data.Options()
    options.autotune.enabled = False
    # under a multi-worker strategy each worker reads its share of every batch (in-memory data has no files to
    # shard by; saying so spares TensorFlow's fallback warning)
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.prefetch(2).with_options(options)
