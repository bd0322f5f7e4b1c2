"""The factory's contract: names, variants, kwargs, tasks, callbacks and clear errors."""

from __future__ import annotations

import pytest

from ml.training_pipeline import models
from ml.training_pipeline.models import (
    AVAILABLE_MODELS,
    MODEL_VARIANTS,
    RECOMMENDED_HYPERPARAMETERS,
    create_model,
    get_model_callbacks,
    list_models,
)
from ml.training_pipeline.models.registry import KERAS, get_spec, register_model

FAMILIES = ["attention_lstm", "cnn_lstm", "lightgbm", "lstm", "tcn", "tcn_attention"]
"""The user's guide's families: they keep the guide's lightweight/default/deep sizes."""


def test_registry_lists_every_family_with_a_description():
    assert set(FAMILIES) <= set(list_models())
    assert set(AVAILABLE_MODELS) == set(list_models())
    assert all(isinstance(d, str) and d for d in AVAILABLE_MODELS.values())
    assert MODEL_VARIANTS == ("lightweight", "default", "deep")
    for name in FAMILIES:
        assert set(RECOMMENDED_HYPERPARAMETERS[get_spec(name).family]) == {*MODEL_VARIANTS, "tiny"}
    for name in list_models():  # every model: default and tiny, others free
        assert {"default", "tiny"} <= set(get_spec(name).presets)


@pytest.mark.parametrize("name", [n for n in list_models() if get_spec(n).kind == KERAS])
def test_variant_keys_are_exactly_the_builder_arguments(name):
    import inspect

    spec = get_spec(name)
    builder_args = set(inspect.signature(spec.builder).parameters) - {"inputs"}
    for params in spec.variants.values():
        assert set(params) - {"learning_rate", "weight_decay"} == builder_args  # optimizer settings


def test_seed_guide_sizes():
    hp = RECOMMENDED_HYPERPARAMETERS
    assert hp["attention_lstm"]["default"]["lstm_units"] == (128, 64)
    assert hp["attention_lstm"]["lightweight"]["lstm_units"] == (64, 32)
    assert hp["attention_lstm"]["deep"]["lstm_units"] == (256, 128, 64)
    assert (hp["tcn"]["default"]["filters"], hp["tcn"]["default"]["num_levels"]) == (64, 5)
    assert (hp["tcn"]["lightweight"]["filters"], hp["tcn"]["lightweight"]["num_levels"]) == (32, 4)
    assert (hp["tcn"]["deep"]["filters"], hp["tcn"]["deep"]["num_levels"]) == (128, 6)


def test_built_model_uses_the_variant_sizes():
    model = create_model("attention_lstm", input_shape=(20, 4), variant="deep")
    assert [layer.units for layer in model.layers if type(layer).__name__ == "LSTM"] == [256, 128, 64]
    tcn = create_model("tcn", input_shape=(20, 4), variant="lightweight")
    convs = [layer for layer in tcn.layers if type(layer).__name__ == "Conv1D" and layer.kernel_size == (3,)]
    assert len(convs) == 4 * 2 and {c.filters for c in convs} == {32}
    assert sorted({c.dilation_rate[0] for c in convs}) == [1, 2, 4, 8]


@pytest.mark.parametrize("alias,canonical", [("TCN", "tcn"), ("adaptive", "cnn_lstm"), ("Attention-LSTM", "attention_lstm"),
                                             ("lgbm", "lightgbm"), (" tcn_attention ", "tcn_attention")])
def test_names_are_case_insensitive_and_aliases_resolve(alias, canonical):
    assert get_spec(alias).name == canonical


def test_user_kwargs_override_variant_values():
    model = create_model("lstm", input_shape=(12, 3), variant="deep", units=(8,), learning_rate=0.01)
    assert [layer.units for layer in model.layers if type(layer).__name__ == "LSTM"] == [8]
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(0.01)
    lgb = create_model("lightgbm", input_shape=(10,), variant="lightweight", num_leaves=7)
    assert lgb.get_params()["num_leaves"] == 7 and lgb.get_params()["n_estimators"] == 200


def test_unknown_model_type_suggests_the_closest_name():
    with pytest.raises(ValueError, match=r"Unknown model_type 'tnc'\. Did you mean 'tcn'\? Accepted: .*attention_lstm"):
        create_model("tnc", input_shape=(10, 3))


def test_unknown_variant_lists_the_variants():
    with pytest.raises(ValueError, match=r"Unknown variant 'huge'.*Accepted: deep, default, lightweight, tiny\. Received: variant='huge'"):
        create_model("tcn", input_shape=(10, 3), variant="huge")


