"""Adapter for plug-in models whose own function builds and compiles the Keras model.

The user's guide adds a model as a module ``ml/training_pipeline/models_<name>.py`` with a
``create_<name>(input_shape, **hyperparameters)`` that returns a compiled Keras model. Such a
function owns its head, loss and optimizer, so this kind only calls it; fitting, prediction,
saving and ONNX export are the Keras kind's.

Example:
    >>> from ml.training_pipeline.models.kinds import get_kind
    >>> get_kind("compiled").name
    'compiled'
"""

from __future__ import annotations

from typing import Any

from ml.training_pipeline.models.kinds.base import LinearOffset
from ml.training_pipeline.models.kinds.keras_kind import KerasKind
from ml.training_pipeline.models.registry import COMPILED, ModelSpec, TensorSpec
from ml.training_pipeline.models.tasks import Task


class CompiledKerasKind(KerasKind):
    """Calls ``spec.builder(input_shape, **params)``; the function's model must have one float window input."""

    name = COMPILED
    supports_distribution = False  # the plug-in's own keras.Model lacks the multi-worker fixes of the factory's

    def supports_task(self, task: Task) -> bool:
        # the plug-in chose its own head: only the single-output regression the guide's template builds
        return task.task == "regression" and task.units == 1

    supports_offset = False  # the plug-in compiles its own single-input model

    def build(self, spec: ModelSpec, declared: tuple[TensorSpec, ...], task: Task, params: dict[str, Any],
              offset: LinearOffset | None = None):
        if not self.supports_task(task):
            raise ValueError(f"model_type={spec.name!r} is a plug-in that compiles its own single-output regression "
                             f"model; it cannot learn task={task.task!r} with {task.units} outputs")
        model = spec.builder(tuple(declared[0].shape), **params)
        if not (hasattr(model, "inputs") and hasattr(model, "compile")) or len(model.inputs) != 1:
            raise ValueError(f"create_{spec.name}() must return a compiled single-input Keras model. "
                             f"Received: {type(model).__name__}")
        shape = tuple(model.output.shape)
        if len(shape) == 3 and shape[-1] == 1:
            # a per-step output (the guide's template puts Dense layers on the window): the forecast from the
            # whole window is its last step; the plug-in's own compile settings are kept
            from ml.training_pipeline.layers import LastTimestep  # imports Keras: only when a model is built or loaded
            from ml.training_pipeline.models.kinds.fast_predict import (
                FastPredictModel,  # imports Keras: only when a model is built or loaded
            )

            compiled = model.get_compile_config()
            model = FastPredictModel(model.inputs, LastTimestep(name="last_step_forecast")(model.output),
                                     name=spec.name)
            model.compile_from_config(compiled)
        elif len(shape) != 2 or shape[-1] != 1:
            raise ValueError(f"create_{spec.name}() must return a model with one output per window, shape "
                             f"(batch, 1) or per step (batch, steps, 1). Received: output shape {shape}")
        return model
