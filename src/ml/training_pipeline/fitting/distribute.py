"""Training on several devices or hosts with TensorFlow's own strategies (``TrainingConfig.distribute``).

* ``none``: the default strategy of one process.
* ``mirrored``: ``tf.distribute.MirroredStrategy``, one replica per local GPU (one on a CPU-only machine).
* ``multi-worker``: ``tf.distribute.MultiWorkerMirroredStrategy`` across the hosts that ``TF_CONFIG`` lists,
  exactly as TensorFlow defines it, so the same command runs on every host. Worker 0 (or the ``chief`` task, when
  the cluster has one) is the chief: it evaluates, exports and stores; the other workers write nothing.

The model is built and compiled inside the strategy's scope; ``batch_size`` is the global batch, split across
the replicas; the datasets are sharded by data (each worker reads its share of every batch).

Keras 3.15 does not run ``MultiWorkerMirroredStrategy`` as shipped (keras-team/keras#20585: its first-batch
build and its metric reduction fail on the collective strategy); the factory's model class carries the two fixes
(:class:`ml.training_pipeline.models.kinds.fast_predict.FastPredictModel`) and runs one step per execution there.

Example:
    >>> from ml.training_pipeline.fitting.distribute import read_tf_config
    >>> read_tf_config({"TF_CONFIG": '{"cluster": {"worker": ["h1:2222", "h2:2222"]}, '
    ...                 '"task": {"type": "worker", "index": 1}}'}).describe()
    'worker 1 of 2'
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ml.training_pipeline.common.arguments import unknown_name_error

STRATEGIES: dict[str, str] = {
    "none": "one process, TensorFlow's default strategy",
    "mirrored": "tf.distribute.MirroredStrategy: one replica per local GPU",
    "multi-worker": "tf.distribute.MultiWorkerMirroredStrategy across the hosts TF_CONFIG lists",
}
_ADDRESS = re.compile(r"^[A-Za-z0-9_.\-\[\]:]+:\d{1,5}$")
_EXAMPLE = ('TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", '
            '"index": 0}}\'')


def check_strategy(name: object) -> str:
    """An accepted strategy name.

    Example:
        >>> check_strategy("multi-worker")
        'multi-worker'
    """
    if name not in STRATEGIES:
        raise unknown_name_error("distribute", name, STRATEGIES)
    return str(name)


@dataclass(frozen=True)
class ClusterRole:
    """This process's place in a ``TF_CONFIG`` cluster.

    Attributes:
        task_type: ``worker`` or ``chief``.
        index: the task's index within its type.
        workers: how many processes train (chief included).
        is_chief: whether this process evaluates and stores.
        rank: this process's position among all training processes (0 for the chief).
    """

    task_type: str
    index: int
    workers: int
    is_chief: bool
    rank: int

    def describe(self) -> str:
        """``worker 1 of 2`` or ``worker 0 of 2 (chief)``."""
        return f"{self.task_type} {self.index} of {self.workers}" + (
            " (chief)" if self.is_chief and self.task_type != "chief" else "")


def read_tf_config(environ: Mapping[str, str] | None = None) -> ClusterRole:
    """Reads and checks ``TF_CONFIG`` as TensorFlow defines it (``cluster`` with ``worker`` and optionally one
    ``chief``; ``task`` with ``type`` and ``index``).

    Raises:
        ValueError: unset, not JSON, a cluster without workers or with malformed addresses, a task type the cluster
            lacks, or an index out of range (one line each, naming what was received and what is accepted).
    """
    environ = os.environ if environ is None else environ
    text = environ.get("TF_CONFIG")
    if not text:
        raise ValueError("--distribute multi-worker reads the cluster from TF_CONFIG, which is not set. Set it on "
                         f"every host, e.g. {_EXAMPLE}, or try it on this machine with: atb cluster-local 2 -- "
                         "atb train model ... --distribute multi-worker")
    try:
        config = json.loads(text)
    except ValueError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error.args[0] if error.args else error}). "
                         f"Expected e.g. {_EXAMPLE}. Received: TF_CONFIG={text!r}") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ValueError(f"TF_CONFIG needs a 'cluster' and a 'task' object. Expected e.g. {_EXAMPLE}. "
                         f"Received: TF_CONFIG={text!r}")
    unknown = sorted(set(cluster) - {"worker", "chief"})
    if unknown:
        raise ValueError(f"TF_CONFIG's cluster lists {', '.join(unknown)}; multi-worker training accepts 'worker' "
                         f"and one 'chief'. Received: cluster={cluster!r}")
    for job, addresses in cluster.items():
        if (not isinstance(addresses, list) or not addresses
                or not all(isinstance(a, str) and _ADDRESS.match(a) for a in addresses)):
            raise ValueError(f"TF_CONFIG's cluster {job!r} must be a non-empty list of 'host:port' strings. "
                             f"Received: {job}={addresses!r}")
    if len(cluster.get("chief", [])) > 1:
        raise ValueError(f"TF_CONFIG's cluster may have one chief. Received: chief={cluster['chief']!r}")
    task_type, index = task.get("type"), task.get("index")
    if task_type not in cluster:
        raise ValueError(f"TF_CONFIG's task type must be one the cluster lists ({', '.join(sorted(cluster))}). "
                         f"Received: task type={task_type!r}")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(cluster[task_type]):
        raise ValueError(f"TF_CONFIG's task index is out of range: the cluster has {len(cluster[task_type])} "
                         f"{task_type}(s), so the index must be 0..{len(cluster[task_type]) - 1}. "
                         f"Received: index={index!r}")
    has_chief = "chief" in cluster
    workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
    rank = index if task_type == "chief" else index + int(has_chief)
    return ClusterRole(task_type, index, workers, task_type == "chief" or (not has_chief and index == 0), rank)


@dataclass(frozen=True)
class Distribution:
    """A strategy in use: what the stored version records.

    Attributes:
        name: the ``distribute`` setting.
        strategy: the ``tf.distribute.Strategy``.
        role: this process's cluster role (``multi-worker`` only).
    """

    name: str
    strategy: Any
    role: ClusterRole | None = None

    @property
    def replicas(self) -> int:
        return int(self.strategy.num_replicas_in_sync)

    @property
    def is_chief(self) -> bool:
        """Whether this process evaluates, exports and stores."""
        return self.role is None or self.role.is_chief

    def record(self) -> dict[str, Any]:
        """``{"strategy", "replicas", "workers", "task"}`` for ``metadata.json``."""
        return {"strategy": self.name, "replicas": self.replicas,
                "workers": self.role.workers if self.role else 1,
                "task": self.role.describe() if self.role else "single process"}

    def describe(self, batch_size: int) -> str:
        """The log line: strategy, replicas and the per-replica batch."""
        where = f", this process is {self.role.describe()}" if self.role else ""
        return (f"distribute: {self.name} with {self.replicas} replica(s){where}; global batch {batch_size} "
                f"= {batch_size / self.replicas:g} per replica")


def make_distribution(name: str) -> Distribution | None:
    """The strategy for ``name`` (``None`` for ``none``); ``multi-worker`` checks ``TF_CONFIG`` first and connects to
    the other workers (this call waits until they are all up).

    Raises:
        ValueError: an unknown name or a bad ``TF_CONFIG`` (before TensorFlow is imported).
    """
    check_strategy(name)
    if name == "none":
        return None
    role = read_tf_config() if name == "multi-worker" else None
    import tensorflow as tf

    if name == "mirrored":
        return Distribution(name, tf.distribute.MirroredStrategy())
    return Distribution(name, tf.distribute.MultiWorkerMirroredStrategy(), role)


def is_collective_multi_worker(strategy: Any) -> bool:
    """Whether ``strategy`` is a multi-worker collective strategy (the case Keras 3 needs help with)."""
    import tensorflow as tf

    return (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and strategy.extended._in_multi_worker_mode())
