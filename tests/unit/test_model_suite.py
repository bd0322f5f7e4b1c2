"""One suite over every registered Keras model and variant (timm's test_models.py idea).

A model added to the registry gets all of these checks without writing a test: shapes
and dtypes per task, finite outputs, learning, gradient flow, config round trip,
``.keras`` round trip in safe mode and ONNX parity. Shapes are small to keep the suite fast.
"""

from __future__ import annotations

import numpy as np
import pytest

from ml.training_pipeline.models import MODEL_VARIANTS, create_model, list_models
from ml.training_pipeline.registry import KERAS, get_spec

KERAS_MODELS = [name for name in list_models() if get_spec(name).kind == KERAS]
CASES = [(name, variant) for name in KERAS_MODELS for variant in MODEL_VARIANTS]
SHAPE = (24, 5)
SEED = 3


def _learnable_batch(shape, task, n=64, seed=0):
    """Targets that depend on the last steps, which every architecture can see."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *shape)).astype("float32")
    signal = x[:, -3:, 0].mean(axis=1)
    if task == "regression":
        return x, signal[:, None].astype("float32")
    if task == "binary":
        return x, (signal > 0).astype("float32")[:, None]
    return x, np.digitize(signal, [-0.3, 0.3]).astype("int32")


@pytest.fixture(scope="module")
def built(request):
    """Cache of (name, variant) -> regression model with deterministic weights."""
    import keras

    cache = {}

    def get(name, variant):
        if (name, variant) not in cache:
            keras.utils.set_random_seed(1)
            cache[(name, variant)] = create_model(name, input_shape=SHAPE, variant=variant)
        return cache[(name, variant)]

    return get


@pytest.mark.parametrize("name", KERAS_MODELS)
@pytest.mark.parametrize(
    "task,kwargs,width,dtype",
    [("regression", {}, 1, "float32"), ("regression", {"output_dim": 3}, 3, "float32"),
     ("binary", {}, 1, "float32"), ("multiclass", {"num_classes": 4}, 4, "float32")],
)
@pytest.mark.parametrize("shape", [(16, 3), (33, 7)])
def test_output_shape_dtype_and_range_per_task(name, task, kwargs, width, dtype, shape):
    model = create_model(name, input_shape=shape, variant="lightweight", task=task, **kwargs)
    x = np.random.default_rng(1).standard_normal((5, *shape)).astype("float32")
    y = np.asarray(model(x, training=False))
    assert y.shape == (5, width)
    assert y.dtype == dtype
    assert np.all(np.isfinite(y))
    if task == "binary":
        assert np.all((y >= 0) & (y <= 1))
    if task == "multiclass":
        np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("name,variant", CASES)
def test_builds_with_variant_params_and_finite_output(built, name, variant):
    model = built(name, variant)
    assert model.name == name
    assert model.inputs[0].name == "inputs" or model.input_names == ["inputs"]
    x = np.random.default_rng(2).standard_normal((4, *SHAPE)).astype("float32")
    assert np.all(np.isfinite(np.asarray(model(x, training=False))))
    # the compiled learning rate is the variant's
    expected_lr = get_spec(name).variants[variant]["learning_rate"]
    assert float(model.optimizer.learning_rate.numpy()) == pytest.approx(expected_lr)


@pytest.mark.parametrize("name,variant", CASES)
def test_gradients_reach_every_trainable_weight(built, name, variant):
    import tensorflow as tf

    model = built(name, variant)
    x, y = _learnable_batch(SHAPE, "regression", n=16)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
    grads = tape.gradient(loss, model.trainable_variables)
    missing = [v.path for v, g in zip(model.trainable_variables, grads, strict=True) if g is None or not np.any(np.asarray(g))]
    assert not missing, f"no gradient reaches {missing}"


@pytest.mark.parametrize("name", KERAS_MODELS)
@pytest.mark.parametrize("task,kwargs", [("regression", {}), ("binary", {}), ("multiclass", {"num_classes": 3})])
def test_one_training_step_lowers_the_loss(name, task, kwargs):
    """One small gradient-descent step on a learnable batch lowers the loss on that batch.

    Plain SGD with a small rate makes this a first-order certainty when the gradients are
    right (Adam's sign-like first step can overshoot); dropout is off so the step is taken
    and judged on the same function.
    """
    import keras

    keras.utils.set_random_seed(SEED)
    model = create_model(name, input_shape=SHAPE, variant="lightweight", task=task, dropout=0.0, **kwargs)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1e-2), loss=model.loss)
    x, y = _learnable_batch(SHAPE, task)
    before = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    model.train_on_batch(x, y)
    after = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    assert after < before


@pytest.mark.parametrize("name,variant", CASES)
def test_get_config_round_trip_rebuilds_the_same_function(built, name, variant):
    import keras

    model = built(name, variant)
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    assert clone.get_config() == model.get_config()
    x = np.random.default_rng(4).standard_normal((3, *SHAPE)).astype("float32")
    np.testing.assert_array_equal(np.asarray(clone(x, training=False)), np.asarray(model(x, training=False)))


@pytest.mark.parametrize("name,variant", CASES)
def test_keras_file_round_trip_in_safe_mode(built, name, variant, tmp_path):
    import keras

    model = built(name, variant)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    x = np.random.default_rng(5).standard_normal((3, *SHAPE)).astype("float32")
    np.testing.assert_array_equal(np.asarray(loaded(x, training=False)), np.asarray(model(x, training=False)))
    assert loaded.loss == model.loss


@pytest.mark.parametrize("name,variant", CASES)
def test_onnx_export_matches_keras(built, name, variant, tmp_path):
    from ml.training_pipeline.export import DEFAULT_TOLERANCE, OnnxPredictor, export_onnx

    model = built(name, variant)
    x = np.random.default_rng(6).standard_normal((8, *SHAPE)).astype("float32")
    report = export_onnx(model, tmp_path / "model.onnx", sample=x)
    assert report.max_abs_diff <= DEFAULT_TOLERANCE
    assert report.input_name == "inputs" and report.input_shape == (None, *SHAPE)
    predictor = OnnxPredictor(report.path)
    # dynamic batch: a batch size other than the sample's runs too
    np.testing.assert_allclose(predictor.predict(x[:3]), np.asarray(model(x[:3], training=False)), atol=DEFAULT_TOLERANCE)
