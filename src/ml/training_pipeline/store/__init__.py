"""The versioned model store on disk (:mod:`.versions`) and the integrity of what it holds (:mod:`.integrity`).

Example:
    >>> from ml.training_pipeline.store import ModelStore
    >>> ModelStore.__name__
    'ModelStore'
"""

from ml.training_pipeline.store.versions import ModelStore

__all__ = ["ModelStore"]
