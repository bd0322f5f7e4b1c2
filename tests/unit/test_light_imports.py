"""`import ml` and listing models must not import TensorFlow, LightGBM or ONNX Runtime."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("tensorflow", "keras", "lightgbm", "onnxruntime")


def _imported_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return {m for m in out.strip().split(",") if m}


def test_import_ml_is_light():
    assert _imported_after("import ml") == set()


def test_listing_models_is_light():
    assert _imported_after("from ml.training_pipeline.models import list_models, AVAILABLE_MODELS; list_models()") == set()


def test_atb_help_imports_no_pandas_either():
    """`atb --help` reads the targets, log formats and models without pandas (0.14 s here; 0.46 s when a
    hoisted import pulled pandas in through the config and the problems package)."""
    help_run = "from ml.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    code = f"import sys\n{help_run}\nprint('IMPORTED=' + ','.join(m for m in ('pandas', 'tensorflow') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "IMPORTED="


def test_one_problem_module_does_not_load_every_problem():
    assert _imported_after("import ml.training_pipeline.problems.anomaly.formats") == set()
    code = "import sys; import ml.training_pipeline.problems.anomaly.formats; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_a_lightgbm_run_imports_no_tensorflow(tmp_path):
    """Seeding belongs to the model's kind and interpretation needs a Keras model: a tree run stays without
    TensorFlow (issue 24 measured +0.5 GB and 10-16 s for nothing)."""
    code = ("import sys; from ml.cli import main; "
            f"code = main(['train', 'model', 'BTCUSDT', '--model-type', 'lightgbm', '--days', '60', '--epochs', '3', "
            f"'--models-dir', {str(tmp_path)!r}, '--quiet']); "
            "print('IMPORTED=' + ','.join(m for m in ('tensorflow', 'keras') if m in sys.modules), code)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.strip().splitlines()[-1] == "IMPORTED= 0", done.stdout[-500:] + done.stderr[-2000:]
