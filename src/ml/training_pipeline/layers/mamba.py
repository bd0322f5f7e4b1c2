"""A Mamba block with a selective state space in the parallel (quadratic, "SSD") form of Mamba-2.

Per head ``h`` the recurrence is (state ``H_t`` of shape ``(head_dim, d_state)``)::

    a_t = exp(dt_t[h] * A[h])                    # input-dependent decay, A < 0, scalar per head
    H_t = a_t * H_{t-1} + dt_t[h] * x_t[h] B_t^T  # input-dependent step dt, input matrix B
    y_t = H_t C_t + D[h] * x_t[h]                 # input-dependent read-out C

Unrolled, ``y_t = sum_{s<=t} exp(cs_t - cs_s) (C_t . B_s) dt_s x_s + D x_t`` with
``cs = cumsum(dt * A)``: one masked ``(time x time)`` matrix per head and two matmuls, which
trains fast on CPU and exports to ONNX (a ``keras.ops.scan`` does not export; Mamba-1's
per-channel decay in this form trained 40x slower). :func:`ssd_reference` is the step-by-step
loop the tests compare it with.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from ml.training_pipeline.layers.masked_exp import masked_exp


def ssd_reference(x: np.ndarray, dt: np.ndarray, A: np.ndarray, B: np.ndarray, C: np.ndarray, D: np.ndarray) -> np.ndarray:
    """The selective scan as a plain loop over time (NumPy, float64), for tests.

    Args:
        x: ``(batch, time, heads, head_dim)``; dt: ``(batch, time, heads)`` (> 0); A: ``(heads,)`` (< 0);
        B, C: ``(batch, time, d_state)``; D: ``(heads,)``.

    Returns:
        ``y`` of the shape of ``x``.
    """
    batch, length, heads, head_dim = x.shape
    state = np.zeros((batch, heads, head_dim, B.shape[-1]))
    ys = []
    for t in range(length):
        decay = np.exp(dt[:, t] * A)[:, :, None, None]
        state = decay * state + (dt[:, t, :, None, None] * x[:, t, :, :, None]) * B[:, t, None, None, :]
        ys.append(np.einsum("bhpn,bn->bhp", state, C[:, t]) + D[None, :, None] * x[:, t])
    return np.stack(ys, axis=1)


def ssd(x, dt, A, B, C, D):
    """The same scan in parallel form (``keras.ops``); shapes as in :func:`ssd_reference`."""
    length = ops.shape(x)[1]
    log_decay = dt * A  # (batch, time, heads), <= 0
    cs = ops.transpose(ops.cumsum(log_decay, axis=1), (0, 2, 1))  # (batch, heads, time)
    diff = cs[:, :, :, None] - cs[:, :, None, :]  # cs_t - cs_s
    causal = ops.tril(ops.ones((length, length), dtype="bool"))
    # only the kept (causal) entries are exponentiated: above the diagonal cs_t - cs_s > 0 could overflow, and a
    # masked -1e9 underflows, which ONNX Runtime's Exp computes 10x slower (layers/masked_exp.py)
    L = masked_exp(diff, causal[None, None])
    CB = ops.matmul(C, ops.transpose(B, (0, 2, 1)))  # (batch, t, s)
    weights = L * CB[:, None] * ops.transpose(dt, (0, 2, 1))[:, :, None, :]  # (batch, heads, t, s)
    xh = ops.transpose(x, (0, 2, 1, 3))  # (batch, heads, s, head_dim)
    y = ops.transpose(ops.matmul(weights, xh), (0, 2, 1, 3))
    return y + D[None, None, :, None] * x


@keras.saving.register_keras_serializable(package="ml")
class MambaBlock(keras.layers.Layer):
    """One pre-norm residual Mamba block: ``x + out_proj(SSD(conv(x_in)) * silu(z))``.

    The input projection gives the gated branch ``z``, the SSM branch ``x_in`` (through a causal
    depthwise convolution and SiLU), the input-dependent ``B``, ``C`` and per-head step ``dt``.

    Args:
        expand: the inner width is ``expand * d_model``.
        num_heads: SSM heads (the inner width must be divisible by it).
        d_state: state size per head channel.
        conv_width: width of the causal depthwise convolution.
        dropout: dropout on the block's output branch.

    Example:
        >>> import numpy as np
        >>> tuple(MambaBlock(num_heads=2, d_state=4)(np.zeros((2, 6, 8), "float32")).shape)
        (2, 6, 8)
    """

    EXAMPLE = {"init_kwargs": {"num_heads": 2, "d_state": 4, "conv_width": 3}, "input_shape": (2, 6, 8)}

    def __init__(self, expand: int = 2, num_heads: int = 8, d_state: int = 16, conv_width: int = 4,
                 dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.expand, self.num_heads, self.d_state = int(expand), int(num_heads), int(d_state)
        self.conv_width, self.dropout = int(conv_width), float(dropout)

    def build(self, input_shape):
        d_model = int(input_shape[-1])
        self.inner = self.expand * d_model
        if self.inner % self.num_heads:
            raise ValueError(f"expand * d_model must be divisible by num_heads. Received: expand={self.expand}, "
                             f"d_model={d_model}, num_heads={self.num_heads}")
        self.head_dim = self.inner // self.num_heads
        self.norm = keras.layers.LayerNormalization(name="norm")
        self.in_proj = keras.layers.Dense(2 * self.inner + 2 * self.d_state + self.num_heads, name="in_proj")
        # ZeroPadding1D + DepthwiseConv1D: Conv1D(groups=channels) leaves an XLA call in the ONNX graph
        self.pad = keras.layers.ZeroPadding1D((self.conv_width - 1, 0))
        self.conv = keras.layers.DepthwiseConv1D(self.conv_width, name="conv")
        self.out_proj = keras.layers.Dense(d_model, name="out_proj")
        self.drop = keras.layers.Dropout(self.dropout)
        seq = (input_shape[0], input_shape[1], d_model)
        self.norm.build(seq)
        self.in_proj.build(seq)
        self.conv.build((input_shape[0], None, self.inner))
        self.out_proj.build((input_shape[0], input_shape[1], self.inner))
        # A in [-16, -1] per head (Mamba-2's init), dt bias so softplus(dt) starts in [1e-3, 1e-1]
        rng = np.random.default_rng(0)
        self.A_log = self.add_weight(name="A_log", shape=(self.num_heads,),
                                     initializer=keras.initializers.Constant(np.log(np.linspace(1, 16, self.num_heads))))
        dt0 = np.exp(rng.uniform(np.log(1e-3), np.log(1e-1), self.num_heads))
        self.dt_bias = self.add_weight(name="dt_bias", shape=(self.num_heads,),
                                       initializer=keras.initializers.Constant(dt0 + np.log(-np.expm1(-dt0))))
        self.D = self.add_weight(name="D", shape=(self.num_heads,), initializer="ones")

    def _parts(self, inputs):
        """``(x, dt, A, B, C, D, z)`` of the scan, as the layer computes them."""
        h = self.in_proj(self.norm(inputs))
        z, x, B, C, dt = ops.split(h, np.cumsum([self.inner, self.inner, self.d_state, self.d_state]).tolist(), axis=-1)
        x = ops.silu(self.conv(self.pad(x)))
        batch, length = ops.shape(x)[0], ops.shape(x)[1]
        x = ops.reshape(x, (batch, length, self.num_heads, self.head_dim))
        return x, ops.softplus(dt + self.dt_bias), -ops.exp(self.A_log), B, C, self.D, z

    def call(self, inputs, training=False):
        x, dt, A, B, C, D, z = self._parts(inputs)
        y = ssd(x, dt, A, B, C, D)
        batch, length = ops.shape(y)[0], ops.shape(y)[1]
        y = ops.reshape(y, (batch, length, self.inner)) * ops.silu(z)
        return inputs + self.drop(self.out_proj(y), training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "expand": self.expand, "num_heads": self.num_heads, "d_state": self.d_state,
                "conv_width": self.conv_width, "dropout": self.dropout}
