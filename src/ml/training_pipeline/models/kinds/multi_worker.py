"""What Keras 3.15's TensorFlow trainer needs to train under ``tf.distribute.MultiWorkerMirroredStrategy``.

Keras 3 ships two failures on the collective multi-worker strategy (keras-team/keras#20585, open):

1. before the first epoch it builds the model from one batch by *reducing* the distributed batch with
   ``strategy.reduce("MEAN", batch, axis=None)``, which the collective strategy cannot convert; one replica's
   local batch has the same shapes, so the build reads that instead;
2. each step's logs (scalar loss and metrics) are reduced with ``strategy.reduce("MEAN", value, axis=0)``, which
   fails on a scalar; giving each scalar a length-1 axis makes that reduction the mean over the replicas.

Both overrides change nothing outside that strategy. The factory's model class inherits them.
"""

from __future__ import annotations

from ml.training_pipeline.fitting.distribute import is_collective_multi_worker


def _multi_worker(strategy) -> bool:
    return strategy is not None and is_collective_multi_worker(strategy)


class MultiWorkerTrainingFixes:
    """Mixin for a ``keras.Model`` subclass (TensorFlow backend)."""

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is None or not _multi_worker(getattr(self, "_distribute_strategy", None)):
            return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
        import keras
        import tensorflow as tf

        for _, _, batches in iterator:
            data_batch = next(batches)
            break
        local = lambda value: (self.distribute_strategy.experimental_local_results(value)[0]  # noqa: E731
                               if isinstance(value, tf.distribute.DistributedValues) else value)
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=keras.tree.map_structure(local, data_batch))

    def _make_function(self, step_function):
        if not _multi_worker(getattr(self, "_distribute_strategy", None)):
            return super()._make_function(step_function)
        import tensorflow as tf

        def step_with_reducible_logs(data):
            logs = step_function(data)
            return tf.nest.map_structure(lambda v: tf.reshape(v, [1]) if v.shape.rank == 0 else v, logs)

        return super()._make_function(step_with_reducible_logs)
