"""xLSTM blocks (Beck et al., 2024): the mLSTM (matrix memory, parallel form) and the sLSTM (scalar memory, recurrent).

Both use exponential input gates with a stabiliser state ``m`` (so ``exp`` never overflows):

- mLSTM: ``C_t = f_t C_{t-1} + i_t v_t k_t^T``, ``n_t = f_t n_{t-1} + i_t k_t``,
  ``h_t = C_t q_t / max(|n_t . q_t|, exp(-m_t))``. Without a recurrence on ``h`` it unrolls into a
  masked ``(time x time)`` matrix per head, computed in parallel here (:func:`mlstm_parallel`);
  :func:`mlstm_reference` is the step-by-step loop the tests compare it with.
- sLSTM: ``c_t = f_t c_{t-1} + i_t z_t``, ``n_t = f_t n_{t-1} + i_t``, ``h_t = o_t c_t / n_t`` with the
  gates reading ``h_{t-1}``: a true recurrence, run as a ``keras.layers.RNN`` cell (exported to an
  ONNX ``Loop``); :func:`slstm_reference` is its loop.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from ml.training_pipeline.layers.masked_exp import masked_exp


def _log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def mlstm_reference(q, k, v, i_pre, f_pre):
    """mLSTM as a recurrence (NumPy, float64). q, k, v: ``(batch, time, heads, d)``; gates ``(batch, time, heads)``.

    ``k`` is used as given (the layer scales it by ``1/sqrt(d)`` before).
    """
    batch, length, heads, d = q.shape
    C = np.zeros((batch, heads, d, d))
    n = np.zeros((batch, heads, d))
    m = np.full((batch, heads), -np.inf)
    out = []
    for t in range(length):
        log_f = _log_sigmoid(f_pre[:, t])
        m_new = np.maximum(log_f + m, i_pre[:, t])
        f = np.exp(log_f + m - m_new)
        i = np.exp(i_pre[:, t] - m_new)
        C = f[..., None, None] * C + i[..., None, None] * np.einsum("bhd,bhe->bhde", v[:, t], k[:, t])
        n = f[..., None] * n + i[..., None] * k[:, t]
        num = np.einsum("bhde,bhe->bhd", C, q[:, t])
        den = np.maximum(np.abs(np.einsum("bhd,bhd->bh", n, q[:, t])), np.exp(-m_new))
        out.append(num / den[..., None])
        m = m_new
    return np.stack(out, axis=1)


def mlstm_parallel(q, k, v, i_pre, f_pre):
    """The same mLSTM in parallel form (``keras.ops``), shapes as in :func:`mlstm_reference`."""
    length = ops.shape(q)[1]
    q, k, v = (ops.transpose(a, (0, 2, 1, 3)) for a in (q, k, v))  # (batch, heads, time, d)
    log_f = ops.transpose(ops.log_sigmoid(f_pre), (0, 2, 1))  # (batch, heads, time)
    i_pre = ops.transpose(i_pre, (0, 2, 1))
    cum = ops.cumsum(log_f, axis=-1)
    causal = ops.tril(ops.ones((length, length), dtype="bool"))[None, None]
    log_D = ops.where(causal, cum[..., :, None] - cum[..., None, :] + i_pre[..., None, :], -1e9)
    m = ops.max(log_D, axis=-1, keepdims=True)  # the stabiliser m_t
    S = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) * masked_exp(log_D - m, causal)  # no -1e9 exponentiated
    normaliser = ops.maximum(ops.abs(ops.sum(S, axis=-1, keepdims=True)), ops.exp(-m))
    h = ops.matmul(S / normaliser, v)
    return ops.transpose(h, (0, 2, 1, 3))


def slstm_reference(pre, recurrent_kernel, bias):
    """sLSTM as a loop (NumPy, float64). pre: ``(batch, time, 4 * units)`` input pre-activations (z, i, f, o)."""
    batch, length, width = pre.shape
    units = width // 4
    h, c, n, m = (np.zeros((batch, units)) for _ in range(4))
    out = []
    for t in range(length):
        gates = pre[:, t] + h @ recurrent_kernel + bias
        z, i_pre, f_pre, o = np.split(gates, 4, axis=-1)
        log_f = _log_sigmoid(f_pre)
        m_new = np.maximum(log_f + m, i_pre)
        i, f = np.exp(i_pre - m_new), np.exp(log_f + m - m_new)
        c = f * c + i * np.tanh(z)
        n = f * n + i
        h = 1 / (1 + np.exp(-o)) * c / np.maximum(n, 1e-12)
        m = m_new
        out.append(h)
    return np.stack(out, axis=1)


class SLSTMCell(keras.layers.Layer):
    """The sLSTM recurrence for ``keras.layers.RNN``; its input is the ``4 * units`` input pre-activations.

    Not registered for serialization on its own: :class:`SLSTMBlock` creates it when built, so a saved
    model stores the block's config and the cell's weights.

    The input projection sits outside the cell (one matmul over all steps); the cell only adds
    the recurrent part, so each step is one ``(units x 4 units)`` matmul.

    Example:
        >>> import numpy as np
        >>> tuple(keras.layers.RNN(SLSTMCell(3), return_sequences=True)(np.zeros((2, 5, 12), "float32")).shape)
        (2, 5, 3)
    """

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.state_size = [self.units] * 4  # h, c, n, m
        self.output_size = self.units

    def build(self, input_shape):
        self.recurrent_kernel = self.add_weight(name="recurrent_kernel", shape=(self.units, 4 * self.units),
                                                initializer="orthogonal")
        # forget gates start open (sigmoid(3) ~ 0.95) so memory lasts from the first epoch
        bias = np.zeros(4 * self.units, np.float32)
        bias[2 * self.units:3 * self.units] = 3.0
        self.bias = self.add_weight(name="bias", shape=(4 * self.units,), initializer=keras.initializers.Constant(bias))

    def call(self, inputs, states, training=False):
        h, c, n, m = states
        gates = inputs + ops.matmul(h, self.recurrent_kernel) + self.bias
        z, i_pre, f_pre, o = ops.split(gates, 4, axis=-1)
        log_f = ops.log_sigmoid(f_pre)
        m_new = ops.maximum(log_f + m, i_pre)
        i, f = ops.exp(i_pre - m_new), ops.exp(log_f + m - m_new)
        c = f * c + i * ops.tanh(z)
        n = f * n + i
        h = ops.sigmoid(o) * c / ops.maximum(n, 1e-12)
        return h, [h, c, n, m_new]

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class _Block(keras.layers.Layer):
    """Shared config of the two blocks."""

    def __init__(self, num_heads: int = 4, conv_width: int = 4, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_heads, self.conv_width, self.dropout = int(num_heads), int(conv_width), float(dropout)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "conv_width": self.conv_width,
                "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="ml")
class MLSTMBlock(_Block):
    """Pre-norm residual mLSTM block: up-projection x2, causal conv for q/k, multi-head mLSTM, gate, down-projection.

    Args:
        num_heads: memory heads (the inner width ``2 * d_model`` must be divisible by it).
        conv_width: width of the causal depthwise convolution before q and k.
        dropout: dropout on the block's output branch.

    Example:
        >>> import numpy as np
        >>> tuple(MLSTMBlock(num_heads=2)(np.zeros((2, 6, 8), "float32")).shape)
        (2, 6, 8)
    """

    EXAMPLE = {"init_kwargs": {"num_heads": 2, "conv_width": 3}, "input_shape": (2, 6, 8)}

    def build(self, input_shape):
        d_model = int(input_shape[-1])
        self.inner = 2 * d_model
        if self.inner % self.num_heads:
            raise ValueError(f"2 * d_model must be divisible by num_heads. Received: d_model={d_model}, "
                             f"num_heads={self.num_heads}")
        self.head_dim = self.inner // self.num_heads
        seq, inner = (None, None, d_model), (None, None, self.inner)
        self.norm = keras.layers.LayerNormalization(name="norm")
        self.up = keras.layers.Dense(2 * self.inner, name="up")
        self.pad = keras.layers.ZeroPadding1D((self.conv_width - 1, 0))
        self.conv = keras.layers.DepthwiseConv1D(self.conv_width, name="conv")
        self.query = keras.layers.Dense(self.inner, name="query")
        self.key = keras.layers.Dense(self.inner, name="key")
        self.value = keras.layers.Dense(self.inner, name="value")
        gate_bias = np.concatenate([np.zeros(self.num_heads), np.linspace(3.0, 6.0, self.num_heads)]).astype("float32")
        self.gates = keras.layers.Dense(2 * self.num_heads, bias_initializer=keras.initializers.Constant(gate_bias),
                                        name="gates")
        self.head_norm = keras.layers.LayerNormalization(name="head_norm")
        self.down = keras.layers.Dense(d_model, name="down")
        self.drop = keras.layers.Dropout(self.dropout)
        self.norm.build(seq)
        self.up.build(seq)
        self.conv.build(inner)
        for layer in (self.query, self.key, self.value, self.gates, self.down):
            layer.build(inner)
        self.head_norm.build((None, None, self.num_heads, self.head_dim))
        self.skip = self.add_weight(name="skip", shape=(self.inner,), initializer="ones")

    def _heads(self, x):
        return ops.reshape(x, (ops.shape(x)[0], ops.shape(x)[1], self.num_heads, self.head_dim))

    def _parts(self, inputs):
        """``(q, k, v, i_pre, f_pre, conv_out, z)`` as the block computes them."""
        x, z = ops.split(self.up(self.norm(inputs)), 2, axis=-1)
        xc = ops.silu(self.conv(self.pad(x)))
        q, k, v = self._heads(self.query(xc)), self._heads(self.key(xc)) / math.sqrt(self.head_dim), self._heads(self.value(x))
        i_pre, f_pre = ops.split(self.gates(xc), 2, axis=-1)
        return q, k, v, i_pre, f_pre, xc, z

    def call(self, inputs, training=False):
        q, k, v, i_pre, f_pre, xc, z = self._parts(inputs)
        h = self.head_norm(mlstm_parallel(q, k, v, i_pre, f_pre))
        h = ops.reshape(h, ops.shape(xc)) + self.skip * xc
        return inputs + self.drop(self.down(h * ops.silu(z)), training=training)


@keras.saving.register_keras_serializable(package="ml")
class SLSTMBlock(_Block):
    """Pre-norm residual sLSTM block followed by a pre-norm gated feed-forward network (x 4/3).

    Example:
        >>> import numpy as np
        >>> tuple(SLSTMBlock()(np.zeros((2, 6, 8), "float32")).shape)
        (2, 6, 8)
    """

    EXAMPLE = {"init_kwargs": {}, "input_shape": (2, 6, 8)}

    def build(self, input_shape):
        d_model = int(input_shape[-1])
        seq = (None, None, d_model)
        ff = max(1, round(4 * d_model / 3))
        self.norm = keras.layers.LayerNormalization(name="norm")
        self.pre = keras.layers.Dense(4 * d_model, name="input_gates")
        self.rnn = keras.layers.RNN(SLSTMCell(d_model), return_sequences=True, name="slstm")
        self.out = keras.layers.Dense(d_model, name="out")
        self.ff_norm = keras.layers.LayerNormalization(name="ff_norm")
        self.ff_up = keras.layers.Dense(2 * ff, name="ff_up")
        self.ff_down = keras.layers.Dense(d_model, name="ff_down")
        self.drop = keras.layers.Dropout(self.dropout)
        for layer in (self.norm, self.pre, self.ff_norm, self.ff_up):
            layer.build(seq)
        self.rnn.build((None, None, 4 * d_model))
        self.out.build(seq)
        self.ff_down.build((None, None, ff))

    def call(self, inputs, training=False):
        x = inputs + self.drop(self.out(self.rnn(self.pre(self.norm(inputs)))), training=training)
        gate, up = ops.split(self.ff_up(self.ff_norm(x)), 2, axis=-1)
        return x + self.drop(self.ff_down(ops.gelu(gate, approximate=True) * up), training=training)
