"""Floor 2: what one fit needs beyond Keras: callbacks, precision, resume, distribution,
curriculum phases, experiment tracking and progress. Imports only :mod:`..common`.
"""
