"""Training precision: how ``auto`` resolves, and the bf16 twin that trains while the stored model stays float32.
(Its speed is measured in benchmarks/train_speed.py; its accuracy in benchmarks/batch_defaults.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from ml.training_pipeline.fitting.precision import (
    check_precision,
    copy_weights_back,
    native_bf16,
    resolve_precision,
    training_twin,
)


def test_a_bad_precision_is_refused_with_what_is_accepted():
    with pytest.raises(ValueError, match=r"^precision must be one of auto, float32, mixed_bfloat16\. "
                                         r"Received: precision='float16'$"):
        check_precision("float16")
    from ml.training_pipeline.config import TrainingConfig

    with pytest.raises(ValueError, match="Received: precision='bf16'"):
        TrainingConfig(symbol="BTCUSDT", model_type="tcn", precision="bf16")


@pytest.mark.parametrize(
    "requested,family,kind_supports,native,expected",
    [("auto", "mixed_bfloat16", True, True, "mixed_bfloat16"),  # the family's choice where bf16 is native
     ("auto", "mixed_bfloat16", True, False, "float32"),  # emulated bf16 is slower than float32
     ("auto", "float32", True, True, "float32"),  # a family measured faster in float32 (the LSTMs)
     ("auto", "mixed_bfloat16", False, True, "float32"),
     ("float32", "mixed_bfloat16", True, True, "float32"),
     ("mixed_bfloat16", "float32", True, False, "mixed_bfloat16")],  # asked for explicitly: honoured anywhere
)
def test_auto_uses_the_familys_precision_only_on_cpus_with_native_bf16(requested, family, kind_supports, native,
                                                                         expected):
    assert resolve_precision(requested, family, kind_supports, native=native) == expected


def test_a_kind_that_trains_in_float32_only_refuses_bf16():
    with pytest.raises(ValueError, match="precision='mixed_bfloat16' needs a Keras model"):
        resolve_precision("mixed_bfloat16", "float32", kind_supports=False, native=True)


def test_native_bf16_is_read_from_the_cpu_flags():
    assert native_bf16({"avx2", "avx512f", "avx512_bf16"}) and native_bf16({"amx_bf16"})
    assert not native_bf16({"avx2", "fma", "avx512f"})


def test_families_declare_the_precision_they_were_measured_fastest_in():
    from ml.training_pipeline.models import list_models  # noqa: F401  (fills the registry)
    from ml.training_pipeline.models.registry import get_spec, register_model

    assert get_spec("tcn").training_precision == "mixed_bfloat16"
    assert get_spec("lstm").training_precision == "float32"  # bf16 made the LSTMs slower
    with pytest.raises(ValueError, match="training_precision must be one of float32, mixed_bfloat16"):
        register_model("half_model", description="x", variants={"default": {}, "tiny": {}}, training_precision="fp16")


def test_the_twin_computes_in_bf16_and_hands_its_training_back_to_the_float32_model():
    import keras

    from ml.training_pipeline.models import create_model

    keras.utils.set_random_seed(0)
    model = create_model("tcn", (24, 3), variant="tiny")
    twin = training_twin(model, "mixed_bfloat16")
    assert training_twin(model, "float32") is model
    policies = {layer.name: layer.dtype_policy.name for layer in twin.layers}
    head = model.layers[-1].name
    assert policies[head] == "float32"  # the output layer keeps float32, as Keras advises
    assert {p for name, p in policies.items() if name != head and not name.startswith("input")} == {"mixed_bfloat16"}
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), twin.get_weights(), strict=True))

    x = np.random.default_rng(0).standard_normal((64, 24, 3)).astype("float32")
    twin.fit(x, x[:, -1, :1], batch_size=16, epochs=1, verbose=0)
    copy_weights_back(twin, model)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), twin.get_weights(), strict=True))
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    assert keras.mixed_precision.dtype_policy().name == "float32"  # the global policy is put back
    # the optimizer state travels too, so a saved model carries it as after a plain fit
    assert int(model.optimizer.iterations) == int(twin.optimizer.iterations) == 4
    # the float32 model predicts what the trained twin predicts, up to bf16 rounding
    np.testing.assert_allclose(model.predict(x, verbose=0), twin.predict(x, verbose=0), atol=0.05, rtol=0.05)


def test_the_transformer_twin_trains_with_a_padding_mask_and_a_quantile_head():
    """The other bf16 family, with two inputs (the mask stays bool) and a head of two layers (only the output
    layer keeps float32)."""
    import keras

    from ml.training_pipeline.models import create_model

    keras.utils.set_random_seed(0)
    model = create_model("transformer", (12, 3), variant="tiny", task="quantile", padding_mask=True)
    twin = training_twin(model, "mixed_bfloat16")
    rng = np.random.default_rng(0)
    inputs = {"inputs": rng.standard_normal((32, 12, 3)).astype("float32"),
              "padding_mask": np.arange(12)[None, :] < rng.integers(4, 13, size=(32, 1))}
    twin.fit(inputs, rng.standard_normal((32, 1)).astype("float32"), batch_size=16, epochs=1, verbose=0)
    copy_weights_back(twin, model)
    out = model.predict(inputs, verbose=0)
    assert out.dtype == np.float32 and np.isfinite(out).all()
    assert np.all(np.diff(out, axis=-1) >= 0)  # the quantiles stay ordered


# The fused LSTM twin: the same LSTM, its sequence in one TensorFlow kernel while training.

@pytest.mark.parametrize("rows,shards,return_sequences", [(7, 2, True), (1, 2, False), (5, 1, True), (2, 3, False)])
def test_the_fused_lstm_computes_keras_lstm_and_its_gradients(rows, shards, return_sequences):
    """Outputs, states and every gradient (input, initial states, weights) equal Keras' loop, for short batches
    too: a batch of fewer rows than shards, odd rows with an odd input width."""
    import keras
    import tensorflow as tf

    from ml.training_pipeline.layers import FusedLSTM

    rng = np.random.default_rng(rows)
    x, h0, c0 = (tf.constant(rng.standard_normal(shape).astype("float32")) for shape in
                 [(rows, 9, 3), (rows, 5), (rows, 5)])
    stock = keras.layers.LSTM(5, return_sequences=return_sequences, return_state=True)
    fused = FusedLSTM(5, return_sequences=return_sequences, return_state=True, shards=shards)
    stock(x), fused(x)
    stock.set_weights([w + rng.normal(0, 0.3, w.shape).astype("float32") for w in stock.get_weights()])
    fused.set_weights(stock.get_weights())

    def outputs_and_gradients(layer):
        with tf.GradientTape() as tape:
            tape.watch([x, h0, c0])
            out = layer(x, initial_state=[h0, c0], training=True)
            loss = sum(tf.reduce_sum(tf.sin(o)) for o in out)
        return [np.asarray(o) for o in out], tape.gradient(loss, [x, h0, c0, *layer.trainable_weights])

    (stock_out, stock_grads), (fused_out, fused_grads) = outputs_and_gradients(stock), outputs_and_gradients(fused)
    for a, b in zip(stock_out + stock_grads, fused_out + fused_grads, strict=True):
        np.testing.assert_allclose(b, a, atol=2e-5, rtol=1e-4)


def test_the_fused_kernel_is_chosen_where_measured_faster_and_never_for_another_computation(monkeypatch):
    import keras

    from ml.training_pipeline.layers import fused_lstm
    from ml.training_pipeline.layers.fused_lstm import fused_lstm_faster, fused_lstm_layers

    assert fused_lstm_faster(64, 15, 128, cores=2) and fused_lstm_faster(128, 15, 32, cores=2)
    assert not fused_lstm_faster(128, 15, 128, cores=2) and not fused_lstm_faster(64, 64, 128, cores=2)
    assert not fused_lstm_faster(64, 15, 128, cores=1)  # one shard of 128 rows
    inputs = keras.Input((10, 3))
    x = keras.layers.LSTM(8, return_sequences=True, name="plain")(inputs)
    x = keras.layers.LSTM(8, return_sequences=True, recurrent_dropout=0.1, name="recurrent_dropout")(x)
    x = keras.layers.LSTM(8, return_sequences=True, activation="relu", name="relu")(x)
    x = keras.layers.LSTM(8, go_backwards=True, name="backwards")(x)
    model = keras.Model(inputs, keras.layers.Dense(1)(x))
    assert fused_lstm_layers(model, batch_size=32, cores=2) == ["plain"]
    assert fused_lstm_layers(model, batch_size=32, cores=1) == ["plain"]
    monkeypatch.setattr(fused_lstm, "gpu_visible", lambda: True)
    assert fused_lstm_layers(model, batch_size=32, cores=2) == []  # with a GPU, Keras' LSTM runs cuDNN's kernel


@pytest.mark.parametrize("fused_recurrence", [True, False])
def test_lstms_train_fused_and_the_stored_model_keeps_keras_lstm(fused_recurrence, monkeypatch):
    import keras

    from ml.training_pipeline.layers import FusedLSTM
    from ml.training_pipeline.models import create_model
    from ml.training_pipeline.models.kinds import get_kind
    from ml.training_pipeline.models.kinds.base import FitData, FitSettings

    fused_steps = []
    inner_loop = FusedLSTM.inner_loop

    def counting(self, sequences, initial_state, mask, training=False):
        fused_steps.append(bool(training))
        return inner_loop(self, sequences, initial_state, mask, training=training)

    monkeypatch.setattr(FusedLSTM, "inner_loop", counting)
    keras.utils.set_random_seed(0)
    model = create_model("lstm", (12, 3), variant="tiny")
    before = model.get_weights()
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((96, 12, 3)).astype("float32"), rng.standard_normal(96).astype("float32")
    data = FitData({"inputs": x}, y)
    history = get_kind("keras").fit(model, data, FitData({"inputs": x[:32]}, y[:32]),
                                    FitSettings(epochs=2, batch_size=32, fused_recurrence=fused_recurrence))
    assert np.isfinite(history["val_loss"]).all()
    assert any(fused_steps) == fused_recurrence  # traced training steps ran the fused twin's layers
    assert {type(layer) for layer in model.layers if "lstm" in layer.name and "dropout" not in layer.name} \
        == {keras.layers.LSTM}
    assert not all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))


def test_fused_recurrence_must_be_a_bool():
    from ml.training_pipeline.config import TrainingConfig

    with pytest.raises(ValueError, match=r"^fused_recurrence must be True or False\. Received: fused_recurrence='no'$"):
        TrainingConfig(symbol="BTCUSDT", model_type="lstm", fused_recurrence="no")


def test_a_sequential_models_lstm_trains_fused_too():
    import keras

    from ml.training_pipeline.layers.fused_lstm import fused_layer_classes

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 2)), keras.layers.LSTM(4, name="recurrent"), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    twin = training_twin(model, "float32", fused_layer_classes(model, 16, cores=2))
    assert [type(layer).__name__ for layer in twin.layers] == ["FusedLSTM", "Dense"]
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), twin.get_weights(), strict=True))
