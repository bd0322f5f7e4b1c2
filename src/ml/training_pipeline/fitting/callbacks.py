"""Keras callbacks the pipeline adds for some problems; each one also works on its own with any model.

:class:`ValidationF1` computes the F1 score on validation data after every epoch and writes it
into the epoch's logs (``val_f1``), so ``EarlyStopping`` and ``ReduceLROnPlateau`` can watch
it. Put it *before* them in the callback list: Keras runs callbacks in order.

Example:
    >>> f1 = ValidationF1(x_val, y_val)  # doctest: +SKIP
    >>> model.fit(x, y, epochs=50, callbacks=[f1, keras.callbacks.EarlyStopping("val_f1", mode="max",
    ...           patience=10, restore_best_weights=True)])  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from ml.training_pipeline.common.metrics import choose_threshold, classification_metrics


class ValidationF1(keras.callbacks.Callback):
    """Logs the validation F1 of a binary classifier after each epoch.

    Args:
        x: validation inputs (an array, or a dict of named arrays for a multi-input model).
        y: 0/1 labels.
        threshold: the decision threshold; ``None`` (default) scores the best threshold on these rows,
            the one that will be chosen after training, so the monitored figure is the one the stored
            model reaches.
        name: the log key (``val_f1``).
        batch_size: prediction batch size.
    """

    def __init__(self, x: Any, y: Any, threshold: float | None = None, name: str = "val_f1", batch_size: int = 1024):
        super().__init__()
        labels = np.asarray(y).reshape(-1)
        if not set(np.unique(labels)) <= {0, 1}:
            raise ValueError(f"ValidationF1 needs 0/1 labels. Received values {np.unique(labels)[:5].tolist()}")
        if threshold is not None and not 0 < threshold < 1:
            raise ValueError(f"threshold must be in (0, 1) or None. Received: threshold={threshold!r}")
        self.x, self.y, self.threshold, self.name, self.batch_size = x, labels, threshold, name, batch_size

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        x = self.x
        if isinstance(x, Mapping) and len(self.model.inputs) == 1:
            x = next(iter(x.values()))
        probability = np.asarray(self.model.predict(x, batch_size=self.batch_size, verbose=0), np.float64).reshape(-1)
        if self.threshold is None:
            value = choose_threshold(self.y, probability)[1]
        else:
            value = classification_metrics(probability >= self.threshold, self.y)["f1"]
        if logs is not None:
            logs[self.name] = float(value)
