"""Floor 1: what every other floor uses, importing nothing of the package.

Argument errors (:mod:`.arguments`), named tensors and their checks (:mod:`.tensors`), metrics and
naive baselines (:mod:`.metrics`), splits, scaling and windows (:mod:`.windows`), sample weights
(:mod:`.sample_weights`), plots (:mod:`.plots`) and the machine's measured ceiling (:mod:`.hardware`).
"""
