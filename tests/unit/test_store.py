"""The versioned store: atomic versions, latest pointer, nothing half-written."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from ml.training_pipeline.store.versions import ModelStore, StoreError

NOW = datetime(2024, 1, 31, 14, 5, tzinfo=UTC)


def _complete(folder, model_type="tcn", timeframe="1h", target="return"):
    for name in ("model.onnx", "feature_schema.json"):
        (folder / name).write_text("{}")
    (folder / "metadata.json").write_text(json.dumps(
        {"config": {"symbol": "BTCUSDT", "model_type": model_type, "timeframe": timeframe, "target": target}}))


def test_versions_are_numbered_and_latest_moves(tmp_path):
    store = ModelStore(tmp_path)
    for _ in range(2):
        with store.new_version("btcusdt", "return", now=NOW) as staging:
            _complete(staging)
    assert store.versions("BTCUSDT", "return") == ["2024-01-31_14h_v1", "2024-01-31_14h_v2"]
    assert store.latest("BTCUSDT", "return") == "2024-01-31_14h_v2"
    assert store.resolve("BTCUSDT", "return").name == "2024-01-31_14h_v2"
    assert store.last_committed.name == "2024-01-31_14h_v2"
    # hidden staging folders and the latest pointer are all that sits beside the versions
    assert sorted(p.name for p in (tmp_path / "BTCUSDT" / "return").iterdir()) == [
        "2024-01-31_14h_v1", "2024-01-31_14h_v2", "latest"]


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_a_failed_run_leaves_no_half_version(tmp_path, error):
    store = ModelStore(tmp_path)
    with pytest.raises(type(error)):
        with store.new_version("BTCUSDT", "return", now=NOW) as staging:
            (staging / "model.onnx").write_text("partial")
            raise error
    assert list(tmp_path.iterdir()) == []  # not even the empty folders it had made
    assert store.latest("BTCUSDT", "return") is None


def test_incomplete_versions_are_refused(tmp_path):
    store = ModelStore(tmp_path)
    with pytest.raises(StoreError, match=r"incomplete version: missing \['metadata.json', 'feature_schema.json'\]"):
        with store.new_version("BTCUSDT", "return", now=NOW) as staging:
            (staging / "model.onnx").write_text("x")
    assert store.versions("BTCUSDT", "return") == [] and list(tmp_path.iterdir()) == []


def test_resolve_errors_name_what_is_there(tmp_path):
    store = ModelStore(tmp_path)
    with pytest.raises(StoreError, match="No stored model for BTCUSDT"):
        store.resolve("BTCUSDT", "return")
    with store.new_version("BTCUSDT", "return", now=NOW) as staging:
        _complete(staging)
    with pytest.raises(StoreError, match=r"Version '2024-01-31_14h_v9' not found .* Stored: 2024-01-31_14h_v1"):
        store.resolve("BTCUSDT", "return", "2024-01-31_14h_v9")
    with pytest.raises(StoreError, match="Version names look like"):
        store.resolve("BTCUSDT", "return", "../../etc")
    version = tmp_path / "BTCUSDT" / "return" / "2024-01-31_14h_v1"
    (version / "metadata.json").write_text("{not json")
    with pytest.raises(StoreError, match="corrupt: metadata.json is not valid JSON"):
        store.resolve("BTCUSDT", "return")
    (version / "model.onnx").unlink()
    with pytest.raises(StoreError, match="incomplete or corrupt: missing a model file"):
        store.resolve("BTCUSDT", "return")


@pytest.mark.parametrize("symbol", ["../x", "BTC/USDT", "..", "", "a" * 40])
def test_symbols_with_path_characters_are_rejected(tmp_path, symbol):
    with pytest.raises(ValueError, match="symbol must be letters, digits"):
        ModelStore(tmp_path).target_dir(symbol, "return")
    assert list(tmp_path.iterdir()) == []


def test_listing_reads_metrics(tmp_path):
    store = ModelStore(tmp_path)
    with store.new_version("BTCUSDT", "direction", now=NOW) as staging:
        _complete(staging)
        (staging / "metadata.json").write_text(json.dumps({"config": {"symbol": "BTCUSDT", "model_type": "tcn", "variant": "default"},
                                                           "summary": {"accuracy": 0.51}}))
    rows = store.list()
    assert rows == [{"symbol": "BTCUSDT", "target": "direction", "version": "2024-01-31_14h_v1", "latest": True,
                     "model_type": "tcn", "variant": "default", "timeframe": None, "problem": {"type": "direction"},
                     "data": None, "metrics": {"accuracy": 0.51}}]


def test_any_problem_key_is_a_store_key_and_files_are_readable_by_others(tmp_path):
    store = ModelStore(tmp_path)
    with store.new_version("MY_DATA", "shop-sales", now=NOW) as staging:
        _complete(staging)
    version = store.resolve("my_data", "shop-sales")
    assert version.parent.name == "shop-sales" and store.problems("MY_DATA") == ["shop-sales"]
    assert version.stat().st_mode & 0o777 == 0o755
    assert {p.stat().st_mode & 0o777 for p in version.iterdir()} == {0o644}


@pytest.mark.parametrize("problem", ["../evil", "Return", "", "a/b", "x" * 33])
def test_problem_keys_cannot_escape_the_store(tmp_path, problem):
    with pytest.raises(ValueError, match=r"problem must be 1-32 lower-case letters.*Received: problem="):
        ModelStore(tmp_path).target_dir("BTCUSDT", problem)
    assert not any(tmp_path.iterdir())


def test_default_location_follows_the_environment(tmp_path, monkeypatch):
    from ml.training_pipeline.store.versions import default_models_dir

    monkeypatch.setenv("ATB_MODELS_DIR", str(tmp_path))
    assert default_models_dir() == tmp_path
    monkeypatch.delenv("ATB_MODELS_DIR")
    assert default_models_dir().parts[-3:] == ("src", "ml", "models")  # a checkout


def _stored(tmp_path):
    store = ModelStore(tmp_path)
    with store.new_version("BTCUSDT", "return", now=NOW) as staging:
        _complete(staging)
        (staging / "model.keras").write_bytes(bytes(range(256)) * 40)
    return store, store.last_committed


def test_a_stored_version_records_every_files_sha256(tmp_path):
    import hashlib

    store, version = _stored(tmp_path)
    files = json.loads((version / "metadata.json").read_text())["files"]
    assert sorted(files) == ["feature_schema.json", "model.keras", "model.onnx"]
    assert files["model.keras"] == {"sha256": hashlib.sha256((version / "model.keras").read_bytes()).hexdigest(),
                                    "bytes": 10240}
    # SHA256SUMS covers metadata.json too, in sha256sum's own format
    sums = dict(line.split("  ")[::-1] for line in (version / "SHA256SUMS").read_text().splitlines())
    assert sorted(sums) == ["feature_schema.json", "metadata.json", "model.keras", "model.onnx"]
    assert sums["metadata.json"] == hashlib.sha256((version / "metadata.json").read_bytes()).hexdigest()
    assert store.resolve("BTCUSDT", "return") == version
    [(name, problem, number, result)] = store.verify()
    assert (name, problem, number, result.ok, result.checked) == ("BTCUSDT", "return", version.name, True, 4)


@pytest.mark.parametrize(("file", "change", "reported"), [
    ("model.keras", lambda data: data[:100] + bytes([data[100] ^ 1]) + data[101:], "model.keras is modified"),
    ("model.keras", lambda data: data[:-1], "model.keras is truncated to 10239 of 10240 bytes"),
    ("metadata.json", lambda data: data.replace(b'"bytes": 10240', b'"bytes": 10241'), "metadata.json is modified"),
])
def test_a_file_changed_by_one_byte_is_refused_on_load(tmp_path, file, change, reported):
    store, version = _stored(tmp_path)
    path = version / file
    path.chmod(0o644)
    path.write_bytes(change(path.read_bytes()))
    with pytest.raises(StoreError, match=f"failed verification, refusing to load it: {reported}"):
        store.resolve("BTCUSDT", "return")
    with pytest.raises(StoreError, match="failed verification"):
        store.find("BTCUSDT")
    [(_, _, _, result)] = store.verify("BTCUSDT")
    assert not result.ok and reported in result.summary()


def test_missing_and_added_files_are_reported_and_old_versions_stay_loadable(tmp_path):
    store, version = _stored(tmp_path)
    (version / "model.onnx").unlink()
    (version / "extra.bin").write_bytes(b"x")
    problems = store.verify()[0][3].problems
    assert problems == ("model.onnx is missing", "extra.bin was added after the version was stored")
    # a version stored before checksums existed is loaded, and reported as unverifiable
    old = tmp_path / "ETHUSDT" / "return" / "2023-01-01_00h_v1"
    old.mkdir(parents=True)
    _complete(old)
    assert store.resolve("ETHUSDT", "return", "2023-01-01_00h_v1") == old
    result = store.verify("ETHUSDT")[0][3]
    assert result.ok and not result.sealed and "no checksums" in result.summary()


@pytest.mark.parametrize(("metadata", "reason"), [
    ("[]", "metadata.json is a JSON list, not an object"),
    ('{"config": null}', "no config object naming the model_type and symbol"),
    ('{"config": null, "problem": null, "data": null}', "no config object naming the model_type and symbol"),
    ('{"config": {"symbol": "BTCUSDT", "model_type": "tcn"}, "files": "x"}', "'files' is a JSON str, not an object"),
    ('{"config": {"symbol": "BTCUSDT", "model_type": "tcn"}, "problem": []}', "'problem' is a JSON list"),
    ("\u00b1\u00b2 not json", "metadata.json is not valid JSON"),
])
def test_a_malformed_version_is_listed_corrupt_and_never_blocks_an_intact_one(tmp_path, metadata, reason):
    store, intact = _stored(tmp_path)
    broken = intact.parent / "2024-01-31_14h_v2"
    broken.mkdir()
    _complete(broken)
    (broken / "metadata.json").write_text(metadata)
    rows = {row["version"]: row for row in store.list()}
    assert reason in rows[broken.name]["corrupt"] and "corrupt" not in rows[intact.name]
    assert store.find("BTCUSDT") == intact  # the intact one is served, the malformed one skipped
    with pytest.raises(StoreError, match=f"Version '{broken.name}' is corrupt: .*{reason[:20]}"):
        store.resolve("BTCUSDT", "return", broken.name)
    assert {row[2]: row[3].ok for row in store.verify()}[intact.name]  # checking a malformed version crashes nothing


def test_a_binary_checksum_list_is_reported_for_its_version_and_the_others_are_still_checked(tmp_path):
    store, intact = _stored(tmp_path)
    with store.new_version("BTCUSDT", "return", now=NOW) as staging:
        _complete(staging)
    garbage = store.last_committed / "SHA256SUMS"
    garbage.chmod(0o644)
    garbage.write_bytes(bytes(range(128, 256)))
    results = {row[2]: row[3] for row in store.verify()}
    assert results[intact.name].ok and results[garbage.parent.name].problems == ("SHA256SUMS is not a text checksum list",)


def test_a_version_name_is_never_served_as_another_model(tmp_path):
    store = ModelStore(tmp_path)
    for target, kind, bars in (("price", "tcn", "1h"), ("direction", "lightgbm", "4h")):
        with store.new_version("BTCUSDT", target, now=NOW) as staging:
            _complete(staging, kind, bars, target)
    name = "2024-01-31_14h_v1"  # the same name in both problem folders
    with pytest.raises(StoreError, match=rf"Version '{name}' names 2 models of BTCUSDT \(direction/{name}: direction 4h "
                                         rf"lightgbm; price/{name}: price 1h tcn\); choose one with --target"):
        store.find("BTCUSDT", name)
    assert store.find("BTCUSDT", name, target="direction").parent.name == "direction"
    with pytest.raises(StoreError, match=rf"Version '{name}' of BTCUSDT is a direction 4h lightgbm model, not "
                                         "model_type='attention_lstm'"):
        store.find("BTCUSDT", name, target="direction", model_type="attention_lstm")
    with pytest.raises(StoreError, match="is a price 1h tcn model, not timeframe='4h'"):
        store.find("BTCUSDT", name, target="return", timeframe="4h")


def test_walk_forward_says_several_models_are_stored_instead_of_none(tmp_path):
    from ml.training_pipeline.walk_forward import walk_forward_config

    store = ModelStore(tmp_path)
    for target, kind in (("price", "tcn"), ("volatility", "lightgbm")):
        with store.new_version("BTCUSDT", target, now=NOW) as staging:
            _complete(staging, kind, "1h", target)
    with pytest.raises(StoreError, match=r"BTCUSDT has 2 stored models .*; choose one with --target"):
        walk_forward_config("BTCUSDT", str(tmp_path))
