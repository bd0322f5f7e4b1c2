"""Shared fixtures: quiet TensorFlow, seeded runs, and the real data in ../shared/data."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

from pathlib import Path

import pandas as pd
import pytest

OPT_IN = Path(__file__).parent / "benchmark"
DEFAULT_MARKS = "not benchmark and not slow"  # pyproject's addopts
LONGEST_FIRST = (
    "test_every_command_line_of_the_readme_and_the_quickstart_runs[README.md]",
    "test_every_model_and_task_on_the_tiny_preset[tft-regression]",
    "test_a_real_search_resumes_and_its_best_trial_reproduces",
    "test_every_python_block_of_the_readme_and_the_quickstart_runs_as_pasted[README.md]",
)
"""The suite's longest tests (``--durations``), started first: a long test picked up last by a worker would run
alone at the end while the other cores idle (longest-first is the classic rule for spreading jobs on workers)."""


def pytest_collection_modifyitems(config, items):
    """Moves :data:`LONGEST_FIRST` to the front; every worker collects the same order, so xdist keeps it."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.name, len(rank)))  # stable: the rest keep their order


def pytest_configure(config):
    """Naming opt-in benchmark files runs them without ``-m``, as the user's guide does
    (``pytest tests/benchmark/test_model_architectures.py -v``); a plain ``pytest`` still deselects them.

    The default suite runs on every core (``-n auto`` in pyproject's addopts, pytest-xdist). Benchmarks measure
    speed, so they run in this one process, and so does a run with ``-s`` (its output goes to the terminal as
    it comes). This runs before xdist's own ``pytest_configure`` (which is ``trylast``) decides to distribute.
    """
    named = [Path(str(arg).split("::")[0]).resolve() for arg in config.args]
    benchmarks = bool(named) and all(OPT_IN in (p, *p.parents) for p in named)
    if config.option.markexpr == DEFAULT_MARKS and benchmarks:
        config.option.markexpr = ""
    selects_benchmarks = "benchmark" in config.option.markexpr and "not benchmark" not in config.option.markexpr
    if benchmarks or selects_benchmarks or config.option.capture == "no":
        if hasattr(config.option, "dist"):  # pytest-xdist is installed
            config.option.dist, config.option.tx, config.option.numprocesses = "no", [], 0


@pytest.fixture(scope="session")
def btc_hourly() -> pd.DataFrame:
    """The real bundled BTCUSDT 1h klines (24,631 rows), indexed by UTC open time."""
    from ml.data import bundled_sample_path

    frame = pd.read_csv(bundled_sample_path("BTCUSDT"))
    frame.index = pd.to_datetime(frame.pop("time"), unit="ms", utc=True)
    return frame


@pytest.fixture
def atb(capsys):
    """The ``atb`` command run in-process: ``code, out, err = atb("train", "model", "BTCUSDT", ...)``."""
    from ml.cli import main

    def run(*argv):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run
