"""The ``atb`` command line. It parses arguments and calls the library; nothing more.

Exit codes: 0 success, 1 ONNX parity failure, 2 bad input (one line on stderr, no traceback unless ``--debug``),
130 interrupted. ``atb --help`` imports no TensorFlow.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
from typing import Any

# Each command imports the library inside its own function, on purpose: `atb --help` and argument errors
# import only what the parser needs (never TensorFlow or LightGBM), and a command loads only its own modules.
# TensorFlow's native start-up logs drown the one-line messages users need; errors still
# surface as Python exceptions. TF_CPP_MIN_LOG_LEVEL=0 brings the logs back.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

EXAMPLES = """examples:
  atb train model BTCUSDT --model-type tcn
  atb train model BTCUSDT --model-type attention_lstm --variant lightweight --days 365 --epochs 80
  atb train model BTCUSDT --model-type lightgbm --target direction --timeframe 4h
  atb train model BTCUSDT --model-type tcn --target volatility
  atb train model ETHUSDT --model-type tcn --data eth_1h.parquet
  atb train model BTCUSDT ETHUSDT --model-type tcn --data ETHUSDT=eth_1h.csv --curriculum "BTCUSDT:10,all:40"
  atb models list BTCUSDT
  atb predict BTCUSDT --json
  atb evaluate BTCUSDT --data later_period.csv
  atb evaluate BTCUSDT --walk-forward 5
  atb tune BTCUSDT --model-type tcn --max-trials 20
  atb benchmark --models tcn attention_lstm lightgbm
"""


ANOMALY_EXAMPLES = """examples:
  atb train anomaly BGL --log-format bgl                     (the bundled BGL sample)
  atb train anomaly BGL --data BGL_2k.log_structured.csv --log-format bgl
  atb train anomaly BGL --data BGL.csv --log-format bgl --window 5min --step 1min --model-type lightgbm
  atb train anomaly NOVA --data OpenStack.csv --log-format openstack --window-by session --labels anomaly_labels.txt
  atb train anomaly HDFS --data HDFS.log --log-format hdfs --window-by session --labels anomaly_label.csv
  atb train anomaly APP --data app.log --log-format "<Date> <Time> <Level> <Component>: <Content>" --labels ids.txt
  atb predict BGL --data new_lines.csv
  atb evaluate BGL --data later_lines.csv
