"""Every snippet of the user's guide runs against this project (``src.ml`` read as ``ml``).

``guide/snippets.json`` holds the guide's code blocks in order, extracted verbatim; when the guide
itself is found (``../shared/reference/ml_model_guide.md`` next to the checkout, or ``ATB_GUIDE``), a
test checks that they are still the same. Each snippet is executed in a namespace holding what the
guide assumes a reader has at that point (``train_ds``, ``X_test``, a trained ``model``...), built
from the bundled real BTCUSDT data. In the default suite a few training budgets are shrunk
(:data:`FAST`, each replacement asserted to apply, e.g. ``epochs=50`` -> ``epochs=1``);
``-m slow`` runs every snippet verbatim.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

HERE = Path(__file__).parent
SNIPPETS = {s["id"]: s for s in json.loads((HERE / "guide" / "snippets.json").read_text())}
GUIDE = Path(os.environ.get("ATB_GUIDE", HERE.parents[2] / "shared" / "reference" / "ml_model_guide.md"))

FAST: dict[str, list[tuple[str, str]]] = {
    "using_models_in_code": [("epochs=50", "epochs=1")],
    "example_tuning_attention_lstm": [("[[128, 64], [256, 128], [64, 32]]", "[[64, 32]]"), ("[0.2, 0.3]", "[0.2]"),
                                      ("[2, 4, 8]", "[2]"), ("epochs=50", "epochs=1")],
}
"""Training budgets shrunk in the default suite (``-m slow`` runs the snippets as written)."""

PLACEHOLDERS: dict[str, list[tuple[str, str]]] = {
    "3_use_early_stopping": [("model.fit(...,", "model.fit(train_ds, validation_data=val_ds, epochs=2,")],
}
"""The guide's ``...`` placeholders, filled the way a reader fills them (applied in every run)."""

NOT_CODE = {
    "benchmark_output_example": "sample output of the benchmark suite",
    "common_issues": "an error message as printed",
    "common_issues_2": "an error message as printed",
    "step_2_register_in_factory": "an edit of the guide project's models.py; here the registry discovers the module",
}
"""Blocks that are not meant to run; what they promise is checked by the tests named after them."""


def code_of(snippet_id: str, verbatim: bool) -> str:
    code = SNIPPETS[snippet_id]["code"]
    for old, new in PLACEHOLDERS.get(snippet_id, []) + ([] if verbatim else FAST.get(snippet_id, [])):
        assert old in code, f"{snippet_id}: {old!r} is no longer in the snippet"
        code = code.replace(old, new)
    return code


def run_snippet(snippet_id: str, namespace: dict, verbatim: bool) -> dict:
    exec(compile(code_of(snippet_id, verbatim), f"<guide:{snippet_id}>", "exec"), namespace)  # noqa: S102
    return namespace


@pytest.fixture(params=[pytest.param(False, id="fast"), pytest.param(True, id="verbatim", marks=pytest.mark.slow)])
def verbatim(request) -> bool:
    return request.param


@pytest.fixture(scope="module")
def guide_data():
    """The bundled BTCUSDT windows the guide's ``train_ds``/``val_ds``/``X_test`` stand for (a small slice)."""
    from ml.training_pipeline.comparison import load_benchmark_data

    data = load_benchmark_data("BTCUSDT", days=120)
    return replace(data, X_train=data.X_train[-128:], y_train=data.y_train[-128:], X_val=data.X_val[:64],
                   y_val=data.y_val[:64], other_inputs={})


@pytest.fixture(scope="module")
def trained_model_dir(guide_data, tmp_path_factory):
    """A folder holding ``path/to/model.keras``: an Attention-LSTM trained for one epoch (the guide's path)."""
    from ml.training_pipeline.models import create_model

    folder = tmp_path_factory.mktemp("guide")
    model = create_model("attention_lstm", input_shape=(60, 15), variant="lightweight")
    model.fit(guide_data.X_train, guide_data.y_train, epochs=1, batch_size=64, verbose=0)
    (folder / "path" / "to").mkdir(parents=True)
    model.save(folder / "path" / "to" / "model.keras")
    return folder


