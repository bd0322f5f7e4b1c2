"""Training-history and prediction plots written next to each stored model.

Every figure is laid out by Matplotlib's constrained layout and its titles are wrapped to the figure's width,
so no text is clipped (a test checks every text's box against the figure for each plot written here).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

PLOTTED_BARS = 300
NEAR_UNIFORM = 0.05
"""Attention whose weights all lie within 5% of their mean is called near-uniform on its panel."""


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    return plt


def _figure(plt, *args, **kwargs):
    """``plt.subplots`` with constrained layout: titles, labels and colour bars get room instead of being clipped."""
    return plt.subplots(*args, layout="constrained", **kwargs)


def _wrapped(text: str, fig, size: float = 12.0) -> str:
    """``text`` broken into lines that fit the figure's width at ``size`` points (a title is centred over its axes,
    which are narrower than the figure: 80% of it, at about 0.6 em per character)."""
    characters = max(20, int(0.8 * fig.get_figwidth() * 72 / (0.6 * size)))
    return "\n".join(textwrap.wrap(text, characters)) or text


def _integer_ticks(axis) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def _save(fig, plt, path: Path, dpi: int = 90) -> None:
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def plot_history(history: dict[str, list[float]], path: Path, title: str) -> None:
    """Loss curves per epoch (or boosting round), one line per logged series."""
    plt = _pyplot()
    fig, ax = _figure(plt, figsize=(8, 4))
    # Keras logs "loss"/"val_loss"; LightGBM logs its metric ("val_l2", "val_binary_logloss")
    series = {k: v for k, v in history.items() if "loss" in k} or {k: v for k, v in history.items()
                                                                      if not k.startswith("phase")}
    for name, values in series.items():
        ax.plot(np.arange(1, len(values) + 1), [np.nan if v is None else v for v in values], label=name)
    phases = history.get("phase") or []
    labels = history.get("phase_label") or phases
    for epoch in range(1, len(phases)):  # curriculum: a dashed line where each phase begins
        if phases[epoch] != phases[epoch - 1]:
            ax.axvline(epoch + 0.5, color="grey", linestyle="--", linewidth=0.8)
            ax.annotate(f"phase {phases[epoch]}: {labels[epoch]}", (epoch + 0.6, 0.97), xycoords=("data", "axes fraction"),
                        fontsize=7, va="top")
    ax.set_xlabel("epoch")
    _integer_ticks(ax.xaxis)  # epochs and boosting rounds are whole numbers
    ax.set_ylabel("loss")
    ax.set_title(_wrapped(title, fig))
    ax.legend()
    _save(fig, plt, path)


def plot_predictions(time, actual, predicted, baseline, path: Path, title: str, ylabel: str) -> None:
    """The last :data:`PLOTTED_BARS` test bars: actual, model and baseline."""
    plt = _pyplot()
    sl = slice(-PLOTTED_BARS, None)
    fig, ax = _figure(plt, figsize=(10, 4))
    ax.plot(time[sl], actual[sl], label="actual", linewidth=1.2)
    ax.plot(time[sl], predicted[sl], label="model", linewidth=1.0)
    if baseline is not None:
        ax.plot(time[sl], baseline[sl], label="persistence", linewidth=0.8, alpha=0.7)
    ax.set_ylabel(ylabel)
    ax.set_title(_wrapped(title, fig))
    ax.legend()
    for label in ax.get_xticklabels():
        label.set_rotation(30)
        label.set_horizontalalignment("right")
    _save(fig, plt, path)


def plot_calibration(probability, actual, path: Path, title: str, bins: int = 10) -> None:
    """A classifier's reliability: the observed share of positives in each tenth of the forecasts (equal-count bins,
    since market forecasts crowd near 0.5), against the diagonal of perfect calibration and the base rate, above
    the histogram of the forecasts; a 0/1 series over time says nothing readable.
    """
    plt = _pyplot()
    probability = np.asarray(probability, np.float64).reshape(-1)
    actual = np.asarray(actual, np.float64).reshape(-1)
    order = np.argsort(probability, kind="stable")
    groups = [g for g in np.array_split(order, min(bins, len(order))) if len(g)]
    mean_predicted = np.array([probability[g].mean() for g in groups])
    observed = np.array([actual[g].mean() for g in groups])
    low, high = float(probability.min()), float(probability.max())
    margin = max(0.02, 0.1 * (high - low))
    view = (max(0.0, low - margin), min(1.0, high + margin))
    fig, (top, bottom) = _figure(plt, 2, 1, figsize=(6, 6), height_ratios=(3, 1), sharex=True)
    top.plot(view, view, color="grey", linestyle="--", linewidth=0.8, label="perfectly calibrated")
    top.plot(mean_predicted, observed, marker="o", label=f"model ({len(groups)} equal-count bins)")
    top.axhline(actual.mean(), color="tab:orange", linewidth=0.8, label=f"base rate {actual.mean():.3f}")
    top.set_ylabel("observed share of positives")
    top.legend(fontsize=8)
    top.set_title(_wrapped(title, fig))
    bottom.hist(probability, bins=40, range=view, color="tab:blue")
    bottom.set_xlabel("predicted probability")
    bottom.set_ylabel("forecasts")
    bottom.set_xlim(*view)
    _save(fig, plt, path)


def plot_group_metric(report: dict, path: Path, title: str) -> None:
    """Bar chart of the headline metric per group: the model beside each baseline, worst group marked."""
    plt = _pyplot()
    summary, groups = report["groups"], report["by_group"]
    metric = summary["metric"]
    sources = [k for k, v in next(iter(groups.values())).items() if isinstance(v, dict)]
    names = list(groups)
    x = np.arange(len(names))
    width = 0.8 / len(sources)
    fig, ax = _figure(plt, figsize=(max(6, 0.9 * len(names) + 2), 4))
    for i, source in enumerate(sources):
        ax.bar(x + i * width - 0.4 + width / 2, [groups[g][source].get(metric, np.nan) for g in names], width,
               label=source)
    ax.set_xticks(x, [f"{g}\n(worst)" if g == summary["worst"] else g for g in names], fontsize=8)
    ax.set_ylabel(metric)
    ax.set_title(_wrapped(f"{title}: {metric} per group", fig))
    ax.legend()
    _save(fig, plt, path)


def plot_variable_importance(importance: dict[str, dict[str, float]], path: Path, title: str) -> None:
    """Horizontal bars of the mean variable-selection weight, one panel per selection layer."""
    plt = _pyplot()
    fig, axes = _figure(plt, 1, len(importance), squeeze=False,
                        figsize=(5 * len(importance), max(3, 0.3 * max(map(len, importance.values())) + 1)))
    for ax, (layer, weights) in zip(axes[0], importance.items(), strict=True):
        names = list(weights)[::-1]
        ax.barh(names, [weights[n] for n in names])
        ax.set_title(f"{layer}", fontsize=9)
        ax.set_xlabel("mean selection weight")
        ax.tick_params(axis="y", labelsize=7)
    fig.suptitle(_wrapped(f"{title}: variable importance", fig))
    _save(fig, plt, path)


def plot_attention(maps: dict[str, np.ndarray], path: Path, title: str) -> None:
    """Heatmaps of the mean ``(query step, key step)`` attention, one panel per attention layer.

    The colour scale runs from 0 to the largest weight, so near-uniform attention looks uniform instead of a
    stretched pattern; each panel states the weights' range next to the uniform value ``1 / steps``.
    """
    plt = _pyplot()
    fig, axes = _figure(plt, 1, len(maps), figsize=(4.6 * len(maps), 4.4), squeeze=False)
    for ax, (layer, weights) in zip(axes[0], maps.items(), strict=True):
        weights = np.asarray(weights, np.float64)
        image = ax.imshow(weights, cmap="viridis", aspect="auto", vmin=0, vmax=float(weights.max()) or 1.0)
        spread = (weights.max() - weights.min()) / max(weights.mean(), 1e-12)
        note = "near-uniform" if spread < NEAR_UNIFORM else "weights"
        ax.set_title(f"{layer}\n{note} {weights.min():.4g}..{weights.max():.4g} (uniform {1 / weights.shape[-1]:.4g})",
                     fontsize=8)
        ax.set_xlabel("attended step")
        ax.set_ylabel("query step")
        _integer_ticks(ax.xaxis)
        _integer_ticks(ax.yaxis)
        fig.colorbar(image, ax=ax, fraction=0.046)
    fig.suptitle(_wrapped(f"{title}: attention (mean over windows)", fig))
    _save(fig, plt, path)


def plot_confusion_matrix(actual, predicted, path: Path, title: str, labels: tuple[str, str] = ("normal", "anomalous")
                          ) -> None:
    """A 2x2 confusion matrix (rows: actual, columns: predicted) with counts and row shares in each cell."""
    plt = _pyplot()
    actual, predicted = np.asarray(actual).astype(int).reshape(-1), np.asarray(predicted).astype(int).reshape(-1)
    counts = np.array([[np.sum((actual == a) & (predicted == p)) for p in (0, 1)] for a in (0, 1)])
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, ax = _figure(plt, figsize=(5.2, 4.4))
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for a in (0, 1):
        for p in (0, 1):
            ax.text(p, a, f"{counts[a, p]}\n{shares[a, p]:.0%}", ha="center", va="center",
                    color="white" if shares[a, p] > 0.5 else "black")
    ax.set_xticks([0, 1], [f"predicted\n{labels[0]}", f"predicted\n{labels[1]}"])
    ax.set_yticks([0, 1], [f"actual\n{labels[0]}", f"actual\n{labels[1]}"])
    ax.set_title(_wrapped(title, fig, 9), fontsize=9)
    _save(fig, plt, path, dpi=110)


def plot_comparison(rows: list[dict], path: Path, title: str) -> None:
    """Test RMSE per model (baselines hatched) beside training seconds: the architecture comparison at a glance."""
    plt = _pyplot()
    names = [r["model"] for r in rows]
    fig, (left, right) = _figure(plt, 1, 2, figsize=(11, 0.35 * len(rows) + 1.5), sharey=True)
    positions = np.arange(len(rows))
    baseline = [r["variant"] == "baseline" for r in rows]
    left.barh(positions, [r["rmse"] for r in rows], color=["lightgrey" if b else "tab:blue" for b in baseline],
              hatch=None, edgecolor="black", linewidth=0.3)
    left.set_yticks(positions, names)
    left.invert_yaxis()
    values = [r["rmse"] for r in rows]
    lowest = min(values)
    # the differences are small: zoom in on the close ones; a far-off bar (a poor baseline) is cut and labelled
    upper = max(v for v in values if v <= 1.5 * lowest) * 1.01
    left.set_xlim(lowest * 0.98, upper)
    for position, value in zip(positions, values, strict=True):
        if value > upper:
            left.annotate(f"{value:.4g} (off scale)", (upper, position), ha="right", va="center", fontsize=8)
    reference = next((r["rmse"] for r in rows if r["model"] == "persistence"), None)
    if reference is not None:
        left.axvline(reference, color="grey", linestyle="--", linewidth=0.8)
    left.set_xlabel("test RMSE of the next-bar log return (grey: naive baselines)")
    right.barh(positions, [r["train_s"] for r in rows], color="tab:orange")
    right.set_xlabel("training seconds")
    fig.suptitle(_wrapped(title, fig))
    _save(fig, plt, path, dpi=100)
