"""Log anomalies on the real Loghub samples: formats, windows, the train-only encoder, the F1 callback,
the stored threshold, atb train anomaly / predict / evaluate / models list, label diagnostics, bad input.

The multimodal model itself is checked by the shared model suite (test_model_suite.py).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ml.cli import main
from ml.data import bundled_log_path
from ml.training_pipeline.problems.anomaly.formats import LogEvents, load_log_events, read_log_events
from ml.training_pipeline.problems.anomaly.windows import (
    FLAG_FEATURES,
    NUMERIC_FEATURES,
    LogEncoder,
    Windowing,
    chronological_parts,
    distinct_lines,
    window_labels,
)

BGL = bundled_log_path("bgl")
OPENSTACK = bundled_log_path("openstack")



@pytest.fixture(scope="module")
def bgl() -> LogEvents:
    return load_log_events(BGL, "bgl")


@pytest.fixture(scope="module")
def openstack() -> LogEvents:
    return load_log_events(OPENSTACK, "openstack")


def test_bgl_lines_are_read_with_their_labels_fields_and_times(bgl):
    frame = bgl.frame
    assert len(frame) == 2000 and int(frame["label"].sum()) == 143  # the README's count of alert lines
    assert bgl.log_format.fields == ("level", "component", "eventid", "type", "rack", "midplane")
    first = frame.iloc[0]
    assert first["time"] == pd.Timestamp("2005-06-03 15:42:50.675872")
    assert (first["level"], first["component"], first["eventid"], first["rack"], first["midplane"]) == \
        ("INFO", "KERNEL", "E77", "R02", "R02-M1")
    assert frame["time"].is_monotonic_increasing


def test_openstack_requests_are_parsed_from_the_content(openstack):
    frame = openstack.frame
    first = frame.iloc[0]  # ... "GET /v2/.../servers/detail HTTP/1.1" status: 200 len: 1893 time: 0.2477829
    assert (first["http_method"], first["http_status"], first["response_length"]) == ("GET", 200, 1893)
    assert first["latency"] == pytest.approx(0.2477829)
    assert (first["service"], first["status_class"]) == ("nova-api", "2")
    assert frame["label"].isna().all() and not openstack.labelled
    assert frame["session"].nunique() == 23  # 22 instance ids and '' for lines without one
    assert set(frame.loc[frame["http_status"] >= 400, "status_class"]) == {"4"}


def test_openstack_is_labelled_by_anomalous_instance_ids(tmp_path, openstack):
    instance = openstack.frame.loc[openstack.frame["session"] != "", "session"].iloc[0]
    ids = tmp_path / "anomaly_labels.txt"
    ids.write_text(f"{instance}\n")
    labelled = load_log_events(OPENSTACK, "openstack", anomalous_sessions=ids)
    assert labelled.labelled
    assert labelled.frame["label"].sum() == (openstack.frame["session"] == instance).sum() > 0


def _events(seconds, labels=None, event_ids=None) -> LogEvents:
    n = len(seconds)
    frame = pd.DataFrame({
        "LineId": range(1, n + 1), "Label": labels or ["-"] * n,
        "Time": [(pd.Timestamp("2024-01-01") + pd.Timedelta(seconds=s)).strftime("%Y-%m-%d-%H.%M.%S.%f") for s in seconds],
        "Node": ["R01-M0-N0"] * n, "Type": ["RAS"] * n, "Component": ["KERNEL"] * n, "Level": ["INFO"] * n,
        "Content": ["ok"] * n, "EventId": event_ids or ["E1"] * n})
    return read_log_events(frame, "bgl")


def test_time_event_and_session_windows_hold_the_right_lines():
    events = _events([0, 10, 299, 300, 900, 1000], labels=["-", "-", "-", "KERNDTLB", "-", "-"])
    fixed = Windowing("time", "5min").windows(events.frame)
    assert [w.tolist() for w in fixed] == [[0, 1, 2], [3], [4, 5]]  # 600 s .. 900 s is empty and skipped
    assert window_labels(events, fixed).tolist() == [0.0, 1.0, 0.0]
    sliding = Windowing("time", "5min", step="100s").windows(events.frame)
    assert [0, 1, 2] in [w.tolist() for w in sliding] and [2, 3] in [w.tolist() for w in sliding]
    assert len({tuple(w) for w in sliding}) == len(sliding)  # identical windows are kept once
    assert [w.tolist() for w in Windowing("events", 4, step=2).windows(events.frame)] == [[0, 1, 2, 3], [2, 3, 4, 5]]


def test_chronological_parts_never_share_an_event(bgl):
    windows = Windowing("time", "5min", step="1min").windows(bgl.frame)
    times = bgl.frame["time"].to_numpy()
    parts, purged = chronological_parts(windows, times)
    assert purged > 0  # sliding windows across a cut are dropped
    rows = {name: set(np.concatenate([windows[i] for i in idx]).tolist()) for name, idx in parts.items()}
    assert not rows["train"] & rows["validation"] and not rows["validation"] & rows["test"]
    assert {name: distinct_lines(windows, idx) for name, idx in parts.items()} == {k: len(v) for k, v in rows.items()}
    assert times[list(rows["train"])].max() < times[list(rows["validation"])].min()


def test_encoder_is_fitted_on_training_windows_and_sends_unseen_values_to_unknown():
    events = _events([0, 1, 2, 400, 401, 402], event_ids=["E1", "E1", "E2", "E1", "E9", "E9"])
    windows = Windowing("time", "5min", max_events=4).windows(events.frame)
    encoder = LogEncoder.fit(events, windows[:1], max_events=4)
    assert encoder.vocabularies["eventid"] == ["E1", "E2"]  # E9 appears only after the training window
    encoded = encoder.encode(events, windows)
    offset = encoder.offsets[encoder.fields.index("eventid")]
    ids = encoded["categorical"][1, :3, encoder.fields.index("eventid")] - offset
    assert ids.tolist() == [1, 0, 0]  # E1 known (id 1), E9 unknown (id 0)
    assert encoded["flags"][1, :3, FLAG_FEATURES.index("unseen_event")].tolist() == [0, 1, 1]
    assert encoded["padding_mask"].tolist() == [[True, True, True, False]] * 2
    assert not encoded["numeric"][~encoded["padding_mask"]].any()  # padding stays zero after scaling
    assert encoded["counts"][1].tolist() == [2, 1, 0]  # unknown, E1, E2
    assert encoded["categorical"].max() < encoder.vocab_size


def test_a_hand_checked_openstack_line_encodes_as_read(openstack):
    windows = Windowing("time", "1min").windows(openstack.frame)
    encoder = LogEncoder.fit(openstack, windows[:8])
    from ml.training_pipeline.problems.anomaly.windows import event_table

    raw = encoder._encode(openstack, windows[:1], event_table(openstack), scale=False)
    first = dict(zip(NUMERIC_FEATURES, raw["numeric"][0, 0], strict=True))
    assert first["http_status"] == pytest.approx(2.0) and first["latency"] == pytest.approx(0.2477829)
    assert first["log_response_length"] == pytest.approx(np.log1p(1893))
    assert first["log_gap"] == 0.0 and raw["padding_mask"][0].sum() == min(len(windows[0]), 128)


def test_validation_f1_drives_early_stopping_for_any_keras_model():
    import keras

    from ml.training_pipeline.fitting.callbacks import ValidationF1

    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 4)).astype("float32")
    y = (x[:, 0] > 0.5).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy")
    stop = keras.callbacks.EarlyStopping("val_f1", mode="max", patience=2, restore_best_weights=True)
    history = model.fit(x, y, epochs=4, verbose=0, callbacks=[ValidationF1(x[:64], y[:64]), stop])
    assert len(history.history["val_f1"]) >= 1 and all(0 <= v <= 1 for v in history.history["val_f1"])
    with pytest.raises(ValueError, match="0/1 labels"):
        ValidationF1(x, np.arange(256))


@pytest.fixture(scope="module")
def anomaly_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("anomaly_models")
    assert main(["train", "anomaly", "BGL", "--log-format", "bgl", "--variant", "tiny", "--epochs", "3",
                 "--models-dir", str(root), "--quiet"]) == 0
    return root


def test_atb_train_anomaly_stores_threshold_baselines_and_plots(anomaly_store):
    version = (anomaly_store / "BGL" / "anomaly" / "latest").resolve()
    files = {p.name for p in version.iterdir()}
    assert {"model.keras", "model.onnx", "confusion_matrix.png", "training_history.png", "attention.png"} <= files
    schema = json.loads((version / "feature_schema.json").read_text())
    meta = json.loads((version / "metadata.json").read_text())
    assert 0 < schema["threshold"] < 1 and schema["log_format"] == "bgl"
    assert [s["name"] for s in schema["inputs"]] == ["numeric", "flags", "categorical", "padding_mask", "aggregates"]
    report = meta["metrics"]
    assert {"model", "majority", "lightgbm_counts", "logistic_counts"} <= set(report)
    # the operator's rules on the same windows, at 0.5: a severe line, a template unseen in training, counts at 0.5
    assert {"rule_severe_line", "rule_unseen_template", "logistic_counts_at_0.5"} <= set(report)
    assert report["rule_severe_line"]["recall"] > 0 and report["baseline_thresholds"]["rule_severe_line"] == 0.5
    assert report["model"].keys() >= {"accuracy", "precision", "recall", "f1", "false_positive_rate", "roc_auc", "pr_auc"}
    assert report["majority"]["recall"] == 0.0 and report["majority"]["roc_auc"] == 0.5
    assert report["n"] == meta["row_counts"]["test_windows"] and "val_f1" in meta["history"]
    assert report["threshold"] == schema["threshold"]  # the test part is scored at the validation threshold
    assert report["model_at_0.5"]["roc_auc"] == report["model"]["roc_auc"] and schema["threshold_policy"] == "validation"


def test_stored_anomaly_model_lists_predicts_and_evaluates(anomaly_store, atb, tmp_path):
    code, out, _ = atb("models", "list", "--models-dir", anomaly_store)
    assert code == 0 and "anomaly" in out and "multimodal_transformer" in out and "lightgbm counts" in out
    later = tmp_path / "later.csv"
    frame = pd.read_csv(BGL)
    frame.iloc[1500:].assign(EventId=lambda f: f["EventId"].where(f.index % 7 != 0, "E_NEW")).to_csv(later, index=False)
    code, out, _ = atb("predict", "BGL", "--data", later, "--models-dir", anomaly_store, "--json")
    result = json.loads(out)
    assert code == 0 and result["target"] == "anomaly" and len(result["windows"]) > 10
    assert result["flagged"] == sum(w["probability"] >= result["threshold"] for w in result["windows"])
    code, out, _ = atb("evaluate", "BGL", "--data", later, "--models-dir", anomaly_store)
    assert code == 0 and "lightgbm_counts" in out and "majority" in out


def _store_is_empty(root) -> bool:
    return not root.exists() or not any(root.rglob("metadata.json"))


@pytest.mark.parametrize("change,message", [
    (lambda f: f.drop(columns=["Label"]), "lacks the column 'Label'"),
    (lambda f: f.assign(Label=f["Label"].where(f.index != 5, "maybe?")), "unexpected value 'maybe?'"),
    (lambda f: f.assign(Label="-"), "no positive"),
    (lambda f: f.assign(Label=np.where(f.index < 1500, "-", "KERNDTLB")), "no positive"),
    (lambda f: f.assign(Label="KERNDTLB"), "no negative"),
])
def test_bad_logs_are_refused_in_one_line_and_nothing_is_stored(tmp_path, atb, change, message):
    path = tmp_path / "bad.csv"
    change(pd.read_csv(BGL, dtype=str, keep_default_na=False)).to_csv(path, index=False)
    root = tmp_path / "models"
    code, _, err = atb("train", "anomaly", "BAD", "--data", path, "--log-format", "bgl", "--variant", "tiny",
                       "--models-dir", root)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert _store_is_empty(root)


@pytest.mark.parametrize("argv,message", [
    (["--window", "0min"], "positive duration"),
    (["--window-by", "events", "--window", "0"], "count of events >= 1"),
    (["--window-by", "hours"], "Unknown window kind 'hours'"),
    (["--log-format", "syslog"], "Unknown log format 'syslog'"),
    (["--log-format", "openstack"], "has no labels"),
    (["--validation-blocks", "0"], "validation_blocks must be an int in [1, 20]"),
    (["--threshold", "1.5"], "threshold must be 'validation' or a probability in (0, 1)"),
    (["--threshold", "best"], "Received: threshold='best'"),
])
def test_bad_window_settings_and_formats_are_refused(tmp_path, atb, argv, message):
    root = tmp_path / "models"
    base = ["train", "anomaly", "BAD", "--variant", "tiny", "--models-dir", root]
    code, _, err = atb(*base, *(["--log-format", "bgl"] if "--log-format" not in argv else []), *argv)
    assert code == 2 and message in err and _store_is_empty(root)


def test_diagnostics_flag_a_shuffled_label_and_find_a_planted_one():
    from ml.training_pipeline.diagnostics import diagnose_labels

    rng = np.random.default_rng(3)
    x = rng.normal(size=(1500, 6))
    planted = diagnose_labels(x, (x[:, 2] + 0.5 * rng.normal(size=1500) > 0).astype(int),
                              feature_names=[f"x{i}" for i in range(6)])
    assert planted.usable_signal and planted.top_features[0]["feature"] == "x2"
    shuffled = diagnose_labels(x, rng.permutation((x[:, 2] > 0).astype(int)))
    assert not shuffled.usable_signal and "prior" in shuffled.reason
    assert shuffled.entropy_bits == pytest.approx(1.0, abs=0.01)


def test_atb_diagnose_on_bgl_windows_gives_a_json_verdict(atb):
    code, out, _ = atb("diagnose", "BGL", "--log-format", "bgl", "--json")
    report = json.loads(out)
    assert code == 0 and report["usable_signal"] is True and report["reason"]
    assert set(report["forecasters"]) == {"prior", "tiny model (logistic)", "lightgbm"}
    code, _, err = atb("diagnose", "BTCUSDT", "--target", "volatility")
    assert code == 2 and "need a class label" in err


# --- raw log files: lines split by a line format, messages mapped to Drain3 templates -----------------------

@pytest.fixture(scope="module")
def raw_bgl(tmp_path_factory):
    """The bundled BGL sample rebuilt as the raw lines it was parsed from (Loghub's BGL.log layout)."""
    from ml.training_pipeline.problems.anomaly.formats import BGL as BGL_FORMAT
    from ml.training_pipeline.problems.anomaly.lines import render_lines

    path = tmp_path_factory.mktemp("raw") / "BGL_2k.log"
    frame = pd.read_csv(BGL, dtype=str, keep_default_na=False)
    path.write_text("".join(line + "\n" for line in render_lines(frame.to_dict("records"), BGL_FORMAT.line_format)))
    return path


def test_raw_bgl_lines_read_as_the_structured_file_with_drain3_templates_that_agree_with_loghubs(raw_bgl, bgl):
    from sklearn.metrics import adjusted_rand_score

    raw = load_log_events(raw_bgl, "bgl")
    columns = ["time", "level", "label", "component", "type", "rack", "midplane"]
    pd.testing.assert_frame_equal(raw.frame[columns], bgl.frame[columns])
    assert raw.lines == {"lines": 2000, "events": 2000, "continuation_lines": 0, "dropped_lines": 0}
    # Drain3 groups the messages as Loghub's hand-checked templates do (108 templates for its 120)
    assert adjusted_rand_score(bgl.frame["eventid"], raw.frame["eventid"]) > 0.99
    assert raw.frame["eventid"].str.fullmatch(r"D\d+").all() and len(raw.templates) == raw.frame["eventid"].nunique()


def test_templates_stored_as_json_map_new_lines_to_the_same_ids_and_unknown_ones_to_unseen(raw_bgl):
    from ml.training_pipeline.problems.anomaly.templates import UNSEEN_TEMPLATE, LogTemplates

    raw = load_log_events(raw_bgl, "bgl")
    stored = LogTemplates.from_dict(json.loads(json.dumps(raw.templates.to_dict())))
    contents = raw.frame["content"].tolist()
    assert stored.match(contents) == raw.frame["eventid"].tolist()
    assert stored.match(["a message no template of BGL covers at all"]) == [UNSEEN_TEMPLATE]
    assert len(stored) == len(raw.templates)  # matching learned nothing


def test_wrapped_lines_join_the_line_before_and_other_layouts_are_refused(tmp_path):
    from ml.training_pipeline.problems.anomaly.formats import read_session_labels

    log = tmp_path / "app.log"
    log.write_text("2024-03-01T10:00:00Z INFO service started\n"
                   "2024-03-01 10:00:01,250 ERROR request failed: Traceback (most recent call last):\n"
                   "  File \"app.py\", line 3, in handle\n"
                   "2024-03-01 is not a time: a wrapped line that starts like one\n"
                   "2024-03-01 10:00:02,000 WARNING retry 1 of 3 for blk_42\n")
    events = load_log_events(log, "generic")
    assert events.lines == {"lines": 5, "events": 3, "continuation_lines": 2, "dropped_lines": 0}
    assert events.frame["level"].tolist() == ["INFO", "ERROR", "WARNING"]
    assert events.frame["content"][1].endswith('line 3, in handle 2024-03-01 is not a time: a wrapped line that '
                                               'starts like one')
    assert events.frame["time"].tolist() == list(pd.to_datetime(
        ["2024-03-01 10:00:00", "2024-03-01 10:00:01.250", "2024-03-01 10:00:02"], format="mixed"))
    with pytest.raises(ValueError, match=r"5 of 5 lines do not match the line format '<Date> <Time> <Pid> <Level> "):
        load_log_events(log, "hdfs")
    labels = tmp_path / "anomaly_label.csv"
    labels.write_text("BlockId,Label\nblk_1,Normal\nblk_42,Anomaly\n")
    assert read_session_labels(labels) == ["blk_42"]
    labels.write_text("BlockId,Label\nblk_1,maybe\n")
    with pytest.raises(ValueError, match="Received: 'maybe'"):
        read_session_labels(labels)


@pytest.mark.parametrize("log_format,message", [
    ("<Date> <Time> <Level>", "names the message <Content>"),
    ("<Level> <Content>", "names the time as <Timestamp>"),
    ("<Date><Time> <Content>", "needs text (at least a space) between two fields"),
    ("<Date> <Date> <Content>", "'Date' twice"),
    ("syslog", "or a line format of your raw log"),
])
def test_bad_line_formats_are_refused_in_one_line(tmp_path, atb, raw_bgl, log_format, message):
    root = tmp_path / "models"
    code, _, err = atb("train", "anomaly", "APP", "--data", raw_bgl, "--log-format", log_format, "--models-dir", root)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and _store_is_empty(root)


@pytest.fixture(scope="module")
def raw_store(tmp_path_factory, raw_bgl):
    """A LightGBM trained on the raw BGL lines in 20-event windows every 5 events, and what atb printed."""
    import contextlib
    import io

    root = tmp_path_factory.mktemp("raw_models")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["train", "anomaly", "BGL", "--data", str(raw_bgl), "--log-format", "bgl", "--model-type",
                     "lightgbm", "--window-by", "events", "--window", "20", "--step", "5", "--epochs", "20",
                     "--threshold", "0.5", "--models-dir", str(root)])
    assert code == 0
    return root, printed.getvalue()


