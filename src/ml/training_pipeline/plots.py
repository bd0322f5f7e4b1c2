"""Training-history and prediction plots written next to each stored model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

PLOTTED_BARS = 300


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    return plt


def plot_history(history: dict[str, list[float]], path: Path, title: str) -> None:
    """Loss curves per epoch (or boosting round), one line per logged series."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    # Keras logs "loss"/"val_loss"; LightGBM logs its metric ("val_l2", "val_binary_logloss")
    series = {k: v for k, v in history.items() if "loss" in k} or dict(history)
    for name, values in series.items():
        ax.plot(np.arange(1, len(values) + 1), values, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_predictions(time, actual, predicted, baseline, path: Path, title: str, ylabel: str) -> None:
    """The last :data:`PLOTTED_BARS` test bars: actual, model and baseline."""
    plt = _pyplot()
    sl = slice(-PLOTTED_BARS, None)
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(time[sl], actual[sl], label="actual", linewidth=1.2)
    ax.plot(time[sl], predicted[sl], label="model", linewidth=1.0)
    if baseline is not None:
        ax.plot(time[sl], baseline[sl], label="persistence", linewidth=0.8, alpha=0.7)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
