"""Which levers make the volatility models beat HAR-RV out of sample: walk-forward over the bundled years.

Each row is ``walk_forward`` (as ``atb walk-forward`` runs it: 5 expanding folds over the second half of
the bundled BTCUSDT hours, each refit exactly as ``atb train model BTCUSDT --target volatility`` trains)
for one model, one setting of the levers and one seed. The table gives, per model and setting, the
skill against HAR-RV and against the calendar HAR (HAR + day of week, fitted on each fold's training
part): the mean over folds, its mean and sd over the seeds, and the worst fold of any seed; then the
empirical coverage of the 90% conformal interval (split conformal on the validation part, and the
adaptive one) on each fold's test bars, and the wall time. Figures come from this run only.

Levers: ``residual`` (the model learns the correction to the extended HAR), ``calendar`` (each bar's
hour and weekday as window columns), ``rolling`` (LightGBM's rounds chosen on rolling-origin folds inside
the training part instead of the validation part), ``ensemble=N`` (N seeds averaged in one model),
``lr=X`` and ``dropout=X`` (the learning rate and dropout of a network).

Usage:
    python benchmarks/forecast_recipe.py [--models tcn lightgbm transformer] [--seeds 42 1 2] [--folds 5]
        [--levers residual,calendar residual no-residual,calendar] [--epochs N] [--jsonl results.jsonl]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DEFAULT_LEVERS = ["residual,calendar", "residual,no-calendar", "no-residual,calendar"]


def levers_of(text: str) -> dict[str, object]:
    """``"residual,no-calendar,rolling,ensemble=3"`` -> the ``TrainingConfig`` settings they stand for."""
    settings: dict[str, object] = {}
    for part in filter(None, text.split(",")):
        name = part.removeprefix("no-")
        if name in ("residual", "calendar"):
            settings[name] = not part.startswith("no-")
        elif name == "rolling":
            settings["selection"] = "validation" if part.startswith("no-") else "rolling"
        elif part.startswith("ensemble="):
            settings["ensemble"] = int(part.split("=", 1)[1])
        elif part.startswith("lr="):
            settings["learning_rate"] = float(part.split("=", 1)[1])
        elif part.startswith("dropout="):
            settings["model_kwargs"] = {**settings.get("model_kwargs", {}), "dropout": float(part.split("=", 1)[1])}
        else:
            raise SystemExit(f"unknown lever {part!r}. Accepted: residual, calendar, rolling (each with no- for off), "
                             "ensemble=N, lr=X, dropout=X")
    return settings


def _lever_text(levers: dict[str, object]) -> str:
    words = {"residual": lambda v: "residual" if v else "no-residual", "calendar": lambda v: "calendar" if v else
             "no-calendar", "selection": lambda v: "rolling" if v == "rolling" else "no-rolling",
             "ensemble": lambda v: f"ensemble={v}", "learning_rate": lambda v: f"lr={v:g}",
             "model_kwargs": lambda v: ",".join(f"{k}={x:g}" for k, x in v.items())}
    return ",".join(words[k](v) for k, v in levers.items())


def run(model: str, variant: str, levers: dict[str, bool], seed: int, folds: int, epochs: int | None) -> dict:
    """One walk-forward: per-fold summaries and the wall time."""
    from ml.training_pipeline.config import TrainingConfig
    from ml.training_pipeline.walk_forward import walk_forward

    config = TrainingConfig(symbol="BTCUSDT", model_type=model, variant=variant, target="volatility", seed=seed,
                            epochs=epochs, **levers)
    started = time.perf_counter()
    report = walk_forward(config, folds)
    return {"model": model, "variant": variant, "levers": levers, "seed": seed, "wall_s": time.perf_counter() - started,
            "folds": [f.metrics for f in report.folds]}


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{statistics.fmean(values):+.4f} ± {sd:.4f}"


def table(rows: list[dict]) -> str:
    """One line per model and lever setting: skill means over folds, their mean ± sd over seeds, worst fold."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        key = (row["model"], row["variant"], _lever_text(row["levers"]))
        groups.setdefault(key, []).append(row)
    head = (f"{'model':<22}{'levers':<36}{'seeds':>6}{'skill vs HAR-RV':>20}{'worst fold':>12}"
            f"{'vs calendar HAR':>20}{'worst fold':>12}{'cover split':>13}{'cover adaptive':>16}{'wall s':>9}")
    lines = [head]
    for (model, variant, levers), runs in groups.items():
        har = [statistics.fmean(f["skill_har_rv"] for f in r["folds"]) for r in runs]
        cal = [statistics.fmean(f["skill_calendar_har"] for f in r["folds"]) for r in runs]
        worst_har = min(f["skill_har_rv"] for r in runs for f in r["folds"])
        worst_cal = min(f["skill_calendar_har"] for r in runs for f in r["folds"])
        cover = lambda key: (  # noqa: E731
            f"{min(f[key] for r in runs for f in r['folds']):.3f}-{max(f[key] for r in runs for f in r['folds']):.3f}"
            if all(key in f for r in runs for f in r["folds"]) else "-")
        lines.append(f"{model + ' (' + variant + ')':<22}{levers:<36}{len(runs):>6}{_mean_sd(har):>20}{worst_har:>+12.4f}"
                     f"{_mean_sd(cal):>20}{worst_cal:>+12.4f}{cover('coverage_split'):>13}"
                     f"{cover('coverage_adaptive'):>16}{statistics.fmean(r['wall_s'] for r in runs):>9.0f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["lightgbm", "tcn"], help="model[:variant] names")
    parser.add_argument("--seeds", nargs="*", type=int, default=[42, 1, 2])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--levers", nargs="*", default=DEFAULT_LEVERS)
    parser.add_argument("--epochs", type=int, default=None, help="most epochs / boosting rounds (default: the config's)")
    parser.add_argument("--jsonl", default=None, help="append each run as a JSON line here (and read earlier ones)")
    args = parser.parse_args(argv)
    rows = []
    if args.jsonl and os.path.exists(args.jsonl):
        with open(args.jsonl) as handle:
            rows = [json.loads(line) for line in handle if line.strip()]
    done = {(r["model"], r["variant"], json.dumps(r["levers"], sort_keys=True), r["seed"]) for r in rows}
    for name in args.models:
        model, _, variant = name.partition(":")
        for text in args.levers:
            levers = levers_of(text)
            for seed in args.seeds:
                key = (model, variant or "default", json.dumps(levers, sort_keys=True), seed)
                if key in done:
                    continue
                row = run(model, variant or "default", levers, seed, args.folds, args.epochs)
                rows.append(row)
                print(f"{model} {text} seed {seed}: " + ", ".join(
                    f"{f['skill_har_rv']:+.3f}" for f in row["folds"]) + f" ({row['wall_s']:.0f} s)", flush=True)
                if args.jsonl:
                    with open(args.jsonl, "a") as handle:
                        handle.write(json.dumps(row) + "\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
