"""Experiment tracking in MLflow (optional extra: ``pip install 'atb-ml[mlflow]'``).

With ``train(config, mlflow=...)`` / ``atb train ... --mlflow [URI]``, or with ``MLFLOW_TRACKING_URI`` set, a run
logs to MLflow:

* its parameters: the whole configuration (``config.*``), the model's resolved hyperparameters (``model.*``),
  the data range and split sizes;
* its per-epoch metrics, live after every epoch of a Keras model (``log_epoch``), and every series of the
  history at its epoch when training ends (what was not logged live: LightGBM's rounds, the epochs a resumed
  run did before the interruption);
* its final test metrics next to the naive baselines on the same rows (``test.model.rmse``,
  ``test.persistence.rmse``, ``test.skill``...);
* the stored version's files (model, ONNX, metadata, plots) under the artifact path ``model_version``;
* optionally a registered model version (``register_model="BTCUSDT-tcn"``) pointing at those files.

Without either, nothing is imported and nothing changes. The tracking store is checked before any data is read:
an unreachable server, an unusable database or a missing ``mlflow`` package stop the run with one line.

Example:
    >>> train(config, mlflow="sqlite:///mlflow.db", register_model="btc-tcn")  # doctest: +SKIP
    >>> # mlflow ui --backend-store-uri sqlite:///mlflow.db
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

ARTIFACT_PATH = "model_version"
_PROBE_SETTINGS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _flatten(values: Mapping[str, Any], prefix: str = "", depth: int = 4) -> dict[str, Any]:
    flat = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and depth > 0:
            flat.update(_flatten(value, f"{name}.", depth - 1))
        else:
            flat[name] = value
    return flat


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


class MlflowTracker:
    """Logs one training run to an MLflow tracking store.

    Args:
        uri: tracking URI (``sqlite:///mlflow.db``, ``http://host:5000``...); ``None``: MLflow's own default.
        experiment: experiment name (created when missing).
        register_model: a registered-model name to add the stored version to (``None``: no registration).
    """

    def __init__(self, uri: str | None = None, experiment: str = "atb", register_model: str | None = None):
        self.uri = uri
        self.experiment = experiment
        self.register_model = register_model
        self.run_id: str | None = None
        self._client = None
        self._logged: set[tuple[str, int]] = set()

    @classmethod
    def from_settings(cls, mlflow: bool | str | None, experiment: str | None, register_model: str | None,
                      default_experiment: str) -> MlflowTracker | None:
        """The tracker a run asks for: ``mlflow`` False: none; a URI: that store; True: ``MLFLOW_TRACKING_URI`` or
        MLflow's default; ``None``: tracking only when ``MLFLOW_TRACKING_URI`` is set.

        Raises:
            ValueError: ``register_model`` or ``experiment`` given while tracking is off, or an empty URI.
        """
        environment_uri = os.environ.get("MLFLOW_TRACKING_URI") or None
        enabled = bool(mlflow) or (mlflow is None and environment_uri is not None)
        if not enabled:
            if register_model or experiment:
                raise ValueError("register_model and experiment need MLflow tracking: pass mlflow=True or a URI "
                                 "(--mlflow [URI]) or set MLFLOW_TRACKING_URI. Received: "
                                 f"register_model={register_model!r}, experiment={experiment!r}, mlflow={mlflow!r}")
            return None
        if isinstance(mlflow, str) and not mlflow.strip():
            raise ValueError("mlflow must be True or a tracking URI such as sqlite:///mlflow.db. Received: ''")
        uri = mlflow if isinstance(mlflow, str) else environment_uri
        return cls(uri, experiment or default_experiment, register_model)

    @property
    def client(self):
        if self._client is None:
            try:
                import mlflow  # the optional [mlflow] extra: imported when tracking is on
            except ImportError:
                raise ValueError("MLflow tracking needs the mlflow package: pip install 'atb-ml[mlflow]'. "
                                 f"Received: tracking URI {self.uri!r}") from None
            self._client = mlflow.MlflowClient(tracking_uri=self.uri)
        return self._client

    def check(self) -> None:
        """Reaches the tracking store now, before any training, and creates the experiment when missing.

        Raises:
            ValueError: the package is missing or the store cannot be reached or used (one line).
        """
        try:
            with _environment(_PROBE_SETTINGS):
                experiment = self.client.get_experiment_by_name(self.experiment)
                if experiment is None:
                    self.client.create_experiment(self.experiment, artifact_location=self._artifact_location())
        except ValueError:
            raise
        except Exception as error:  # MLflow raises its own, requests' and SQLAlchemy's errors
            text = str(error)
            if "Max retries exceeded" in text or "Failed to establish a new connection" in text:
                reason = "no tracking server answers at that address"
            else:
                reason = (text.splitlines()[0] if text else type(error).__name__)[:200]
            raise ValueError(f"The MLflow tracking store {self.uri or '(default)'!r} cannot be used: {reason}. "
                             "Check --mlflow / MLFLOW_TRACKING_URI (nothing was trained)") from None

    def _artifact_location(self) -> str | None:
        """Beside a SQLite database, its artifacts (MLflow would put them under the current folder)."""
        if self.uri and self.uri.startswith("sqlite:///"):
            database = Path(self.uri[len("sqlite:///"):])
            return (database.parent / "mlartifacts").resolve().as_uri()
        return None

    def start(self, run_name: str, params: Mapping[str, Any], tags: Mapping[str, str] | None = None) -> str:
        """Opens the run with its parameters; returns its id."""
        from mlflow.entities import Param  # the optional [mlflow] extra: imported when tracking is on

        experiment = self.client.get_experiment_by_name(self.experiment)
        run = self.client.create_run(experiment.experiment_id, run_name=run_name, tags=dict(tags or {}))
        self.run_id = run.info.run_id
        flat = [Param(k, str(v)[:6000]) for k, v in sorted(_flatten(params).items())]
        for start in range(0, len(flat), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=flat[start:start + 100])
        return self.run_id

    def log_epoch(self, epoch: int, logs: Mapping[str, Any] | None) -> None:
        """Logs one epoch's numeric logs at step ``epoch`` while training runs (a Keras callback calls it)."""
        import time

        from mlflow.entities import Metric  # the optional [mlflow] extra: imported when tracking is on

        now = int(time.time() * 1000)
        metrics = [Metric(key, value, now, epoch) for key, raw in (logs or {}).items()
                   if (value := _number(raw)) is not None]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)
            self._logged.update((m.key, epoch) for m in metrics)

    def log_history(self, history: Mapping[str, list]) -> int:
        """Every numeric series of the history at its epoch (step = epoch index), except the values already logged
        live by :meth:`log_epoch`; returns how many values it logged."""
        from mlflow.entities import Metric  # the optional [mlflow] extra: imported when tracking is on

        metrics = [Metric(key, value, 0, step) for key, values in history.items() for step, raw in enumerate(values)
                   if (value := _number(raw)) is not None and (key, step) not in self._logged]
        for start in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[start:start + 1000])
        return len(metrics)

    def log_results(self, report: Mapping[str, Any], summary: Mapping[str, Any] | None = None) -> dict[str, float]:
        """The final test metrics, model and baselines side by side (``test.<row>.<metric>``)."""
        from mlflow.entities import Metric  # the optional [mlflow] extra: imported when tracking is on

        values = {name: number for name, raw in _flatten(report, "test.", depth=2).items()
                  if (number := _number(raw)) is not None}
        values.update({name: number for name, raw in _flatten(summary or {}, "summary.", depth=1).items()
                       if (number := _number(raw)) is not None})
        metrics = [Metric(name, value, 0, 0) for name, value in sorted(values.items())]
        for start in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[start:start + 1000])
        return values

    def log_version(self, version_dir: str | Path) -> str | None:
        """Logs the stored version's files; registers them when asked. Returns the registered version or ``None``."""
        self.client.log_artifacts(self.run_id, str(version_dir), ARTIFACT_PATH)
        self.client.set_tag(self.run_id, "atb.version_dir", str(version_dir))
        if not self.register_model:
            return None
        from mlflow.exceptions import MlflowException  # the optional [mlflow] extra: imported when tracking is on

        with contextlib.suppress(MlflowException):  # already registered by an earlier run
            self.client.create_registered_model(self.register_model)
        source = f"{self.client.get_run(self.run_id).info.artifact_uri}/{ARTIFACT_PATH}"
        version = self.client.create_model_version(self.register_model, source, run_id=self.run_id,
                                                   tags={"atb.version_dir": str(version_dir)})
        return str(version.version)

    def end(self, failed: bool = False) -> None:
        """Closes the run (``FAILED`` when training raised)."""
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, "FAILED" if failed else "FINISHED")
