"""One suite over every registered model and every custom layer, through ``ml.testing``.

No model or layer is named here: a model added to the registry, or a layer registered under
package "ml", gets every check (shapes, finite outputs, gradients, one optimizer step,
config and ``.keras`` round trips, ONNX parity with integer inputs kept integer) for free.
Default runs use the ``tiny`` presets; every other preset runs under ``-m slow``.
"""

from __future__ import annotations

import pytest

from ml.testing import custom_layers, run_layer_test, run_model_test
from ml.training_pipeline.models import get_spec, list_models
from ml.training_pipeline.models.kinds import get_kind
from ml.training_pipeline.models.tasks import resolve_task

TASK_CASES = [("regression", {}), ("regression", {"output_dim": 2}), ("binary", {}),
              ("multiclass", {"num_classes": 3}), ("quantile", {"quantiles": (0.1, 0.5, 0.9)}), ("positive", {})]


def _supported(name, task, kwargs):
    return get_kind(get_spec(name).kind).supports_task(resolve_task(task, **kwargs))


# A task's head sits on whatever features the body gives, so the heads without layers of their own (two outputs,
# softmax, positive) are checked on one reference model per kind by default and on every model under -m slow;
# the plain regression head and the heads with their own layers or outputs (binary, quantile) run on every model.
EVERY_MODEL_TASKS = {("regression", ()), ("binary", ()), ("quantile", ("quantiles",))}
REFERENCE_MODELS = {"keras": "lstm", "estimator": "lightgbm"}


def _marks(name, task, kwargs):
    every = (task, tuple(k for k in kwargs if k == "quantiles")) in EVERY_MODEL_TASKS
    return () if every or REFERENCE_MODELS.get(get_spec(name).kind) == name else (pytest.mark.slow,)


MODEL_TASKS = [pytest.param(name, task, kwargs, marks=_marks(name, task, kwargs),
                            id=f"{name}-{task}{'-' + str(next(iter(kwargs.values()))) if kwargs else ''}")
               for name in list_models() for task, kwargs in TASK_CASES if _supported(name, task, kwargs)]


def _second_shape(name):
    """An input shape other than the harness's default (12, 3): nothing may be baked to one length or width."""
    return (7, 2) if get_spec(name).shape_ndim[1] >= 2 else (7,)


# The binary case of every model runs on the second input shape and seed, so one build checks both (a separate
# second-shape build of every model cost ~45 s of the suite); a model without a binary head takes it on regression.
def _second_shape_case(name):
    return ("binary", {}) if _supported(name, "binary", {}) else ("regression", {})


# ONNX parity composes: a body that exports on the plain regression head exports under any head whose own layers
# export, and each head is exported on its kind's reference model. So every body is exported once (regression)
# and each head once per kind by default; every model with every head under -m slow (test_every_head_in_onnx).
ONNX_EVERY_MODEL_TASK = "regression"


def _checks_onnx(name, task, kwargs):
    if kwargs.get("output_dim") or task not in ("regression", "quantile", "binary"):
        return False
    return None if task == ONNX_EVERY_MODEL_TASK or REFERENCE_MODELS.get(get_spec(name).kind) == name else False


def _compiled_step(name, task, kwargs):
    """The SGD step through Keras' traced train function for every body once (plain regression head) and for
    every head on the reference models; the other cases take the same step eagerly (no graph to trace)."""
    return (task, kwargs) == (ONNX_EVERY_MODEL_TASK, {}) or REFERENCE_MODELS.get(get_spec(name).kind) == name


@pytest.mark.parametrize("name,task,kwargs", MODEL_TASKS)
def test_every_model_and_task_on_the_tiny_preset(name, task, kwargs):
    check_onnx = _checks_onnx(name, task, kwargs)
    second = (task, kwargs) == _second_shape_case(name)
    report = run_model_test(name, preset="tiny", task=task, check_onnx=check_onnx,
                            compiled_step=_compiled_step(name, task, kwargs),
                            input_shape=_second_shape(name) if second else None, seed=1 if second else 0, **kwargs)
    assert report["params"] > 0
    if second:
        primary = report["inputs"][0]["shape"]
        assert primary[: len(_second_shape(name))] == list(_second_shape(name)) or primary[0] is None, primary


@pytest.mark.slow
@pytest.mark.parametrize("name,task,kwargs", [case for case in MODEL_TASKS if _checks_onnx(*case.values) is False
                                              and case.values[1] in ("quantile", "binary")])
def test_every_head_in_onnx(name, task, kwargs):
    """Every model with every head exported and trained through the compiled step (the default cases share these)."""
    report = run_model_test(name, preset="tiny", task=task, check_onnx=True, compiled_step=True, **kwargs)
    assert report["onnx_max_abs_diff"] < 1e-4


@pytest.mark.parametrize("layer_name", sorted(custom_layers()))
def test_every_custom_layer(layer_name):
    run_layer_test(custom_layers()[layer_name])


@pytest.mark.slow
@pytest.mark.parametrize("name,preset", [(n, p) for n in list_models() for p in get_spec(n).presets if p != "tiny"])
def test_every_preset(name, preset):
    run_model_test(name, preset=preset, input_shape=(24, 5) if get_spec(name).shape_ndim[1] >= 2 else (24,))


@pytest.mark.parametrize("name", [n for n in list_models() if get_spec(n).default_params is not None])
def test_stated_parameter_counts_are_the_real_ones(name):
    from ml.training_pipeline.models import AVAILABLE_MODELS, create_model

    assert create_model(name, (60, 15)).count_params() == get_spec(name).default_params
    assert f"{get_spec(name).default_params / 1000:.0f}K params" in AVAILABLE_MODELS[name]
