"""Adapter for Keras 3 models (functional, named inputs)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ml.training_pipeline.common.onnx_passes import (
    LAYER_NORM_OPSET,
    drop_unused_initializers,
    fold_tensordot_reshapes,
    fuse_layer_norms,
)
from ml.training_pipeline.common.tensors import model_argument
from ml.training_pipeline.fitting.distribute import is_collective_multi_worker
from ml.training_pipeline.fitting.precision import copy_weights_back, training_twin
from ml.training_pipeline.fitting.progress import progress_callback, terminal_progbar
from ml.training_pipeline.fitting.resume import resumable_backup
from ml.training_pipeline.fitting.tracing import build_training_state
from ml.training_pipeline.models.kinds.base import QUANTILES, SAMPLING, FitData, FitSettings, LinearOffset, ModelKind
from ml.training_pipeline.models.registry import KERAS, ModelSpec, TensorSpec, get_spec
from ml.training_pipeline.models.tasks import Task

SINGLE_OUTPUT_NAME = "outputs"
"""ONNX name of the output of a single-output model."""

_DEFAULT_CALLBACK_SETTINGS = {"lr_patience_fraction": 1 / 3, "lr_factor": 0.5, "min_lr": 1e-6}
_PREDICT_BATCH = 1024
DEFAULT_COMPILE_SETTINGS = {"steps_per_execution": 16}
"""``model.compile`` arguments of every Keras family unless its spec says otherwise: 16 training steps per
call of the compiled function cut Python and dispatch overhead per step (5-10% faster here at batch 32 and
128; benchmarks/train_speed.py). Callbacks still run at every epoch end."""
DEFAULT_EPOCHS = 80


@contextlib.contextmanager
def _tf2onnx_passes_unguarded():
    """tf2onnx deep-copies the whole graph before each of its optimizer passes, to skip a pass that fails; that
    copying was 40% of a tiny TCN's conversion (0.5 -> 0.3 s) and ~1 s of a TFT's. Its documented switch
    ``TF2ONNX_CATCH_ERRORS`` turns the copies off for this conversion (a user's own setting wins); a failing pass
    then raises, and :meth:`KerasKind.write_onnx` converts again with the guard."""
    if "TF2ONNX_CATCH_ERRORS" in os.environ:
        yield
        return
    os.environ["TF2ONNX_CATCH_ERRORS"] = "FALSE"
    try:
        yield
    finally:
        os.environ.pop("TF2ONNX_CATCH_ERRORS", None)


def _simplify_graph(path: Path) -> None:
    """Keras' layer norms and sequence Dense layers in the exported file as one ONNX node each
    (:mod:`~ml.training_pipeline.common.onnx_passes`); the export's parity check compares the result."""
    import onnx

    graph = onnx.load(str(path))
    if fuse_layer_norms(graph) + fold_tensordot_reshapes(graph):
        drop_unused_initializers(graph)
        onnx.save(graph, str(path))


def monitor_mode(monitor: str) -> str:
    """``"min"`` for a loss or an error the callbacks watch (``val_loss``, ``val_rmse``), else ``"max"`` (``val_f1``).

    Example:
        >>> monitor_mode("val_loss"), monitor_mode("val_f1")
        ('min', 'max')
    """
    return "min" if ("loss" in monitor or "error" in monitor or monitor.endswith(("mae", "mse", "rmse"))) else "max"


class KerasKind(ModelKind):
    """Builds the declared ``keras.Input``s, puts the task head on the builder's features and compiles."""

    name = KERAS
    supports_gradients = True
    supports_curriculum = True
    supports_resume = True
    supports_distribution = True  # the factory's model class carries Keras' multi-worker fixes
    supports_precision = True  # a twin computes in bf16; the model itself stays float32
    model_file = "model.keras"

    def seed(self, seed: int) -> None:
        import keras
        import tensorflow as tf

        keras.utils.set_random_seed(seed)  # Python, NumPy and the backend
        # Identical metrics for the same config and seed, at a small cost in speed.
        tf.config.experimental.enable_op_determinism()
    def uncertainty_method(self, model) -> str | None:
        """``"quantiles"`` for a quantile-loss model, ``"sampling"`` when its spec samples, else ``None``."""
        if getattr(getattr(model, "loss", None), "quantiles", None) is not None:
            return QUANTILES
        try:
            spec = get_spec(getattr(model, "name", ""))
        except ValueError:
            return None
        return SAMPLING if spec.capabilities.samples else None

    def owns(self, model: Any) -> bool:
        return hasattr(model, "export") and hasattr(model, "inputs") and hasattr(model, "get_config")

    supports_offset = True

    def build(self, spec: ModelSpec, declared: tuple[TensorSpec, ...], task: Task, params: dict[str, Any],
              offset: LinearOffset | None = None):
        import keras

        params = dict(params)
        learning_rate = params.pop("learning_rate", 1e-3)
        weight_decay = params.pop("weight_decay", None)  # a family that sets it trains with AdamW
        inputs = {s.name: keras.Input(shape=s.shape, dtype=s.dtype, name=s.name) for s in declared}
        family_inputs = {name: tensor for name, tensor in inputs.items() if offset is None or name != offset.input_name}
        single = len(family_inputs) == 1
        features = spec.builder(next(iter(family_inputs.values())) if single else family_inputs, **params)
        outputs = task.head(features)
        from ml.training_pipeline.models.kinds.fast_predict import (  # imports Keras: only when a model is built or loaded
            FastPredictModel,  # predict() on one window without Keras' set-up
        )

        if offset is not None:
            from ml.training_pipeline.layers import BaselineOffset  # imports Keras: only when a model is built

            outputs = BaselineOffset(offset.weights, offset.bias, name="baseline_offset")(
                [outputs, inputs[offset.input_name]])
        model = FastPredictModel(next(iter(inputs.values())) if len(inputs) == 1 else inputs, outputs, name=spec.name)
        # weighted_metrics: with sample weights the metrics weigh rows like the loss does; without, they equal
        # the plain metrics (and keep their plain names: "mae", "rmse", "accuracy").
        optimizer = (keras.optimizers.Adam(learning_rate=learning_rate, clipnorm=1.0) if weight_decay is None else
                     keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay, clipnorm=1.0))
        settings = {**DEFAULT_COMPILE_SETTINGS, **spec.compile_settings}
        import tensorflow as tf

        if is_collective_multi_worker(tf.distribute.get_strategy()):
            # Keras 3.15's multi-step loop feeds a placeholder the collective strategy cannot (one step per call)
            settings["steps_per_execution"] = 1
        model.compile(optimizer=optimizer, loss=task.loss(), weighted_metrics=list(task.metrics), **settings)
        return model

    supports_ensemble = True

    def combine(self, members):
        """The members (uncompiled copies, named ``<family>_member_<k>``) on shared inputs, averaged by a Keras
        ``Average`` layer: one ``.keras`` file and one ONNX graph whose output is the members' mean."""
        import keras

        from ml.training_pipeline.models.kinds.fast_predict import FastPredictModel  # imports Keras: only here

        first = members[0]
        inputs = {t.name: keras.Input(shape=tuple(t.shape[1:]), dtype=t.dtype, name=t.name) for t in first.inputs}
        argument = next(iter(inputs.values())) if len(inputs) == 1 else inputs
        copies = []
        for index, member in enumerate(members, 1):
            # a copy without the member's optimizer: the ensemble file then holds one optimizer, not N
            copy = keras.models.clone_model(member)
            copy.set_weights(member.get_weights())
            copy.name = f"{first.name}_member_{index}"
            copies.append(copy)
        outputs = keras.layers.Average(name="ensemble_mean")([copy(argument) for copy in copies])
        model = FastPredictModel(argument, outputs, name=first.name)
        model.compile_from_config(first.get_compile_config())
        return model

    def declared_inputs(self, model) -> tuple[TensorSpec, ...]:
        specs = []
        for tensor in model.inputs:
            dtype = str(tensor.dtype)
            dtype = "int32" if "int" in dtype else "bool" if dtype == "bool" else "float32"
            specs.append(TensorSpec(tensor.name, tuple(tensor.shape[1:]), dtype))
        return tuple(specs)

    def callbacks(self, spec: ModelSpec, patience: int, monitor: str, checkpoint_path: str | None) -> list:
        return self._callbacks(spec.callback_settings, patience, monitor, checkpoint_path)

    def _callbacks(self, family_settings, patience: int, monitor: str, checkpoint_path: str | None) -> list:
        import keras

        if checkpoint_path is not None and not str(checkpoint_path).endswith(".keras"):
            raise ValueError(f"checkpoint_path must end with '.keras'. Received: checkpoint_path={checkpoint_path!r}")
        settings = {**_DEFAULT_CALLBACK_SETTINGS, **(family_settings or {})}
        mode = monitor_mode(monitor)
        callbacks = [
            keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=patience, restore_best_weights=True),
            keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode=mode, factor=settings["lr_factor"],
                                              patience=max(1, round(patience * settings["lr_patience_fraction"])),
                                              min_lr=settings["min_lr"]),
        ]
        if checkpoint_path is not None:
            callbacks.append(keras.callbacks.ModelCheckpoint(str(checkpoint_path), monitor=monitor, mode=mode,
                                                             save_best_only=True))
        return callbacks

    def fit(self, model, train: FitData, validation: FitData, settings: FitSettings) -> dict[str, list[float]]:
        from ml.training_pipeline.layers.fused_lstm import fused_layer_classes  # Keras: when a model fits

        swapped = fused_layer_classes(model, settings.batch_size) if settings.fused_recurrence else {}
        trainer = training_twin(model, settings.precision, swapped)  # the model itself: float32, no LSTM to fuse
        try:
            return self._fit(trainer, train, validation, settings)
        finally:  # an interrupted fit leaves the model with the weights trained so far, as Keras' own fit does
            copy_weights_back(trainer, model)

    def _fit(self, model, train: FitData, validation: FitData, settings: FitSettings) -> dict[str, list[float]]:
        # the callbacks that compute a monitored value run before the ones that read it
        stateful = self._callbacks(settings.callback_settings, settings.patience, settings.monitor, None)
        callbacks = [*settings.monitor_callbacks, *stateful]
        extra = list(settings.callbacks or ())
        backup = None
        if settings.resume is not None:
            # last in every list: it restores the early-stopping and schedule counters after they reset them
            backup = resumable_backup(settings.resume, stateful)
        keras_verbose, progress = settings.verbose, None
        if settings.verbose == 2:  # not a terminal: our flushed lines with elapsed time and time left
            total = sum(p.epochs for p in settings.phases) if settings.phases else settings.epochs or DEFAULT_EPOCHS
            progress = progress_callback(total, patience=settings.patience, monitor=settings.monitor,
                                         mode=monitor_mode(settings.monitor))
            extra.append(progress)
            keras_verbose = 0
        elif settings.verbose == 1:  # a terminal: Keras' bar, kept within the epoch's steps
            extra.append(terminal_progbar())
        try:
            build_training_state(model, model_argument(model, train.inputs), train.y)  # one trace of the step, not two
            return self._run_fit(model, train, validation, settings, callbacks, extra, keras_verbose, backup)
        finally:
            if progress is not None:  # Keras ends callbacks only after a fit that ended well: stop the line watch
                progress.on_train_end()

    def _run_fit(self, model, train: FitData, validation: FitData, settings: FitSettings, callbacks: list,
                 extra: list, keras_verbose: int, backup) -> dict[str, list[float]]:
        # pandas comes with these (splits and windows): imported when a model fits, so `list_models()` and
        # `atb --help` stay light
        from ml.training_pipeline.fitting.curriculum import fit_curriculum

        if settings.phases:
            if train.groups is None:
                raise ValueError("Curriculum phases need groups in the training data. Received: groups=None")
            history = fit_curriculum(
                model, model_argument(model, train.inputs), train.y, groups=train.groups, phases=settings.phases,
                sample_weight=train.weight, batch_size=settings.batch_size, seed=settings.seed,
                validation_data=(model_argument(model, validation.inputs), validation.y, validation.weight),
                callbacks=extra, final_callbacks=callbacks, verbose=keras_verbose, backup=backup,
                resume_from=settings.resume.finished_epochs if backup is not None else 0)
            return history if backup is None else backup.merged_history(history)
        grouped = model.steps_per_execution
        if settings.steps_per_epoch is not None:  # Keras runs whole executions: N must be a multiple of their steps
            model.steps_per_execution = max(d for d in range(1, grouped + 1) if settings.steps_per_epoch % d == 0)
        try:
            history = self._fit_epochs(model, train, validation, settings, callbacks, extra, keras_verbose, backup)
        finally:
            model.steps_per_execution = grouped
        history = {k: [float(v) for v in vs] for k, vs in history.history.items()}
        return history if backup is None else backup.merged_history(history)

    @staticmethod
    def _fit_epochs(model, train: FitData, validation: FitData, settings: FitSettings, callbacks: list, extra: list,
                    keras_verbose: int, backup):
        from ml.training_pipeline.common.windows import to_tf_dataset

        def training_data(batch_size: int, shard: tuple[int, int, int] | None = None):
            return to_tf_dataset(model_argument(model, train.inputs), train.y, batch_size, shuffle=True,
                                 seed=settings.seed, sample_weight=train.weight,
                                 repeat=settings.steps_per_epoch is not None, shard=shard)

        strategy = model.distribute_strategy  # the strategy the model was built under (fit runs outside its scope)
        if is_collective_multi_worker(strategy):
            # each worker shuffles the same indices and cuts only its share of every global batch
            data = strategy.distribute_datasets_from_function(lambda context: training_data(
                context.get_per_replica_batch_size(settings.batch_size),
                (context.num_input_pipelines, context.input_pipeline_id, settings.batch_size)))
        else:
            data = training_data(settings.batch_size)
        return model.fit(
            data,
            steps_per_epoch=settings.steps_per_epoch,
            validation_data=to_tf_dataset(model_argument(model, validation.inputs), validation.y, 1024,
                                          shuffle=False, sample_weight=validation.weight),
            epochs=settings.epochs or DEFAULT_EPOCHS,
            callbacks=[*callbacks, *extra, *([backup] if backup is not None else [])],
            verbose=keras_verbose,
            shuffle=False,  # the training dataset shuffles itself, with the configured seed
        )

    def epoch_callback(self, on_epoch_end):
        import keras

        return keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end)

    def budget(self, model, settings: FitSettings) -> str:
        if settings.phases:
            return f"{sum(p.epochs for p in settings.phases)} epochs in {len(settings.phases)} curriculum phases"
        return f"up to {settings.epochs or DEFAULT_EPOCHS} epochs (early stopping after {settings.patience} without improvement)"

    def predict(self, model, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        from ml.training_pipeline.common.windows import cut_per_batch, to_tf_dataset

        rows = len(next(iter(inputs.values())))
        if rows > _PREDICT_BATCH and any(cut_per_batch(a) for a in inputs.values()):
            # windows that view their rows are cut per batch here too: Keras would copy every window into one
            # tensor (a dataset brings its own batches)
            argument = to_tf_dataset(model_argument(model, inputs), np.zeros(rows, np.float32), _PREDICT_BATCH,
                                     shuffle=False)
            batch_size = None
        else:  # a batch or less: Keras reads arrays (windows held as starts in their rows become one)
            argument = model_argument(model, {name: np.asarray(a) for name, a in inputs.items()})
            batch_size = _PREDICT_BATCH
        out = model.predict(argument, batch_size=batch_size, verbose=0)
        out = np.asarray(out)
        return out.reshape(len(out), -1)

    def save(self, model, folder: Path) -> str:
        model.save(Path(folder) / self.model_file)
        return self.model_file

    def load(self, path: Path):
        import keras

        import ml.training_pipeline.layers  # noqa: F401  (registers the custom layers)
        import ml.training_pipeline.models.kinds.fast_predict  # noqa: F401  (registers the factory's model class)
        import ml.training_pipeline.models.losses  # noqa: F401  (registers the custom losses)

        return keras.models.load_model(path, safe_mode=True)

    def write_onnx(self, model, path: Path, sample: Mapping[str, np.ndarray]) -> None:
        first = {name: array[:1] for name, array in sample.items()}
        model(model_argument(model, first), training=False)  # Keras refuses to export a never-called model
        try:
            with _tf2onnx_passes_unguarded():
                model.export(str(path), format="onnx", verbose=False, opset_version=LAYER_NORM_OPSET)
        except Exception:  # noqa: BLE001  (a graph pass failed: convert again with tf2onnx's own guard)
            model.export(str(path), format="onnx", verbose=False, opset_version=LAYER_NORM_OPSET)
        _simplify_graph(path)


    def reference_outputs(self, model, sample: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = model(model_argument(model, sample), training=False)
        if isinstance(out, Mapping):
            return {name: np.asarray(value) for name, value in out.items()}
        return {SINGLE_OUTPUT_NAME: np.asarray(out)}

    def prediction_from_onnx(self, outputs: Mapping[str, np.ndarray], task: Mapping[str, Any]) -> np.ndarray:
        out = np.asarray(outputs[SINGLE_OUTPUT_NAME] if SINGLE_OUTPUT_NAME in outputs else outputs["prediction"])
        return out.reshape(len(out), -1)

    def size(self, model) -> int:
        return int(model.count_params())
