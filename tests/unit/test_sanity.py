"""Nothing wrong gets stored, nothing right gets refused: data sanity, one `latest` per model identity,
early checks, clean interrupts, readable progress and notes. Each bad case: exit 2, one line, no store."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from ml.cli import main
from ml.training_pipeline.problems.price.ohlcv import DataError, load_ohlcv

TINY = ["--variant", "tiny", "--days", "60", "--epochs", "2", "--sequence-length", "24", "--batch-size", "64"]



def one_line_error(code, err, fragment, root=None):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("atb: error: ") and fragment in lines[0], err
    if root is not None:
        assert not root.exists() or not any(p.is_file() for p in root.rglob("*"))


@pytest.fixture(scope="module")
def generic(btc_hourly):
    """The last 2,000 real bars as a generic OHLCV table with a `date` column."""
    frame = btc_hourly.iloc[-2000:][["open", "high", "low", "close", "volume"]].copy()
    frame.insert(0, "date", frame.index.strftime("%Y-%m-%d %H:%M"))
    return frame.reset_index(drop=True)


# --- data sanity -------------------------------------------------------------------------------

def _write(frame_or_text, path, **kwargs):
    if isinstance(frame_or_text, str):
        path.write_text(frame_or_text)
    elif path.suffix == ".parquet":
        frame_or_text.to_parquet(path)
    else:
        frame_or_text.to_csv(path, index=False, **kwargs)
    return path


BAD = {
    "boolean close (parquet)": ("bad.parquet", lambda f: f.assign(close=f["close"] > 30000),
                                "Column 'close' holds true/false values"),
    "high below low": ("bad.csv", lambda f: f.assign(high=f["high"].where(f.index != 7, f["low"] * 0.5)),
                       "1 bar(s) where high < max(open, close) or low > min(open, close); first at"),
    "constant price": ("bad.csv", lambda f: f.assign(open=100.0, high=100.0, low=100.0, close=100.0),
                       "The target is constant over the training part"),
    "header only": ("bad.csv", lambda f: "date,open,high,low,close,volume\n", "has a header (date, open"),
    "empty file": ("bad.csv", lambda f: "", "is empty: no header and no rows"),
    "thousands separators": ("bad.csv", lambda f: f.assign(close=f["close"].map(lambda v: f"{v:,.2f}")),
                             "a ',' thousands separator: save the file with plain numbers such as"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_nonsense_data_is_refused_before_training(generic, tmp_path, atb, case):
    name, mutate, fragment = BAD[case]
    path = _write(mutate(generic.copy()), tmp_path / name)
    root = tmp_path / "models"
    code, _, err = atb("train", "model", "BTCUSDT", "--model-type", "tcn", "--data", path,
                       "--models-dir", root, "--quiet")
    one_line_error(code, err, fragment, root)


def test_day_first_dates_and_other_separators_are_read_and_said(generic, tmp_path):
    import warnings

    day_first = generic.assign(date=pd.to_datetime(generic["date"]).dt.strftime("%d/%m/%Y %H:%M"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_ohlcv("BTCUSDT", _write(day_first, tmp_path / "dmy.csv", sep=";"))
    assert not [w for w in caught if "infer format" in str(w.message)]  # pandas' warning does not reach the user
    assert loaded.frame.index.is_monotonic_increasing and len(loaded.frame) == len(generic)
    assert any("';' as the field separator" in n for n in loaded.notes)
    assert any("day-first dates (dd/mm/yyyy)" in n for n in loaded.notes)
    np.testing.assert_allclose(loaded.frame["close"].to_numpy(), generic["close"].to_numpy())
    month_first = generic.assign(date=pd.to_datetime(generic["date"]).dt.strftime("%m/%d/%Y %H:%M"))
    assert load_ohlcv("BTCUSDT", _write(month_first, tmp_path / "mdy.csv")).notes == ()
    with pytest.raises(DataError, match="decimal comma"):
        load_ohlcv("BTCUSDT", _write(generic.assign(close=generic["close"].map(lambda v: f"{v:.2f}".replace(".", ","))),
                                     tmp_path / "comma.csv", sep=";"))


def test_parquet_reads_in_the_base_install(generic, tmp_path):
    """pyarrow is a base dependency: the README's Parquet example works without the dev extra."""
    from importlib.metadata import requires

    assert any(r.startswith("pyarrow") and "extra" not in r for r in requires("atb-ml"))
    loaded = load_ohlcv("BTCUSDT", _write(generic, tmp_path / "bars.parquet"))
    assert len(loaded.frame) == len(generic)


