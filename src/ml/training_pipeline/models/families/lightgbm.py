"""The LightGBM baseline: a gradient-boosted tree model on engineered window features.

It has the same contract as the neural families: ``create_model("lightgbm", ...)`` builds
it, :func:`~ml.training_pipeline.fitting.boosting.train_lightgbm_with_early_stopping` fits it, and
:func:`ml.training_pipeline.export.export_onnx` exports it with a parity check.
LightGBM is imported only when a model is built.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ml.training_pipeline.common.arguments import check_positive_int
from ml.training_pipeline.models.registry import ESTIMATOR, register_model
from ml.training_pipeline.models.tasks import TaskSpec, resolve_task

if TYPE_CHECKING:
    import pandas as pd

RECOMMENDED_HYPERPARAMETERS: dict[str, dict[str, dict[str, Any]]] = {
    "lightgbm": {
        "lightweight": {"n_estimators": 200, "num_leaves": 15, "learning_rate": 0.05, "max_depth": 4,
                        "min_child_samples": 20, "subsample": 0.8, "colsample_bytree": 0.8, "reg_lambda": 1.0, "random_state": 42},
        "default": {"n_estimators": 500, "num_leaves": 31, "learning_rate": 0.03, "max_depth": -1,
                    "min_child_samples": 20, "subsample": 0.8, "colsample_bytree": 0.8, "reg_lambda": 1.0, "random_state": 42},
        "deep": {"n_estimators": 1500, "num_leaves": 63, "learning_rate": 0.02, "max_depth": -1,
                 "min_child_samples": 10, "subsample": 0.8, "colsample_bytree": 0.7, "reg_lambda": 2.0,
                 "random_state": 42},
        "tiny": {"n_estimators": 20, "num_leaves": 4, "learning_rate": 0.1, "max_depth": 3,
                 "min_child_samples": 5, "subsample": 0.8, "colsample_bytree": 0.8, "reg_lambda": 1.0, "random_state": 42},
    }
}


def check_lightgbm_params(params: Mapping[str, Any]) -> None:
    """LightGBM sizes and rates, checked when the model is configured (LightGBM itself only complains at ``fit``).

    Example:
        >>> check_lightgbm_params({"n_estimators": -1})
        Traceback (most recent call last):
        ...
        ValueError: n_estimators must be an int >= 1. Received: n_estimators=-1
    """
    for name, minimum in (("n_estimators", 1), ("num_leaves", 2), ("min_child_samples", 1)):
        if name in params:
            check_positive_int(name, params[name], minimum)
    if "max_depth" in params and params["max_depth"] != -1:
        check_positive_int("max_depth", params["max_depth"])  # -1 means no limit
    for name in ("subsample", "colsample_bytree"):
        value = params.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1):
            raise ValueError(f"{name} must be a number in (0, 1]. Received: {name}={value!r}")
    for name in ("reg_lambda", "reg_alpha"):
        value = params.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise ValueError(f"{name} must be a number >= 0. Received: {name}={value!r}")


@register_model(
    "lightgbm",
    description="LightGBM gradient-boosted trees on lagged and rolling features (the tree baseline).",
    variants=RECOMMENDED_HYPERPARAMETERS["lightgbm"],
    aliases=("lgb", "lgbm"),
    kind=ESTIMATOR,
    shape_ndim=(1, 2),
    check_params=check_lightgbm_params,
)
def create_lightgbm_model(task: TaskSpec | str = "regression", n_features: int | None = None, **params: Any):
    """Builds an unfitted LightGBM estimator for the task.

    Args:
        task: ``"regression"``, ``"binary"`` or ``"multiclass"`` (or a resolved TaskSpec).
        n_features: expected number of input columns; checked at fit time when given.
        **params: LightGBM parameters (``n_estimators``, ``num_leaves``, ...), passed through.

    Returns:
        An ``LGBMRegressor`` or ``LGBMClassifier``.

    Example:
        >>> model = create_lightgbm_model("regression", n_estimators=100)  # doctest: +SKIP
    """
    import lightgbm

    spec = resolve_task(task) if isinstance(task, str) else task
    # Seeded and deterministic so the same data gives the same trees; bagging needs a frequency. Histograms by
    # column: the row-wise layout keeps a second copy of the binned rows (1.82M windows of 900 columns: peak 4.2 GB
    # row-wise, 2.6 GB by column; the same trees on the bundled data, and faster). Bin edges from 50,000 sampled
    # rows, not LightGBM's 200,000: its sample holds every sampled value of every column (200,000 x 900 doubles and
    # their indices, 2.2 GB); ~200 samples per bin of 255 still place the edges, and a training part under 50,000
    # rows (the bundled data's) is sampled whole either way.
    base = {"random_state": 42, "deterministic": True, "force_col_wise": True, "subsample_freq": 1, "verbose": -1,
            "subsample_for_bin": 50_000}
    if spec.estimator_type is None:
        raise ValueError(f"LightGBM learns regression, binary or multiclass targets. Received: task={spec.task!r}")
    estimator_cls = lightgbm.LGBMRegressor if spec.estimator_type == "regressor" else lightgbm.LGBMClassifier
    if spec.estimator_type == "regressor" and spec.units != 1:
        raise ValueError(f"LightGBM predicts one regression target. Received: output_dim={spec.units}")
    model = estimator_cls(**{**base, **params})
    # Remembered for the fit-time check; not a LightGBM parameter, so kept out of get_params.
    model._atb_expected_features = n_features
    return model


def engineer_features_for_lgb(
    price_df: pd.DataFrame,
    lags: Sequence[int] = (1, 2, 3, 5, 10, 24),
    windows: Sequence[int] = (6, 12, 24, 48),
) -> tuple[pd.DataFrame, list[str]]:
    """Tabular features for the tree baseline, each using only the current and past rows (the guide's interface).

    Features: simple and log returns, lagged returns, rolling mean / std of returns,
    close relative to its rolling mean, high-low range, and volume change (when a
    ``volume`` column exists). No feature at row ``t`` reads row ``t + 1`` or later. The first
    ``max(lags + windows)`` rows lack history: their features are NaN (``dropna()`` them).

    Args:
        price_df: a frame with a ``close`` column (``high``, ``low``, ``volume`` optional),
            sorted oldest first.
        lags: return lags in rows.
        windows: rolling window lengths in rows.

    Returns:
        ``(features_df, feature_names)``: the input's columns with the float feature columns added, on the
        input's index, and the names of the feature columns. For a forecast, the target is a *later* value
        (e.g. ``features_df["close"].pct_change().shift(-1)``); the guide's example fits the same bar's close.

    Example:
        >>> features_df, feature_names = engineer_features_for_lgb(prices)  # doctest: +SKIP
        >>> X = features_df[feature_names].dropna()  # doctest: +SKIP
    """
    import pandas as pd

    if not isinstance(price_df, pd.DataFrame):
        raise ValueError(f"price_df must be a pandas DataFrame. Received: {type(price_df).__name__}")
    columns = {c.lower(): c for c in price_df.columns}
    if "close" not in columns:
        raise ValueError(f"price_df needs a 'close' column. Received columns: {list(price_df.columns)}")
    lags = [check_positive_int("lag", lag) for lag in lags]
    windows = [check_positive_int("window", w, minimum=2) for w in windows]
    close = pd.to_numeric(price_df[columns["close"]], errors="raise").astype("float64")
    if (close <= 0).any():
        raise ValueError("price_df['close'] must be positive for returns. Received a value <= 0")

    returns = close.pct_change()
    features = {"return_1": returns, "log_return_1": np.log(close).diff()}
    for lag in lags:
        features[f"return_lag_{lag}"] = returns.shift(lag)
    for w in windows:
        features[f"return_mean_{w}"] = returns.rolling(w).mean()
        features[f"return_std_{w}"] = returns.rolling(w).std()
        features[f"close_to_mean_{w}"] = close / close.rolling(w).mean() - 1.0
    if "high" in columns and "low" in columns:
        features["range"] = (price_df[columns["high"]] - price_df[columns["low"]]) / close
    if "volume" in columns:
        volume = price_df[columns["volume"]].astype("float64")
        # log1p keeps zero-volume bars (exchange maintenance) finite.
        features["log_volume_change"] = np.log1p(volume).diff()
    frame = pd.DataFrame(features, index=price_df.index).astype("float64")
    warmup = max([*lags, *windows])
    frame.iloc[:warmup] = np.nan  # a rolling statistic of fewer rows than asked is not the feature
    names = list(frame.columns)
    clashes = [name for name in names if name in price_df.columns]
    if clashes:
        raise ValueError(f"price_df already has columns named like the features: {clashes}. Rename them first")
    return pd.concat([price_df, frame], axis=1), names


def get_feature_importance(model, feature_names: Sequence[str], top_n: int = 20) -> pd.DataFrame:
    """The ``top_n`` features by total gain, largest first.

    Args:
        model: a fitted LightGBM estimator.
        feature_names: names of the columns the model was fitted on, in order.
        top_n: how many rows to return.

    Returns:
        A frame with columns ``feature``, ``importance`` (total gain), ``gain`` (the same) and ``share``
        (gain / total gain).

    Example:
        >>> get_feature_importance(model, features.columns, top_n=5)  # doctest: +SKIP
    """
    import pandas as pd

    booster = getattr(model, "booster_", None)
    if booster is None:
        raise ValueError("get_feature_importance needs a fitted LightGBM model. Received an unfitted one")
    gains = booster.feature_importance(importance_type="gain")
    names = list(feature_names)
    if len(names) != len(gains):
        raise ValueError(f"feature_names must list {len(gains)} names. Received: {len(names)} names")
    check_positive_int("top_n", top_n)
    total = float(gains.sum()) or 1.0
    frame = pd.DataFrame({"feature": names, "importance": gains.astype(float), "gain": gains.astype(float),
                          "share": gains / total})
    return frame.sort_values("gain", ascending=False, kind="stable").head(top_n).reset_index(drop=True)