def test_a_model_trained_on_raw_lines_serves_raw_lines_and_refuses_the_other_layout(tmp_path, atb, raw_bgl, raw_store):
    root, out = raw_store
    meta = json.loads(((root / "BGL" / "anomaly" / "latest").resolve() / "metadata.json").read_text())
    assert meta["metrics"]["threshold"] == 0.5 and meta["problem"]["threshold"] == 0.5  # --threshold 0.5
    assert "raw log: 2000 lines, 2000 events" in out and "Drain3 templates" in out
    schema = json.loads(((root / "BGL" / "anomaly" / "latest").resolve() / "feature_schema.json").read_text())
    assert schema["templates"]["templates"] > 50 and schema["templates"]["settings"]["masks"] == [r"core\.\d+"]
    later = tmp_path / "later.log"
    later.write_text("".join(raw_bgl.read_text().splitlines(keepends=True)[-200:]))
    code, out, err = atb("predict", "BGL", "--data", later, "--models-dir", root, "--json")
    assert code == 0 and len(json.loads(out)["windows"]) > 20, err
    code, _, err = atb("predict", "BGL", "--data", BGL, "--models-dir", root)
    assert code == 2 and "trained on a raw log" in err and len(err.strip().splitlines()) == 1


def test_without_drain3_a_raw_log_is_refused_in_one_line_naming_the_install(tmp_path, atb, raw_bgl, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "drain3", None)  # as if it were not installed
    root = tmp_path / "models"
    code, _, err = atb("train", "anomaly", "BGL", "--data", raw_bgl, "--log-format", "bgl", "--models-dir", root)
    assert code == 2 and "pip install 'atb-ml[logs]'" in err and len(err.strip().splitlines()) == 1
    assert _store_is_empty(root)