# --- early checks ------------------------------------------------------------------------------

def _cli_in_child(args: list[str]) -> subprocess.CompletedProcess:
    code = ("import sys, time; from ml.cli import main\n"
            f"started = time.perf_counter(); rc = main({args!r})\n"
            "print(rc, 'tensorflow' in sys.modules, round(time.perf_counter() - started, 1))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


@pytest.mark.parametrize("extra, fragment", [
    (["--param", 'units="abc"', "--model-type", "lstm"], "units must be a list of sizes (or one int)"),
    (["--param", "n_estimators=-1", "--model-type", "lightgbm"], "n_estimators must be an int >= 1"),
    (["--param", "lstm_units=[64, 32]", "--model-type", "lstm"], "Unknown keyword argument 'lstm_units'"),
    (["--model-type", "tcn", "--learning-rate", "0"], "learning_rate must be a number > 0"),
    (["--model-type", "tcn", "--models-dir", "FILE"], "is a file, not a folder"),
])
def test_bad_settings_fail_before_the_data_and_tensorflow(tmp_path, extra, fragment):
    a_file = tmp_path / "store.txt"
    a_file.write_text("not a folder")
    args = ["train", "model", "BTCUSDT", *[str(a_file) if a == "FILE" else a for a in extra]]
    if "--models-dir" not in args:
        args += ["--models-dir", str(tmp_path / "models")]
    done = _cli_in_child(args)
    rc, heavy, _ = done.stdout.split()
    assert rc == "2" and heavy == "False", done.stderr
    assert fragment in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "models").exists() and a_file.read_text() == "not a folder"


def test_the_python_api_validates_like_the_cli():
    from ml.training_pipeline.config import TrainingConfig
    from ml.training_pipeline.models import create_model, declared_inputs

    for value in (0, -1e-3, "fast", float("nan")):
        with pytest.raises(ValueError, match="learning_rate must be a number > 0"):
            TrainingConfig(symbol="BTCUSDT", model_type="tcn", learning_rate=value)
    assert TrainingConfig(symbol="BTCUSDT", model_type="tcn", learning_rate=1).learning_rate == 1.0
    with pytest.raises(ValueError, match="n_estimators must be an int >= 1. Received: n_estimators=-1"):
        create_model("lightgbm", (10,), n_estimators=-1)  # at creation, not at fit
    with pytest.raises(ValueError, match="learning_rate must be a number > 0"):
        create_model("tcn", (30, 4), variant="tiny", learning_rate=0)
    assert declared_inputs("tcn", (np.int64(60), np.int32(15)))[0].shape == (60, 15)


# --- several models of one symbol: one latest per identity -------------------------------------

@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    """A 1h TCN, then a 4h LightGBM, both for BTCUSDT/return."""
    root = tmp_path_factory.mktemp("identity") / "models"
    assert main(["train", "model", "BTCUSDT", "--model-type", "tcn", *TINY, "--models-dir", str(root), "--quiet"]) == 0
    assert main(["train", "model", "BTCUSDT", "--model-type", "lightgbm", "--variant", "tiny", "--days", "200",
                 "--timeframe", "4h", "--sequence-length", "12", "--models-dir", str(root), "--quiet"]) == 0
    return root


def test_predict_never_picks_one_of_several_models_silently(two_models, atb):
    code, _, err = atb("predict", "BTCUSDT", "--models-dir", two_models)
    one_line_error(code, err, "BTCUSDT has 2 stored models (price 1h tcn; price 4h lightgbm); choose one with")
    code, out, err = atb("predict", "BTCUSDT", "--model-type", "TCN", "--models-dir", two_models, "--json")
    assert code == 0 and json.loads(out)["model_type"] == "tcn" and json.loads(out)["timeframe"] == "1h", err
    code, out, err = atb("predict", "BTCUSDT", "--timeframe", "4h", "--models-dir", two_models, "--json")
    assert code == 0 and json.loads(out)["model_type"] == "lightgbm", err
    code, _, err = atb("evaluate", "BTCUSDT", "--data", "x.csv", "--timeframe", "1d", "--models-dir", two_models)
    one_line_error(code, err, "No stored model for BTCUSDT with timeframe=1d. Stored: price 1h tcn; price 4h lightgbm")
    lightgbm = json.loads(out)["version"]  # the --timeframe 4h answer above
    for command in (["predict"], ["evaluate", "--data", "x.csv"]):  # a version name is never served as another model
        code, _, err = atb(*command[:1], "BTCUSDT", *command[1:], "--model-type", "tcn", "--version", lightgbm,
                           "--models-dir", two_models)
        one_line_error(code, err, f"Version '{lightgbm}' of BTCUSDT is a price 4h lightgbm model, not model_type='tcn'")


