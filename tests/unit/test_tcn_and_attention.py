"""Receptive field measured on the built TCN, and attention weight extraction."""

from __future__ import annotations

import numpy as np
import pytest

from ml.training_pipeline.models import calculate_receptive_field, create_model, extract_attention_weights


def _influential_steps(model, timesteps, features):
    """Steps whose perturbation changes the last output, over a batch of random inputs."""
    rng = np.random.default_rng(0)
    base = rng.standard_normal((8, timesteps, features)).astype("float32")
    reference = np.asarray(model(base, training=False))
    steps = set()
    for t in range(timesteps):
        perturbed = base.copy()
        perturbed[:, t, :] += 5.0
        if np.any(np.abs(np.asarray(model(perturbed, training=False)) - reference) > 1e-6):
            steps.add(t)
    return steps


@pytest.mark.parametrize("kernel_size,num_levels", [(2, 2), (3, 2), (2, 3), (3, 3)])
def test_receptive_field_matches_the_built_tcn(kernel_size, num_levels):
    import keras

    keras.utils.set_random_seed(0)
    field = calculate_receptive_field(kernel_size=kernel_size, num_layers=num_levels)
    timesteps = field + 6
    model = create_model("tcn", input_shape=(timesteps, 2), filters=8, num_levels=num_levels,
                         kernel_size=kernel_size, dropout=0.0)
    assert _influential_steps(model, timesteps, 2) == set(range(timesteps - field, timesteps))


def test_receptive_field_formula_for_the_variants():
    assert calculate_receptive_field(3, 4) == 61  # lightweight: covers a 60-step window
    assert calculate_receptive_field(3, 5) == 125
    assert calculate_receptive_field(3, 6) == 253
    assert calculate_receptive_field(2, 3, dilation_base=3, convs_per_block=1) == 14
    with pytest.raises(ValueError, match="kernel_size must be an int >= 1. Received: kernel_size=0"):
        calculate_receptive_field(0, 3)


@pytest.mark.parametrize("name, shape", [("attention_lstm", (5, 12, 12)), ("tcn_attention", (5, 12))])
def test_extract_attention_weights_is_a_distribution_over_time(name, shape):
    """Self-attention gives a (step x step) map per sample, attention pooling one weight per step."""
    model = create_model(name, input_shape=(12, 3), variant="lightweight")
    x = np.random.default_rng(1).standard_normal((5, 12, 3)).astype("float32")
    weights = extract_attention_weights(model, x)
    assert weights.shape == shape
    assert np.all(weights >= 0)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-5)
    # different inputs get different weights: they are computed, not constant
    assert not np.allclose(weights[0], weights[1])


def test_extract_attention_weights_is_consistent_with_the_model_output():
    """The pooled vector equals the weights applied to the attention layer's input."""
    import keras

    from ml.training_pipeline.layers import TemporalAttention

    model = create_model("tcn_attention", input_shape=(10, 2), variant="lightweight", dropout=0.0)
    layer = next(layer for layer in model.layers if isinstance(layer, TemporalAttention))
    x = np.random.default_rng(2).standard_normal((4, 10, 2)).astype("float32")
    sequences = np.asarray(keras.Model(model.input, layer.input)(x))
    pooled = np.asarray(keras.Model(model.input, layer.output)(x))
    weights = extract_attention_weights(model, x)
    np.testing.assert_allclose(np.einsum("bt,btf->bf", weights, sequences), pooled, atol=1e-5)


def test_extract_attention_weights_needs_an_attention_model():
    model = create_model("tcn", input_shape=(12, 3), variant="lightweight")
    with pytest.raises(ValueError, match="no attention layer.*Received: model='tcn'"):
        extract_attention_weights(model, np.zeros((1, 12, 3), "float32"))