WRITER = """
import sys, time
lines = open(sys.argv[1]).read().splitlines(keepends=True)[1500:1900]
time.sleep(0.5)
with open(sys.argv[2], "a") as log:
    for start in range(0, len(lines), 50):
        log.writelines(lines[start:start + 50])
        log.flush()
        time.sleep(0.1)
"""


def test_follow_scores_lines_a_writer_appends_as_batch_predict_scores_the_same_file(tmp_path, atb, raw_bgl, raw_store):
    import subprocess
    import sys

    root, _ = raw_store
    log = tmp_path / "growing.log"
    log.write_text("")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(raw_bgl), str(log)])
    code, out, err = atb("predict", "BGL", "--data", log, "--follow", "--until-idle", "3", "--models-dir", root, "--json")
    writer.wait(timeout=60)
    assert code == 0, err
    flagged = [json.loads(line) for line in out.splitlines()]
    summary = err.strip().splitlines()[-1]
    # 400 lines; the newest event waits for a next line, so 399 events make windows 0..75 of 20 every 5
    assert summary.startswith("stopped (idle): 400 lines, 399 events, 76 windows scored, ") and "lines/s" in summary
    assert flagged and all(w["anomalous"] and w["top_lines"] for w in flagged)
    code, out, _ = atb("predict", "BGL", "--data", log, "--models-dir", root, "--json")
    batch = [w for w in json.loads(out)["windows"][:76] if w["anomalous"]]
    assert [(w["start"], w["end"]) for w in flagged] == [(w["start"], w["end"]) for w in batch]
    np.testing.assert_allclose([w["probability"] for w in flagged], [w["probability"] for w in batch], atol=1e-6)