def test_models_list_shows_identity_filters_and_corrupt_versions(two_models, tmp_path, atb):
    code, out, _ = atb("models", "list", "--models-dir", two_models)
    assert code == 0 and "tf" in out.splitlines()[0] and "data" in out.splitlines()[0]
    rows = [line for line in out.splitlines() if line.startswith("BTCUSDT")]
    assert len(rows) == 2 and any(" 4h " in r and "lightgbm" in r for r in rows)
    assert all("bundled:BTCUSDT_1h.csv.gz" in r and " vs " in r for r in rows)
    code, out, _ = atb("models", "list", "--model-type", "lightgbm", "--models-dir", two_models)
    assert len([line for line in out.splitlines() if line.startswith("BTCUSDT")]) == 1
    code, out, _ = atb("models", "list", "--timeframe", "15m", "--models-dir", two_models)
    assert code == 0 and out.startswith("no stored model matches the filter (2 stored: model types lightgbm, ")
    code, out, err = atb("models", "list", "--model-type", "tnc", "--models-dir", two_models)
    assert code == 2 and "Did you mean 'tcn'?" in err
    broken = tmp_path / "broken"
    shutil.copytree(two_models, broken, symlinks=True)
    first = sorted((broken / "BTCUSDT" / "price").glob("*_v1"))[0]
    (first / "metadata.json").write_text("{ not json")
    code, out, _ = atb("models", "list", "--models-dir", broken)
    assert code == 0 and "CORRUPT: metadata.json is not valid JSON" in out and len(
        [line for line in out.splitlines() if line.startswith("BTCUSDT")]) == 2
    code, out, err = atb("predict", "BTCUSDT", "--models-dir", broken, "--json")
    assert code == 0 and json.loads(out)["model_type"] == "lightgbm", err  # the corrupt one is never chosen


