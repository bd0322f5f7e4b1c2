"""Log-anomaly detectors on the real BGL sample parsed from raw text, over several seeds, next to every baseline.

What it runs (a temporary model store; nothing is written to src/ml/models):

1. **Parsing.** The bundled BGL and OpenStack samples rebuilt as the raw lines Loghub parsed them from, read
   back through the library's line formats and Drain3: lines/s, templates, and how Drain3's grouping agrees
   with Loghub's hand-checked templates (adjusted Rand index). OpenStack's sample carries no labels (Loghub
   labels it by instance id, a file not bundled), so it is benchmarked for parsing only.
2. **Detection on raw BGL**, for each windowing (``--windowings``; default: 20-event windows every 5 events
   with the windows across a split border purged, and 5-minute time windows), each model (``--models``) and
   each validation layout (``--validation-blocks``: the windows just before the test part, or K blocks spread
   over the time before it) and each seed (``--seeds``): the library's ``train`` (the path of ``atb train
   anomaly``), scored on the
   chronological test windows at the threshold chosen on validation (never on test). Every row is mean +- sd
   over the seeds: the models (at the validation threshold, and at a plain 0.5), the majority class, the count-vector LightGBM and logistic regression (their
   thresholds from validation too), the count logistic at a plain 0.5, and the operator's rules at 0.5 (a
   FATAL/CRITICAL line in the window; a template never seen in training).
3. **Live detection.** The first model of the first windowing, stored, following a file the benchmark appends
   the 2,000 raw BGL lines to: all at once (one poll) and 50 lines per poll; lines/s of work (reading, parsing,
   template matching, windowing, encoding and scoring; the poll interval's sleep excluded).

Usage:
    python benchmarks/log_anomaly.py [--seeds 42 1 2] [--models multimodal_transformer lightgbm] [--epochs 60]
        [--windowings events:20:5 time:5min] [--validation-blocks 1 4] [--variant default] [--param dropout=0.2]
        [--no-follow]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

from ml.data import bundled_log_path
from ml.training_pipeline.config import TrainingConfig
from ml.training_pipeline.pipeline import train
from ml.training_pipeline.problems import LogAnomalyProblem
from ml.training_pipeline.problems.anomaly.formats import get_log_format, load_log_events
from ml.training_pipeline.problems.anomaly.lines import render_lines
from ml.training_pipeline.problems.anomaly.windows import Windowing

COLUMNS = ("f1", "pr_auc", "roc_auc", "precision", "recall", "false_positive_rate")


def raw_copy(log_format: str, folder: Path) -> Path:
    """The bundled structured sample written back as raw lines in the format's line layout."""
    frame = pd.read_csv(bundled_log_path(log_format), dtype=str, keep_default_na=False)
    path = folder / f"{log_format}_2k.log"
    path.write_text("\n".join(render_lines(frame.to_dict("records"), get_log_format(log_format).line_format)) + "\n")
    return path


def parsing_rows(folder: Path) -> list[str]:
    from sklearn.metrics import adjusted_rand_score

    rows = ["| log | lines | lines/s (split + Drain3) | Drain3 templates | Loghub templates | adjusted Rand index |",
            "|---|---|---|---|---|---|"]
    for log_format in ("bgl", "openstack"):
        path = raw_copy(log_format, folder)
        structured = load_log_events(bundled_log_path(log_format), log_format)
        load_log_events(path, log_format)  # Drain3's import and first use, outside the timing
        started = time.perf_counter()
        raw = load_log_events(path, log_format)
        seconds = time.perf_counter() - started
        agreement = adjusted_rand_score(structured.frame["eventid"], raw.frame["eventid"])
        rows.append(f"| {log_format} | {raw.lines['lines']} | {raw.lines['lines'] / seconds:,.0f} | {len(raw.templates)} "
                    f"| {structured.frame['eventid'].nunique()} | {agreement:.4f} |")
    return rows


def windowing_of(text: str) -> Windowing:
    kind, *rest = text.split(":")
    if kind == "events":
        return Windowing("events", int(rest[0]), step=int(rest[1]) if len(rest) > 1 else None)
    return Windowing(kind, rest[0], step=rest[1] if len(rest) > 1 else None)


def spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} +- {statistics.stdev(values):.3f}"


