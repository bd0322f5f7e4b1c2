"""Frozen configuration of a training run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from ml.training_pipeline.common.arguments import check_learning_rate, check_positive_int, unknown_name_error
from ml.training_pipeline.common.data_files import names_data
from ml.training_pipeline.common.markets import TIMEFRAMES, check_symbol

# `atb --help` reads TARGETS and DEFAULT_PATIENCE from here, so the checks that need pandas (problems, curriculum
# phases) or the model registry are imported where a config is checked (0.13 s for `atb --help` instead of 0.46 s).

TARGETS: tuple[str, ...] = ("return", "direction", "volatility")
"""``return``: next-step log return (regression); ``direction``: up or not (binary);
``volatility``: log realized volatility of the next H bars (regression, H = 24 by default)."""

DEFAULT_PATIENCE = 3
"""Early-stopping patience of price models, chosen by measurement (``benchmarks/batch_defaults.py``): on the
bundled BTCUSDT sample, patience 3 reached the same best validation loss as 5 for tcn, lstm, cnn_lstm,
tcn_attention and attention_lstm (within 0.04%, better for three of them) in 1.11-1.88x less time; 5 had
matched 10 earlier. Log anomalies keep 10 (``atb train anomaly``), as their design says."""

SELECTIONS = ("validation", "rolling")
"""How a LightGBM model's boosting rounds are chosen (``TrainingConfig.selection``)."""
MAX_ENSEMBLE = 20
"""Most members of a seed ensemble (each one is a full training run)."""


