"""Model families. Importing this package registers every family with the registry.

Family modules import Keras only inside their builders, so registering (and listing)
models stays cheap. Adding a family: a new module here and one import line below.
"""

from ml.training_pipeline import lightgbm_baseline  # noqa: F401  (registers "lightgbm")
from ml.training_pipeline.architectures import (  # noqa: F401  (registers)
    complexity_gated,
    embedding,
    multimodal,
    recurrent,
    state_space,
    tcn,
    tft,
    transformers,
)
