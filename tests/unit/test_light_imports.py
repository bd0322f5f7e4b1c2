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
