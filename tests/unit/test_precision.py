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
