"""Every registered problem type, through the shared harness on its tiny ``example()``.

A new problem registers itself and gives an ``example()``; it is tested here for free.
"""

from __future__ import annotations

import pytest

from ml.testing import run_problem_test
from ml.training_pipeline.problems import PROBLEM_TYPES


@pytest.mark.parametrize("type_name", sorted(PROBLEM_TYPES))
def test_problem(type_name):
    problem, arguments = PROBLEM_TYPES[type_name].example()
    checked = run_problem_test(problem, arguments)
    assert all(rows > 0 for rows in checked["rows"].values())


def test_the_harness_catches_a_baseline_derived_from_the_predictions():
    """A baseline that leans on the model's own predictions (not the same naive forecast on the same rows) fails."""
    from ml.training_pipeline.problems import PriceReturn

    class LeakyBaseline(PriceReturn):
        def evaluate(self, predictions, data):
            report = super().evaluate(predictions, data)
            report["persistence"] = {k: v + abs(float(predictions[0])) for k, v in report["persistence"].items()}
            return report

    problem, arguments = PriceReturn.example()
    with pytest.raises(AssertionError, match="baseline 'persistence' moved with the predictions"):
        run_problem_test(LeakyBaseline(), arguments)


def test_the_harness_catches_a_report_on_other_rows():
    """A report that drops test rows (e.g. the last window) is not on the same rows as the test part."""
    from ml.training_pipeline.problems import PriceDirection

    class DropsLastWindow(PriceDirection):
        def evaluate(self, predictions, data):
            return {**super().evaluate(predictions, data), "n": len(data.test.y) - 1}

    problem, arguments = PriceDirection.example()
    with pytest.raises(AssertionError, match="covers n="):
        run_problem_test(DropsLastWindow(), arguments)
