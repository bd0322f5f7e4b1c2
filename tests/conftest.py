"""Shared fixtures: quiet TensorFlow, seeded runs, and the real data in ../shared/data."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pandas as pd
import pytest


@pytest.fixture(scope="session")
def btc_hourly() -> pd.DataFrame:
    """The real bundled BTCUSDT 1h klines (24,631 rows), indexed by UTC open time."""
    from ml.data import bundled_sample_path

    frame = pd.read_csv(bundled_sample_path("BTCUSDT"))
    frame.index = pd.to_datetime(frame.pop("time"), unit="ms", utc=True)
    return frame
