"""Curriculum phases: train on some groups first, then more, as one training run.

A phase names the groups it trains on (or ``all``), its epochs and optionally a learning rate.
The phases run as one fit: the model, its optimizer state (moments, iteration count) and the
epoch counter carry across them; validation always uses every group, so the curve shows how the
whole problem improves; early stopping and the learning-rate schedule watch only the last phase
by default (an early phase is short on purpose and should not stop the run).

Written as a string for the CLI and ``TrainingConfig``: ``"GROUP[+GROUP...][@LR]:EPOCHS"`` joined by
commas, with ``all`` for every group, e.g. ``"BTCUSDT:10,all:40"`` or
``"k4_m2+k5_m2:50,k4_m2+k5_m2+k4_m3:50,all:100@3e-4"``.

Example:
    >>> parse_curriculum("BTCUSDT:10,all:40@1e-4")
    (Phase(groups=('BTCUSDT',), epochs=10, learning_rate=None), Phase(groups=None, epochs=40, learning_rate=0.0001))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ml.training_pipeline.common.windows import to_tf_dataset

ALL = "all"


@dataclass(frozen=True)
class Phase:
    """One curriculum phase.

    Attributes:
        groups: the groups trained on, or ``None`` for all of them.
        epochs: epochs in this phase (> 0).
        learning_rate: set at the start of the phase; ``None`` keeps the optimizer's current rate.
    """

    groups: tuple[str, ...] | None
    epochs: int
    learning_rate: float | None = None

    @property
    def label(self) -> str:
        return ALL if self.groups is None else "+".join(self.groups)

    def to_dict(self) -> dict[str, Any]:
        return {"groups": None if self.groups is None else list(self.groups), "epochs": self.epochs,
                "learning_rate": self.learning_rate}


def _phase(value: Any) -> Phase:
    if isinstance(value, Phase):
        return value
    if isinstance(value, Mapping):
        groups = value.get("groups")
        groups = None if groups in (None, ALL) else tuple(str(g) for g in ([groups] if isinstance(groups, str) else groups))
        return Phase(groups, value.get("epochs"), value.get("learning_rate"))
    raise ValueError(f"A phase must be a Phase, a dict or 'GROUPS:EPOCHS'. Received: {value!r}")


def parse_curriculum(text: str) -> tuple[Phase, ...]:
    """``"A+B:10,all:40@1e-4"`` -> phases (syntax only; :func:`check_phases` checks them against the data).

    Raises:
        ValueError: a part without ``:EPOCHS``, a non-integer epoch count or a bad learning rate.
    """
    phases = []
    for part in str(text).split(","):
        head, sep, epochs = part.strip().rpartition(":")
        if not sep or not head:
            raise ValueError(f"Each curriculum phase is GROUPS:EPOCHS (e.g. 'BTCUSDT:10,all:40'). Received: {part.strip()!r}")
        groups_text, at, rate = head.partition("@")
        epochs_text, at_epochs, rate_epochs = epochs.partition("@")  # also accept "GROUPS:EPOCHS@LR"
        rate = rate or rate_epochs
        try:
            count = int(epochs_text)
        except ValueError:
            raise ValueError(f"A curriculum phase's epochs must be an integer. Received: {part.strip()!r}") from None
        try:
            learning_rate = float(rate) if rate else None
        except ValueError:
            raise ValueError(f"A curriculum phase's learning rate must be a number. Received: {part.strip()!r}") from None
        names = tuple(g.strip() for g in groups_text.split("+") if g.strip())
        phases.append(Phase(None if names == (ALL,) else names, count, learning_rate))
    return tuple(phases)


def check_phases(phases: Any, known_groups: Sequence[str] | None = None) -> tuple[Phase, ...]:
    """Validates phases (a string, or a list of :class:`Phase` / dicts) against the data's groups.

    Raises:
        ValueError: no phases, a phase naming an unknown group, a negative or zero epoch count, a
            learning rate that is not > 0, or ``all`` mixed with group names.

    Example:
        >>> check_phases("BTCUSDT:10,SOLUSDT:5", ["BTCUSDT", "ETHUSDT"])
        Traceback (most recent call last):
        ...
        ValueError: Curriculum phase 2 names the group 'SOLUSDT', which the data does not have. Accepted groups: BTCUSDT, ETHUSDT, all. Received: curriculum='SOLUSDT:5'
    """
    parsed = parse_curriculum(phases) if isinstance(phases, str) else tuple(_phase(p) for p in (phases or ()))
    if not parsed:
        raise ValueError(f"A curriculum needs at least one phase. Received: curriculum={phases!r}")
    known = None if known_groups is None else sorted({str(g) for g in known_groups})
    for number, phase in enumerate(parsed, start=1):
        text = f"{phase.label}:{phase.epochs}"
        if isinstance(phase.epochs, bool) or not isinstance(phase.epochs, (int, np.integer)) or phase.epochs < 1:
            raise ValueError(f"Curriculum phase {number} must run >= 1 epoch. Received: curriculum={text!r}")
        if phase.learning_rate is not None and not (np.isfinite(phase.learning_rate) and phase.learning_rate > 0):
            raise ValueError(f"Curriculum phase {number}'s learning rate must be > 0. Received: {phase.learning_rate!r}")
        if phase.groups is not None:
            if not phase.groups or ALL in phase.groups:
                raise ValueError(f"Curriculum phase {number}: write 'all' alone, or list groups with '+'. "
                                 f"Received: curriculum={text!r}")
            for group in phase.groups:
                if known is not None and group not in known:
                    raise ValueError(f"Curriculum phase {number} names the group {group!r}, which the data does not "
                                     f"have. Accepted groups: {', '.join([*known, ALL])}. Received: curriculum={text!r}")
    return parsed


def fit_curriculum(model, x, y, *, groups: Any, phases: Any, sample_weight: Any = None,
                   validation_data: tuple | None = None, batch_size: int = 128, seed: int = 42,
                   callbacks: Sequence[Any] = (), final_callbacks: Sequence[Any] = (),
                   verbose: int | str = "auto", backup: Any = None, resume_from: int = 0) -> dict[str, list]:
    """Trains a compiled Keras model phase by phase, as one run.

    Args:
        model: a compiled Keras model (its optimizer state carries across the phases).
        x: one array, or ``{input name: array}``.
        y: targets.
        groups: the group label of each training row.
        phases: a curriculum string or a list of :class:`Phase` / dicts (see :func:`check_phases`).
        sample_weight: optional per-row weights (e.g. from :func:`ml.training_pipeline.common.sample_weights.group_weights`).
        validation_data: ``(x, y)`` or ``(x, y, sample_weight)`` on every group.
        batch_size: rows per batch.
        seed: shuffle seed.
        callbacks: callbacks for every phase.
        final_callbacks: callbacks for the last phase only (early stopping, learning-rate schedule).
        verbose: Keras verbosity.
        backup: a :func:`ml.training_pipeline.fitting.resume.resumable_backup` callback, run last in every phase.
        resume_from: epochs its backup holds: phases finished before them are skipped, and the phase they end in
            continues where it stopped.

    Returns:
        One history: each logged series per epoch, plus ``phase`` (1-based phase number per epoch) and
        ``phase_label`` (its groups). Early stopping in the last phase shortens it.

    Example:
        >>> history = fit_curriculum(model, x, y, groups=g, phases="easy:5,all:10",
        ...                          validation_data=(xv, yv))  # doctest: +SKIP
        >>> history["phase"][:6]  # doctest: +SKIP
        [1, 1, 1, 1, 1, 2]
    """
    labels = np.asarray([str(g) for g in np.asarray(groups, dtype=object).reshape(-1)])
    if len(labels) != len(y):
        raise ValueError(f"groups must have one value per training row ({len(y)}). Received: {len(labels)} values")
    parsed = check_phases(phases, np.unique(labels))
    validation = None
    if validation_data is not None:
        vx, vy, *vw = validation_data
        validation = to_tf_dataset(vx, np.asarray(vy), 1024, shuffle=False, sample_weight=vw[0] if vw else None)
    weights = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    history: dict[str, list] = {}
    epoch = 0

    def mark(number: int, phase: Phase, rows: np.ndarray, epochs: int) -> None:
        history.setdefault("phase", []).extend([number] * epochs)
        history.setdefault("phase_label", []).extend([phase.label] * epochs)
        history.setdefault("phase_rows", []).extend([int(rows.size)] * epochs)

    for number, phase in enumerate(parsed, start=1):
        rows = np.arange(len(labels)) if phase.groups is None else np.flatnonzero(np.isin(labels, phase.groups))
        if rows.size == 0:
            raise ValueError(f"Curriculum phase {number} ({phase.label}) has no training rows")
        last = number == len(parsed)
        # epochs of this phase a resumed run finished before it was interrupted (their logs are in the backup)
        done = min(max(resume_from - epoch, 0), phase.epochs)
        mark(number, phase, rows, done)
        if done == phase.epochs and not last:
            epoch += done
            continue
        if phase.learning_rate is not None:  # a resumed phase gets its schedule's value back from the backup
            model.optimizer.learning_rate = phase.learning_rate
        # the phase's rows are cut from the whole training set per batch: no copy of its windows
        dataset = to_tf_dataset(dict(x) if isinstance(x, Mapping) else x, np.asarray(y), batch_size, shuffle=True,
                                seed=seed + number, sample_weight=weights, rows=rows)
        fitted = model.fit(dataset, validation_data=validation, initial_epoch=epoch + done,
                           epochs=epoch + phase.epochs, verbose=verbose, shuffle=False,
                           callbacks=[*callbacks, *(final_callbacks if last else ()), *([backup] if backup else [])])
        run = len(next(iter(fitted.history.values()), []))
        for key, values in fitted.history.items():
            column = history.setdefault(key, [])
            column.extend([None] * (len(history["phase"]) - len(column)))
            column.extend(float(v) for v in values)
        mark(number, phase, rows, run)
        epoch += done + run
    for values in history.values():  # a series logged only in later phases (e.g. learning_rate) is padded
        values.extend([None] * (epoch - len(values)))
    return history
