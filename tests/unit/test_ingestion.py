"""Loading OHLCV: bundled sample, both file layouts, resampling, filters and clear errors."""

from __future__ import annotations

import sys
import time
import types

import numpy as np
import pandas as pd
import pytest

from ml.training_pipeline.problems.price.ohlcv import BINANCE, GENERIC, DataError, load_ohlcv, resample_ohlcv


@pytest.fixture(scope="module")
def raw_klines():
    from ml.data import bundled_sample_path

    return pd.read_csv(bundled_sample_path()).iloc[-400:].reset_index(drop=True)


def test_bundled_sample_is_the_real_btc_series():
    data = load_ohlcv("btcusdt")
    assert data.layout == BINANCE and data.source == "bundled:BTCUSDT_1h.csv.gz"
    assert len(data.frame) == 24631 and list(data.frame.columns) == ["open", "high", "low", "close", "volume"]
    assert str(data.frame.index[0]) == "2019-09-08 17:00:00+00:00" and str(data.frame.index[-1]) == "2022-06-30 23:00:00+00:00"
    assert data.notes == ()


def test_unknown_symbol_without_data_is_explained():
    with pytest.raises(DataError, match="No bundled sample for symbol 'ETHUSDT'. Bundled: BTCUSDT; pass --data PATH"):
        load_ohlcv("ETHUSDT")


def test_binance_export_without_header(raw_klines, tmp_path):
    path = tmp_path / "klines.csv"
    raw_klines.to_csv(path, header=False, index=False)
    data = load_ohlcv("X", path)
    assert data.layout == BINANCE and len(data.frame) == 400
    np.testing.assert_array_equal(data.frame["close"].to_numpy(), raw_klines["close"].to_numpy())


def test_generic_csv_with_date_column_any_case_and_unnamed_index(raw_klines, tmp_path):
    generic = pd.DataFrame({
        "Date": pd.to_datetime(raw_klines["time"], unit="ms").dt.strftime("%Y-%m-%d %H:%M:%S"),
        "Open": raw_klines["open"], "HIGH": raw_klines["high"], "Low": raw_klines["low"],
        "Close": raw_klines["close"], "Volume": raw_klines["volume"],
    })
    path = tmp_path / "generic.csv"
    generic.to_csv(path)  # writes an unnamed index column
    data = load_ohlcv("X", path)
    assert data.layout == GENERIC and len(data.frame) == 400
    assert data.frame.index.tz is not None


def test_generic_parquet_with_datetime_index(raw_klines, tmp_path):
    frame = raw_klines[["open", "high", "low", "close", "volume"]].copy()
    frame.index = pd.to_datetime(raw_klines["time"], unit="ms", utc=True).rename("timestamp")
    path = tmp_path / "bars.parquet"
    frame.to_parquet(path)
    data = load_ohlcv("X", path)
    assert data.layout == GENERIC and len(data.frame) == 400


def test_resampling_to_4h_aggregates_complete_buckets_only(raw_klines):
    frame, _ = __import__("ml.training_pipeline.problems.price.ohlcv", fromlist=["x"]).normalize_ohlcv(raw_klines)
    four = resample_ohlcv(frame, "4h")
    first = four.index[0]
    bucket = frame[(frame.index >= first) & (frame.index < first + pd.Timedelta(hours=4))]
    assert len(bucket) == 4
    assert four.iloc[0].to_dict() == pytest.approx({"open": bucket["open"].iloc[0], "high": bucket["high"].max(),
                                                    "low": bucket["low"].min(), "close": bucket["close"].iloc[-1],
                                                    "volume": bucket["volume"].sum()})
    assert (four.index.hour % 4 == 0).all() and len(four) <= len(frame) // 4


def test_days_and_date_filters():
    data = load_ohlcv("BTCUSDT", days=10)
    assert len(data.frame) == 240
    data = load_ohlcv("BTCUSDT", start_date="2021-03-01", end_date="2021-03-02", timeframe="4h")
    assert len(data.frame) == 12 and str(data.frame.index[0]) == "2021-03-01 00:00:00+00:00"


def test_gaps_are_reported_not_repaired(raw_klines, tmp_path):
    path = tmp_path / "gappy.csv"
    raw_klines.drop(index=range(100, 103)).to_csv(path, index=False)
    data = load_ohlcv("X", path)
    assert len(data.frame) == 397
    assert data.notes == ("1 gap(s) in the data (3 missing 1h bars); left as they are",)


