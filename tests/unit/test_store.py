"""The versioned store: atomic versions, latest pointer, nothing half-written."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from ml.training_pipeline.store import ModelStore, StoreError

NOW = datetime(2024, 1, 31, 14, 5, tzinfo=UTC)


def _complete(folder):
    for name in ("model.onnx", "metadata.json", "feature_schema.json"):
        (folder / name).write_text("{}")


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
        (staging / "metadata.json").write_text(json.dumps({"config": {"model_type": "tcn", "variant": "default"},
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
    from ml.training_pipeline.store import default_models_dir

    monkeypatch.setenv("ATB_MODELS_DIR", str(tmp_path))
    assert default_models_dir() == tmp_path
    monkeypatch.delenv("ATB_MODELS_DIR")
    assert default_models_dir().parts[-3:] == ("src", "ml", "models")  # a checkout
