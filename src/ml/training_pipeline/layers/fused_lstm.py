"""An LSTM that trains its whole sequence in one fused TensorFlow kernel on CPU (``BlockLSTMV2``).

Keras 3's LSTM on the TensorFlow backend has a fused kernel only on GPUs (cuDNN); on a CPU every time step is a
handful of small ops in a while-loop, forward and backward, and at small batches the step is bound by their
dispatch (~120 µs a step, docs/speed.md), not by arithmetic. TensorFlow's CPU kernel ``BlockLSTMV2`` runs the
whole sequence in one op and ``BlockLSTMGradV2`` its gradient. :class:`FusedLSTM` is a ``keras.layers.LSTM`` whose
sequence loop is that pair where it applies; its weights, config and outputs are the LSTM's (the same gates in the
same order: ``BlockLSTMV2`` reads them as i, f, c, o like Keras).

It is a training twin, not what is stored: :func:`fused_lstm_layers` says which of a model's LSTMs train faster
fused at a batch size, the model kind trains a copy with those layers swapped in and copies the weights back, so
the stored model, its ONNX graph and their parity stay the standard Keras LSTM's.

Two choices are measurements (``benchmarks/fused_lstm.py``, ``benchmarks/train_speed.py --settings unfused after``,
docs/speed.md):

- the batch is cut into one shard per core, each a ``BlockLSTMV2`` of its own, which run in parallel: the kernel's
  matrix products are small and use one core well, not two (64 units at batch 128: 30 ms a step whole, 10 ms in
  two shards, against 20 ms for Keras' loop);
- the kernel's cost grows faster than its arithmetic: above about 1.4M multiply-adds per time step and shard it is
  slower than Keras' loop, so :data:`FUSED_MAX_SHARD_MACS` bounds where it is used.

Example:
    >>> import numpy as np, keras
    >>> layer = FusedLSTM(4, return_sequences=True)
    >>> x = np.random.default_rng(0).standard_normal((3, 5, 2)).astype("float32")
    >>> stock = keras.layers.LSTM(4, return_sequences=True)
    >>> _ = stock(x); _ = layer(x); layer.set_weights(stock.get_weights())
    >>> bool(np.allclose(layer(x, training=True), stock(x), atol=1e-6))
    True
"""

from __future__ import annotations

from collections.abc import Iterable

import keras

from ml.training_pipeline.common.hardware import available_cores

FUSED_MAX_SHARD_MACS = 1.4e6
"""The most multiply-adds per time step and shard, ``rows x 4 units x (inputs + units)``, at which the fused kernel
trained faster than Keras' loop (``benchmarks/fused_lstm.py`` on this 2-core machine: up to 1.31M it was 1.3-2.9x
faster, from 1.57M 0.5-0.98x as fast; the kernel's cost grows faster than its arithmetic above that)."""