@pytest.fixture
def namespace(guide_data, trained_model_dir, btc_hourly, monkeypatch):
    """What a reader of the guide has in scope, in a working folder that holds ``path/to/model.keras``."""
    import matplotlib
    import tensorflow as tf

    from ml.training_pipeline.config import TrainingConfig
    from ml.training_pipeline.models import create_model, get_model_callbacks

    matplotlib.use("Agg")  # plt.show() draws nothing in tests
    monkeypatch.chdir(trained_model_dir)
    d = guide_data
    return {
        "tf": tf, "np": np, "pytest": pytest, "logger": logging.getLogger("guide"),
        "create_model": create_model, "get_model_callbacks": get_model_callbacks, "TrainingConfig": TrainingConfig,
        "train_ds": tf.data.Dataset.from_tensor_slices((d.X_train, d.y_train)).batch(32),
        "val_ds": tf.data.Dataset.from_tensor_slices((d.X_val, d.y_val)).batch(32),
        "X_test": d.X_test[:64], "price_df": btc_hourly.iloc[-3000:].copy(),
    }


def test_the_snippets_are_the_guides(tmp_path):
    """The stored snippets are the guide's code blocks, in order (skipped where the guide is not next to the checkout)."""
    if not GUIDE.is_file():
        pytest.skip(f"the guide is not at {GUIDE} (set ATB_GUIDE)")
    blocks = re.findall(r"^```\w*\n(.*?)^```", GUIDE.read_text(), flags=re.M | re.S)
    assert [b.replace("src.ml.", "ml.") for b in blocks] == [s["code"] for s in SNIPPETS.values()]


def test_every_snippet_is_covered():
    """Each block is run by a test below or is one of the named non-code blocks."""
    source = Path(__file__).read_text()
    for snippet_id in SNIPPETS:
        assert snippet_id in NOT_CODE or f'"{snippet_id}"' in source.partition("def test_every_snippet_is_covered")[2], \
            snippet_id


@pytest.mark.parametrize("snippet_id", ["1_cnn_lstm_baseline", "2_attention_lstm_recommended",
                                        "3_temporal_convolutional_network_tcn_recommended"])
def test_model_snippets_build_the_guides_models(snippet_id, namespace):
    run_snippet(snippet_id, namespace, verbatim=True)
    model = namespace["model"]
    assert model.input_shape == (None, 60, 15) and model.output_shape == (None, 1)


def test_guide_sizes_and_names():
    """The variants' sizes as the guide lists them, its hyperparameter names, and multi-head attention."""
    import keras

    from ml.training_pipeline.models import create_model, get_spec

    lstm = get_spec("attention_lstm").variants
    assert [tuple(lstm[v]["lstm_units"]) for v in ("lightweight", "default", "deep")] == [(64, 32), (128, 64),
                                                                                         (256, 128, 64)]
    tcn = get_spec("tcn").variants
    assert [(tcn[v]["filters"], tcn[v]["num_levels"]) for v in ("lightweight", "default", "deep")] == [
        (32, 4), (64, 5), (128, 6)]
    model = create_model("attention_lstm", (60, 15), lstm_units=[128, 64], num_attention_heads=4, attention_key_dim=64)
    attention = next(layer for layer in model.layers if isinstance(layer, keras.layers.MultiHeadAttention))
    assert (attention.num_heads, attention.key_dim) == (4, 64)
    tcn_model = create_model("tcn", (60, 15), num_filters=16, kernel_size=5, num_layers=3)
    assert sum(isinstance(layer, keras.layers.Conv1D) and layer.filters == 16 for layer in tcn_model.layers) >= 6
    with pytest.raises(ValueError, match="'num_filters' and 'filters' name the same hyperparameter"):
        create_model("tcn", (60, 15), num_filters=16, filters=32)
    with pytest.raises(ValueError, match="has_sentiment must be True or False. Received: has_sentiment='yes'"):
        create_model("cnn_lstm", (60, 15), has_sentiment="yes")


def test_using_models_in_code(namespace, verbatim):
    run_snippet("using_models_in_code", namespace, verbatim)
    history = namespace["history"].history
    assert {"rmse", "val_rmse", "mae", "val_mae"} <= set(history)
    assert len(history["loss"]) == (50 if verbatim else 1)


def test_receptive_field(namespace, capsys):
    run_snippet("3_temporal_convolutional_network_tcn_recommended_2", namespace, verbatim=True)
    # the guide's comment says 125; with two causal convolutions per level this TCN sees 249 steps
    assert capsys.readouterr().out.strip() == "Receptive field: 249 timesteps"


def test_lightgbm_snippets(namespace):
    run_snippet("4_lightgbm_gradient_boosting", namespace, verbatim=True)
    importance = namespace["importance"]
    assert list(importance.columns[:2]) == ["feature", "importance"] and len(importance) == 20
    assert importance["importance"].is_monotonic_decreasing
    run_snippet("feature_importance_lightgbm", namespace, verbatim=True)  # after training LightGBM, as it says
    assert namespace["importance_df"].equals(importance)


