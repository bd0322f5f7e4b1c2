"""Label diagnostics: does this label carry a signal the features can learn, before any deep model is trained?

A model that "learns nothing" is often a label with no signal: a direction label on noise,
a label column that was shuffled, or one joined to the wrong rows. :func:`diagnose_labels`
answers from the data alone, on a chronological held-out part:

1. the class shares and the label's entropy against its maximum (``log2(classes)`` bits);
2. the features most related to the label on the training part (mutual information and, for
   a binary label, correlation);
3. three forecasters scored by held-out log loss: the training class prior, a tiny model
   (standardised logistic regression) and LightGBM (early-stopped on the training part's end);
4. a verdict: ``usable_signal`` is true when the tiny model or LightGBM beats the prior's
   held-out log loss with the lower end of a block-bootstrap 95% interval above zero
   (each of the two tested at 97.5%, so together at 95%), otherwise false, with the reason.

Entry points: :func:`diagnose_labels` (a user's arrays), :func:`diagnose_price` (an OHLCV
target such as next-bar direction) and :func:`diagnose_log` (log windows). ``atb diagnose``
calls them.

Example:
    >>> report = diagnose_labels(x, y, feature_names=names)  # doctest: +SKIP
    >>> report.usable_signal, report.reason  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.training_pipeline.common.metrics import DEFAULT_COST_BPS, trading_verdict
from ml.training_pipeline.problems import get_problem
from ml.training_pipeline.problems.anomaly.formats import load_log_events
from ml.training_pipeline.problems.anomaly.windows import AGGREGATE_FEATURES, LogEncoder, Windowing, window_labels
from ml.training_pipeline.problems.price.features import build_features
from ml.training_pipeline.problems.price.ohlcv import load_ohlcv

HOLDOUT = 0.3
BOOTSTRAP = 1000


@dataclass(frozen=True)
class LabelDiagnosis:
    """What :func:`diagnose_labels` found (``to_dict`` for ``--json``).

    Attributes:
        rows, train_rows, holdout_rows: rows in all, in the training part, in the held-out part.
        class_shares: share of each class over all rows (``{"0": 0.88, "1": 0.12}``).
        entropy_bits, max_entropy_bits: the label's entropy and its maximum, ``log2(classes)``.
        top_features: ``[{"feature", "mutual_information", "correlation"}]``, most informative first.
        forecasters: ``{name: {"train_log_loss", "holdout_log_loss", "holdout_roc_auc"}}``.
        gain: ``{name: {"log_loss_gain", "low", "high"}}``: the prior's held-out log loss minus the model's,
            with its 95% block-bootstrap interval.
        usable_signal: the verdict.
        reason: one plain sentence behind the verdict.
        notes: other things worth knowing (a near-constant label, held-out better than train...).
        source: what was diagnosed.
    """

    rows: int
    train_rows: int
    holdout_rows: int
    class_shares: dict[str, float]
    entropy_bits: float
    max_entropy_bits: float
    top_features: list[dict[str, Any]]
    forecasters: dict[str, dict[str, float]]
    gain: dict[str, dict[str, float]]
    usable_signal: bool
    reason: str
    notes: list[str]
    source: str = "arrays"
    trading: dict[str, Any] | None = None
    """Price labels: the long/short rule on the best forecaster's held-out score (:func:`trading_verdict`)."""

    @property
    def tradable(self) -> bool | None:
        """Whether the signal survives the stated trading cost (``None``: not a price label)."""
        return None if self.trading is None else bool(self.trading["tradable"])

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tradable": self.tradable}

    def text(self) -> str:
        """The report as a few readable lines."""
        shares = ", ".join(f"{k}: {v:.1%}" for k, v in self.class_shares.items())
        lines = [f"label diagnostics of {self.source}: {self.rows} rows ({self.train_rows} train, {self.holdout_rows} "
                 "held out, chronological)",
                 f"classes    {shares}; entropy {self.entropy_bits:.3f} of {self.max_entropy_bits:.3f} bits "
                 f"({self.entropy_bits / self.max_entropy_bits:.0%} of the maximum)",
                 "features   most related to the label on the training part (mutual information, correlation):"]
        lines += [f"           {f['feature'][:32]:<34}{f['mutual_information']:.4f}  {f['correlation']:+.3f}"
                  for f in self.top_features]
        lines.append(f"{'':<11}{'forecaster':<22}{'train log loss':>15}{'held-out log loss':>19}{'held-out AUC':>14}"
                     f"{'gain vs prior [95% CI]':>30}")
        for name, scores in self.forecasters.items():
            gain = self.gain.get(name)
            gain_text = f"{gain['log_loss_gain']:+.4f} [{gain['low']:+.4f}, {gain['high']:+.4f}]" if gain else "-"
            lines.append(f"{'':<11}{name:<22}{scores['train_log_loss']:>15.4f}{scores['holdout_log_loss']:>19.4f}"
                         f"{scores['holdout_roc_auc']:>14.4f}{gain_text:>30}")
        lines.append(f"verdict    usable_signal: {str(self.usable_signal).lower()}: {self.reason}")
        if self.trading is not None:
            t = self.trading
            lines.append(f"trading    long/short on the {t['forecaster']}'s held-out score, {t['trades']} position changes "
                         f"over {t['periods']} periods of {t['horizon_bars']} bar(s): gross {t['gross_return']:+.4f} log "
                         f"return, break-even cost {t['break_even_bps']:.2f} bps per unit traded; score vs signed next "
                         f"return: correlation {t['correlation']:+.4f}")
            lines.append(f"verdict    tradable at {t['cost_bps']:g} bps: {str(t['tradable']).lower()}: {t['sentence']}")
        lines += [f"note       {note}" for note in self.notes]
        return "\n".join(lines)


