"""Keras-native Bayesian layers: Gaussian weight posteriors, reparameterised, KL through ``add_loss``.

TensorFlow Probability's layers need ``tf_keras`` and do not work with Keras 3, so these are
written with ``keras.ops``. Each weight has a posterior ``N(mu, softplus(rho)^2)`` and a prior
``N(prior_mu, prior_sigma^2)``. With ``training=True`` (fitting, or ``predict_with_uncertainty``)
a fresh weight sample is drawn per call and ``kl_weight * KL(q || p)`` is added as a model loss;
otherwise the posterior mean is used, so inference and the ONNX export are deterministic (the
sampling code sits under ``if training:`` and never enters the inference graph).
"""

from __future__ import annotations

import math

import keras
from keras import ops

from ml.training_pipeline.layers.heads import head_dim, split_heads

# softplus(-6.9) ~ 1e-3: posteriors start almost deterministic, so early training behaves like a
# plain network and the KL term then widens the weights it does not need.
_RHO_INIT = -6.9


def gaussian_kl(mu, sigma, prior_mu: float, prior_sigma: float):
    """``KL(N(mu, sigma^2) || N(prior_mu, prior_sigma^2))`` summed over all entries."""
    return ops.sum(math.log(prior_sigma) - ops.log(sigma)
                   + (ops.square(sigma) + ops.square(mu - prior_mu)) / (2.0 * prior_sigma**2) - 0.5)


class _BayesianWeights:
    """Mixin: posterior weights (mean and rho) with prior settings and a KL term."""

    def _init_prior(self, prior_mu: float, prior_sigma: float, kl_weight: float, seed: int | None):
        if not prior_sigma > 0:
            raise ValueError(f"prior_sigma must be > 0. Received: prior_sigma={prior_sigma!r}")
        if not kl_weight >= 0:
            raise ValueError(f"kl_weight must be >= 0. Received: kl_weight={kl_weight!r}")
        self.prior_mu, self.prior_sigma, self.kl_weight = float(prior_mu), float(prior_sigma), float(kl_weight)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _posterior(self, name: str, shape, initializer):
        mu = self.add_weight(name=f"{name}_mu", shape=shape, initializer=initializer)
        rho = self.add_weight(name=f"{name}_rho", shape=shape, initializer=keras.initializers.Constant(_RHO_INIT))
        return mu, rho

    def _sample(self, mu, rho, training: bool):
        if not training:
            return mu
        sigma = ops.softplus(rho)
        if self.kl_weight:
            self.add_loss(self.kl_weight * gaussian_kl(mu, sigma, self.prior_mu, self.prior_sigma))
        return mu + sigma * keras.random.normal(ops.shape(mu), seed=self.seed_generator)

    def _prior_config(self):
        return {"prior_mu": self.prior_mu, "prior_sigma": self.prior_sigma, "kl_weight": self.kl_weight,
                "seed": self.seed}


@keras.saving.register_keras_serializable(package="ml")
class BayesianDense(_BayesianWeights, keras.layers.Layer):
    """A Dense layer with a Gaussian posterior on its kernel and bias (reparameterisation trick).

    Args:
        units: output width.
        activation: a Keras activation name.
        prior_mu, prior_sigma: the Gaussian prior of every weight.
        kl_weight: factor of the KL term added as a loss (1e-4 by default: a KL weight of 1/N, or a
            prior_sigma of 0.1, blocked learning in the sizing study behind this model).
        seed: seed of the weight noise.

    Example:
        >>> import numpy as np
        >>> layer = BayesianDense(3)
        >>> x = np.ones((2, 4), "float32")
        >>> bool(np.allclose(layer(x), layer(x)))  # posterior mean outside training
        True
    """

    EXAMPLE = {"init_kwargs": {"units": 3, "activation": "tanh"}, "input_shape": (2, 5, 4)}

    def __init__(self, units: int, activation=None, prior_mu: float = 0.0, prior_sigma: float = 1.0,
                 kl_weight: float = 1e-4, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        self.activation = keras.activations.get(activation)
        self._init_prior(prior_mu, prior_sigma, kl_weight, seed)

    def build(self, input_shape):
        self.kernel_mu, self.kernel_rho = self._posterior("kernel", (int(input_shape[-1]), self.units),
                                                          keras.initializers.GlorotUniform(self.seed))
        self.bias_mu, self.bias_rho = self._posterior("bias", (self.units,), "zeros")

    def call(self, inputs, training=False):
        kernel = self._sample(self.kernel_mu, self.kernel_rho, training)
        bias = self._sample(self.bias_mu, self.bias_rho, training)
        return self.activation(ops.matmul(inputs, kernel) + bias)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "activation": keras.activations.serialize(self.activation), **self._prior_config()}


@keras.saving.register_keras_serializable(package="ml")
class BayesianSelfAttention(keras.layers.Layer):
    """Multi-head self-attention whose query, key, value and output projections are :class:`BayesianDense`.

    Called as ``layer(x)`` or ``layer(x, padding_mask=mask)`` with a ``(batch, time)`` boolean
    mask of real steps; returns ``[output, weights]``: the ``(batch, time, d_model)`` output and
    the ``(batch, heads, time, time)`` attention weights (for plots).

    Args:
        num_heads: heads; ``d_model`` (the input width) must be divisible by it.
        prior_mu, prior_sigma, kl_weight, seed: as in :class:`BayesianDense`.

    Example:
        >>> import numpy as np
        >>> tuple(BayesianSelfAttention(2)(np.zeros((2, 5, 4), "float32"))[0].shape)
        (2, 5, 4)
    """

    EXAMPLE = {"init_kwargs": {"num_heads": 2}, "input_shape": (2, 5, 4)}
    EXPLAINS = "attention"

    def __init__(self, num_heads: int, prior_mu: float = 0.0, prior_sigma: float = 1.0, kl_weight: float = 1e-4,
                 seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.prior = {"prior_mu": float(prior_mu), "prior_sigma": float(prior_sigma), "kl_weight": float(kl_weight),
                      "seed": seed}

    def build(self, input_shape):
        width = int(input_shape[-1])
        self.head_dim = head_dim(width, self.num_heads)
        self.projections = [BayesianDense(width, name=name, **self.prior) for name in ("query", "key", "value", "output")]
        for projection in self.projections:
            projection.build(input_shape)

    def _split(self, x):
        return split_heads(x, self.num_heads, self.head_dim)

    def _scores(self, x, padding_mask, training):
        query, key, value, _ = self.projections
        q, k = self._split(query(x, training=training)), self._split(key(x, training=training))
        logits = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) / math.sqrt(self.head_dim)
        if padding_mask is not None:
            logits = ops.where(ops.cast(padding_mask, "bool")[:, None, None, :], logits, -1e9)
        return ops.softmax(logits, axis=-1), value

    def call(self, inputs, padding_mask=None, training=False):
        scores, value = self._scores(inputs, padding_mask, training)
        heads = ops.matmul(scores, self._split(value(inputs, training=training)))
        batch, length = ops.shape(inputs)[0], ops.shape(inputs)[1]
        merged = ops.reshape(ops.transpose(heads, (0, 2, 1, 3)), (batch, length, self.num_heads * self.head_dim))
        return [self.projections[3](merged, training=training), scores]

    def compute_output_shape(self, input_shape):
        return [tuple(input_shape), (input_shape[0], self.num_heads, input_shape[1], input_shape[1])]

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, **self.prior}
