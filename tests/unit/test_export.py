"""export_onnx and OnnxPredictor: names, dynamic batch, atomic writes and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from ml.training_pipeline.export import OnnxParityError, OnnxPredictor, export_onnx
from ml.training_pipeline.models import create_model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(0)
    model = create_model("tcn", input_shape=(20, 4), variant="lightweight")
    path = tmp_path_factory.mktemp("onnx") / "tcn.onnx"
    return model, export_onnx(model, path)


def test_graph_has_named_input_and_dynamic_batch(exported):
    import onnx

    model, report = exported
    graph = onnx.load(str(report.path)).graph
    assert [i.name for i in graph.input] == ["inputs"] and [o.name for o in graph.output] == ["outputs"]
    dims = graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [20, 4]
    assert report.n_samples == 16 and report.file_size_bytes == report.path.stat().st_size
    assert report.to_dict()["input_shape"] == [None, 20, 4]
    # nothing but the final file is left in the folder
    assert [p.name for p in report.path.parent.iterdir()] == ["tcn.onnx"]


def test_predictor_runs_any_batch_and_accepts_float64(exported):
    model, report = exported
    predictor = OnnxPredictor(report.path)
    x = np.random.default_rng(1).standard_normal((7, 20, 4))
    np.testing.assert_allclose(predictor.predict(x), np.asarray(model(x.astype("float32"))), atol=1e-4)
    assert set(predictor.run(x[:2])) == {"outputs"}


@pytest.mark.parametrize(
    "x,message",
    [(np.zeros((2, 20, 5), "float32"), r"input\['inputs'\] must have shape \(batch, 20, 4\)\. Received: shape=\(2, 20, 5\)"),
     (np.zeros((20, 4), "float32"), r"Received: shape=\(20, 4\)"),
     (np.array([[["a"] * 4] * 20]), r"input\['inputs'\] must be a float.*Received dtype=<U1"),
     (np.full((1, 20, 4), np.nan, "float32"), r"NaN or inf")],
)
def test_predictor_rejects_bad_input(exported, x, message):
    with pytest.raises(ValueError, match=message):
        OnnxPredictor(exported[1].path).predict(x)


def test_predictor_reports_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="No ONNX file"):
        OnnxPredictor(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="Cannot load ONNX file"):
        OnnxPredictor(bad)


def test_export_rejects_bad_arguments(exported, tmp_path):
    model, _ = exported
    with pytest.raises(ValueError, match=r"path must end with '\.onnx'"):
        export_onnx(model, tmp_path / "m.pb")
    with pytest.raises(ValueError, match=r"sample\['inputs'\] must have shape \(batch, 20, 4\).*Received: shape=\(3, 20, 3\)"):
        export_onnx(model, tmp_path / "m.onnx", sample=np.zeros((3, 20, 3)))
    with pytest.raises(ValueError, match="Keras model or a fitted LightGBM estimator. Received: dict"):
        export_onnx({}, tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="needs a fitted LightGBM model"):
        export_onnx(create_model("lightgbm", input_shape=(4,)), tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_parity_failure_leaves_no_file(exported, tmp_path, monkeypatch):
    """A graph that disagrees with Keras is refused and nothing is left on disk."""
    model, _ = exported
    from ml.training_pipeline.models.kinds import KerasKind

    real = KerasKind.reference_outputs
    monkeypatch.setattr(KerasKind, "reference_outputs",
                        lambda self, m, s: {k: v + 1e-2 for k, v in real(self, m, s).items()})
    with pytest.raises(OnnxParityError, match="differs from the model by 0.01"):
        export_onnx(model, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_parity_is_relative_for_large_outputs(tmp_path):
    """An output near 1e6 (an m-height, a price) cannot match to 1e-4 in float32: above 1 the check is relative."""
    import keras

    inputs = keras.Input((3,), name="inputs")
    outputs = keras.layers.Dense(1, kernel_initializer="ones", bias_initializer=keras.initializers.Constant(1e6))(inputs)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).standard_normal((32, 3)).astype("float32") * 1e3
    report = export_onnx(model, tmp_path / "large.onnx", sample=x)
    assert report.max_scaled_diff <= 1e-4 and report.max_scaled_diff <= report.max_abs_diff
    assert report.to_dict()["max_scaled_diff"] == report.max_scaled_diff


def _layer_norm_model(shape, **norm_kwargs):
    import keras

    inputs = keras.Input(shape, name="inputs")
    norm = keras.layers.LayerNormalization(**norm_kwargs)
    model = keras.Model(inputs, keras.layers.Dense(2)(norm(keras.layers.Dense(6)(inputs))))
    if norm.weights:  # trained-looking scale and shift, so both stay in the graph
        norm.set_weights([np.linspace(0.5, 1.5, w.shape[-1]).astype("float32") for w in norm.weights])
    return model


@pytest.mark.parametrize("shape,norm_kwargs,fused", [
    ((5, 3), {"center": False, "scale": False}, 0),  # no weights to give the width: left as exported
    ((5, 3), {}, 1),  # the transformer's case: (batch, time, width) over the width
    ((5, 3), {"center": False}, 1),  # no shift: the inner Add is absent
    ((5, 4, 3), {}, 1),  # rank 4 (the TFT's variable processor): tf2onnx writes its mean as ReduceMean over the last axis
])
def test_layer_norms_and_sequence_dense_layers_export_as_one_onnx_node_each_with_parity(shape, norm_kwargs, fused, tmp_path):
    import onnx

    model = _layer_norm_model(shape, **norm_kwargs)
    x = np.random.default_rng(0).standard_normal((8, *shape)).astype("float32")
    report = export_onnx(model, tmp_path / "norm.onnx", sample=x)
    ops = [node.op_type for node in onnx.load(str(tmp_path / "norm.onnx")).graph.node]
    assert ops.count("LayerNormalization") == fused
    assert fused == 0 or ("GlobalAveragePool" not in ops and "ReduceMean" not in ops)
    # the Dense layers on the sequence are one MatMul each, not Tensordot's flatten, MatMul and shape arithmetic
    assert ops.count("MatMul") == 2 and "Reshape" not in ops and "Shape" not in ops
    graph = onnx.load(str(tmp_path / "norm.onnx")).graph  # no weight of a replaced node is left behind
    read = {name for node in graph.node for name in node.input}
    assert all(init.name in read for init in graph.initializer)
    assert report.max_abs_diff < 1e-5


def test_layer_norm_fusion_needs_opset_17():
    import onnx
    from onnx import helper

    from ml.training_pipeline.common.onnx_passes import fuse_layer_norms

    graph = helper.make_graph([], "empty", [], [])
    with pytest.raises(ValueError, match=r"needs ONNX opset >= 17\. Received: opset 15"):
        fuse_layer_norms(helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 15)]))
