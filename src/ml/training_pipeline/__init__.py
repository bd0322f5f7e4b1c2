"""Model factory, training pipeline, evaluation, export and store.

Submodules are imported on demand so that ``import ml.training_pipeline`` stays light;
the public factory lives in :mod:`ml.training_pipeline.models`.
"""
