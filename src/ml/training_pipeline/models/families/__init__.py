"""Model families, one module each. Importing this package registers every family with the registry.

Every module of this folder is imported here (``pkgutil``), so adding a family is one new file
that decorates its builder with :func:`~ml.training_pipeline.models.registry.register_model`.
Family modules import Keras only inside their builders, so registering (and listing) models
stays cheap.

Example:
    >>> from ml.training_pipeline.models.families import FAMILY_MODULES
    >>> "tcn" in FAMILY_MODULES and "lightgbm" in FAMILY_MODULES
    True
"""

from __future__ import annotations

import importlib
import pkgutil

FAMILY_MODULES: tuple[str, ...] = tuple(sorted(info.name for info in pkgutil.iter_modules(__path__)))
"""The family modules found in this folder (each registers its models when imported)."""

for _name in FAMILY_MODULES:
    importlib.import_module(f"{__name__}.{_name}")
