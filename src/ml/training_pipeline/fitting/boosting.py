"""Fitting a LightGBM estimator with early stopping on a validation part, and its progress lines.

Both the estimator kind adapter and the guide's ``models_lightgbm`` module fit through here.
"""

from __future__ import annotations

import numpy as np

from ml.training_pipeline.common.arguments import check_positive_int


def train_lightgbm_with_early_stopping(
    model,
    X_train,
    y_train,
    X_val,
    y_val,
    early_stopping_rounds: int = 50,
    sample_weight=None,
    eval_sample_weight=None,
    log_every: int = 0,
    init_score=None,
    eval_init_score=None,
):
    """Fits ``model`` and stops when the validation score has not improved for a while.

    Args:
        model: from ``create_lightgbm_model`` or ``create_model("lightgbm", ...)``.
        X_train, y_train: training rows (2-D features; 3-D windows are flattened).
        X_val, y_val: validation rows, used only for early stopping.
        early_stopping_rounds: boosting rounds without improvement before stopping.
        sample_weight: optional per-row training weights.
        eval_sample_weight: optional per-row validation weights (the early-stopping score weighs rows alike).
        log_every: print the validation score every this many rounds (0: silent).
        init_score, eval_init_score: per-row scores boosting starts from (a baseline whose correction the trees
            learn); predictions then need the baseline added back.

    Returns:
        The fitted model (``best_iteration_`` is set).

    Example:
        >>> model = train_lightgbm_with_early_stopping(model, X_tr, y_tr, X_va, y_va)  # doctest: +SKIP
    """
    import lightgbm

    X_train, X_val = _as_matrix(X_train, "X_train"), _as_matrix(X_val, "X_val")
    expected = getattr(model, "_atb_expected_features", None)
    for name, X in (("X_train", X_train), ("X_val", X_val)):
        if expected is not None and X.shape[1] != expected:
            raise ValueError(f"{name} must have {expected} feature columns. Received: {name}.shape={X.shape}")
    if len(X_train) != len(y_train) or len(X_val) != len(y_val):
        raise ValueError(
            f"Features and targets must have the same number of rows. Received: X_train={len(X_train)}, "
            f"y_train={len(y_train)}, X_val={len(X_val)}, y_val={len(y_val)}"
        )
    check_positive_int("early_stopping_rounds", early_stopping_rounds)
    model.fit(
        X_train,
        np.asarray(y_train),
        sample_weight=sample_weight,
        eval_X=(X_val,),
        eval_y=(np.asarray(y_val),),
        eval_sample_weight=None if eval_sample_weight is None else [np.asarray(eval_sample_weight)],
        init_score=init_score,
        eval_init_score=None if eval_init_score is None else [np.asarray(eval_init_score)],
        callbacks=[lightgbm.early_stopping(early_stopping_rounds, verbose=False), _progress(log_every)],
    )
    return model


def _as_matrix(X, name: str):
    """2-D float32 rows; windows ``(n, timesteps, features)`` are flattened per row. An Arrow table passes as it is
    (LightGBM reads its columns in place)."""
    if hasattr(X, "num_columns") and hasattr(X, "schema"):
        return X
    X = np.asarray(X, dtype=np.float32)
    if X.ndim == 3:
        X = X.reshape(len(X), -1)
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows, features) or 3-D windows. Received: {name}.shape={X.shape}")
    return X


def _progress(every: int):
    """A LightGBM callback printing ``round 50/500: val l2 0.0123, 1.2 s`` every ``every`` rounds (0: silent)."""
    import time

    started = time.perf_counter()

    def callback(env) -> None:
        done = env.iteration + 1
        if not every or (done % every and done != env.end_iteration):
            return
        scores = ", ".join(f"val {name} {value:.6g}" for _, name, value, _ in env.evaluation_result_list)
        print(f"round {done}/{env.end_iteration}: {scores}, {time.perf_counter() - started:.1f} s", flush=True)

    callback.order = 10  # before early stopping (30), which raises on the last round
    return callback
