"""Prediction tasks: the output head and the loss each one needs."""

from __future__ import annotations

from dataclasses import dataclass

from ml.training_pipeline.validation import unknown_name_error

TASKS: tuple[str, ...] = ("regression", "binary", "multiclass")


@dataclass(frozen=True)
class TaskSpec:
    """How a task shapes the head and the loss.

    Attributes:
        task: one of :data:`TASKS`.
        units: width of the output layer.
        activation: output activation.
        loss: Keras loss name.
        metrics: Keras metric names.
    """

    task: str
    units: int
    activation: str
    loss: str
    metrics: tuple[str, ...]


def resolve_task(task: str, *, output_dim: int | None = None, num_classes: int | None = None) -> TaskSpec:
    """Validates the task arguments and returns the head and loss to use.

    ``output_dim`` is only for regression (default 1); ``num_classes`` only for, and
    required by, multiclass. Passing either to another task raises instead of being ignored.

    Example:
        >>> resolve_task("multiclass", num_classes=3).activation
        'softmax'
    """
    if task not in TASKS:
        raise unknown_name_error("task", task, TASKS)
    if task != "regression" and output_dim is not None:
        raise ValueError(f"output_dim applies to task='regression' only. Received: task={task!r}, output_dim={output_dim!r}")
    if task != "multiclass" and num_classes is not None:
        raise ValueError(f"num_classes applies to task='multiclass' only. Received: task={task!r}, num_classes={num_classes!r}")
    if task == "regression":
        units = 1 if output_dim is None else output_dim
        if not isinstance(units, int) or isinstance(units, bool) or units < 1:
            raise ValueError(f"output_dim must be an int >= 1. Received: output_dim={output_dim!r}")
        return TaskSpec(task, units, "linear", "mse", ("mae",))
    if task == "binary":
        return TaskSpec(task, 1, "sigmoid", "binary_crossentropy", ("accuracy",))
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ValueError(
            f"task='multiclass' needs num_classes, an int >= 2. Received: num_classes={num_classes!r}"
        )
    return TaskSpec(task, num_classes, "softmax", "sparse_categorical_crossentropy", ("accuracy",))