PRICES = ("open", "high", "low", "close")


def _write(frame, tmp_path, name="bad.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda f: f.drop(columns=["volume"]), r"Missing required column\(s\) \['volume'\]"),
        (lambda f: f.assign(close=f["close"].astype(object).where(f.index != 7, "abc")),
         r"Column 'close' has a non-numeric value at row 7: 'abc'"),
        (lambda f: f.assign(high=f["high"].where(f.index != 5, np.nan)), r"1 NaN/inf value\(s\); first in column 'high'"),
        (lambda f: f.iloc[[1, 0, *range(2, len(f))]], r"timestamps are not sorted: .* comes after"),
        (lambda f: pd.concat([f.iloc[:10], f.iloc[9:]]), r"1 duplicate timestamp\(s\)"),
        (lambda f: f.drop(columns=["time", "closetime"]), r"No timestamp column"),
        (lambda f: f.assign(low=-f["low"]), r"price <= 0"),
        (lambda f: f.drop(columns=["time", "closetime"]).reset_index().rename(columns={"index": ""}),
         r"Column 'unnamed: 0' holds small numbers \(max 399\) that look like a row index"),
        (lambda f: f.assign(**{c: f[c] * 1e300 for c in PRICES}), r"has open=.*e\+30\d at .* outside the accepted 1e-12"),
        (lambda f: f.assign(**{c: f[c] * 1e-300 for c in PRICES}), r"has open=.*e-29\d at .* outside the accepted"),
        (lambda f: f.assign(**{c: f[c].where(f.index != 200, 1e11) for c in ("high", "close")}),
         r"has a close of 1e\+11 at .* one bar earlier: a move of more than 1000x in one bar"),
        (lambda f: f.assign(time=f["time"].where(f.index >= 100, f["time"] // 1000)),
         r"Column 'time' mixes timestamp units: row 0 reads as seconds since 1970, row 100 \(\d+\) as milliseconds"),
        (lambda f: f.assign(time=f["time"].astype(object).where(f.index != 5, 10**20)),
         r"Column 'time' has a timestamp beyond the year 2262 at row 5: 100000000000000000000"),
        (lambda f: f.assign(time=f["time"].astype(object).where(f.index != 300, "abc")),
         r"Column 'time' has a value that is not a timestamp at row 300: 'abc'"),
        (lambda f: f.assign(close=f["close"].astype(object).where(f.index != 7, "x" * 500)),
         r"at row 7: 'x{50}.*\.\.\. \(502 characters\)$"),
    ],
)
def test_bad_files_get_one_clear_error(raw_klines, tmp_path, mutate, message):
    with pytest.raises(DataError, match=message):
        load_ohlcv("X", _write(mutate(raw_klines.copy()), tmp_path))


def test_missing_unreadable_and_coarse_inputs(raw_klines, tmp_path):
    with pytest.raises(DataError, match="Data file not found"):
        load_ohlcv("X", tmp_path / "nope.csv")
    with pytest.raises(DataError, match=r"The data folder holds no CSV or Parquet file \(.csv, .parquet"):
        load_ohlcv("X", tmp_path)  # a folder is a dataset of files; this one has none
    (tmp_path / "loop.csv").symlink_to(tmp_path / "loop.csv")
    with pytest.raises(DataError, match="Data path is a broken symbolic link or a link loop"):
        load_ohlcv("X", tmp_path / "loop.csv")
    garbage = tmp_path / "x.parquet"
    garbage.write_bytes(b"\x00garbage")
    with pytest.raises(DataError, match="Cannot read"):
        load_ohlcv("X", garbage)
    binary = tmp_path / "sparse.csv"
    binary.write_bytes(b"\x00" * 10_000_000)  # pandas would read it for minutes as one 'value' and quote it whole
    with pytest.raises(DataError, match=r"^'.*sparse.csv' is not CSV text: its first 4096 bytes hold NUL bytes"):
        load_ohlcv("X", binary)
    assert len(load_ohlcv("BTCUSDT", days=1_000_000_000).frame) == len(load_ohlcv("BTCUSDT").frame)
    with pytest.raises(DataError, match=r"Unknown timeframe '2h'. Accepted: 1m, 5m, 15m, 30m, 1h, 4h, 1d"):
        load_ohlcv("BTCUSDT", timeframe="2h")
    daily = load_ohlcv("BTCUSDT", timeframe="1d").frame.reset_index()
    path = tmp_path / "daily.csv"
    daily.to_csv(path, index=False)
    with pytest.raises(DataError, match="Cannot make 1h bars from coarser 1d data"):
        load_ohlcv("X", path, timeframe="1h")


def test_exchange_download_without_ccxt_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ccxt", None)  # import fails
    with pytest.raises(DataError, match=r"pip install 'atb-ml\[exchange\]'"):
        load_ohlcv("BTCUSDT", exchange="binance")


def test_exchange_download_offline_fails_fast(monkeypatch):
    class NetworkError(Exception):
        pass

    class FakeExchange:
        def __init__(self, options):
            assert options["timeout"] <= 10_000  # a request can never hang for long

        def fetch_ohlcv(self, *args, **kwargs):
            raise NetworkError("binance GET https://fapi.binance.com failed: Name or service not known")

    fake = types.SimpleNamespace(exchanges=["binance"], binance=FakeExchange)
    monkeypatch.setitem(sys.modules, "ccxt", fake)
    start = time.perf_counter()
    with pytest.raises(DataError, match=r"Download from binance failed \(NetworkError\)"):
        load_ohlcv("BTCUSDT", exchange="binance", days=5)
    assert time.perf_counter() - start < 5
    with pytest.raises(DataError, match="Unknown exchange 'nope'"):
        load_ohlcv("BTCUSDT", exchange="nope")


def _minute_klines(path, days: int = 3, seed: int = 0):
    """Binance-layout 1-minute klines (a random walk: no minute data is bundled), for the timeframe checks."""
    rng = np.random.default_rng(seed)
    n = days * 1440
    close = 30_000 * np.exp(np.cumsum(rng.normal(0, 5e-4, n)))
    opened = np.concatenate([[close[0]], close[:-1]])
    spread = np.abs(rng.normal(0, 3e-4, n)) * close
    start = int(pd.Timestamp("2022-01-01", tz="UTC").timestamp() * 1000)
    pd.DataFrame({"open_time": start + 60_000 * np.arange(n), "open": opened,
                  "high": np.maximum(opened, close) + spread, "low": np.minimum(opened, close) - spread,
                  "close": close, "volume": rng.gamma(2.0, 5.0, n)}).to_csv(path, index=False)
    return path


def test_minute_timeframes_read_minute_bars_and_resample_them_by_the_exchanges_names(tmp_path):
    from ml.training_pipeline.common.markets import bars_per_day
    from ml.training_pipeline.problems.price.features import calendar_window

    path = _minute_klines(tmp_path / "SYN_1m.csv")
    assert len(load_ohlcv("SYN", path, timeframe="1m").frame) == 3 * 1440  # not resampled to hours any more
    five = load_ohlcv("SYN", path, timeframe="5m").frame
    assert len(five) == 3 * 288 and (five.index.minute % 5 == 0).all()
    assert len(load_ohlcv("SYN", path, timeframe="1h").frame) == 72
    assert [bars_per_day(t) for t in ("1m", "5m", "15m", "30m", "1h", "4h", "1d")] == [1440, 288, 96, 48, 24, 6, 1]
    ends = pd.DatetimeIndex(["2022-01-01 10:00"])
    hours = calendar_window(ends, length=2, horizon=1, timeframe="5m")[0, :, 0]  # the hour's sine: 5 minutes apart
    assert hours[1] != hours[0] and abs(hours[1] - hours[0]) < 0.05
    with pytest.raises(DataError, match="Cannot make 1m bars from coarser 1h data"):
        load_ohlcv("BTCUSDT", timeframe="1m")
    # what the command line trains on without --timeframe: the bars the data holds (resampled only when asked)
    from ml.data import bundled_sample_path
    from ml.training_pipeline.problems.price.ohlcv import timeframe_of

    five_path = tmp_path / "SYN_5m.parquet"
    pd.read_csv(path).iloc[::5].to_parquet(five_path)
    assert [timeframe_of(p) for p in (path, five_path, bundled_sample_path("BTCUSDT"))] == ["1m", "5m", "1h"]
    assert timeframe_of(tmp_path / "missing.csv") == "1h"  # loading it says what is wrong


def test_atb_trains_on_the_bars_the_data_holds_and_resamples_only_when_asked(tmp_path, atb):
    path = _minute_klines(tmp_path / "SYN_1m.csv", days=4)
    five = tmp_path / "SYN_5m.csv"
    pd.read_csv(path).iloc[::5].to_csv(five, index=False)
    code, out, err = atb("train", "model", "SYN", "--data", five, "--model-type", "lightgbm", "--epochs", "3",
                         "--models-dir", tmp_path / "models")
    assert code == 0, err
    assert "data: 1152 5m bars from" in out and "resampled" not in out
    code, out, err = atb("train", "model", "SYN", "--data", path, "--timeframe", "15m", "--model-type", "lightgbm",
                         "--epochs", "3", "--variant", "tiny", "--sequence-length", "24", "--models-dir", tmp_path / "models")
    assert code == 0, err
    assert "resampled 5760 1m bars to 384 complete 15m bars" in out


def test_a_folder_or_a_glob_of_monthly_files_reads_as_the_one_file_would(raw_klines, tmp_path, atb):
    """Binance publishes klines as monthly files: a folder or a pattern of them is one series, joined in time."""
    whole = tmp_path / "whole.csv"
    raw_klines.to_csv(whole, index=False)
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    raw_klines.iloc[:150].to_csv(dumps / "BTCUSDT-1h-2022-05.csv", index=False)
    raw_klines.iloc[150:].to_parquet(dumps / "BTCUSDT-1h-2022-06.parquet")
    (dumps / "CHECKSUMS.txt").write_text("not data")  # a folder's other files are left out
    expected = load_ohlcv("BTCUSDT", whole)
    for source in (dumps, str(dumps / "BTCUSDT-1h-*")):
        joined = load_ohlcv("BTCUSDT", source)
        pd.testing.assert_frame_equal(joined.frame, expected.frame)
        assert joined.notes[0] == "2 files joined (BTCUSDT-1h-2022-05.csv .. BTCUSDT-1h-2022-06.parquet)"
    raw_klines.iloc[140:160].to_csv(dumps / "BTCUSDT-1h-copy.csv", index=False)  # the same bars twice
    with pytest.raises(DataError, match="BTCUSDT-1h-2022-05.csv and BTCUSDT-1h-copy.csv overlap: .* Remove one copy"):
        load_ohlcv("BTCUSDT", dumps)
    with pytest.raises(DataError, match="No data file matches the pattern. Received: '.*/nothing-\\*.csv'"):
        load_ohlcv("BTCUSDT", str(tmp_path / "nothing-*.csv"))
    code, _, err = atb("train", "model", "BTCUSDT", "--model-type", "tcn", "--data", f"BTCUSDT={whole}",
                       "--data", f"BTCUSDT={dumps}", "--models-dir", tmp_path / "models")
    assert code != 0 and len(err.strip().splitlines()) == 1 and "Accepted: one file, folder or glob pattern" in err
    assert not (tmp_path / "models").exists()


def test_dates_are_applied_while_parquet_files_are_read(raw_klines, tmp_path, monkeypatch):
    """--days / --start-date / --end-date read the time columns first, then only the row groups (and files) that
    hold the bars kept: the same bars as filtering the whole series, and the rest never read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ml.training_pipeline.problems.price import ohlcv

    whole = tmp_path / "whole.csv"
    raw_klines.to_csv(whole, index=False)
    dumps = tmp_path / "dumps"
    dumps.mkdir()
    for number, part in enumerate((raw_klines.iloc[:300], raw_klines.iloc[300:])):
        pq.write_table(pa.Table.from_pandas(part.reset_index(drop=True)), dumps / f"part{number}.parquet",
                       row_group_size=50)
    read = []
    original = ohlcv._read_parquet
    monkeypatch.setattr(ohlcv, "_read_parquet", lambda path, covariates, rows=None: (
        read.append((path.name, rows)), original(path, covariates, rows))[1])
    for dates in ({"days": 5}, {"start_date": "2022-06-20", "end_date": "2022-06-22"}, {"days": 2, "end_date": "2022-06-25"}):
        read.clear()
        expected = load_ohlcv("BTCUSDT", whole, **dates).frame
        pd.testing.assert_frame_equal(load_ohlcv("BTCUSDT", dumps, **dates).frame, expected)
        assert sum(stop - first for _, (first, stop) in read) == len(expected) < len(raw_klines) / 2, read
    read.clear()
    load_ohlcv("BTCUSDT", dumps, days=3)
    assert [name for name, _ in read] == ["part1.parquet"]  # the first file holds none of the last 3 days
    with pytest.raises(DataError, match="No bars left after the date filter"):
        load_ohlcv("BTCUSDT", dumps, start_date="2031-01-01")
