"""Bad input to the Python API: one table, one line per case, each a ``ValueError`` whose message says what was
received and what is accepted (data files have their own table in test_ingestion.py; the store's in test_store.py).

A new case is one line: ``(id, call, fragment of the message)``, the call taking a ``tmp_path``.
"""

from __future__ import annotations

import numpy as np
import pytest

from ml.training_pipeline.common.sample_weights import class_weights, group_weights

ROWS = np.random.default_rng(0).normal(size=(500, 3))


def _diagnose(x, y):
    from ml.training_pipeline.diagnostics import diagnose_labels

    return diagnose_labels(x, y)


def _export(model, path):
    from ml.training_pipeline.export import export_onnx

    return export_onnx(model, path)


def _uncertain(x):
    from ml.training_pipeline.uncertainty import predict_with_uncertainty

    return predict_with_uncertainty(object(), x)  # inputs are checked before the model is looked at


def _unbuilt_sequential(tmp_path):
    import keras

    return _export(keras.Sequential([keras.layers.Dense(1)]), tmp_path / "model.onnx")


def _file_as_folder(tmp_path):
    (tmp_path / "a_file").write_text("x")
    return _export(None, tmp_path / "a_file" / "sub" / "model.onnx")


CASES = [
    ("labels-no-rows", lambda _: _diagnose(np.zeros((0, 3)), np.zeros(0)), "x and y have no rows"),
    ("labels-nan", lambda _: _diagnose(ROWS, np.r_[np.nan, np.zeros(499)]), "y has 1 missing label(s) (NaN/None), first at row 0"),
    ("labels-continuous", lambda _: _diagnose(ROWS, np.arange(500)), "y has 500 distinct values in 500 rows"),
    ("groups-none", lambda _: group_weights(None, "balanced"), "groups must be one label per row (a list or array). Received: groups=None"),
    ("groups-empty", lambda _: group_weights([], "balanced"), "groups has no rows"),
    ("fit-rows-empty", lambda _: group_weights(["a", "b"], "balanced", fit_rows=[]), "fit_rows selects no rows"),
    ("fit-rows-outside", lambda _: group_weights(["a", "b"], {"a": 1.0}, fit_rows=[5]), "must select rows 0..1 (a boolean mask of 2 or row indices). Received: fit_rows=[5]"),
    ("fit-rows-mask-length", lambda _: class_weights([0, 1, 1], 2.0, fit_rows=[True, False]), "Received: a mask of 2"),
    ("export-into-a-file", _file_as_folder, "is a file, not a folder"),
    ("export-unbuilt", _unbuilt_sequential, "The Keras model has no defined inputs"),
    ("uncertainty-nan", lambda _: _uncertain(np.full((2, 4, 3), np.nan)), "x has 24 NaN/inf value(s), first in row 0"),
    ("uncertainty-no-rows", lambda _: _uncertain(np.zeros((0, 4, 3))), "x has no rows"),
]


@pytest.mark.parametrize(("call", "fragment"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_api_input_is_one_clear_value_error(tmp_path, call, fragment):
    with pytest.raises(ValueError) as caught:
        call(tmp_path)
    message = str(caught.value)
    assert fragment in message and "\n" not in message
