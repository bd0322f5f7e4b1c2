"""Building blocks of the Temporal Fusion Transformer (Lim et al., 2021).

- :class:`GatedResidualNetwork` (GRN): ``LayerNorm(skip(a) + GLU(W1 ELU(W2 a + W3 c)))`` with an
  optional context ``c``; lets the network skip what it does not need. ``W2`` maps to the hidden
  width, ``W1`` from it to the output width.
- :class:`VariableSelection`: per-variable linear embeddings, a shared GRN over them, and softmax
  selection weights from a GRN of the raw variables (and the static context); returns the
  weighted sum and the weights (the model's variable importance).
- :class:`InterpretableMultiHeadAttention`: heads with their own query/key projections and one
  shared value projection, averaged, so the ``(time x time)`` weights are one interpretable map;
  causal by default.
- :class:`GateAddNorm`: ``LayerNorm(skip + GLU(dropout(x)))``.
- :class:`TimeSlice`: ``x[:, start:stop]`` as a serializable layer (no ``Lambda``).

Several of them return ``(output, weights)``; the weights feed
:func:`ml.training_pipeline.interpretation.interpret`.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from ml.training_pipeline.layers.heads import head_dim, split_heads
from ml.training_pipeline.layers.masked_exp import masked_softmax


def _glu(units: int, name: str):
    return keras.layers.Dense(2 * units, name=name)


def _apply_glu(dense, x):
    value, gate = ops.split(dense(x), 2, axis=-1)
    return value * ops.sigmoid(gate)


@keras.saving.register_keras_serializable(package="ml")
class GatedResidualNetwork(keras.layers.Layer):
    """A GRN on ``x`` (any rank >= 2) or on ``[x, context]`` with a ``(batch, c)`` context broadcast over time.

    Args:
        units: hidden width.
        output_units: output width (default ``units``); the skip is projected when it differs from the input's.
        dropout: dropout before the gate.

    Example:
        >>> import numpy as np
        >>> tuple(GatedResidualNetwork(4)([np.zeros((2, 5, 3), "float32"), np.zeros((2, 6), "float32")]).shape)
        (2, 5, 4)
    """

    EXAMPLE = {"init_kwargs": {"units": 4, "output_units": 3}, "input_shape": [(2, 5, 3), (2, 6)]}

    def __init__(self, units: int, output_units: int | None = None, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.units, self.dropout = int(units), float(dropout)
        self.output_units = int(output_units or units)

    def build(self, input_shape):
        has_context = isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple))
        x_shape = tuple(input_shape[0]) if has_context else tuple(input_shape)
        self.hidden = keras.layers.Dense(self.units, name="hidden")
        self.hidden.build(x_shape)
        self.context = keras.layers.Dense(self.units, use_bias=False, name="context") if has_context else None
        if self.context is not None:
            self.context.build(tuple(input_shape[1]))
        # hidden width -> output width, as a transformer's feed-forward block (the position-wise GRN's
        # ff_dim is its hidden width; a square inner layer would cost ff_dim^2 weights)
        self.inner = keras.layers.Dense(self.output_units, name="inner")
        self.inner.build((*x_shape[:-1], self.units))
        self.gate = _glu(self.output_units, "gate")
        self.gate.build((*x_shape[:-1], self.output_units))
        self.skip = keras.layers.Dense(self.output_units, name="skip") if x_shape[-1] != self.output_units else None
        if self.skip is not None:
            self.skip.build(x_shape)
        self.norm = keras.layers.LayerNormalization(name="norm")
        self.norm.build((*x_shape[:-1], self.output_units))
        self.drop = keras.layers.Dropout(self.dropout)

    def call(self, inputs, training=False):
        x, context = (inputs[0], inputs[1]) if isinstance(inputs, (list, tuple)) else (inputs, None)
        h = self.hidden(x)
        if context is not None:
            c = self.context(context)
            for _ in range(len(x.shape) - 2):  # broadcast (batch, units) over the time (and variable) axes
                c = ops.expand_dims(c, 1)
            h = h + c
        h = self.inner(ops.elu(h))
        h = _apply_glu(self.gate, self.drop(h, training=training))
        return self.norm((self.skip(x) if self.skip is not None else x) + h)

    def compute_output_shape(self, input_shape):
        x_shape = input_shape[0] if isinstance(input_shape[0], (list, tuple)) else input_shape
        return (*tuple(x_shape)[:-1], self.output_units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "output_units": self.output_units, "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="ml")
class VariableSelection(keras.layers.Layer):
    """Selects among the ``V`` scalar variables of ``x`` (``(batch, [time,] V)``), optionally given a static context.

    Returns ``[selected, weights]``: ``(..., units)`` and ``(..., V)`` (softmax over variables).
    One GRN, shared by the variables, processes their embeddings (a per-variable GRN, as in the
    paper, would multiply the parameters by ``V``).

    Example:
        >>> import numpy as np
        >>> out, weights = VariableSelection(4)(np.zeros((2, 5, 3), "float32"))
        >>> tuple(out.shape), tuple(weights.shape)
        ((2, 5, 4), (2, 5, 3))
    """

    EXAMPLE = {"init_kwargs": {"units": 4}, "input_shape": [(2, 5, 3), (2, 6)]}
    EXPLAINS = "variable_selection"

    def __init__(self, units: int, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.units, self.dropout = int(units), float(dropout)

    def build(self, input_shape):
        has_context = isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple))
        x_shape = tuple(input_shape[0]) if has_context else tuple(input_shape)
        self.num_vars = int(x_shape[-1])
        self.embedding_kernel = self.add_weight(name="embedding_kernel", shape=(self.num_vars, self.units),
                                                initializer="glorot_uniform")
        self.embedding_bias = self.add_weight(name="embedding_bias", shape=(self.num_vars, self.units),
                                              initializer="zeros")
        self.selector = GatedResidualNetwork(self.units, self.num_vars, self.dropout, name="selector")
        self.selector.build([x_shape, tuple(input_shape[1])] if has_context else x_shape)
        self.processor = GatedResidualNetwork(self.units, self.units, self.dropout, name="processor")
        self.processor.build((*x_shape, self.units))

    def call(self, inputs, training=False):
        x = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        weights = ops.softmax(self.selector(inputs, training=training), axis=-1)
        embedded = ops.expand_dims(x, -1) * self.embedding_kernel + self.embedding_bias  # (..., V, units)
        processed = self.processor(embedded, training=training)
        return [ops.sum(processed * ops.expand_dims(weights, -1), axis=-2), weights]

    def compute_output_shape(self, input_shape):
        x_shape = tuple(input_shape[0] if isinstance(input_shape[0], (list, tuple)) else input_shape)
        return [(*x_shape[:-1], self.units), x_shape]

    def get_config(self):
        return {**super().get_config(), "units": self.units, "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="ml")
class InterpretableMultiHeadAttention(keras.layers.Layer):
    """TFT's self-attention: per-head query/key, one value projection shared by all heads, heads averaged.

    Returns ``[output, weights]``: ``(batch, time, d_model)`` and the head-averaged ``(batch, time, time)``
    attention, which is directly the weight each step gives each earlier one.

    Args:
        num_heads: heads (``d_model`` divisible by it).
        dropout: dropout on the attention weights' output.
        causal: mask future steps.

    Example:
        >>> import numpy as np
        >>> out, weights = InterpretableMultiHeadAttention(2)(np.zeros((2, 5, 4), "float32"))
        >>> tuple(weights.shape)
        (2, 5, 5)
    """

    EXAMPLE = {"init_kwargs": {"num_heads": 2}, "input_shape": (2, 5, 4)}
    EXPLAINS = "attention"

    def __init__(self, num_heads: int, dropout: float = 0.0, causal: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.num_heads, self.dropout, self.causal = int(num_heads), float(dropout), bool(causal)

    def build(self, input_shape):
        width = int(input_shape[-1])
        self.head_dim = head_dim(width, self.num_heads)
        self.query = keras.layers.Dense(width, name="query")
        self.key = keras.layers.Dense(width, name="key")
        self.value = keras.layers.Dense(self.head_dim, name="value")
        self.out = keras.layers.Dense(width, name="out")
        for layer in (self.query, self.key, self.value):
            layer.build(input_shape)
        self.out.build((*input_shape[:-1], self.head_dim))
        self.drop = keras.layers.Dropout(self.dropout)

    def call(self, inputs, training=False):
        length = ops.shape(inputs)[1]
        query = split_heads(self.query(inputs), self.num_heads, self.head_dim)
        key = split_heads(self.key(inputs), self.num_heads, self.head_dim)
        logits = ops.matmul(query, ops.transpose(key, (0, 1, 3, 2)))
        logits = logits / math.sqrt(self.head_dim)
        if self.causal:  # masked_softmax: a -1e9 mask would send ONNX Runtime's Softmax down its slow path
            scores = masked_softmax(logits, ops.tril(ops.ones((length, length), dtype="bool"))[None, None])
        else:
            scores = ops.softmax(logits, axis=-1)
        weights = ops.mean(scores, axis=1)  # averaging heads keeps one value space
        attended = ops.matmul(weights, self.value(inputs))
        return [self.out(self.drop(attended, training=training)), weights]

    def compute_output_shape(self, input_shape):
        return [tuple(input_shape), (input_shape[0], input_shape[1], input_shape[1])]

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "dropout": self.dropout, "causal": self.causal}


@keras.saving.register_keras_serializable(package="ml")
class GateAddNorm(keras.layers.Layer):
    """``LayerNorm(skip + GLU(dropout(x)))`` for inputs ``[x, skip]``; the GLU projects ``x`` to the skip's width.

    Example:
        >>> import numpy as np
        >>> tuple(GateAddNorm()([np.zeros((2, 5, 3), "float32"), np.zeros((2, 5, 4), "float32")]).shape)
        (2, 5, 4)
    """

    EXAMPLE = {"init_kwargs": {"dropout": 0.1}, "input_shape": [(2, 5, 3), (2, 5, 4)]}

    def __init__(self, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.dropout = float(dropout)

    def build(self, input_shape):
        x_shape, skip_shape = (tuple(s) for s in input_shape)
        self.gate = _glu(int(skip_shape[-1]), "gate")
        self.gate.build(x_shape)
        self.norm = keras.layers.LayerNormalization(name="norm")
        self.norm.build(skip_shape)
        self.drop = keras.layers.Dropout(self.dropout)

    def call(self, inputs, training=False):
        x, skip = inputs
        return self.norm(skip + _apply_glu(self.gate, self.drop(x, training=training)))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[1])

    def get_config(self):
        return {**super().get_config(), "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="ml")
class TimeSlice(keras.layers.Layer):
    """``x[:, start:stop]`` (Python slice rules, negative indices allowed), e.g. the known inputs' future part.

    Example:
        >>> import numpy as np
        >>> tuple(TimeSlice(-1, None)(np.zeros((2, 5, 3), "float32")).shape)
        (2, 1, 3)
    """

    EXAMPLE = {"init_kwargs": {"start": 0, "stop": -1}, "input_shape": (2, 5, 3)}

    def __init__(self, start: int | None = None, stop: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.start, self.stop = start, stop

    def call(self, inputs):
        return inputs[:, self.start:self.stop]

    def compute_output_shape(self, input_shape):
        length = input_shape[1]
        length = None if length is None else len(range(length)[self.start:self.stop])
        return (input_shape[0], length, *input_shape[2:])

    def get_config(self):
        return {**super().get_config(), "start": self.start, "stop": self.stop}