def test_unknown_keyword_argument_is_not_ignored():
    with pytest.raises(ValueError, match=r"Unknown keyword argument 'filter' for model_type='tcn'\. Did you mean 'filters'\?"):
        create_model("tcn", input_shape=(10, 3), filter=16)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"input_shape": (10,)}, r"input_shape must be \(timesteps, features\).*Received: input_shape=\(10,\)"),
        ({"input_shape": (10, 0)}, r"Received: input_shape=\(10, 0\)"),
        ({"input_shape": "60x15"}, r"Received: input_shape='60x15'"),
        ({"input_shape": (10, 3), "task": "ranking"}, r"Unknown task 'ranking'"),
        ({"input_shape": (10, 3), "task": "multiclass"}, r"needs num_classes.*Received: num_classes=None"),
        ({"input_shape": (10, 3), "task": "binary", "num_classes": 3}, r"num_classes applies to task='multiclass' only"),
        ({"input_shape": (10, 3), "task": "binary", "output_dim": 2}, r"output_dim applies to task='regression' only"),
        ({"input_shape": (10, 3), "dropout": 1.5}, r"dropout must be a float in \[0, 1\)\. Received: dropout=1.5"),
        ({"input_shape": (10, 3), "filters": 0}, r"filters must be an int >= 1\. Received: filters=0"),
    ],
)
def test_bad_arguments_raise_one_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        create_model("tcn", **kwargs)


def test_bad_units_list():
    with pytest.raises(ValueError, match=r"lstm_units must be a positive int or a non-empty list.*Received: lstm_units=\(\)"):
        create_model("attention_lstm", input_shape=(10, 3), lstm_units=())


def test_register_model_rejects_missing_variants_and_duplicates():
    with pytest.raises(ValueError, match=r"must define the presets default, tiny \(others are free\)\. Received: default"):
        register_model("toy", description="x", variants={"default": {}})
    with pytest.raises(ValueError, match="already registered: 'tcn'"):
        register_model("tcn", description="x", variants={"default": {}, "tiny": {}})(lambda inputs: inputs)


def test_a_registered_model_is_buildable_through_the_factory():
    """Adding a family needs no factory edit: the decorator is enough."""
    import keras

    from ml.training_pipeline.models import registry

    @register_model("toy_mlp", description="Flatten and Dense.",
                    variants={v: {"units": 4, "learning_rate": 1e-3} for v in ("default", "tiny", "wide")})
    def build_toy(inputs, *, units):
        return keras.layers.Dense(units)(keras.layers.Flatten()(inputs))

    try:
        model = create_model("Toy_MLP", input_shape=(5, 2), units=3)
        assert model.output_shape == (None, 1) and model.name == "toy_mlp"
    finally:
        registry.unregister_model("toy_mlp")


def test_callbacks_are_tuned_per_family(tmp_path):
    import keras

    tcn = get_model_callbacks("tcn", patience=10)
    lstm = get_model_callbacks("attention_lstm", patience=12, checkpoint_path=str(tmp_path / "best.keras"))
    early, reduce = tcn
    assert isinstance(early, keras.callbacks.EarlyStopping) and early.restore_best_weights and early.patience == 10
    assert isinstance(reduce, keras.callbacks.ReduceLROnPlateau) and reduce.patience == 5
    assert lstm[1].patience == 4
    assert isinstance(lstm[2], keras.callbacks.ModelCheckpoint)
    accuracy = get_model_callbacks("tcn", monitor="val_accuracy")
    assert accuracy[0].monitor == "val_accuracy" and accuracy[0].mode == "max"
    assert len(get_model_callbacks("lightgbm", patience=20)) == 2


@pytest.mark.parametrize(
    "kwargs,message",
    [({"patience": 0}, r"patience must be an int >= 1\. Received: patience=0"),
     ({"checkpoint_path": "best.h5"}, r"must end with '\.keras'\. Received: checkpoint_path='best.h5'"),
     ({"monitor": ""}, r"monitor must be a metric name")],
)
def test_callback_arguments_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        get_model_callbacks("tcn", **kwargs)


def test_only_keras_models_are_compiled_models():
    import keras

    for name in list_models():
        model = create_model(name, input_shape=(8, 2), variant="tiny")
        assert isinstance(model, keras.Model) == (get_spec(name).kind == KERAS)
        if isinstance(model, keras.Model):
            assert model.compiled


def test_models_module_exports_its_public_names():
    for name in models.__all__:
        assert hasattr(models, name)


def test_predict_on_one_window_skips_the_set_up_and_gives_the_same_numbers(tmp_path):
    """The factory's models predict a small batch through the compiled function directly (``FastPredictModel``):
    the same values as Keras' own predict, for one window, a full batch and more rows than a batch."""
    import keras
    import numpy as np

    from ml.training_pipeline.models.kinds.fast_predict import FastPredictModel

    model = create_model("tcn", input_shape=(12, 3), variant="tiny")
    assert isinstance(model, FastPredictModel)
    x = np.random.default_rng(0).standard_normal((70, 12, 3)).astype("float32")
    for rows in (x[:1], x[:32], x):
        np.testing.assert_allclose(model.predict(rows, verbose=0), keras.Model.predict(model, rows, verbose=0),
                                   rtol=1e-6, atol=1e-6)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded, FastPredictModel)
    np.testing.assert_allclose(loaded.predict(x[:1], verbose=0), model.predict(x[:1], verbose=0), rtol=1e-6)