def test_a_prediction_on_another_market_gets_a_note(two_models, btc_hourly, tmp_path, atb):
    other = btc_hourly.iloc[-500:].copy()
    other[["open", "high", "low", "close"]] *= 0.05  # ETH-like price level
    path = tmp_path / "ETHUSDT_1h.csv"
    other.insert(0, "time", other.index.astype("int64") // 10**6)
    other.to_csv(path, index=False)
    code, out, err = atb("predict", "BTCUSDT", "--model-type", "tcn", "--data", path, "--models-dir", two_models)
    assert code == 0, err
    assert "looks like ETH data, but the model was trained on BTCUSDT" in out and "far from the training closes" in out


# --- LightGBM rounds, progress, quiet --------------------------------------------------------

def test_lightgbm_epochs_are_its_boosting_rounds_and_it_shows_progress(tmp_path, atb):
    root = tmp_path / "models"
    code, out, err = atb("train", "model", "BTCUSDT", "--model-type", "lightgbm", "--variant", "tiny",
                         "--days", "120", "--epochs", "7", "--models-dir", root)
    assert code == 0, err
    assert "up to 7 boosting rounds (--epochs" in out and "round 7/7" in out, out
    booster = __import__("lightgbm").Booster(model_file=str(root / "BTCUSDT" / "price" / "latest" / "model.txt"))
    assert booster.num_trees() <= 7


def test_progress_lines_say_time_left_and_quiet_says_only_the_result(tmp_path, atb):
    root = tmp_path / "models"
    code, out, err = atb("train", "model", "BTCUSDT", "--model-type", "lstm", *TINY, "--models-dir", root)
    assert code == 0, err
    epoch_lines = [line for line in out.splitlines() if line.startswith("epoch ") and " s/epoch," in line]
    assert len(epoch_lines) == 2 and "elapsed" in epoch_lines[0] and "left" in epoch_lines[0]
    assert "estimate: at most" in out and "np.object" not in err
    code, out, err = atb("train", "model", "BTCUSDT", "--model-type", "lstm", *TINY, "--models-dir", root,
                         "--quiet")
    assert code == 0 and not any(line.startswith(("epoch ", "data:", "training ")) for line in out.splitlines())
    assert "skill vs persistence" in out and "persistence" in out


def test_report_columns_use_fixed_decimals():
    from ml.training_pipeline.common.metrics import format_report

    text = format_report({"model": {"rmse": 250.123456, "directional_accuracy": 0.5108},
                          "persistence": {"rmse": 251.0, "directional_accuracy": 0.00027571}, "n": 10})
    assert "0.0003" in text and "0.00027571" not in text and "250.1235" in text


# --- the command line itself -------------------------------------------------------------------

def test_an_unknown_model_lists_each_accepted_name_once_and_no_aliases(atb):
    from ml.training_pipeline.models import list_models

    code, _, err = atb("train", "model", "BTCUSDT", "--model-type", "transformerx")
    one_line_error(code, err, "Unknown model_type 'transformerx'")
    accepted = err.split("Accepted: ")[1].split(". Received")[0].split(", ")
    assert accepted == list_models() and not {"adaptive", "lgb", "lgbm"} & set(accepted)


def test_subcommand_groups_say_what_they_need(capsys, atb):
    code, _, err = atb("train")
    one_line_error(code, err, "'atb train' needs a subcommand: model")
    code, _, err = atb("models")
    one_line_error(code, err, "'atb models' needs a subcommand: list")
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert re.search(r"model\s+train, evaluate, export and store a model", out) and "Train a model:" in out
    assert re.search(r"anomaly\s+train, evaluate, export and store a log-anomaly model", out)


# --- interrupts --------------------------------------------------------------------------------

KILLED_DURING_EXPORT = """
import os, signal, sys
import numpy as np
import ml.training_pipeline.pipeline as pipeline
from ml.training_pipeline.config import TrainingConfig
from ml.training_pipeline.pipeline import train
from ml.training_pipeline.problems import ArraysProblem

def die_half_way(model, path, sample=None, **kwargs):
    with open(path, "wb") as handle:
        handle.write(b"partial onnx")
    os.kill(os.getpid(), signal.SIGKILL)

pipeline.export_onnx = die_half_way  # where train() calls it
x = np.random.default_rng(0).standard_normal((300, 4)).astype("float32")
train(TrainingConfig(symbol="KILLED", model_type="lightgbm", variant="tiny", models_dir=sys.argv[1]), verbose=0,
      problem=ArraysProblem(x, x[:, 0], name="plain"))
"""


def test_a_run_killed_during_export_leaves_a_staging_folder_the_next_run_removes(tmp_path):
    from ml.training_pipeline.store.versions import ModelStore

    root = tmp_path / "models"
    done = subprocess.run([sys.executable, "-c", KILLED_DURING_EXPORT, str(root)], capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr[-500:]
    folder = root / "KILLED" / "plain"
    left = list(folder.glob(".staging-*"))
    assert len(left) == 1 and (left[0] / "model.onnx").read_bytes() == b"partial onnx"
    store = ModelStore(root)
    live = folder / ".staging-live"  # a staging folder of a running process is left alone
    live.mkdir()
    (live / ".owner").write_text(json.dumps({"pid": os.getpid(), "host": os.uname().nodename}))
    with store.new_version("KILLED", "plain") as staging:
        for name in ("metadata.json", "feature_schema.json", "model.txt"):
            (staging / name).write_text("{}")
    assert store.cleaned == [left[0].name] and not left[0].exists() and live.exists()
    assert [p.name for p in folder.iterdir() if p.name.startswith(".staging")] == [".staging-live"]
    assert not (store.last_committed / ".owner").exists()


def test_native_start_up_notices_are_dropped_and_everything_else_reaches_stderr_in_order():
    """What atb does around every command (not with --debug): TensorFlow's absl lines go, the rest stays."""
    code = ("import os, sys\n"
            "from ml.training_pipeline.common.quiet import NativeLogFilter\n"
            "with NativeLogFilter():\n"
            "    os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n')\n"
            "    os.write(2, b'I0000 00:00:1796653148.360494   21479 port.cc:153] oneDNN custom operations are on.\\n')\n"
            "    os.write(2, b'E0000 00:00:1796653148.1 21479 meta_optimizer.cc:967] NodeDef mentions attribute\\n')\n"
            "    os.write(2, b'a native line of ours\\n')\n"
            "    print('atb: error: one line', file=sys.stderr)\n"
            "print('after', file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == "a native line of ours\natb: error: one line\nafter\n", done.stderr


def test_progress_says_when_early_stopping_ends_the_run_on_a_fake_clock():
    from ml.training_pipeline.fitting.progress import progress_callback

    now, lines = [0.0], []
    callback = progress_callback(80, lines.append, patience=3, clock=lambda: now[0])
    for epoch, val_loss in enumerate([1.0, 0.9, 0.95, 0.97]):
        callback.on_epoch_begin(epoch)
        now[0] += 10.0  # 10 s per epoch
        callback.on_epoch_end(epoch, {"loss": 1.0, "val_loss": val_loss})
    assert lines[0].endswith("at most 13.2 min left; stops after epoch 4 (30 s) unless val_loss improves")
    assert lines[1] == "estimate: at most 13.3 min for 80 epochs; 40 s if val_loss never improves on this epoch (early stopping after 3 more)"
    assert lines[-1].endswith("elapsed 40 s, at most 12.7 min left; stops after epoch 5 (10 s) unless val_loss improves")




def test_the_time_left_inside_the_first_epoch_ignores_the_batch_that_traced_the_graph():
    from ml.training_pipeline.fitting.progress import step_progress

    now, lines = [0.0], []
    progress = step_progress(lines.append, "epoch 1/10: batches", every_s=5.0, clock=lambda: now[0],
                             first_step_traces=True)
    for done, seconds in [(1, 15.0), *((d, 1.0) for d in range(2, 48))]:
        now[0] += seconds  # 15 s to trace and run the first batch, then 1 s per batch
        progress(done, 47)
    assert lines[0] == "epoch 1/10: batches: 1/47, elapsed 15 s, the first step traces the graph; time left after the next ones"
    assert lines[1] == "epoch 1/10: batches: 6/47, elapsed 20 s, about 41 s left"  # 41 batches at 1 s, not at 4 s
    assert lines[-1] == "epoch 1/10: batches: 47/47, elapsed 61 s, done"


def test_what_no_batch_reports_says_where_it_is_too_the_first_trace_and_validation():
    import time

    from ml.training_pipeline.fitting.progress import progress_callback

    lines = []
    callback = progress_callback(10, lines.append, patience=3, within_epoch_s=0.05)
    callback.on_train_begin()
    time.sleep(0.3)  # tracing the first batch: no batch has ended to report
    callback.on_epoch_begin(0)
    callback.on_test_begin()
    time.sleep(0.3)
    callback.on_train_end()
    time.sleep(0.1)
    count = len(lines)
    time.sleep(0.2)
    assert len(lines) == count  # the watch ends with the fit
    assert lines[0].startswith("epoch 1/10: the first batch (traces the graph), ") and lines[0].endswith(" so far")
    assert any(line.startswith("epoch 1/10: validation, ") for line in lines)


def test_the_line_watch_ends_when_a_fit_fails():
    """Keras calls on_train_end only after a fit that ended well: a failed one must not leave a thread printing."""
    import threading
    import time

    import keras

    from ml.training_pipeline.models import create_model
    from ml.training_pipeline.models.kinds import kind_of
    from ml.training_pipeline.models.kinds.base import FitData, FitSettings

    def fail(batch, logs=None):
        raise RuntimeError("a failure in the middle of the fit")

    model = create_model("tcn", (24, 3), variant="tiny")
    data = FitData({"inputs": np.zeros((40, 24, 3), "float32")}, np.zeros(40, "float32"))
    settings = FitSettings(epochs=2, batch_size=16, verbose=2, patience=2,
                           callbacks=[keras.callbacks.LambdaCallback(on_train_batch_end=fail)])
    with pytest.raises(RuntimeError, match="in the middle of the fit"):
        kind_of(model).fit(model, data, data, settings)
    time.sleep(1.5)  # the watch wakes once a second: a stopped one has ended by now
    assert not [t for t in threading.enumerate() if t.name == "epoch progress"]

def test_an_export_says_every_few_seconds_where_it_is_and_a_quick_one_says_nothing(tmp_path, monkeypatch):
    import functools

    import ml.training_pipeline.export as export
    from ml.training_pipeline.fitting.progress import heartbeat
    from ml.training_pipeline.models import create_model

    model = create_model("tcn", (24, 3), variant="tiny")
    sample = np.random.default_rng(0).standard_normal((8, 24, 3)).astype("float32")
    quick = []
    with heartbeat(quick.append, "a call done before the first beat"):
        pass
    assert quick == []  # nothing to read for a quick call
    lines = []
    monkeypatch.setattr(export, "heartbeat", functools.partial(heartbeat, every_s=0.01))
    export.export_onnx(model, tmp_path / "model.onnx", sample=sample, log=lines.append)
    converting = [line for line in lines if line.startswith("export: converting the graph to ONNX, ")]
    assert len(converting) >= 2 and converting[0].endswith("s so far") and converting[-1].split(", ")[-1].startswith("done in")
    assert any(line.startswith("export: parity check on 8 rows") for line in lines)

def _assert_every_text_inside(fig, plt, path, dpi=90):
    """A stand-in for the plots' saver: everything drawn (titles, labels, tick labels, legends, colour bars) lies
    inside the figure: Matplotlib's tight bounding box of the drawn artists is within the figure's own."""
    fig.canvas.draw()
    drawn = fig.get_tightbbox(fig.canvas.get_renderer())  # inches
    width, height = fig.get_size_inches()
    tolerance = 0.02
    assert drawn.x0 >= -tolerance and drawn.y0 >= -tolerance and drawn.x1 <= width + tolerance and (
        drawn.y1 <= height + tolerance), f"{path.name}: text outside the figure ({drawn} vs {width}x{height} in)"
    plt.close(fig)


def test_no_plot_the_library_writes_clips_its_text(tmp_path, monkeypatch):
    import pandas as pd

    from ml.training_pipeline.common import plots

    monkeypatch.setattr(plots, "_save", _assert_every_text_inside)
    title = "BTCUSDT, ETHUSDT, SOLUSDT mcdropout_transformer (lightweight): a title as long as a real one gets"
    rng = np.random.default_rng(0)
    time = pd.date_range("2022-01-01", periods=400, freq="h")
    plots.plot_history({"loss": [1.0, 0.8, 0.7], "val_loss": [1.1, 0.9, 0.95]}, tmp_path / "h.png", title)
    plots.plot_predictions(time, rng.normal(size=400), rng.normal(size=400), rng.normal(size=400), tmp_path / "p.png",
                           title, "log realized volatility")
    plots.plot_calibration(rng.uniform(size=400), rng.integers(0, 2, 400), tmp_path / "c.png", title)
    plots.plot_attention({"attention_block_1": np.full((60, 60), 1 / 60), "attention_block_2": rng.uniform(size=(60, 60))},
                         tmp_path / "a.png", title)
    plots.plot_confusion_matrix([0, 1, 1, 0], [0, 1, 0, 0], tmp_path / "m.png", title)
    plots.plot_variable_importance({"observed": {f"feature_{i}": 1 / 15 for i in range(15)}}, tmp_path / "v.png", title)
    plots.plot_group_metric({"groups": {"metric": "rmse", "worst": "b"},
                             "by_group": {g: {"model": {"rmse": 1.0}, "mean": {"rmse": 1.2}} for g in "abc"}},
                            tmp_path / "g.png", title)
    plots.plot_comparison([{"model": m, "variant": v, "rmse": r, "train_s": t} for m, v, r, t in (
        ("tcn", "default", 1.0, 30.0), ("persistence", "baseline", 1.01, 0.0), ("moving_average", "baseline", 3.0, 0.0))],
                          tmp_path / "b.png", title)


def test_a_slow_epoch_reports_its_batches_every_few_seconds_on_a_fake_clock():
    from ml.training_pipeline.fitting.progress import progress_callback

    now, lines = [0.0], []
    callback = progress_callback(2, lines.append, clock=lambda: now[0], within_epoch_s=10)
    callback.params = {"steps": 100}
    callback.on_epoch_begin(0)
    for batch in range(100):
        now[0] += 0.5  # 50 s per epoch
        callback.on_train_batch_end(batch)
    assert lines[:2] == ["epoch 1/2: batches: 20/100, elapsed 10 s, about 40 s left",
                         "epoch 1/2: batches: 40/100, elapsed 20 s, about 30 s left"] and len(lines) == 4


def test_the_terminal_bar_never_passes_the_epochs_steps(capsys):
    """With steps_per_execution 8, Keras reports step 16 of 15 after the last execution: the bar stops at 15."""
    from ml.training_pipeline.fitting.progress import terminal_progbar

    bar = terminal_progbar()
    bar.set_params({"verbose": 1, "epochs": 1, "steps": 15})
    bar.on_train_begin()
    bar.on_epoch_begin(0)
    bar.on_train_batch_end(7)
    bar.on_train_batch_end(15)
    assert bar.seen == 15 and "16/15" not in capsys.readouterr().out