def detection_table(raw_bgl: Path, windowing: Windowing, models: list[str], seeds: list[int], epochs: int,
                    store: str, validation_blocks: int = 1, variant: str = "default",
                    params: dict | None = None) -> list[str]:
    results: dict[str, list[dict[str, float]]] = {}
    counts, seconds = None, {}
    for model_type in models:
        for seed in seeds:
            problem = LogAnomalyProblem(raw_bgl, "bgl", windowing, validation_blocks=validation_blocks)
            config = TrainingConfig(symbol="BGL", model_type=model_type, epochs=epochs, batch_size=32, patience=10,
                                    seed=seed, models_dir=store, variant=variant if model_type == models[0] else "default",
                                    model_kwargs=(params or {}) if model_type == models[0] else {})
            started = time.perf_counter()
            result = train(config, verbose=0, problem=problem)
            seconds.setdefault(model_type, []).append(time.perf_counter() - started)
            counts, report = result.row_counts, result.report
            results.setdefault(model_type, []).append(report["model"])
            results.setdefault(f"{model_type} at 0.5", []).append(report["model_at_0.5"])
            if model_type == models[0]:  # the baselines do not depend on the model: one set per seed
                for name in ("majority", *report["baseline_thresholds"]):
                    results.setdefault(name, []).append(report[name])
    blocks = "validation just before test" if validation_blocks == 1 else f"validation in {validation_blocks} blocks"
    blocks += "" if variant == "default" else f", {models[0]} {variant}"
    blocks += "".join(f", {key}={value}" for key, value in (params or {}).items())
    lines = [f"BGL 2k parsed from raw lines, {windowing.describe()}, {blocks}: train/validation/test windows "
             f"{counts['train_windows']}/{counts['validation_windows']}/{counts['test_windows']} "
             f"(anomalous {counts['anomalous_train']}/{counts['anomalous_validation']}/{counts['anomalous_test']}; "
             f"{counts['purged_windows']} purged at the borders; distinct lines {counts['train_lines']}/"
             f"{counts['validation_lines']}/{counts['test_lines']}), {len(seeds)} seeds ({', '.join(map(str, seeds))}), "
             "thresholds from validation (rules and the plain 0.5 row at 0.5)", "",
             "| detector | " + " | ".join(COLUMNS) + " | train s |", "|---|" + "---|" * (len(COLUMNS) + 1)]
    for name, runs in results.items():
        took = spread(seconds[name]) if name in seconds else "-"
        lines.append(f"| {name} | " + " | ".join(spread([r[c] for r in runs]) for c in COLUMNS) + f" | {took} |")
    return lines


def follow_rows(store: str, model_type: str, raw_bgl: Path, folder: Path) -> list[str]:
    from ml.training_pipeline.inference import StoredModel
    from ml.training_pipeline.problems.anomaly.follow import LogFollower
    from ml.training_pipeline.problems.anomaly.problem import model_inputs

    stored = StoredModel.load("BGL", models_dir=store, model_type=model_type)

    def score(encoded):
        return stored.predict({s.name: model_inputs(encoded)[s.name] for s in stored.inputs})[:, 0]

    lines = raw_bgl.read_text().splitlines(keepends=True)
    rows = [f"Live detection, {model_type} (stored, {stored.schema['windowing']['by']} windows), 2,000 raw BGL lines:",
            "", "| appended per poll | polls | windows scored | lines/s of work |", "|---|---|---|---|"]
    for chunk in (len(lines), 50):
        path = folder / f"follow_{chunk}.log"
        path.write_text("")
        follower = LogFollower(stored.schema, path, score)
        for start in range(0, len(lines), chunk):
            with path.open("a") as log:
                log.writelines(lines[start:start + chunk])
            follower.poll()
        follower.close()
        rows.append(f"| {chunk} | {-(-len(lines) // chunk)} | {follower.counts['windows']} | "
                    f"{follower.counts['lines'] / follower.busy_s:,.0f} |")
    return rows


def _value(text: str):
    """A parameter's JSON value, or the text itself (``optimizer=adamw``)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["multimodal_transformer", "lightgbm"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 1, 2])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--windowings", nargs="+", default=["events:20:5", "time:5min"])
    parser.add_argument("--validation-blocks", nargs="+", type=int, default=[1, 4])
    parser.add_argument("--variant", default="default", help="the first model's variant")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=JSON", help="the first model's parameter")
    parser.add_argument("--no-follow", action="store_true", help="skip the live-detection rows")
    args = parser.parse_args()
    params = {key: _value(value) for key, _, value in (p.partition("=") for p in args.param)}
    with tempfile.TemporaryDirectory() as folder:
        print("\n".join(parsing_rows(Path(folder))), end="\n\n", flush=True)
        raw_bgl = raw_copy("bgl", Path(folder))
        for number, text in enumerate(args.windowings):
            for blocks in args.validation_blocks:
                table = detection_table(raw_bgl, windowing_of(text), args.models, args.seeds, args.epochs, folder,
                                        blocks, args.variant, params)
                print("\n".join(table), end="\n\n", flush=True)
            if number == 0 and not args.no_follow:
                print("\n".join(follow_rows(folder, args.models[0], raw_bgl, Path(folder))), end="\n\n", flush=True)


if __name__ == "__main__":
    main()