def test_a_follower_starts_again_on_a_rotated_file_and_ends_cleanly_on_ctrl_c(tmp_path, raw_bgl, raw_store):
    from ml.training_pipeline.inference import StoredModel
    from ml.training_pipeline.problems.anomaly.follow import LogFollower

    root, _ = raw_store
    stored = StoredModel.load("BGL", models_dir=str(root))
    lines = raw_bgl.read_text().splitlines(keepends=True)
    log = tmp_path / "app.log"
    log.write_text("".join(lines[:30]))
    follower = LogFollower(stored.schema, log, lambda encoded: np.zeros(len(encoded["numeric"])), from_start=True)
    assert follower.poll() and follower.counts["events"] == 29
    log.write_text("".join(lines[100:110]))  # rotated: a shorter file with new lines
    follower.poll()
    assert follower.counts["restarts"] == 1 and follower.counts["lines"] == 40
    calls = []

    def sleep(seconds):
        calls.append(seconds)
        if len(calls) == 3:
            raise KeyboardInterrupt

    summary = follower.follow(lambda verdict: None, sleep=sleep)
    assert summary["stopped"] == "interrupted" and follower.handle.closed


@pytest.mark.parametrize("argv,message", [
    (["--follow"], "Accepted: --data FILE (a raw log)"),
    (["--until-idle", "5", "--data", "x.log"], "go with --follow"),
    (["--follow", "--data", "x.log", "--until-idle", "0"], "until_idle must be a number of seconds > 0"),
    (["--follow", "--data", "missing.log"], "Log file not found"),
])
def test_bad_follow_requests_are_refused_in_one_line(tmp_path, atb, raw_store, argv, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.log").write_text("")
    code, _, err = atb("predict", "BGL", "--models-dir", raw_store[0], *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_follow_refuses_a_model_trained_on_a_structured_csv(anomaly_store, atb, tmp_path):
    log = tmp_path / "x.log"
    log.write_text("")
    code, _, err = atb("predict", "BGL", "--data", log, "--follow", "--models-dir", anomaly_store)
    assert code == 2 and "trained on a structured CSV" in err


def test_an_encoder_stored_before_the_rule_features_encodes_what_its_model_reads(bgl):
    windowing = Windowing("events", 20)
    windows = windowing.windows(bgl.frame)
    encoder = LogEncoder.fit(bgl, windows[:50])
    assert encoder.encode(bgl, windows[:3])["flags"].shape[-1] == len(FLAG_FEATURES) == 9
    stored = {k: v for k, v in encoder.to_dict().items() if k != "flag_count"}  # as written before the change
    stored["aggregate_mean"], stored["aggregate_std"] = stored["aggregate_mean"][:9], stored["aggregate_std"][:9]
    encoded = LogEncoder.from_dict(stored).encode(bgl, windows[:3])
    assert encoded["flags"].shape[-1] == 8 and encoded["aggregates"].shape[-1] == 9
    # the severe flag marks FATAL lines; the aggregates carry its share
    fresh = encoder.encode(bgl, windows)
    severe = np.array([bgl.frame["level"].iloc[w].isin(["FATAL"]).any() for w in windows])
    assert (fresh["flags"][..., 8].max(axis=1) == severe).all()



def test_validation_blocks_spread_over_the_time_before_test_share_no_event_with_training(bgl):
    windows = Windowing("events", 20, step=5).windows(bgl.frame)
    times = bgl.frame["time"].to_numpy()
    parts, purged = chronological_parts(windows, times, (0.15, 0.15), validation_blocks=4)
    events = {name: set(np.concatenate([windows[i] for i in rows])) for name, rows in parts.items()}
    assert not events["train"] & events["validation"] and not (events["train"] | events["validation"]) & events["test"]
    starts = sorted(times[windows[i]].min() for i in parts["validation"])
    gaps = np.diff(np.asarray(starts, "datetime64[s]").astype(np.int64))
    assert (gaps > 3600).sum() >= 3  # four separate stretches, not one
    assert purged > chronological_parts(windows, times, (0.15, 0.15))[1]  # more borders, more purged windows


def test_reading_a_raw_log_reports_its_lines_and_drain3s_passes(raw_bgl, monkeypatch):
    from ml.training_pipeline.problems.anomaly import lines as raw_lines

    monkeypatch.setattr(raw_lines, "PROGRESS_EVERY", 500)
    said = []
    load_log_events(raw_bgl, "bgl", log=said.append)
    assert said[0].startswith("reading BGL_2k.log: lines: 2000/2000, elapsed ") and said[0].endswith("done")
    assert [line.split(":")[1].strip() for line in said[1:]] == ["mining templates, messages",
                                                                 "matching messages to the final templates"]