def _check_date(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise ValueError(f"{name} must be a date like 2022-01-31. Received: {name}={value!r}") from None


def check_covariates(names: object) -> tuple[str, ...]:
    """Covariate column names, lower-cased (files' headers are read in lower case), distinct, none of the library's own.

    Example:
        >>> check_covariates(["Trade_Count"])
        ('trade_count',)
    """
    from ml.training_pipeline.problems.price.features import RESERVED_NAMES

    if isinstance(names, str) or not isinstance(names, (list, tuple)) or not all(
            isinstance(n, str) and n.strip() for n in names):
        raise ValueError(f"covariates must be a list of column names. Received: covariates={names!r}")
    lowered = tuple(n.strip().lower() for n in names)
    taken = [n for n in lowered if n in RESERVED_NAMES]
    if taken or len(set(lowered)) != len(lowered):
        what = f"{taken[0]!r} is a column the library computes or reads itself" if taken else "a name repeats"
        raise ValueError(f"covariates must be distinct columns of your own: {what}. Received: covariates={list(names)!r}")
    return lowered


@dataclass(frozen=True)
class TrainingConfig:
    """Everything that defines a training run; the same config and seed give the same metrics.

    Attributes:
        symbol: market symbol, e.g. ``"BTCUSDT"`` (names the store folder).
        model_type: a registered model name (see ``atb train model --help``).
        variant: a preset of the model: ``default``, ``tiny``, and ``lightweight`` / ``deep`` for the guide's families.
        timeframe: ``1h``, ``4h`` or ``1d``; coarser bars are resampled from finer data.
        target: ``return`` (regression on the next log return), ``direction`` (binary) or
            ``volatility`` (log realized volatility of the next ``horizon`` bars); ignored when
            ``train`` is given a problem object.
        sequence_length: time steps per input window.
        horizon: bars ahead to predict; ``None``: the target's default (1; 24 for volatility).
        epochs: most epochs for Keras models (``None``: 80; early stopping usually ends sooner), most
            boosting rounds for LightGBM (``None``: the preset's ``n_estimators``).
        batch_size: training batch size.
        steps_per_epoch: batches per epoch, drawn from the whole shuffled training set (it repeats, reshuffled,
            as Keras' ``steps_per_epoch`` reads a repeated dataset); ``None``: one pass over it per epoch. For
            millions of windows: early stopping, the learning-rate schedule and checkpoints then act every N batches.
        patience: early-stopping patience in epochs (:data:`DEFAULT_PATIENCE`).
        learning_rate: optimizer learning rate; ``None`` keeps the variant's.
        seed: seed for weights, shuffling and dropout.
        days: keep only the last ``days`` days of data.
        start_date, end_date: inclusive ISO dates bounding the data.
        data_path: CSV/Parquet OHLCV file; ``None`` uses the bundled sample.
        exchange: download from this ccxt exchange instead (needs the ``exchange`` extra).
        models_dir: model store root; ``None`` uses ``ATB_MODELS_DIR`` or the default.
        model_kwargs: hyperparameters passed to ``create_model``.
        validation_fraction, test_fraction: chronological split sizes.
        symbols: more symbols trained into the same model as ``symbol`` (one group per symbol; each
            symbol's features and target are scaled on its own training part). The version is stored
            under :attr:`store_name` (``"BTCUSDT-ETHUSDT"``).
        data_paths: ``{symbol: file}`` for the symbols ``data_path`` does not cover. Either may name several
            files of one series: a folder of them or a glob pattern (monthly dumps; joined in time, overlaps refused).
        group_weights: ``{group: weight}``, ``"balanced"`` or a callable; see
            :func:`ml.training_pipeline.common.sample_weights.group_weights` (groups: the symbols, or the problem's groups).
        pos_weight: binary targets: weight of a positive row relative to a negative (a number or ``"balanced"``).
        uncertainty_samples: forward passes for the test-part interval of a sampling model (>= 2).
        curriculum: phases as ``"BTCUSDT:10,all:40"`` or a list of
            :class:`~ml.training_pipeline.fitting.curriculum.Phase`; replaces ``epochs`` (their sum).
        distribute: ``none``, ``mirrored`` (one replica per local GPU) or ``multi-worker`` (the hosts ``TF_CONFIG``
            lists); see :mod:`ml.training_pipeline.fitting.distribute`. ``batch_size`` is then the global batch.
        precision: ``auto`` (the family's measured choice: bf16 arithmetic on float32 weights for tcn,
            tcn_attention and transformer where the CPU computes bf16 natively; float32 elsewhere),
            ``float32`` or ``mixed_bfloat16``; see :mod:`ml.training_pipeline.fitting.precision`. The stored model is
            float32 either way.
        fused_recurrence: train LSTM layers in TensorFlow's fused CPU kernel where it was measured faster at
            ``batch_size`` (:mod:`ml.training_pipeline.layers.fused_lstm`); the stored model is a standard Keras LSTM
            either way. ``False``: Keras' own loop.
        residual: where the problem has a linear baseline worth correcting (volatility: the extended HAR-RV), the
            model learns the correction to it and adds it back (:class:`~ml.training_pipeline.models.LinearOffset`);
            ``False``: the model predicts the target itself.
        calendar: add the calendar (hour and day of week, sin/cos) of every bar as window columns; ``None``: the
            problem's measured default (on for volatility, off for return and direction).
        interval: nominal coverage of the conformal interval every regression model reports and stores.
        selection: how LightGBM chooses its boosting rounds: ``validation`` (early stopping on the validation part)
            or ``rolling`` (on rolling-origin folds inside the training part, then one fit on all of it).
        covariates: more numeric columns of the data file (any case) added to every window, e.g.
            ``("trade_count", "taker_buy_asset_volume")`` of a Binance kline export: each bar's value must be known
            when the bar closes (see :func:`~ml.training_pipeline.problems.price.features.build_features`); stored
            in the schema, so ``atb predict`` reads the same columns from its file.
        ensemble: train this many members with seeds ``seed, seed + 1, ...`` and store them as one model whose
            output is their mean (Keras families; the ``.keras`` file and the ONNX graph hold every member).

    Example:
        >>> config = TrainingConfig(symbol="BTCUSDT", model_type="tcn", days=365, epochs=5)
        >>> config.sequence_length
        60
    """

    symbol: str
    model_type: str
    variant: str = "default"
    timeframe: str = "1h"
    target: str = "return"
    sequence_length: int = 60
    horizon: int | None = None
    epochs: int | None = None
    batch_size: int = 128
    steps_per_epoch: int | None = None
    patience: int = DEFAULT_PATIENCE
    learning_rate: float | None = None
    seed: int = 42
    days: int | None = None
    start_date: str | None = None
    end_date: str | None = None
    data_path: str | None = None
    exchange: str | None = None
    models_dir: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    validation_fraction: float = 0.15
    test_fraction: float = 0.15
    symbols: tuple[str, ...] = ()
    data_paths: dict[str, str] = field(default_factory=dict)
    group_weights: Any = None
    pos_weight: float | str | None = None
    uncertainty_samples: int = 50
    curriculum: Any = None
    distribute: str = "none"
    precision: str = "auto"
    fused_recurrence: bool = True
    residual: bool = True
    calendar: bool | None = None
    interval: float = 0.9
    ensemble: int = 1
    selection: str = "validation"
    covariates: tuple[str, ...] = ()

    def __post_init__(self):
        from ml.training_pipeline.fitting.distribute import check_strategy
        from ml.training_pipeline.fitting.precision import check_precision
        from ml.training_pipeline.models import resolve_params
        from ml.training_pipeline.models.registry import get_spec
        from ml.training_pipeline.problems import get_problem

        object.__setattr__(self, "symbol", check_symbol(self.symbol))
        spec = get_spec(self.model_type)
        object.__setattr__(self, "model_type", spec.name)
        if self.variant not in spec.variants:
            raise unknown_name_error("variant", self.variant, spec.variants)
        if self.timeframe not in TIMEFRAMES:
            raise unknown_name_error("timeframe", self.timeframe, TIMEFRAMES)

        check_strategy(self.distribute)

        check_precision(self.precision)
        for name in ("residual", "fused_recurrence") + (("calendar",) if self.calendar is not None else ()):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False. Received: {name}={getattr(self, name)!r}")
        if self.selection not in SELECTIONS:
            raise unknown_name_error("selection", self.selection, SELECTIONS)
        object.__setattr__(self, "covariates", check_covariates(self.covariates))
        check_positive_int("ensemble", self.ensemble)
        if self.ensemble > MAX_ENSEMBLE:
            raise ValueError(f"ensemble must be an int in 1..{MAX_ENSEMBLE}. Received: ensemble={self.ensemble!r}")
        if isinstance(self.interval, bool) or not isinstance(self.interval, float) or not 0.5 <= self.interval < 1:
            raise ValueError(f"interval must be a float in [0.5, 1). Received: interval={self.interval!r}")
        check_positive_int("sequence_length", self.sequence_length, minimum=2)
        if self.horizon is not None:
            check_positive_int("horizon", self.horizon)
        object.__setattr__(self, "horizon", get_problem(self.target, self.horizon).horizon)
        if self.epochs is not None:
            check_positive_int("epochs", self.epochs)
        check_positive_int("batch_size", self.batch_size)
        if self.steps_per_epoch is not None:
            check_positive_int("steps_per_epoch", self.steps_per_epoch)
        check_positive_int("patience", self.patience)
        check_positive_int("seed", self.seed, minimum=0)
        if self.days is not None:
            check_positive_int("days", self.days)
        if self.learning_rate is not None:
            object.__setattr__(self, "learning_rate", check_learning_rate(self.learning_rate))
        if not isinstance(self.model_kwargs, dict):
            raise ValueError(f"model_kwargs must be a dict of hyperparameters. Received: {self.model_kwargs!r}")
        # hyperparameter names and values fail here, before any data is read or TensorFlow imported

        resolve_params(spec, self.variant, self.model_kwargs)
        start, end = _check_date("start_date", self.start_date), _check_date("end_date", self.end_date)
        if start and end and start > end:
            raise ValueError(f"start_date must not be after end_date. Received: start_date={start}, end_date={end}")
        object.__setattr__(self, "start_date", start)
        object.__setattr__(self, "end_date", end)
        for name in ("validation_fraction", "test_fraction"):
            value = getattr(self, name)
            if not isinstance(value, float) or not 0.05 <= value <= 0.4:
                raise ValueError(f"{name} must be a float in [0.05, 0.4]. Received: {name}={value!r}")
        if self.data_path is not None and self.exchange is not None:
            raise ValueError(f"Give data_path or exchange, not both. Received: data_path={self.data_path!r}, "
                             f"exchange={self.exchange!r}")
        if self.data_path is not None and not names_data(self.data_path):
            raise ValueError(f"data file not found (a file, a folder of files or a glob pattern with matches). "
                             f"Received: data_path={self.data_path!r}")
        object.__setattr__(self, "model_kwargs", dict(self.model_kwargs))
        self._check_grouping()

    def _check_grouping(self) -> None:
        from ml.training_pipeline.common.sample_weights import check_group_weights
        from ml.training_pipeline.fitting.curriculum import check_phases
        from ml.training_pipeline.uncertainty import check_n_samples

        if isinstance(self.symbols, str) or not isinstance(self.symbols, (tuple, list)):
            raise ValueError(f"symbols must be a list of symbols. Received: symbols={self.symbols!r}")
        symbols = tuple(check_symbol(s) for s in self.symbols)
        everything = (self.symbol, *symbols)
        if len(set(everything)) != len(everything):
            raise ValueError(f"Each symbol may appear once. Received: {', '.join(everything)}")
        object.__setattr__(self, "symbols", symbols)
        paths = {check_symbol(k): str(v) for k, v in dict(self.data_paths).items()}
        for symbol, path in paths.items():
            if symbol not in everything:
                raise ValueError(f"data_paths names {symbol!r}, which is not trained. Accepted: {', '.join(everything)}. "
                                 f"Received: data_paths={dict(self.data_paths)!r}")
            if not names_data(path):
                raise ValueError(f"data file not found (a file, a folder of files or a glob pattern with matches). "
                                 f"Received: {symbol}={path!r}")
        if self.symbol in paths and self.data_path is not None:
            raise ValueError(f"Give {self.symbol}'s file once: data_path or data_paths. Received both")
        object.__setattr__(self, "data_paths", paths)
        known = everything if symbols else None  # other problems' groups are known only once the data is loaded
        if self.group_weights is not None:
            # without several symbols the groups come with the data: names are checked once it is loaded
            own = list(self.group_weights) if isinstance(self.group_weights, dict) else []
            check_group_weights(self.group_weights, known if known else own)

        check_n_samples(self.uncertainty_samples)
        if self.pos_weight is not None and not (self.pos_weight == "balanced" or (
                isinstance(self.pos_weight, (int, float)) and not isinstance(self.pos_weight, bool)
                and 0 < self.pos_weight < float("inf"))):
            raise ValueError(f"pos_weight must be a number > 0 or 'balanced'. Received: pos_weight={self.pos_weight!r}")
        task = self.task if self.pos_weight is not None else None
        if self.pos_weight is not None and task != "binary":
            raise ValueError(f"pos_weight (--pos-weight) weighs the positives of a binary target; target={self.target!r} is "
                             f"a {task} problem. Accepted: pos_weight with target='direction'")
        if self.curriculum is not None:
            if self.steps_per_epoch is not None:
                raise ValueError(f"steps_per_epoch={self.steps_per_epoch} cannot be combined with curriculum phases "
                                 "(each phase is whole passes over its groups). Accepted: one of the two")
            phases = check_phases(self.curriculum, known)
            object.__setattr__(self, "curriculum", phases)
            object.__setattr__(self, "epochs", sum(p.epochs for p in phases))

    @property
    def all_symbols(self) -> tuple[str, ...]:
        """``symbol`` and ``symbols``: every symbol the model is trained on."""
        return (self.symbol, *self.symbols)

    @property
    def store_name(self) -> str:
        """The store folder: the symbol, or the symbols joined by ``-`` for a several-symbol model."""
        return "-".join(self.all_symbols)

    def data_path_of(self, symbol: str) -> str | None:
        """The data file of one trained symbol (``None``: the bundled sample or the exchange)."""
        return self.data_path if symbol == self.symbol and self.data_path else self.data_paths.get(symbol)

    @property
    def task(self) -> str:
        """The model task the target needs."""
        from ml.training_pipeline.problems import get_problem

        return get_problem(self.target, self.horizon).task.task

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form stored in ``metadata.json``."""
        values = asdict(self)
        if self.curriculum is not None:
            values["curriculum"] = [p.to_dict() for p in self.curriculum]
        if callable(self.group_weights):
            values["group_weights"] = getattr(self.group_weights, "__name__", "callable")
        return values