def test_pipeline_integration_snippets(namespace, verbatim):
    run_snippet("step_1_modify_training_configuration", namespace, verbatim=True)
    config = namespace["config"]
    assert (config.model_type, config.variant, config.epochs) == ("attention_lstm", "default", 100)
    fast = config if verbatim else replace(config, epochs=1)
    namespace.update(ctx=SimpleNamespace(config=fast), feature_names=[f"f{i}" for i in range(15)], has_sentiment=True)
    run_snippet("step_2_update_pipeline_to_use_factory", namespace, verbatim)
    assert [type(c).__name__ for c in namespace["callbacks"]] == ["EarlyStopping", "ReduceLROnPlateau"]
    assert namespace["callbacks"][0].patience == 15 and "val_loss" in namespace["history"].history


def test_attention_weights_of_a_loaded_model(namespace):
    run_snippet("extracting_attention_weights_attention_lstm", namespace, verbatim=True)
    weights = namespace["attention_weights"]
    assert weights.shape == (10, 60, 60)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-5)


def test_attention_weights_in_a_fresh_process(trained_model_dir, guide_data, tmp_path):
    """``extract_attention_weights`` on a model loaded with ``tf.keras.models.load_model`` in a new interpreter."""
    import subprocess

    np.save(tmp_path / "x.npy", guide_data.X_test[:3])
    code = ("import sys, numpy as np, tensorflow as tf\n"
            "from ml.training_pipeline.models_attention_lstm import extract_attention_weights\n"
            "model = tf.keras.models.load_model(sys.argv[1])\n"
            "print(extract_attention_weights(model, np.load(sys.argv[2])).shape)\n")
    out = subprocess.run([sys.executable, "-c", code, str(trained_model_dir / "path" / "to" / "model.keras"),
                          str(tmp_path / "x.npy")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "(3, 60, 60)"


def test_history_plots(namespace):
    model = namespace["create_model"]("tcn", input_shape=(60, 15), variant="tiny")
    namespace["history"] = model.fit(namespace["train_ds"], validation_data=namespace["val_ds"], epochs=2, verbose=0)
    run_snippet("model_performance_visualization", namespace, verbatim=True)


def test_grid_search(namespace, verbatim, capsys):
    run_snippet("example_tuning_attention_lstm", namespace, verbatim)
    assert set(namespace["best_params"]) == {"lstm_units", "dropout", "num_attention_heads"}
    assert "Best val_loss:" in capsys.readouterr().out


def test_onnx_export_and_validation(namespace):
    """The guide's tf2onnx export of a loaded ``.keras`` model, checked against Keras at atol 1e-5."""
    namespace["model"] = namespace["tf"].keras.models.load_model("path/to/model.keras")
    run_snippet("step_1_export_to_onnx", namespace, verbatim=True)
    run_snippet("step_2_validate_onnx_export", namespace, verbatim=True)
    assert Path("model.onnx").is_file()


def test_memory_and_speed_profiling(namespace, capsys):
    """The guide's production check: 100 single-window predictions average under 100 ms, the model under 100 MB."""
    run_snippet("step_3_memory_speed_profiling", namespace, verbatim=True)
    assert float(re.search(r"Avg inference time: ([\d.]+) ms", capsys.readouterr().out).group(1)) < 100


def test_best_practices(namespace, guide_data):
    from ml.training_pipeline.common.windows import split_sequences

    namespace.update(split_sequences=split_sequences, sequences=guide_data.X_train, targets=guide_data.y_train)
    run_snippet("1_always_use_validation_set", namespace, verbatim=True)
    assert len(namespace["X_train"]) + len(namespace["X_val"]) == len(guide_data.X_train)
    namespace["model"] = namespace["create_model"]("tcn", (60, 15), variant="tiny")
    run_snippet("2_monitor_multiple_metrics", namespace, verbatim=True)
    namespace["model_type"] = "tcn"
    run_snippet("3_use_early_stopping", namespace, verbatim=True)
    assert "val_rmse" in namespace["history"].history
    run_snippet("4_save_best_model", namespace, verbatim=True)
    namespace["model"].fit(namespace["train_ds"], validation_data=namespace["val_ds"], epochs=1, verbose=0,
                           callbacks=[namespace["checkpoint"]])
    assert Path("best_model.keras").is_file()


def test_unknown_model_error_matches_the_troubleshooting_entry():
    """``common_issues``: an unknown type fails with ``ValueError: Unknown model_type ...``."""
    from ml.training_pipeline.models import create_model

    assert SNIPPETS["common_issues"]["code"].startswith("ValueError: Unknown model_type")
    with pytest.raises(ValueError, match="^Unknown model_type 'attention_lstmm'. Did you mean 'attention_lstm'"):
        create_model("attention_lstmm", input_shape=(60, 15))


def test_adding_a_model_module_the_guides_way(guide_data, tmp_path, monkeypatch):
    """Steps 1-4 of "Adding New Model Architectures": a ``models_yourmodel`` module is found by name, its
    ``create_yourmodel`` builds the model, the guide's unit tests and benchmark pass on it."""
    import ml.training_pipeline as package
    from ml.training_pipeline.comparison import BenchmarkConfig, benchmark_model
    from ml.training_pipeline.models.registry import unregister_model

    (tmp_path / "models_yourmodel.py").write_text(SNIPPETS["step_1_create_model_module"]["code"])
    monkeypatch.setattr(package, "__path__", [*package.__path__, str(tmp_path)])
    try:
        tests = run_snippet("step_3_add_tests", {}, verbatim=True)
        tests["test_yourmodel_creation"]()
        tests["test_yourmodel_training"]()
        from ml.training_pipeline.models import AVAILABLE_MODELS, list_models  # noqa: F401

        assert "yourmodel" in list_models()  # "step_2_register_in_factory": registered on first use
        bench = run_snippet("step_4_add_benchmarks", {"pytest": pytest, "benchmark_model": benchmark_model,
                                                      "logger": logging.getLogger("guide")}, verbatim=True)
        bench["test_yourmodel_performance"](guide_data, BenchmarkConfig(epochs=1, data=guide_data, latency=False))
    finally:
        unregister_model("yourmodel")
        sys.modules.pop("ml.training_pipeline.models_yourmodel", None)


def test_custom_benchmark_template(guide_data):
    from ml.training_pipeline.comparison import BenchmarkConfig, benchmark_model

    ns = run_snippet("adding_custom_benchmarks", {"pytest": pytest, "benchmark_model": benchmark_model,
                                                  "logger": logging.getLogger("guide")}, verbatim=True)
    ns["test_my_custom_benchmark"](guide_data, BenchmarkConfig(epochs=1, data=guide_data, latency=False))


def test_benchmark_commands_collect_the_guides_tests():
    """``running_benchmarks``: each pytest command of the guide names tests that exist and are collected
    (naming the file runs it without ``-m``)."""
    import subprocess

    commands = [shlex.split(line) for line in SNIPPETS["running_benchmarks"]["code"].splitlines()
                if line.startswith("pytest")]
    assert len(commands) == 4
    ids = [c[1] for c in commands]
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", *ids], capture_output=True,
                         text=True, cwd=HERE.parents[1], timeout=300)
    collected = [line for line in out.stdout.splitlines() if "::" in line]
    for node in ids[1:]:
        assert node in collected, out.stdout[-1500:]
    assert len(collected) >= 4  # the whole file, the guide's three tests and the custom template


def _atb_lines(snippet_id: str) -> list[list[str]]:
    return [shlex.split(line)[1:] for line in SNIPPETS[snippet_id]["code"].splitlines() if line.startswith("atb ")]


def test_quick_start_commands(tmp_path, capsys, verbatim):
    """The quick-start commands parse into configs as written; one of them trains and stores a version under the
    path the guide shows (``5_version_your_models``). ``-m slow`` runs all of them as written."""
    from ml.cli import build_parser, main

    commands = _atb_lines("training_a_new_model_architecture")
    assert len(commands) == 3
    for argv in commands:
        args = build_parser().parse_args(argv)
        assert (args.command, args.what, args.symbol) == ("train", "model", ["BTCUSDT"])
    runs = commands + _atb_lines("5_version_your_models") if verbatim else [
        commands[2] + ["--epochs", "1"]]  # attention_lstm lightweight, 180 days
    for argv in runs:
        assert main([*argv, "--models-dir", str(tmp_path), "--quiet"]) == 0
    versions = sorted((tmp_path / "BTCUSDT" / "price").iterdir())
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}_\d{2}h_v1", versions[0].name)
    assert "src/ml/models/BTCUSDT/price/" in SNIPPETS["5_version_your_models"]["code"]
