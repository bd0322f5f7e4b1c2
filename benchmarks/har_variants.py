"""Which linear baseline the volatility models should correct: least-squares HAR variants, walk-forward.

The same 5 expanding folds as ``atb walk-forward`` (the first half of the bundled BTCUSDT days is history,
the second half 5 consecutive test windows); each variant is fitted on every bar before its test window (less
one horizon, so no target overlaps the window) and scored as skill over HAR-RV (``1 - RMSE / RMSE_HAR-RV``)
per fold. Recency weighting fits with weights ``0.5 ** (age in days / half-life)``. Columns come from
``RealizedVolatility.extras``; the candidates it does not keep (Parkinson range, bipower jumps, volume) are
computed here. This is how the extended HAR's columns and half-life were chosen (docs/forecasting.md).

Usage:
    python benchmarks/har_variants.py [--folds 5] [--half-lives 0 365 270 180 90]
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd


def candidate_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """The problem's own baseline columns plus the candidates that were measured and left out."""
    from ml.training_pipeline.problems.price.forecasts import RealizedVolatility, _log_realized_volatility

    columns = RealizedVolatility().extras(frame, "1h")
    returns = np.log(frame["close"]).diff()
    parkinson = np.log(frame["high"] / frame["low"]) ** 2 / (4 * np.log(2))
    bipower = (np.pi / 2) * returns.abs() * returns.abs().shift(1)
    volume = np.log1p(frame["volume"] * frame["close"])
    columns["parkinson_day"] = _log_realized_volatility(parkinson, 24)
    columns["parkinson_week"] = _log_realized_volatility(parkinson, 168, per=7)
    columns["bipower_day"] = _log_realized_volatility(bipower, 24)
    columns["jump_day"] = np.log1p(1e4 * np.maximum((returns**2).rolling(24).sum() - bipower.rolling(24).sum(), 0))
    columns["volume_day"] = volume.rolling(24).mean()
    columns["volume_ratio"] = columns["volume_day"] - volume.rolling(720).mean()
    return columns


def main(argv: list[str] | None = None) -> int:
    from ml.training_pipeline.problems.price.forecasts import RealizedVolatility
    from ml.training_pipeline.problems.price.ohlcv import load_ohlcv
    from ml.training_pipeline.walk_forward import fold_plan

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--half-lives", type=float, nargs="*", default=[0, 365, 270, 180, 90],
                        help="days; 0: unweighted")
    args = parser.parse_args(argv)
    frame = load_ohlcv("BTCUSDT").frame
    problem = RealizedVolatility()
    data = pd.concat([candidate_columns(frame), problem.target(frame["close"], "1h").rename("y")], axis=1)
    data = data.iloc[720:].dropna()
    har = list(RealizedVolatility.HAR_COLUMNS)
    calendar = list(RealizedVolatility.BASELINES["calendar_har"])
    extended = list(RealizedVolatility.BASELINES["extended_har"])
    earlier = calendar + ["semivariance_negative", "semivariance_positive", "rv_3", "rv_6", "leverage"]
    variants = {
        "calendar HAR": calendar,
        "extended HAR before (semivariances, rv_3/6, leverage)": earlier,
        "  + Parkinson day/week": earlier + ["parkinson_day", "parkinson_week"],
        "  + bipower and jump (HAR-RS-J)": earlier + ["bipower_day", "jump_day"],
        "  + volume": earlier + ["volume_day", "volume_ratio"],
        "  + day and week one day earlier": earlier + ["har_day_previous", "har_week_previous"],
        "  + Garman-Klass day": earlier + ["range_day"],
        "extended HAR now (+ previous day/week, Garman-Klass)": extended,
    }
    days = sorted(set(data.index.normalize()))
    plan = fold_plan(days, args.folds)

    def forecast(columns, train, test, weights):
        design = np.column_stack([np.ones(len(train)), train[columns].to_numpy()])
        root = np.sqrt(weights)
        coefficients, *_ = np.linalg.lstsq(design * root[:, None], train["y"].to_numpy() * root, rcond=None)
        return np.column_stack([np.ones(len(test)), test[columns].to_numpy()]) @ coefficients

    rmse = lambda a, b: float(np.sqrt(np.mean((a - b) ** 2)))  # noqa: E731
    print(f"{'variant':<56}{'half-life':>10}{'mean skill':>12}   per fold")
    for half_life in args.half_lives:
        for name, columns in variants.items():
            skills = []
            for first, last in plan:
                start, end = days[first], days[last] + pd.Timedelta("1D")
                train = data[data.index < start - pd.Timedelta(hours=problem.horizon)]
                test = data[(data.index >= start) & (data.index < end)]
                age = np.asarray((train.index[-1] - train.index) / pd.Timedelta("1D"), np.float64)
                weights = np.ones(len(train)) if not half_life else 0.5 ** (age / half_life)
                reference = forecast(har, train, test, np.ones(len(train)))  # HAR-RV: the textbook, unweighted fit
                skills.append(1 - rmse(forecast(columns, train, test, weights), test["y"]) / rmse(reference, test["y"]))
            print(f"{name:<56}{half_life or '-':>10}{np.mean(skills):>+12.4f}   "
                  + " ".join(f"{s:+.3f}" for s in skills), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
