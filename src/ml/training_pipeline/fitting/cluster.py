"""Try a cluster on one machine: start N local processes of the same command, each told its role through the
environment variables the engines read, on free loopback ports.

* ``tf`` (``atb cluster-local N -- atb train ... --distribute multi-worker``): N workers, each with a
  ``TF_CONFIG`` listing ``127.0.0.1:<port>`` for every worker and its own task index.
* ``tuner`` (``atb cluster-local N --tuner -- atb tune ...``): keras-tuner's chief (the oracle, which trains
  nothing) and N tuner workers, through ``KERASTUNER_TUNER_ID``, ``KERASTUNER_ORACLE_IP`` and
  ``KERASTUNER_ORACLE_PORT``.

Every line a process prints comes back prefixed with its role. When one process fails the others are stopped (a
multi-worker strategy would otherwise wait for the missing worker forever).

Example:
    >>> run_local_cluster(2, ["atb", "train", "model", "BTCUSDT", "--distribute", "multi-worker"])  # doctest: +SKIP
    0
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence

from ml.training_pipeline.common.arguments import unknown_name_error

MODES = {"tf": "tf.distribute workers (TF_CONFIG)", "tuner": "keras-tuner chief and workers (KERASTUNER_*)"}
MAX_PROCESSES = 16


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on the loopback interface right now."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def cluster_environments(n: int, mode: str = "tf", port: int | None = None) -> list[tuple[str, dict[str, str]]]:
    """``(role, environment variables)`` of each process of a local cluster.

    Example:
        >>> [role for role, _ in cluster_environments(2, "tuner", port=9000)]
        ['chief', 'tuner0', 'tuner1']
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_PROCESSES:
        raise ValueError(f"A local cluster has 1..{MAX_PROCESSES} workers. Received: {n!r}")
    if mode not in MODES:
        raise unknown_name_error("mode", mode, MODES)
    last = (port or 0) + (0 if mode == "tuner" else n - 1)
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 1024 <= port or last > 65535):
        raise ValueError(f"port must leave room for the cluster's ports in 1024..65535 ({n} from the first). "
                         f"Received: port={port!r}")
    if mode == "tuner":
        oracle_port = port or free_ports(1)[0]
        common = {"KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(oracle_port)}
        return [(role, {**common, "KERASTUNER_TUNER_ID": role}) for role in ["chief", *(f"tuner{i}" for i in range(n))]]
    ports = [port + i for i in range(n)] if port else free_ports(n)
    workers = [f"127.0.0.1:{p}" for p in ports]
    return [(f"worker {i}", {"TF_CONFIG": json.dumps({"cluster": {"worker": workers},
                                                      "task": {"type": "worker", "index": i}})}) for i in range(n)]


def _resolved(command: Sequence[str]) -> list[str]:
    """``atb`` runs as this interpreter's ``python -m ml.cli`` (the console script may not be on PATH)."""
    command = list(command)
    if not command:
        raise ValueError("cluster-local needs the command every process runs, after '--'. "
                         "Received: nothing (e.g. atb cluster-local 2 -- atb train model BTCUSDT "
                         "--distribute multi-worker)")
    if command[0] == "atb":
        return [sys.executable, "-m", "ml.cli", *command[1:]]
    if shutil.which(command[0]) is None and not os.path.isfile(command[0]):
        raise ValueError(f"cluster-local cannot find the program {command[0]!r}. Received: {' '.join(command)}")
    return command


def run_local_cluster(n: int, command: Sequence[str], mode: str = "tf", port: int | None = None,
                      write: Callable[[str], None] | None = None, start_delay_s: float = 0.0) -> int:
    """Runs ``command`` in every process of a local cluster and waits for all of them.

    Args:
        n: workers (``tuner``: tuner workers, besides the chief).
        command: the command line every process runs (``atb ...`` runs with this interpreter).
        mode: ``tf`` or ``tuner``.
        port: first port (default: free ports found now).
        write: where the prefixed output lines go (default: stdout, flushed).
        start_delay_s: pause after starting the first process (``tuner``: lets the chief's oracle listen first).

    Returns:
        0 when every process succeeded, else the first failure's exit code.
    """
    write = write or (lambda line: print(line, flush=True))
    roles = cluster_environments(n, mode, port)
    argv = _resolved(command)
    processes: list[tuple[str, subprocess.Popen]] = []
    threads = []

    def pump(role: str, stream) -> None:
        for line in stream:
            write(f"[{role}] {line.rstrip()}")

    try:
        for number, (role, variables) in enumerate(roles):
            process = subprocess.Popen(argv, env={**os.environ, **variables}, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True, bufsize=1)
            processes.append((role, process))
            thread = threading.Thread(target=pump, args=(role, process.stdout), daemon=True)
            thread.start()
            threads.append(thread)
            if number == 0 and start_delay_s:
                time.sleep(start_delay_s)
        failure = 0
        running = dict(processes)
        while running:
            for role, process in list(running.items()):
                code = process.poll()
                if code is None:
                    continue
                del running[role]
                if code != 0 and not failure:
                    failure = code if code > 0 else 1
                    write(f"[cluster] {role} exited with {code}; stopping the others")
                    for other in running.values():
                        with contextlib.suppress(OSError):
                            other.send_signal(signal.SIGTERM)
            time.sleep(0.1)
        for thread in threads:
            thread.join(timeout=5)
        return failure
    except KeyboardInterrupt:
        for _, process in processes:
            with contextlib.suppress(OSError):
                process.send_signal(signal.SIGTERM)
        raise