def _log_loss_rows(probabilities: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-row log loss (natural log) of class probabilities ``(rows, classes)``."""
    return -np.log(np.clip(probabilities[np.arange(len(y)), y], 1e-12, 1.0))


def _auc(probabilities: np.ndarray, y: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if len(np.unique(y)) < 2:
        return float("nan")
    if probabilities.shape[1] == 2:
        return float(roc_auc_score(y, probabilities[:, 1]))
    present = np.unique(y)
    scores = probabilities[:, present] / probabilities[:, present].sum(axis=1, keepdims=True)
    return float(roc_auc_score(y, scores, multi_class="ovr", labels=present)) if len(present) > 2 else float("nan")


def _block_bootstrap(differences: np.ndarray, seed: int, level: float) -> tuple[float, float]:
    """A moving-block bootstrap interval of the mean (blocks of ~sqrt(n) rows keep serial correlation)."""
    n = len(differences)
    block = max(1, int(round(np.sqrt(n))))
    starts_per_sample = int(np.ceil(n / block))
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n - block + 1, size=(BOOTSTRAP, starts_per_sample))
    index = (starts[..., None] + np.arange(block)).reshape(BOOTSTRAP, -1)[:, :n]
    means = differences[index].mean(axis=1)
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def _features_table(x: np.ndarray, y: np.ndarray, names: Sequence[str], seed: int, top: int) -> list[dict[str, Any]]:
    from sklearn.feature_selection import mutual_info_classif

    information = mutual_info_classif(x, y, random_state=seed)
    spread = x.std(axis=0)
    centred = (x - x.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    target = (y - y.mean()) / (y.std() or 1.0)
    correlation = (centred * target[:, None]).mean(axis=0) if len(np.unique(y)) == 2 else np.full(x.shape[1], np.nan)
    order = np.argsort(-information)[:top]
    return [{"feature": str(names[i]), "mutual_information": float(information[i]), "correlation": float(correlation[i])}
            for i in order]


MAX_CLASSES = 100
"""The most classes :func:`diagnose_labels` takes (more is a continuous value, or an id, given as a label)."""


def diagnose_labels(x: Any, y: Any, feature_names: Sequence[str] | None = None, *, holdout: float = HOLDOUT,
                    seed: int = 42, top: int = 10, source: str = "arrays") -> LabelDiagnosis:
    """Is there a learnable signal in ``y`` given ``x``? Rows must be in time order (the last ``holdout`` share is held
    out); see :func:`_diagnose` for the arguments.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(2000, 3))
        >>> diagnose_labels(x, (x[:, 0] > 0).astype(int)).usable_signal
        True
        >>> diagnose_labels(x, rng.integers(0, 2, 2000)).usable_signal
        False
    """
    return _diagnose(x, y, feature_names, holdout=holdout, seed=seed, top=top, source=source)[0]


def _diagnose(x: Any, y: Any, feature_names: Sequence[str] | None = None, *, holdout: float = HOLDOUT,
              seed: int = 42, top: int = 10, source: str = "arrays") -> tuple[LabelDiagnosis, str, np.ndarray]:
    """:func:`diagnose_labels`, and the best forecaster's name and held-out probabilities.

    Args:
        x: ``(rows, features)`` numbers (higher-dimensional rows are flattened).
        y: one class label per row (0/1, or class ids / names for several classes).
        feature_names: a name per column (default ``f0, f1...``).
        holdout: share of the last rows held out (0.1 .. 0.5).
        seed: for the models and the bootstrap.
        top: how many features to list.
        source: what the data are (for the report).

    Raises:
        ValueError: mismatched rows, non-finite features, one class only, too few rows.
    """
    import lightgbm
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(x, np.float64)
    x = x.reshape(len(x), -1) if x.ndim != 2 else x
    labels = np.asarray(y).reshape(-1)
    if len(labels) != len(x):
        raise ValueError(f"x and y must have the same rows. Received: {len(x)} and {len(labels)}")
    if not len(x):
        raise ValueError(f"x and y have no rows. Received: x of shape {x.shape}; accepted: >= 80 rows in time order")
    missing = np.asarray(pd.isna(labels), bool)
    if missing.any():
        raise ValueError(f"y has {int(missing.sum())} missing label(s) (NaN/None), first at row {int(np.argmax(missing))}. "
                         "Accepted: a class label on every row (drop the unlabelled rows first)")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"x contains NaN or inf. Received {int((~np.isfinite(x)).sum())} non-finite values")
    if not isinstance(holdout, float) or not 0.1 <= holdout <= 0.5:
        raise ValueError(f"holdout must be a float in [0.1, 0.5]. Received: holdout={holdout!r}")
    classes, codes = np.unique(labels, return_inverse=True)
    most = min(MAX_CLASSES, max(2, len(labels) // 10))
    if len(classes) > most:
        raise ValueError(f"y has {len(classes)} distinct values in {len(labels)} rows: diagnose_labels needs class labels "
                         f"(here at most {most} classes, >= 10 rows per class on average); bin a continuous target first")
    if len(classes) < 2:
        raise ValueError(f"The label has one class only ({classes[0]!r} in all {len(labels)} rows): nothing to learn. "
                         "Accepted: a label with >= 2 classes")
    names = list(feature_names) if feature_names is not None else [f"f{i}" for i in range(x.shape[1])]
    if len(names) != x.shape[1]:
        raise ValueError(f"feature_names must name every column ({x.shape[1]}). Received: {len(names)} names")
    n_hold = int(round(len(x) * holdout))
    n_train = len(x) - n_hold
    if n_train < 50 or n_hold < 30:
        raise ValueError(f"Too few rows to diagnose: {len(x)} rows give {n_train} train / {n_hold} held out; "
                         "accepted: >= 50 train and >= 30 held-out rows")
    train_x, hold_x, train_y, hold_y = x[:n_train], x[n_train:], codes[:n_train], codes[n_train:]
    k = len(classes)
    present = np.unique(train_y)
    if len(present) < 2:
        raise ValueError(f"The training part holds one class only ({classes[present[0]]!r}). Accepted: a training part "
                         "with >= 2 classes (more rows, or another period)")
    shares = np.bincount(codes, minlength=k) / len(codes)
    entropy = float(-(shares[shares > 0] * np.log2(shares[shares > 0])).sum())

    def full(probabilities: np.ndarray, seen: np.ndarray) -> np.ndarray:
        """Probabilities over all k classes (a class absent from training gets ~0)."""
        out = np.full((len(probabilities), k), 1e-6)
        out[:, seen] = probabilities
        return out / out.sum(axis=1, keepdims=True)

    prior = np.bincount(train_y, minlength=k) / n_train
    forecasts = {"prior": (np.tile(prior, (n_train, 1)), np.tile(prior, (n_hold, 1)))}
    tiny = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    tiny.fit(train_x, train_y)
    forecasts["tiny model (logistic)"] = (full(tiny.predict_proba(train_x), tiny.classes_),
                                          full(tiny.predict_proba(hold_x), tiny.classes_))
    inner = int(n_train * 0.8)  # LightGBM early-stops on the training part's last fifth, never on held-out rows
    boosted = lightgbm.LGBMClassifier(n_estimators=500, learning_rate=0.03, num_leaves=15, min_child_samples=20,
                                      subsample=0.8, subsample_freq=1, colsample_bytree=0.8, reg_lambda=1.0,
                                      random_state=seed, deterministic=True, force_col_wise=True, n_jobs=2, verbose=-1)
    if len(np.unique(train_y[:inner])) == len(present) and len(np.unique(train_y[inner:])) > 1:
        boosted.fit(train_x[:inner], train_y[:inner], eval_X=(train_x[inner:],), eval_y=(train_y[inner:],),
                    callbacks=[lightgbm.early_stopping(50, verbose=False)])
    else:
        boosted.set_params(n_estimators=100).fit(train_x, train_y)
    forecasts["lightgbm"] = (full(boosted.predict_proba(train_x), boosted.classes_),
                             full(boosted.predict_proba(hold_x), boosted.classes_))

    scores, gains, losses = {}, {}, {}
    for name, (train_p, hold_p) in forecasts.items():
        losses[name] = _log_loss_rows(hold_p, hold_y)
        scores[name] = {"train_log_loss": float(_log_loss_rows(train_p, train_y).mean()),
                        "holdout_log_loss": float(losses[name].mean()), "holdout_roc_auc": _auc(hold_p, hold_y)}
    for name in ("tiny model (logistic)", "lightgbm"):
        low, high = _block_bootstrap(losses["prior"] - losses[name], seed, level=0.975)
        gains[name] = {"log_loss_gain": float((losses["prior"] - losses[name]).mean()), "low": low, "high": high}
    best = max(gains, key=lambda name: gains[name]["low"])
    usable = gains[best]["low"] > 0
    if usable:
        reason = (f"the {best} lowers the held-out log loss by {gains[best]['log_loss_gain']:.4f} nats per row vs the "
                  f"class prior (95% interval {gains[best]['low']:+.4f} .. {gains[best]['high']:+.4f}, above 0), "
                  f"held-out AUC {scores[best]['holdout_roc_auc']:.3f}")
    else:
        top_gain = max(gains, key=lambda name: gains[name]["log_loss_gain"])
        reason = (f"neither the tiny model nor LightGBM beats the class prior on held-out rows: the best log-loss gain "
                  f"is {gains[top_gain]['log_loss_gain']:+.4f} ({top_gain}; 95% interval {gains[top_gain]['low']:+.4f} "
                  f".. {gains[top_gain]['high']:+.4f} reaches 0 or below); a deep model would only learn the prior")
    notes = []
    relative = gains[best]["log_loss_gain"] / max(scores["prior"]["holdout_log_loss"], 1e-12)
    if usable and relative < 0.01:
        notes.append(f"weak signal: the gain is {relative:.2%} of the prior's log loss; real, but an edge this small "
                     "is easily eaten by costs or a change of regime")
    if entropy / np.log2(k) < 0.2:
        notes.append(f"the label is nearly constant ({shares.max():.1%} in one class): accuracy flatters any model; "
                     "judge by F1, PR-AUC or log loss")
    for name in gains:
        if scores[name]["holdout_log_loss"] < scores[name]["train_log_loss"] and not usable:
            notes.append(f"the {name} scores better held out than on its training rows: the held-out period is easier "
                         "(or the class shares moved), not a sign of learning")
    hold_shares = np.bincount(hold_y, minlength=k) / n_hold
    if np.abs(hold_shares - prior).max() > 0.1:
        notes.append(f"class shares moved between train and held-out ({', '.join(f'{p:.1%}' for p in prior)} -> "
                     f"{', '.join(f'{p:.1%}' for p in hold_shares)})")
    diagnosis = LabelDiagnosis(
        rows=len(x), train_rows=n_train, holdout_rows=n_hold,
        class_shares={str(c): float(s) for c, s in zip(classes, shares, strict=True)},
        entropy_bits=entropy, max_entropy_bits=float(np.log2(k)),
        top_features=_features_table(train_x, train_y, names, seed, top), forecasters=scores, gain=gains,
        usable_signal=bool(usable), reason=reason, notes=notes, source=source)
    return diagnosis, best, forecasts[best][1]


def diagnose_price(symbol: str, target: str = "direction", data_path: str | Path | None = None, *,
                   timeframe: str = "1h", horizon: int | None = None, days: int | None = None,
                   seed: int = 42, cost_bps: float = DEFAULT_COST_BPS) -> LabelDiagnosis:
    """Diagnoses an OHLCV classification target (``direction``) from the features at each bar, and whether its
    signal pays for trading.

    The rows are the bars (after the features' warm-up, with a known outcome); the features are the
    library's per-bar features (the last row of each model window). ``usable_signal`` is statistical; the
    ``trading`` entry runs the long/short rule on the best forecaster's held-out ``P(up) - 0.5`` over
    non-overlapping periods of ``horizon`` bars (:func:`trading_verdict`) and ``tradable`` says whether it
    beats ``cost_bps`` per unit traded: a log-loss gain of a few thousandths of a nat rarely does.

    Example:
        >>> diagnose_price("BTCUSDT", "direction").usable_signal  # doctest: +SKIP
        False
    """
    problem = get_problem(target, horizon)
    if problem.task.estimator_type != "classifier":
        raise ValueError(f"Label diagnostics need a class label. Received: target={target!r} (task "
                         f"{problem.task.task!r}); accepted: direction")
    data = load_ohlcv(symbol, data_path, timeframe=timeframe, days=days)
    features = build_features(data.frame)
    label = problem.target(data.frame["close"], data.timeframe).reindex(features.index)
    if isinstance(cost_bps, bool) or not isinstance(cost_bps, (int, float)) or not 0 <= cost_bps < 1e4:
        raise ValueError(f"cost_bps must be a number in [0, 10000). Received: cost_bps={cost_bps!r}")
    known = label.notna().to_numpy()
    diagnosis, best, best_held_out = _diagnose(
        features.to_numpy(np.float64)[known], label.to_numpy()[known].astype(int), list(features.columns), seed=seed,
        source=f"{symbol} {target} (horizon {problem.horizon} bar(s), {data.timeframe}, {data.source})")
    close = data.frame["close"].reindex(features.index)
    next_return = np.log(close.shift(-problem.horizon) / close).to_numpy()[known][diagnosis.train_rows:]
    # one position per period of `horizon` bars, so the periods' returns do not overlap
    every = slice(None, None, problem.horizon)
    trading = trading_verdict(best_held_out[:, -1][every] - 0.5, next_return[every], cost_bps)
    trading.update(forecaster=best, horizon_bars=problem.horizon)
    if trading["tradable"]:
        sentence = (f"the rule clears {cost_bps:g} bps per unit traded (break-even {trading['break_even_bps']:.2f} bps) "
                    "on the held-out bars; check it on later data before trading it")
    elif diagnosis.usable_signal and trading["gross_return"] <= 0:
        sentence = ("the signal is statistically real but not tradable: its long/short rule loses even before costs "
                    f"(gross {trading['gross_return']:+.4f} log return on the held-out bars)")
    elif diagnosis.usable_signal:
        sentence = (f"the signal is statistically real but not tradable: it breaks even at "
                    f"{trading['break_even_bps']:.2f} bps per unit traded, below the {cost_bps:g} bps cost")
    else:
        sentence = f"no usable signal, and the rule loses after a {cost_bps:g} bps cost"
    trading["sentence"] = sentence
    return dataclasses.replace(diagnosis, trading=trading)


def diagnose_log(path: str | Path, log_format: str = "bgl", windowing=None, *, anomalous_sessions=None,
                 seed: int = 42) -> LabelDiagnosis:
    """Diagnoses log-window anomaly labels from each window's event counts and aggregates.

    The vocabulary and scaling come from the first 70% of the windows only (the training part).

    Example:
        >>> diagnose_log("BGL_2k.log_structured.csv", "bgl").usable_signal  # doctest: +SKIP
        True
    """
    windowing = windowing or Windowing()
    events = load_log_events(path, log_format, anomalous_sessions=anomalous_sessions)
    if not events.labelled:
        raise ValueError(f"{path} has no labels to diagnose. Accepted: a labelled log, or anomalous session ids")
    windows = windowing.windows(events.frame)
    first = np.array([events.frame["time"].iloc[w.min()] for w in windows])
    windows = [windows[i] for i in np.argsort(first, kind="stable")]
    n_train = len(windows) - int(round(len(windows) * HOLDOUT))
    encoder = LogEncoder.fit(events, windows[:n_train], windowing.max_events)
    encoded = encoder.encode(events, windows)
    x = np.concatenate([encoded["counts"], encoded["aggregates"]], axis=1)
    return diagnose_labels(x, window_labels(events, windows).astype(int),
                           [*encoder.count_names, *AGGREGATE_FEATURES], seed=seed,
                           source=f"{Path(path).name} ({log_format}, {windowing.describe()})")
