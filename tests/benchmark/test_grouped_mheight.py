"""Opt-in (`pytest tests/benchmark/test_grouped_mheight.py -m benchmark -s`): grouped training on the
shipped m-height set.

The complexity-gated model is trained three ways on the same split and seed: a uniform loss,
per-group loss weights (1 for the easy m = 2 groups up to 5 for the hardest, (k, m) = (4, 5)), and
the same weights with a three-tier curriculum (easy groups, then easy + medium, then all). Each is
shown per group in log2-MSE next to the naive baseline the run analysis uses (each group's median
log2 m-height from the training rows) and the problem's own group prior (each group's geometric mean,
the best constant for log2-MSE). The overall row is the plain mean over the test codes for every column
(the pipeline's own headline weighs rows by the loss weights; that figure is not comparable across runs).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from ml.examples import mheight

pytestmark = pytest.mark.benchmark

EASY = ("k4_m2", "k5_m2", "k6_m2")
MEDIUM = ("k4_m3", "k5_m3", "k6_m3")
WEIGHTS = {**dict.fromkeys(EASY, 1.0), **dict.fromkeys(MEDIUM, 2.0), "k4_m4": 3.0, "k5_m4": 3.0, "k4_m5": 5.0}
CURRICULUM = f"{'+'.join(EASY)}:30,{'+'.join(EASY + MEDIUM)}:30,all:90"
RUNS = {
    "uniform": {},
    "group weights": {"group_weights": WEIGHTS},
    "weights + curriculum": {"group_weights": WEIGHTS, "curriculum": CURRICULUM},
}
RESULTS: dict[str, dict] = {}


def _config(tmp_path, **kwargs):
    from ml.training_pipeline.config import TrainingConfig

    return TrainingConfig(symbol="MHEIGHT", model_type="complexity_gated", epochs=150, patience=20, batch_size=64,
                          models_dir=str(tmp_path), **kwargs)


@pytest.mark.parametrize("run", list(RUNS))
def test_grouped_training_variant(run, tmp_path_factory):
    from ml.training_pipeline.pipeline import train

    result = train(_config(tmp_path_factory.mktemp("mheight"), **RUNS[run]), verbose=0,
                   problem=mheight.mheight_problem())
    RESULTS[run] = {"report": result.report, "epochs": len(result.history["loss"]), "fit_s": result.timings["fit_s"],
                    "parity": result.onnx["max_scaled_diff"]}
    assert math.isfinite(result.report["model"]["log2_mse"]) and result.onnx["max_scaled_diff"] < 1e-4


def test_print_per_group_table(tmp_path):
    if not RESULTS:
        pytest.skip("no run finished")
    problem = mheight.mheight_problem()
    data = problem.prepare(_config(tmp_path))  # the same split the runs used (same seed)
    train_log = np.log2(data.train.y.astype(np.float64))
    test_log = np.log2(data.test.y.astype(np.float64))
    groups = sorted(set(data.test.groups))
    median = {g: float(np.median(train_log[data.train.groups == g])) for g in groups}
    baseline = {g: float(np.mean((test_log[data.test.groups == g] - median[g]) ** 2)) for g in groups}
    overall_baseline = float(np.mean((test_log - np.array([median[g] for g in data.test.groups])) ** 2))
    names = list(RESULTS)
    prior = {g: next(iter(RESULTS.values()))["report"]["by_group"][g]["group_prior"]["log2_mse"] for g in groups}
    counts = {g: int(np.sum(data.test.groups == g)) for g in groups}

    def overall(values):  # the unweighted mean over the test codes, from the per-group means
        return sum(values[g] * counts[g] for g in groups) / sum(counts.values())

    per_run = {n: {g: RESULTS[n]["report"]["by_group"][g]["model"]["log2_mse"] for g in groups} for n in names}
    print(f"\nm-height (n = 9), {len(data.train)} train / {len(data.validation)} validation / {len(data.test)} test codes,"
          f" seed 42; log2-MSE on the test codes (lower is better)")
    print(f"{'group':<8}{'n test':>7}{'median base':>13}{'group prior':>13}" + "".join(f"{n:>22}" for n in names))
    for g in groups:
        print(f"{g:<8}{counts[g]:>7}{baseline[g]:>13.3f}{prior[g]:>13.3f}" + "".join(
            f"{per_run[n][g]:>22.3f}" for n in names))
    assert abs(overall(baseline) - overall_baseline) < 1e-9
    print(f"{'overall':<8}{len(data.test):>7}{overall_baseline:>13.3f}{overall(prior):>13.3f}" + "".join(
        f"{overall(per_run[n]):>22.3f}" for n in names))
    worst = lambda values: max(values, key=values.get)  # noqa: E731
    print(f"{'worst':<8}{'':>7}{worst(baseline) + f' {baseline[worst(baseline)]:.2f}':>13}"
          f"{worst(prior) + f' {prior[worst(prior)]:.2f}':>13}" + "".join(
              f"{worst(per_run[n]) + ' ' + format(per_run[n][worst(per_run[n])], '.2f'):>22}" for n in names))
    print(f"{'epochs':<8}{'':>7}{'':>13}{'':>13}" + "".join(f"{RESULTS[n]['epochs']:>22}" for n in names))
    print(f"{'fit s':<8}{'':>7}{'':>13}{'':>13}" + "".join(f"{RESULTS[n]['fit_s']:>22.0f}" for n in names))