"""


def _common(parser: argparse.ArgumentParser, json_output: bool = False) -> None:
    parser.add_argument("--models-dir", help="model store root (default: $ATB_MODELS_DIR or src/ml/models)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    if json_output:
        parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def _choosers(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeframe", help="the stored model's timeframe, when several are stored")
    parser.add_argument("--model-type", help="the stored model's type, when several are stored "
                        "(one model per symbol, target, timeframe and type is 'latest'; an ambiguous choice is refused)")


def _fit_options(parser: argparse.ArgumentParser, batch_size: int, patience: int) -> None:
    parser.add_argument("--epochs", type=int, help="most epochs (default 80, early stopping usually ends sooner); "
                        "for lightgbm the most boosting rounds (default: the preset's n_estimators)")
    parser.add_argument("--batch-size", type=int, default=batch_size, help=f"training batch size (default {batch_size})")
    parser.add_argument("--patience", type=int, default=patience, help=f"early-stopping patience (default {patience})")
    parser.add_argument("--learning-rate", type=float, help="override the variant's learning rate")


def _steps_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps-per-epoch", type=int, metavar="N",
                        help="batches per epoch, drawn from the whole reshuffled training set (default: one pass); "
                             "for millions of windows: early stopping and checkpoints then act every N batches")


def _run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="model hyperparameter overriding the variant, repeatable; VALUE is JSON "
                             "(e.g. --param dropout=0.2, or for tcn --param filters=32; a wrong name lists the "
                             "model's names)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress lines: only the result (or the error)")
    _common(parser)


def _training_options(parser: argparse.ArgumentParser) -> None:
    """How a training run survives a kill and where it runs (train model, train anomaly)."""
    parser.add_argument("--resume", action="store_true",
                        help="back the training state up after every epoch; after a kill, the same command with "
                             "--resume continues from the last finished epoch (a changed configuration is refused)")
    parser.add_argument("--distribute", default="none", metavar="{none,mirrored,multi-worker}",
                        help="tf.distribute strategy (default none): mirrored = one replica per local GPU; "
                             "multi-worker = the hosts TF_CONFIG lists (run the same command on each; try it here "
                             "with atb cluster-local N -- atb train ...); --batch-size is the global batch")
    parser.add_argument("--precision", default="auto", metavar="{auto,float32,mixed_bfloat16}",
                        help="arithmetic while training (default auto: bf16 on float32 weights for tcn, "
                             "tcn_attention and transformer where the CPU computes bf16 natively, float32 "
                             "elsewhere); the stored model is float32 either way")
    parser.add_argument("--no-fused-recurrence", dest="fused_recurrence", action="store_false",
                        help="train LSTM layers in Keras' own loop; by default they train in TensorFlow's fused CPU "
                             "kernel where it was measured faster at the batch size (the stored model is the same "
                             "Keras LSTM)")
    parser.add_argument("--mlflow", nargs="?", const=True, default=None, metavar="URI",
                        help="log the run to MLflow (pip install 'atb-ml[mlflow]'): at URI (e.g. "
                             "sqlite:///mlflow.db or http://host:5000), or without URI at MLFLOW_TRACKING_URI; "
                             "runs log there anyway when MLFLOW_TRACKING_URI is set, unless --no-mlflow")
    parser.add_argument("--no-mlflow", dest="mlflow", action="store_false", help="do not log to MLflow even when "
                        "MLFLOW_TRACKING_URI is set")
    parser.add_argument("--mlflow-experiment", metavar="NAME", help="MLflow experiment (default atb-SYMBOL-PROBLEM)")
    parser.add_argument("--register-model", metavar="NAME", help="also register the stored version in MLflow's "
                        "model registry under NAME")


def _window_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--window-by", default="time", help="time (default), events or session")
    parser.add_argument("--window", help="window length: a duration for time windows (default 5min), a count for "
                        "event windows (default 20)")
    parser.add_argument("--step", help="distance between window starts (default: the length, fixed windows; "
                        "smaller: sliding)")
    parser.add_argument("--max-events", type=int, default=128, help="events per window the sequence inputs keep "
                        "(default 128)")


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, but a usage error is the one line (and where to read more) instead of a usage block before it;
    subcommands' parsers are of this class too (``add_subparsers`` builds them with the parent's class)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (cheap: lists models without importing TensorFlow)."""
    from ml.training_pipeline.common.markets import TIMEFRAMES
    from ml.training_pipeline.config import DEFAULT_PATIENCE, TARGETS
    from ml.training_pipeline.models import AVAILABLE_MODELS, MODEL_VARIANTS

    parser = OneLineErrorParser(prog="atb", description="Train, evaluate and serve time-series models.",
                                epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    from ml import __version__

    parser.add_argument("--version", action="version", version=f"atb-ml {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="{train,models,predict,evaluate,benchmark,tune,cluster-local,diagnose}")

    train = commands.add_parser(
        "train", help="train a model", description="Train a model: 'atb train model SYMBOL --model-type T' trains, "
        "evaluates against naive baselines, exports to ONNX and stores a version.").add_subparsers(
        dest="what", metavar="{model,anomaly}", title="subcommands")
    width = max(map(len, AVAILABLE_MODELS)) + 2  # the longest name (multimodal_transformer) still leaves a gap
    models_help = "\n".join(f"  {name:<{width}}{text}" for name, text in AVAILABLE_MODELS.items())
    model = train.add_parser(
        "model", help="train, evaluate, export and store a model for SYMBOL",
        description=f"Train, evaluate against naive baselines, export to ONNX and store a versioned model.\n\n"
                    f"model types:\n{models_help}",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    model.add_argument("symbol", nargs="+", help="market symbol, e.g. BTCUSDT (bundled sample: BTCUSDT 1h); several "
                       "symbols train one model on all of them (stored as BTCUSDT-ETHUSDT; predict takes any of them)")
    model.add_argument("--model-type", required=True, help="one of the model types above (case-insensitive)")
    model.add_argument("--variant", default="default",
                       help=f"a preset: {', '.join(MODEL_VARIANTS)} or tiny (some models have others; default: default)")
    model.add_argument("--days", type=int, help="use the last N days of data")
    model.add_argument("--start-date", help="first day, e.g. 2021-01-01")
    model.add_argument("--end-date", help="last day, e.g. 2021-12-31")
    _fit_options(model, batch_size=128, patience=DEFAULT_PATIENCE)
    _steps_option(model)
    model.add_argument("--sequence-length", type=int, default=60, help="bars per input window (default 60)")
    model.add_argument("--horizon", type=int, help="bars ahead to predict (default: 1; 24 for --target volatility)")
    model.add_argument("--timeframe", help=f"bars to train on: one of {', '.join(TIMEFRAMES)}; finer data is resampled to them "
                       "(default: the bars --data holds, never resampled; 1h for the bundled sample and an exchange)")
    model.add_argument("--target", default="return",
                       help=f"one of {', '.join(TARGETS)} (default return; volatility: log realized volatility "
                            "of the next --horizon bars, judged against persistence, HAR-RV, a calendar HAR and an "
                            "extended HAR)")
    model.add_argument("--no-residual", dest="residual", action="store_false",
                       help="volatility: predict the target itself instead of the correction to the extended HAR "
                            "(the default adds the baseline inside the model and its ONNX file)")
    model.add_argument("--calendar", dest="calendar", action="store_true", default=None,
                       help="add each bar's hour and weekday (sin/cos) to the window (default: on for volatility, "
                            "off for return and direction)")
    model.add_argument("--no-calendar", dest="calendar", action="store_false", help="leave the calendar columns out")
    model.add_argument("--covariates", default="", metavar="COL[,COL...]",
                       help="more numeric columns of the data file to add to every window, e.g. "
                            "trade_count,taker_buy_asset_volume (each bar's value must be known when it closes; "
                            "atb predict reads the same columns from its file)")
    model.add_argument("--selection", default="validation", metavar="{validation,rolling}",
                       help="lightgbm: choose the boosting rounds by early stopping on the validation part (default) "
                            "or on rolling-origin folds inside the training part, then fit all of it")
    model.add_argument("--ensemble", type=int, default=1, metavar="N",
                       help="train N seeds (--seed, --seed+1, ...) and store their mean as one model, in one .keras "
                            "file and one ONNX graph (Keras families; default 1)")
    model.add_argument("--interval", type=float, default=0.9,
                       help="nominal coverage of the conformal interval reported and stored for regression models "
                            "(default 0.9)")
    model.add_argument("--data", action="append", default=[], metavar="[SYMBOL=]FILE",
                       help="CSV or Parquet OHLCV file (Binance klines or generic); with several symbols, "
                            "SYMBOL=FILE, repeatable (a bare FILE is the first symbol's)")
    model.add_argument("--group-weights", metavar="GROUP=W[,GROUP=W]|balanced",
                       help="loss weight per group (here: per symbol), normalised to mean 1 over the training rows; "
                            "'balanced' weighs each group by its inverse frequency")
    model.add_argument("--pos-weight", metavar="W|balanced",
                       help="--target direction: weight of an 'up' row relative to a 'down' row")
    model.add_argument("--curriculum", metavar="GROUPS:EPOCHS,...",
                       help="train in phases, e.g. 'BTCUSDT:10,all:40' (groups joined by '+', optional '@LR'); "
                            "replaces --epochs; early stopping watches the last phase only")
    model.add_argument("--exchange", help="download from this ccxt exchange, e.g. binance (needs network and "
                       "pip install 'atb-ml[exchange]')")
    model.add_argument("--params-from", metavar="TUNE_RESULT", help="hyperparameters found by atb tune "
                       "(its best_hyperparameters.json or folder); --param values win")
    _run_options(model)
    _training_options(model)

    from ml.training_pipeline.problems.anomaly.formats import LOG_FORMATS

    anomaly = train.add_parser(
        "anomaly", help="train, evaluate, export and store a log-anomaly model for NAME",
        description="Train a classifier of log windows (anomalous when any line is labelled) on a structured log, "
                    "evaluate it on the chronological test part next to the majority class and a LightGBM on "
                    "event counts, export it to ONNX and store it under NAME/anomaly.",
        epilog=ANOMALY_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    anomaly.add_argument("name", help="the store name of the model, e.g. BGL")
    anomaly.add_argument("--data", help="a raw log file (its lines split by --log-format, messages mapped to Drain3 "
                         "templates), or a structured log CSV (*.csv: Loghub's *.log_structured.csv layout); default: "
                         "the bundled 2,000-line structured sample of --log-format, for bgl and openstack")
    anomaly.add_argument("--log-format", required=True, help=f"one of {', '.join(LOG_FORMATS)}, or the line format of "
                         "your raw log, e.g. '<Date> <Time> <Level> <Component>: <Content>' (docs/anomaly.md)")
    anomaly.add_argument("--model-type", default="multimodal_transformer",
                         help="multimodal_transformer (default), another registered classifier, or lightgbm")
    anomaly.add_argument("--variant", default="default", help="a preset of the model (default: default)")
    _window_options(anomaly)
    anomaly.add_argument("--labels", metavar="FILE", help="anomalous session ids, one per line (for a log without a "
                         "label column, e.g. Loghub's OpenStack anomaly_labels.txt), or a CSV of session id and "
                         "Anomaly/Normal (Loghub's HDFS anomaly_label.csv)")
    anomaly.add_argument("--validation-blocks", type=int, default=None, metavar="K",
                         help="validation as K blocks spread over the time before the test part, so that bursts of "
                              "anomalies reach it from several periods (default: the library's, see docs/anomaly.md)")
    anomaly.add_argument("--threshold", default=None, metavar="validation|P",
                         help="decision threshold: validation (the best F1 on the validation windows) or a probability "
                              "such as 0.5 (default: the library's, see docs/anomaly.md)")
    anomaly.add_argument("--pos-weight", default="balanced", metavar="W|balanced",
                         help="weight of an anomalous training window (default: balanced = normal / anomalous)")
    _fit_options(anomaly, batch_size=32, patience=10)  # early stopping on validation F1, as the design has it
    _steps_option(anomaly)
    _run_options(anomaly)
    _training_options(anomaly)

    models = commands.add_parser(
        "models", help="inspect the model store", description="Inspect the model store: 'atb models list' shows "
        "every stored version with its key metric next to its baseline.").add_subparsers(
        dest="what", metavar="{list,verify}", title="subcommands")
    listing = models.add_parser("list", help="stored versions with their key metrics")
    listing.add_argument("symbol", nargs="?", help="only this symbol")
    listing.add_argument("--model-type", help="only this model type")
    listing.add_argument("--timeframe", help=f"only this timeframe ({', '.join(TIMEFRAMES)})")
    _common(listing, json_output=True)
    verify = models.add_parser("verify", help="check every stored file against its recorded sha256",
                               description="Checks every file of every stored version (of SYMBOL, or all) against "
                               "the sha256 recorded when it was stored; exit 1 when any version fails.")
    verify.add_argument("symbol", nargs="?", help="only this symbol")
    _common(verify, json_output=True)

    predict = commands.add_parser("predict", help="predict the next bar with a stored model (ONNX Runtime)")
    predict.add_argument("symbol")
    predict.add_argument("--version", dest="model_version", help="stored version (default: latest)")
    predict.add_argument("--data", help="OHLCV file ending at the bar to predict from (default: bundled sample)")
    predict.add_argument("--target", help=f"which stored problem, e.g. {', '.join(TARGETS)}")
    predict.add_argument("--uncertainty", action="store_true",
                         help="also print the mean, std and central interval (models that sample, or quantile models)")
    predict.add_argument("--samples", type=int, default=100, help="forward passes for --uncertainty (default: 100)")
    predict.add_argument("--interval", type=float, default=None,
                         help="coverage of the interval: the conformal one every regression model stores (default: "
                              "its nominal level, 0.9), and the --uncertainty one (default: 0.8)")
    predict.add_argument("--follow", action="store_true",
                         help="log anomaly models: keep reading the raw log --data as lines are appended and print each "
                              "anomalous window (with --json: one JSON object per line) until Ctrl-C")
    predict.add_argument("--until-idle", type=float, default=None, metavar="SECONDS",
                         help="with --follow: stop after this long without a new line (default: never)")
    predict.add_argument("--from-start", action="store_true",
                         help="with --follow: score the file's existing lines first (default: only new ones)")
    _choosers(predict)
    _common(predict, json_output=True)

    diagnose = commands.add_parser(
        "diagnose", help="does a label carry a learnable signal? (class shares, entropy, top features, prior vs "
        "tiny model vs LightGBM, verdict)",
        description="Label diagnostics on a chronological held-out part: class shares and entropy, the features most "
                    "related to the label, the class prior vs a tiny model vs LightGBM by held-out log loss, and a "
                    "verdict (usable_signal) with its reason.",
        epilog="examples:\n  atb diagnose BTCUSDT --target direction\n"
               "  atb diagnose BGL --log-format bgl --json    (the bundled BGL sample)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    diagnose.add_argument("name", help="a market symbol (price targets) or a name for the log data")
    diagnose.add_argument("--target", default="direction", help="price target to diagnose (default: direction)")
    diagnose.add_argument("--data", help="OHLCV file (price), or a raw log or structured log CSV with --log-format")
    diagnose.add_argument("--log-format", help=f"diagnose log-window anomaly labels of --data in this format "
                          f"({', '.join(LOG_FORMATS)}, or a raw log's line format)")
    diagnose.add_argument("--labels", metavar="FILE", help="anomalous session ids, one per line, or a CSV of id and "
                          "Anomaly/Normal (logs without labels)")
    _window_options(diagnose)
    diagnose.add_argument("--timeframe", help="bar size for price targets (default: the bars --data holds; 1h for "
                          "the bundled sample)")
    diagnose.add_argument("--horizon", type=int, help="bars ahead of the price target (default 1)")
    diagnose.add_argument("--days", type=int, help="use the last N days of price data")
    diagnose.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    diagnose.add_argument("--cost-bps", type=float, default=10.0,
                          help="price targets: trading cost per unit of position traded, in basis points, for the "
                               "'tradable' verdict (default 10)")
    _common(diagnose, json_output=True)

    benchmark = commands.add_parser(
        "benchmark", help="compare architectures on the same data (params, speed, latency, accuracy vs baselines)",
        description="Train every model (or --models) on the same chronological splits of SYMBOL and print params, "
                    "training seconds, windows/s, share of this machine's measured matmul ceiling, Keras and ONNX "
                    "single-window latency, RMSE, MAE, MAPE, directional accuracy and skill vs persistence, with the "
                    "naive baselines as rows. Writes comparison.json/.csv/.png to --out.",
        epilog="examples:\n  atb benchmark --models tcn attention_lstm lightgbm --days 365 --epochs 30\n"
               "  atb benchmark --variant tiny --days 120 --epochs 2 --out /tmp/bench --docs docs/benchmarks.md",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    benchmark.add_argument("symbol", nargs="?", default="BTCUSDT", help="market symbol (default BTCUSDT, bundled)")
    benchmark.add_argument("--models", nargs="+", metavar="MODEL", help="model types (default: every model that "
                           "reads a price window)")
    benchmark.add_argument("--variant", default="default", help="the preset every model uses (default: default)")
    benchmark.add_argument("--days", type=int, default=365, help="use the last N days (default 365)")
    benchmark.add_argument("--data", help="OHLCV file (default: the bundled sample)")
    _fit_options(benchmark, batch_size=128, patience=8)
    benchmark.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    benchmark.add_argument("--no-latency", action="store_true", help="skip the latency measurements (and ONNX export)")
    benchmark.add_argument("--out", default="benchmark_results", help="folder for comparison.json/.csv/.png "
                           "(default ./benchmark_results)")
    benchmark.add_argument("--docs", metavar="FILE", help="also write a Markdown page generated from the results")
    benchmark.add_argument("--from-json", metavar="FILE", help="train nothing: print (and with --docs, write the page "
                           "of) a saved comparison.json, e.g. the one the pytest benchmark suite wrote")
    _common(benchmark, json_output=True)

    tune = commands.add_parser(
        "tune", help="search a model's hyperparameters with keras-tuner (validation split only; resumable)",
        description="Search the hyperparameters of --model-type on SYMBOL's chronological training part, scored by the "
                    "validation loss (the test part is never read). The space spans the model's presets; --space "
                    "overrides a dimension. Each trial trains like atb train. The best hyperparameters are written to "
                    "best_hyperparameters.json; 'atb train ... --params-from FILE' reuses them. Running the same "
                    "command again resumes an interrupted search.",
        epilog="examples:\n  atb tune BTCUSDT --model-type tcn --max-trials 20 --epochs 10\n"
               "  atb tune BTCUSDT --model-type attention_lstm --tuner hyperband --space dropout=[0.1,0.4] "
               "--space 'lstm_units=[[64,32],[128,64]]'\n"
               "  atb train model BTCUSDT --model-type tcn --params-from atb_tuning/BTCUSDT_tcn_default_bayesian_*/",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    tune.add_argument("symbol", help="market symbol, e.g. BTCUSDT (bundled sample: BTCUSDT 1h)")
    tune.add_argument("--model-type", required=True, help="a neural model type (see atb train model --help)")
    tune.add_argument("--variant", default="default", help="the preset whose values the untuned parameters keep")
    tune.add_argument("--tuner", default="bayesian", help="bayesian (default), hyperband or random")
    tune.add_argument("--max-trials", type=int, default=10, help="most trials (default 10)")
    tune.add_argument("--space", action="append", default=[], metavar="KEY=JSON",
                      help="override a dimension: a value fixes it, [low, high] is a range, a longer list or "
                           "[[...], ...] are choices; repeatable")
    tune.add_argument("--days", type=int, help="use the last N days of data")
    tune.add_argument("--data", help="CSV or Parquet OHLCV file (default: the bundled sample)")
    tune.add_argument("--timeframe", help=f"bars to train on: one of {', '.join(TIMEFRAMES)}; finer data is resampled to them "
                      "(default: the bars --data holds, never resampled; 1h for the bundled sample and an exchange)")
    tune.add_argument("--target", default="return", help=f"one of {', '.join(TARGETS)} (default return)")
    tune.add_argument("--sequence-length", type=int, default=60, help="bars per input window (default 60)")
    _fit_options(tune, batch_size=128, patience=DEFAULT_PATIENCE)
    tune.add_argument("--directory", help="where the search keeps its state and result (default ./atb_tuning)")
    _run_options(tune)

    cluster = commands.add_parser(
        "cluster-local", help="run a command as N local cluster processes (multi-worker training or tuning)",
        usage="atb cluster-local [-h] [--tuner] [--port PORT] WORKERS -- COMMAND ...",
        description="Starts N local processes of the command after '--' on free loopback ports, each told its role "
                    "the way the engines read it: TF_CONFIG for tf.distribute workers (default), or keras-tuner's "
                    "KERASTUNER_* variables for a chief and N tuner workers (--tuner). Output lines are prefixed "
                    "with the role; when one process fails the others are stopped.",
        epilog="examples:\n  atb cluster-local 2 -- atb train model BTCUSDT --model-type tcn --distribute multi-worker\n"
               "  atb cluster-local 2 --tuner -- atb tune BTCUSDT --model-type tcn --tuner random --max-trials 8",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    cluster.add_argument("workers", type=int, help="workers to start (with --tuner: besides the chief)")
    cluster.add_argument("--tuner", action="store_true", help="a keras-tuner chief and workers instead of "
                         "tf.distribute workers")
    cluster.add_argument("--port", type=int, help="first port (default: free ports)")
    cluster.set_defaults(cluster_command=[])  # what follows '--' (main() splits it off before parsing)
    cluster.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)

    evaluate = commands.add_parser("evaluate", help="metrics and naive baselines of a stored model on a data file")
    evaluate.add_argument("symbol")
    evaluate.add_argument("--version", dest="model_version", help="stored version (default: latest)")
    evaluate.add_argument("--data", help="OHLCV file to evaluate on, e.g. a later period (with --walk-forward: the "
                          "data to refit on; default: the bundled sample)")
    evaluate.add_argument("--target", help=f"which stored problem, e.g. {', '.join(TARGETS)}")
    _choosers(evaluate)
    evaluate.add_argument("--walk-forward", type=int, metavar="K", help="refit and evaluate over K consecutive "
                          "out-of-sample windows (the second half of the data), with each window's metrics and their "
                          "spread; uses the stored model's settings, or --model-type/--variant when none is stored")
    evaluate.add_argument("--variant", help="--walk-forward without a stored model: the preset (default: default)")
    evaluate.add_argument("--days", type=int, help="--walk-forward: use the last N days of data")
    evaluate.add_argument("--epochs", type=int, help="--walk-forward: most epochs per refit")
    _common(evaluate, json_output=True)
    return parser


def _print_json(payload: Any) -> None:
    """Strict JSON on stdout (``NaN``/``Infinity`` are not JSON: they print as ``null``)."""
    print(json.dumps(_finite(payload), indent=2, default=str, allow_nan=False))


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``["filters=32", "lstm_units=[64, 32]"]`` -> ``{"filters": 32, "lstm_units": (64, 32)}``."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--param takes KEY=VALUE. Received: --param {pair!r}")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text  # a bare word is a string
        params[key.strip()] = tuple(value) if isinstance(value, list) else value
    return params


def parse_data_files(values: list[str], symbols: list[str]) -> tuple[str | None, dict[str, str]]:
    """``--data`` values -> (the first symbol's file, ``{symbol: file}`` for the others).

    ``SYMBOL=FILE`` names the symbol; a bare ``FILE`` belongs to the first symbol.

    Example:
        >>> parse_data_files(["btc.csv", "ETHUSDT=eth.csv"], ["BTCUSDT", "ETHUSDT"])
        ('btc.csv', {'ETHUSDT': 'eth.csv'})
    """
    from ml.training_pipeline.common.markets import check_symbol

    upper = [check_symbol(s) for s in symbols]
    first, named = None, {}
    for value in values:
        head, sep, tail = value.partition("=")
        if sep and head.strip().upper() in upper:
            symbol = head.strip().upper()
            if symbol in named or (symbol == upper[0] and first is not None):
                raise ValueError(f"--data gives {symbol}'s file twice. Received: --data {value!r}. Accepted: one "
                                 f"file, folder or glob pattern per symbol (e.g. --data '{symbol}=dumps/{symbol}-1m-*.csv')")
            if symbol == upper[0]:
                first = tail
            else:
                named[symbol] = tail
        elif sep and len(upper) > 1 and "/" not in head and "." not in head:
            raise ValueError(f"--data names {head!r}, which is not trained. Accepted: {', '.join(upper)}. "
                             f"Received: --data {value!r}")
        elif first is None:
            first = value
        else:
            raise ValueError(f"--data: only the first symbol's file may be given without SYMBOL=. Received: --data {value!r}")
    return first, named


def parse_group_weights(text: str | None) -> dict[str, float] | str | None:
    """``"ETHUSDT=2,BTCUSDT=1"`` -> ``{"ETHUSDT": 2.0, "BTCUSDT": 1.0}``; ``"balanced"`` stays a word.

    Example:
        >>> parse_group_weights("ETHUSDT=2")
        {'ETHUSDT': 2.0}
    """
    if text is None or text.strip() == "balanced":
        return None if text is None else "balanced"
    weights = {}
    for part in text.split(","):
        group, sep, value = part.strip().partition("=")
        try:
            weights[group.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--group-weights takes GROUP=NUMBER[,GROUP=NUMBER] or 'balanced'. Received: {part.strip()!r}") \
                from None
        if not sep or not group.strip():
            raise ValueError(f"--group-weights takes GROUP=NUMBER[,GROUP=NUMBER] or 'balanced'. Received: {part.strip()!r}")
    return weights


def _number_or_word(text: str | None) -> float | str | None:
    try:
        return None if text is None else float(text)
    except ValueError:
        return text


def _model_type(name: str | None) -> str | None:
    """A model type as the store records it (aliases and case resolved; an unknown name fails here)."""
    if name is None:
        return None
    from ml.training_pipeline.models.registry import get_spec

    return get_spec(name).name


def _timeframe(timeframe: str | None, data_path: str | None) -> str:
    """``--timeframe``, else the bars the data holds (resampled only when asked), else 1h."""
    if timeframe is not None or data_path is None:
        return timeframe or "1h"
    from ml.training_pipeline.problems.price.ohlcv import timeframe_of

    return timeframe_of(data_path)


def _train(args) -> int:
    from ml.training_pipeline.config import TrainingConfig

    data_path, data_paths = parse_data_files(args.data, args.symbol)
    args.timeframe = _timeframe(args.timeframe, data_path or next(iter(data_paths.values()), None))
    config = TrainingConfig(
        symbol=args.symbol[0], symbols=tuple(args.symbol[1:]), data_paths=data_paths,
        group_weights=parse_group_weights(args.group_weights), pos_weight=_number_or_word(args.pos_weight),
        curriculum=args.curriculum, model_type=args.model_type, variant=args.variant, timeframe=args.timeframe,
        target=args.target, sequence_length=args.sequence_length, horizon=args.horizon, epochs=args.epochs,
        batch_size=args.batch_size, steps_per_epoch=args.steps_per_epoch, patience=args.patience,
        learning_rate=args.learning_rate, seed=args.seed, days=args.days, start_date=args.start_date,
        end_date=args.end_date, data_path=data_path,
        exchange=args.exchange, models_dir=args.models_dir, model_kwargs=_model_kwargs(args),
        distribute=args.distribute, precision=args.precision, residual=args.residual, calendar=args.calendar,
        fused_recurrence=args.fused_recurrence, interval=args.interval, ensemble=args.ensemble, selection=args.selection,
        covariates=tuple(name for name in args.covariates.split(",") if name.strip()),
    )
    return _run_training(args, config)


def _model_kwargs(args) -> dict[str, Any]:
    """``--params-from`` (a tuning result), then ``--param`` values over it."""
    tuned = {}
    if getattr(args, "params_from", None):
        from ml.training_pipeline.tuning import load_best_params

        tuned = load_best_params(args.params_from, args.model_type)
    return {**tuned, **parse_params(args.param)}


def train_command(config, params_from) -> str:
    """The ``atb train model`` line that trains on the data a search used, with its best hyperparameters.

    Example:
        >>> from ml.training_pipeline.config import TrainingConfig
        >>> train_command(TrainingConfig(symbol="BTCUSDT", model_type="tcn", days=120), "best.json")
        'atb train model BTCUSDT --model-type tcn --variant default --days 120 --params-from best.json'
    """
    data = [f"--{flag} {value}" for flag, value in (
        ("days", config.days), ("start-date", config.start_date), ("end-date", config.end_date),
        ("timeframe", config.timeframe if config.timeframe != "1h" else None),
        ("target", config.target if config.target != "return" else None), ("data", config.data_path),
        ("sequence-length", config.sequence_length if config.sequence_length != 60 else None)) if value]
    return (f"atb train model {config.symbol} --model-type {config.model_type} --variant {config.variant} "
            + "".join(f"{part} " for part in data) + f"--params-from {params_from}")


def _tune(args) -> int:
    from ml.training_pipeline.config import TrainingConfig
    from ml.training_pipeline.tuning import check_search, tune, tuner_role

    check_search(args.tuner, args.max_trials)  # before any data is read
    tuner_role()  # and the KERASTUNER_* variables of a distributed search
    args.timeframe = _timeframe(args.timeframe, args.data)
    config = TrainingConfig(symbol=args.symbol, model_type=args.model_type, variant=args.variant,
                            timeframe=args.timeframe, target=args.target, sequence_length=args.sequence_length,
                            epochs=args.epochs, batch_size=args.batch_size, patience=args.patience,
                            learning_rate=args.learning_rate, seed=args.seed, days=args.days, data_path=args.data,
                            models_dir=args.models_dir, model_kwargs=parse_params(args.param))
    log = None if args.quiet else (lambda line: print(line, file=sys.stderr if args.json else sys.stdout, flush=True))
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        result = tune(config, args.tuner, args.max_trials, overrides=parse_params(args.space),
                      directory=args.directory, verbose=0 if args.quiet else 1, log=log)
    if args.json:
        _print_json({"best_params": result.best_params, "best_val_loss": result.best_val_loss,
                     "path": str(result.path) if result.path else None, "resumed_trials": result.resumed_trials,
                     "role": result.role, "trials": [t.__dict__ for t in result.trials], "space": result.space})
        return 0
    if result.path is None:  # a distributed search's worker
        print(f"{result.role}: trained {len(result.trials)} trial(s) ({', '.join(t.trial_id for t in result.trials)})"
              "; the chief holds every result and writes the best")
        return 0
    scored = sorted((t for t in result.trials if t.val_loss is not None), key=lambda t: t.val_loss)
    workers = sorted({t.worker for t in result.trials if t.worker})
    if workers:
        print("trials per worker: " + ", ".join(f"{w} {sum(t.worker == w for t in result.trials)}" for w in workers))
    print(f"{len(result.trials)} trials ({result.resumed_trials} resumed); best validation loss "
          f"{result.best_val_loss:.5f} (trial {scored[0].trial_id}); worst {scored[-1].val_loss:.5f}")
    print("best hyperparameters: " + json.dumps(result.best_params))
    print(f"saved {result.path}; train with: {train_command(config, result.path)}")
    return 0


def _windowing(args):
    """``--window-by/--window/--step/--max-events`` -> a ``Windowing`` (counts for event windows)."""
    from ml.training_pipeline.problems.anomaly.windows import Windowing

    def amount(text: str | None):
        if text is None or args.window_by != "events":
            return text
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"--window and --step count events for --window-by events. Received: {text!r}") from None

    return Windowing(args.window_by, amount(args.window), amount(args.step), args.max_events)


def _log_file(args) -> str:
    """``--data``, or the bundled sample of ``--log-format`` (an unknown format is refused by name first)."""
    from ml.data import bundled_log_path
    from ml.training_pipeline.problems.anomaly.formats import get_log_format

    get_log_format(args.log_format)
    return args.data or str(bundled_log_path(args.log_format))


def _train_anomaly(args) -> int:
    from ml.training_pipeline.config import TrainingConfig
    from ml.training_pipeline.problems import LogAnomalyProblem

    problem = LogAnomalyProblem(_log_file(args), args.log_format, _windowing(args), anomalous_sessions=args.labels,
                                pos_weight=_number_or_word(args.pos_weight), validation_blocks=args.validation_blocks,
                                **({} if args.threshold is None else {"threshold": _number_or_word(args.threshold)}),
                                log=None if args.quiet else (lambda line: print(line, flush=True)))
    config = TrainingConfig(symbol=args.name, model_type=args.model_type, variant=args.variant, epochs=args.epochs,
                            batch_size=args.batch_size, steps_per_epoch=args.steps_per_epoch, patience=args.patience, learning_rate=args.learning_rate,
                            seed=args.seed, models_dir=args.models_dir, model_kwargs=parse_params(args.param),
                            distribute=args.distribute, precision=args.precision,
                            fused_recurrence=args.fused_recurrence)
    return _run_training(args, config, problem)


def _run_training(args, config, problem=None) -> int:
    from ml.training_pipeline.pipeline import train

    # With --json, stdout carries only the JSON document: progress and Keras' epoch lines go to stderr.
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        result = train(config, verbose=0 if args.quiet else None,
                       log=None if args.quiet else (lambda line: print(line, flush=True)), problem=problem,
                       resume=args.resume, mlflow=args.mlflow, mlflow_experiment=args.mlflow_experiment,
                       register_model=args.register_model)
    if args.json:
        _print_json({"version_dir": str(result.version_dir) if result.version_dir else None,
                     "distribution": result.distribution, "problem": result.problem, "report": result.report,
                     "onnx": result.onnx,
                     "data": result.data, "row_counts": result.row_counts, "timings": result.timings,
                     "history": result.history})
    else:
        print(result.table())
    return 0


def _models_list(args) -> int:
    from ml.training_pipeline.problems import PROBLEM_TYPES
    from ml.training_pipeline.store.versions import ModelStore

    store = ModelStore(args.models_dir)
    rows = store.list(args.symbol, model_type=_model_type(args.model_type), timeframe=args.timeframe)
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        stored = store.list(args.symbol)
        if stored and (args.model_type or args.timeframe):
            kinds = sorted({r["model_type"] for r in stored if r["model_type"]})
            frames = sorted({r["timeframe"] for r in stored if r["timeframe"]})
            print(f"no stored model matches the filter ({len(stored)} stored: model types {', '.join(kinds) or '-'}; "
                  f"timeframes {', '.join(frames) or '-'})")
        else:
            print(f"no stored models in {store.root}" + (f" for {args.symbol}" if args.symbol else ""))
        return 0
    width = max(10, *(len(row["symbol"]) + 2 for row in rows))
    kind_width = max(18, *(len(row["model_type"] or "?") + 2 for row in rows))
    print(f"{'symbol':<{width}}{'target':<11}{'version':<22}{'model':<{kind_width}}{'variant':<12}{'tf':<4}"
          f"{'data':<28}metrics (model vs baseline)")
    for row in rows:
        mark = "*" if row["latest"] else " "
        if row.get("corrupt"):
            print(f"{row['symbol']:<{width}}{row['target']:<11}{row['version'] + mark:<22}CORRUPT: {row['corrupt']} "
                  "(never used by predict/evaluate)")
            continue
        problem = PROBLEM_TYPES.get(row["problem"].get("type"))
        try:
            text = problem.summary_line(row["metrics"]) if problem else "?"
        except (KeyError, TypeError, ValueError):  # a summary written by another version of the library
            text = json.dumps(row["metrics"])
        data = str(row.get("data") or "?")
        data = data if len(data) <= 26 else "..." + data[-23:]
        print(f"{row['symbol']:<{width}}{row['target']:<11}{row['version'] + mark:<22}{row['model_type'] or '?':<{kind_width}}"
              f"{row['variant'] or '?':<12}{row.get('timeframe') or '-':<4}{data:<28}{text}")
    print("* latest of its target")
    return 0


def _cluster_local(args) -> int:
    from ml.training_pipeline.fitting.cluster import run_local_cluster

    return run_local_cluster(args.workers, args.cluster_command, "tuner" if args.tuner else "tf", args.port,
                             start_delay_s=2.0 if args.tuner else 0.0)


def _models_verify(args) -> int:
    from ml.training_pipeline.store.versions import ModelStore

    store = ModelStore(args.models_dir)
    rows = store.verify(args.symbol)
    failed = [row for row in rows if not row[3].ok]
    if args.json:
        _print_json([{"symbol": name, "target": problem, "version": version, "ok": result.ok,
                      "sealed": result.sealed, "checked": result.checked, "problems": list(result.problems)}
                     for name, problem, version, result in rows])
    else:
        for name, problem, version, result in rows:
            print(f"{'FAILED' if not result.ok else 'ok':<7}{name}/{problem}/{version}: {result.summary()}")
        print(f"{len(rows)} versions checked in {store.root}: {len(rows) - len(failed)} ok, {len(failed)} failed"
              if rows else f"no stored models in {store.root}")
    return EXIT_FAILURE if failed else 0


def _follow(args) -> int:
    from ml.training_pipeline.inference import follow

    if not args.data:
        raise ValueError("--follow reads a growing log file. Accepted: --data FILE (a raw log). Received: no --data")
    if args.json:
        emit = lambda verdict: print(json.dumps(verdict), flush=True)  # noqa: E731  (JSON Lines)
    else:
        def emit(verdict):
            print(f"{verdict['start']} .. {verdict['end']}  ANOMALOUS p={verdict['probability']:.3f} "
                  f"({verdict['events']} events)", flush=True)
            for line in verdict["top_lines"]:
                print(f"    {line}", flush=True)
    status = sys.stderr if args.json else sys.stdout
    print(f"following {args.data} ({'from its first line' if args.from_start else 'new lines'}; Ctrl-C to stop) ...",
          file=status, flush=True)
    summary = follow(args.symbol, args.data, emit, args.model_version, args.models_dir, args.target,
                     _model_type(args.model_type), until_idle=args.until_idle, from_start=args.from_start)
    print(f"stopped ({summary['stopped']}): {summary['lines']} lines, {summary['events']} events, {summary['windows']} "
          f"windows scored, {summary['anomalous']} anomalous; {summary['lines_per_s']:,.0f} lines/s of work",
          file=status, flush=True)
    return 0


def _predict(args) -> int:
    from ml.training_pipeline.inference import predict_next

    if args.follow:
        return _follow(args)
    if args.until_idle is not None or args.from_start:
        raise ValueError("--until-idle and --from-start go with --follow. Received: without --follow")

    result = predict_next(args.symbol, args.model_version, args.data, args.models_dir, args.target, args.timeframe,
                          _model_type(args.model_type), uncertainty=args.uncertainty, n_samples=args.samples,
                          interval=args.interval)
    if args.json:
        _print_json(result)
    else:
        shared = f" [{result['stored_as']}]" if result.get("stored_as", result["symbol"]) != result["symbol"] else ""
        print(f"{result['symbol']} {result['model_type']}{shared} {result['version']} ({result['target']}): "
              f"as of {result['as_of']}: {result['text']}")
        if "interval" in result:
            print(result["interval"]["text"])
        if "uncertainty" in result:
            print(result["uncertainty"]["text"])
        for note in result.get("notes", []):
            print(note)
    return 0


def _walk_forward(args) -> int:
    from ml.training_pipeline.walk_forward import check_folds, walk_forward, walk_forward_config

    check_folds(args.walk_forward)  # before any data is read
    config = walk_forward_config(args.symbol, args.models_dir, version=args.model_version, target=args.target,
                                 timeframe=args.timeframe, model_type=args.model_type, variant=args.variant,
                                 days=args.days, epochs=args.epochs, data_path=args.data)
    log = None if args.json else (lambda line: print(line, flush=True))
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        report = walk_forward(config, args.walk_forward, log=log)
    if args.json:
        _print_json(report.to_dict())
        return 0
    print(f"{config.symbol} {config.model_type} ({config.variant}), {len(report.folds)}-fold walk-forward: each fold "
          "refitted on everything before its test window")
    print(report.table())
    return 0


def _evaluate(args) -> int:
    from ml.training_pipeline.common.metrics import format_report
    from ml.training_pipeline.inference import evaluate_stored

    if args.walk_forward is not None:
        return _walk_forward(args)
    if args.data is None:
        raise ValueError("atb evaluate needs --data FILE (a stored model on new data) or --walk-forward K (refits)")

    result = evaluate_stored(args.symbol, args.data, args.model_version, args.models_dir, args.target, args.timeframe,
                             _model_type(args.model_type))
    if args.json:
        _print_json(result)
    else:
        data = result["data"]
        print(f"{result['symbol']} {result['model_type']} {result['version']} on {data['source']} "
              f"[{data['layout']}], {data['start'][:16]} .. {data['end'][:16]}")
        print(format_report(result["report"]))
        for note in result.get("notes", []):
            print(note)
        if result["in_sample_bars"]:
            start, end = (t[:16] for t in result["model_fitted_on"])
            print(f"warning: {result['in_sample_bars']} of {result['report']['n']} {result.get('unit', 'bars')} fall in "
                  f"{start} .. {end}, "
                  "the data the model was fitted or early-stopped on; those figures are in-sample, not a forecast")
    return 0


def _benchmark(args) -> int:
    from pathlib import Path

    from ml.training_pipeline.comparison import docs_page

    if args.from_json:
        from ml.training_pipeline.comparison import Comparison

        source = Path(args.from_json)
        if not source.is_file():
            raise ValueError(f"No comparison file at {args.from_json!r} (atb benchmark writes comparison.json)")
        try:
            comparison = Comparison.load(source)
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{args.from_json!r} is not a comparison.json written by atb benchmark") from None
        paths = {"json": source}
    else:
        comparison, paths = _run_benchmark(args)
    if args.docs:
        from ml.training_pipeline.common.plots import plot_comparison

        page = Path(args.docs)
        page.parent.mkdir(parents=True, exist_ok=True)
        image = page.with_name(page.stem + ".png")  # drawn from the rows, beside the page
        plot_comparison(comparison.rows(), image, f"{comparison.setup.get('symbol', '')} test window: RMSE and "
                        "training time")
        page.write_text(docs_page(comparison, image.name))
    if args.json:
        _print_json({"results": comparison.rows(), "setup": comparison.setup, "files": {k: str(v) for k, v in paths.items()}})
        return 0
    setup = comparison.setup
    print(f"{setup.get('symbol')} {setup.get('timeframe')}, last {setup.get('days')} days, {setup.get('test_bars')} test "
          f"bars, variant {setup.get('variant')}, seed {setup.get('seed')}; {setup.get('ceiling')}")
    print(comparison.table())
    print("best: " + ", ".join(f"{k} {v}" for k, v in comparison.best().items()))
    if not args.from_json:
        print(f"saved {', '.join(str(p) for p in paths.values())}" + (f" and {args.docs}" if args.docs else ""))
    return 0


def _run_benchmark(args):
    from ml.training_pipeline.comparison import run_comparison

    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        comparison = run_comparison(args.models, args.variant, args.symbol, args.days,
                                    30 if args.epochs is None else args.epochs, args.batch_size, args.patience,
                                    args.seed, latency=not args.no_latency, data_path=args.data)
    return comparison, comparison.save(args.out)


def _diagnose(args) -> int:
    from ml.training_pipeline.diagnostics import diagnose_log, diagnose_price

    if args.log_format:
        report = diagnose_log(_log_file(args), args.log_format, _windowing(args), anomalous_sessions=args.labels,
                              seed=args.seed)
    else:
        report = diagnose_price(args.name, args.target, args.data, timeframe=_timeframe(args.timeframe, args.data),
                                horizon=args.horizon,
                                days=args.days, seed=args.seed, cost_bps=args.cost_bps)
    if args.json:
        _print_json(report.to_dict())
    else:
        print(report.text())
    return 0


HANDLERS = {("train", "model"): _train, ("train", "anomaly"): _train_anomaly, ("models", "list"): _models_list, ("predict", None): _predict,
            ("evaluate", None): _evaluate, ("benchmark", None): _benchmark, ("tune", None): _tune,
            ("diagnose", None): _diagnose, ("models", "verify"): _models_verify,
            ("cluster-local", None): _cluster_local}


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``atb``; returns the exit code."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    # cluster-local's own options may follow N; everything after the first '--' is the command it runs
    tail = None
    if argv[:1] == ["cluster-local"] and "--" in argv:
        cut = argv.index("--")
        argv, tail = argv[:cut], argv[cut + 1:]
    args = parser.parse_args(argv)
    if tail is not None:
        args.cluster_command = tail
    handler = HANDLERS.get((args.command, getattr(args, "what", None)))
    if handler is None:
        if args.command is None:
            parser.print_help()
            return 0
        subcommands = ", ".join(what for command, what in HANDLERS if command == args.command and what)
        print(f"atb: error: 'atb {args.command}' needs a subcommand: {subcommands} "
              f"(see 'atb {args.command} --help')", file=sys.stderr)
        return EXIT_BAD_INPUT
    from ml.training_pipeline.common.quiet import NativeLogFilter

    # TensorFlow's native start-up notices are dropped from stderr unless --debug asks for everything
    with contextlib.nullcontext() if getattr(args, "debug", False) else NativeLogFilter():
        return _run(handler, args)


def _run(handler, args) -> int:
    """The command, with every expected failure turned into one line and an exit code."""
    from ml.training_pipeline.export import OnnxParityError  # light (NumPy only); after --help has exited

    try:
        return handler(args)
    except OnnxParityError as error:  # not the user's input, but still one clear line and no version stored
        if args.debug:
            raise
        print(f"atb: error: {error}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("atb: interrupted; nothing was stored", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, FileNotFoundError) as error:
        if args.debug:
            raise
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"atb: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as error:  # the machine's, not the input's (a full disk, a lost mount): one line, nothing stored
        if args.debug:
            raise
        where = f" ({error.filename})" if error.filename else ""
        print(f"atb: error: {error.strerror or error}{where}; nothing was stored (--debug for the traceback)",
              file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    raise SystemExit(main())