def fused_lstm_faster(units: int, inputs: int, batch_size: int, cores: int | None = None) -> bool:
    """Whether an LSTM of ``units`` over ``inputs`` features trains faster fused at ``batch_size`` (a shard a core).

    Example:
        >>> fused_lstm_faster(64, 15, 128, cores=2), fused_lstm_faster(64, 64, 128, cores=2)
        (True, False)
    """
    cores = available_cores() if cores is None else cores
    rows_per_shard = -(-batch_size // max(1, min(cores, batch_size)))
    return rows_per_shard * 4 * units * (inputs + units) <= FUSED_MAX_SHARD_MACS


@keras.saving.register_keras_serializable(package="ml")
class FusedLSTM(keras.layers.LSTM):
    """``keras.layers.LSTM`` with its sequence loop in TensorFlow's fused CPU kernel where the layer allows it.

    The fused path runs in training steps (``training=True``) when the backend is TensorFlow, the layer computes in
    float32 or float16, has no mask, no input or recurrent dropout, is neither stateful nor backwards, and keeps
    Keras' default activations (tanh and sigmoid); anything else runs Keras' own loop, so the layer is always an
    LSTM.

    Args:
        *args: ``keras.layers.LSTM``'s arguments.
        shards: how many parallel kernels a batch is cut into; ``None``: one per core (:func:`~ml.training_pipeline.common.hardware.available_cores`).
        **kwargs: ``keras.layers.LSTM``'s keyword arguments.
    """

    EXAMPLE = {"init_kwargs": {"units": 4, "return_sequences": True, "shards": 2}, "input_shape": (3, 5, 2)}

    def __init__(self, *args, shards: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if shards is not None and (isinstance(shards, bool) or not isinstance(shards, int) or shards < 1):
            raise ValueError(f"shards must be an int >= 1 or None. Received: shards={shards!r}")
        self.shards = shards

    def get_config(self) -> dict:
        return {**super().get_config(), "shards": self.shards}

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        # training steps only: inference (validation, predict, ONNX export, which has no BlockLSTM op) runs Keras'
        # loop, so the layer also exports as the LSTM it is
        if not training or not can_fuse(self, mask):
            return super().inner_loop(sequences, initial_state, mask, training=training)
        h_sequence, h_last, c_last = _fused_sequence(
            sequences, initial_state[0], initial_state[1], self.cell.kernel, self.cell.recurrent_kernel,
            self.cell.bias, self.shards or available_cores())
        return h_last, (h_sequence if self.return_sequences else h_last), [h_last, c_last]


def can_fuse(layer, mask=None) -> bool:
    """Whether an LSTM ``layer`` called with ``mask`` computes what the fused kernel computes."""
    cell = layer.cell
    return (keras.backend.backend() == "tensorflow" and mask is None and not layer.stateful
            and not layer.go_backwards and not cell.dropout and not cell.recurrent_dropout
            and layer.compute_dtype in ("float32", "float16")
            and cell.activation is keras.activations.tanh
            and cell.recurrent_activation is keras.activations.sigmoid)


def _fused_sequence(sequences, h0, c0, kernel, recurrent_kernel, bias, shards: int):
    """``(h over time, last h, last c)`` of an LSTM over batch-major ``sequences``, one fused kernel per shard."""
    import tensorflow as tf

    dtype = sequences.dtype
    weights = tf.concat([tf.cast(kernel, dtype), tf.cast(recurrent_kernel, dtype)], axis=0)
    bias = tf.zeros([tf.shape(weights)[1]], dtype) if bias is None else tf.cast(bias, dtype)
    rows = tf.shape(sequences)[0]
    # rows padded to equal, even shards: no shard is empty (the gradient kernel returns garbage weights' gradients
    # for zero rows) and the kernel's "batch and input size both odd" slow path and its log line never come up
    padded = -(-rows // (2 * shards)) * (2 * shards)
    pad = [[0, padded - rows], [0, 0]]
    time_major = tf.transpose(tf.pad(sequences, [pad[0], [0, 0], [0, 0]]), [1, 0, 2])
    parts = zip(tf.split(time_major, shards, axis=1), tf.split(tf.pad(tf.cast(h0, dtype), pad), shards),
                tf.split(tf.pad(tf.cast(c0, dtype), pad), shards), strict=True)
    h, cs = (tf.concat(list(pieces), axis=1)[:, :rows]
             for pieces in zip(*(_block_lstm(x, h, c, weights, bias) for x, h, c in parts), strict=True))
    return tf.transpose(h, [1, 0, 2]), h[-1], cs[-1]


def _block_lstm(x, h0, c0, weights, bias):
    """``BlockLSTMV2`` over time-major ``x`` with ``BlockLSTMGradV2`` as its gradient: ``(h, cs)`` over time.

    TensorFlow registers the first version's gradient op for ``BlockLSTMV2``, which reads the gates in the first
    version's order (i, c, f, o) and so returns the weights' gradient with two gates swapped: the V2 gradient op is
    wired here instead (checked against Keras' loop in ``tests/unit/test_precision.py``).
    """
    import tensorflow as tf

    @tf.custom_gradient
    def block(x, h0, c0, weights, bias):
        peephole = tf.zeros([tf.shape(h0)[1]], x.dtype)  # Keras' LSTM has no peephole connections
        length = tf.cast(tf.shape(x)[0], tf.int64)
        arguments = dict(seq_len_max=length, x=x, cs_prev=c0, h_prev=h0, w=weights, wci=peephole, wcf=peephole,
                         wco=peephole, b=bias, use_peephole=False)
        i, cs, f, o, ci, co, h = tf.raw_ops.BlockLSTMV2(cell_clip=0.0, **arguments)  # 0: no clipping, as Keras

        def gradient(h_grad, cs_grad):
            x_grad, c0_grad, h0_grad, weights_grad, _, _, _, bias_grad = tf.raw_ops.BlockLSTMGradV2(
                i=i, cs=cs, f=f, o=o, ci=ci, co=co, h=h, cs_grad=cs_grad, h_grad=h_grad, **arguments)
            return x_grad, h0_grad, c0_grad, weights_grad, bias_grad

        return (h, cs), gradient

    return block(x, h0, c0, weights, bias)


def fused_lstm_layers(model, batch_size: int, cores: int | None = None) -> list[str]:
    """Names of ``model``'s top-level ``keras.layers.LSTM`` layers that train faster as :class:`FusedLSTM`; none
    where a GPU is visible (Keras' LSTM runs cuDNN's fused kernel there).

    Example:
        >>> inputs = keras.Input((10, 3))
        >>> small = keras.layers.LSTM(8, name="small")(inputs)
        >>> model = keras.Model(inputs, keras.layers.Dense(1)(small))
        >>> fused_lstm_layers(model, batch_size=32, cores=2)
        ['small']
    """
    if gpu_visible():
        return []
    return [layer.name for layer in _plain_lstms(model.layers)
            if can_fuse(layer) and fused_lstm_faster(layer.units, int(layer.cell.kernel.shape[0]), batch_size, cores)]


def fused_layer_classes(model, batch_size: int, cores: int | None = None) -> dict[str, type]:
    """:func:`fused_lstm_layers` as the ``layer_classes`` a training twin swaps in (each to :class:`FusedLSTM`)."""
    return {name: FusedLSTM for name in fused_lstm_layers(model, batch_size, cores)}


def gpu_visible() -> bool:
    """Whether TensorFlow sees a GPU (the fused CPU kernel is measured against Keras' loop on CPUs only)."""
    if keras.backend.backend() != "tensorflow":
        return False
    import tensorflow as tf

    return bool(tf.config.list_logical_devices("GPU"))


def _plain_lstms(layers: Iterable) -> list:
    # exactly Keras' LSTM: a subclass may change what the fused kernel would compute
    return [layer for layer in layers if type(layer) is keras.layers.LSTM]
