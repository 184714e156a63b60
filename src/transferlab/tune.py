"""Stage ``tune``: an Optuna study over augmentation strength, learning rate and unfreeze depth.

Not part of the default ``dvc repro``: it is its own pipeline, ``tune/dvc.yaml``, run with
``dvc repro tune/dvc.yaml`` (or ``python stages/tune.py``). Everything is set in the
``tune`` section of params.yaml.

What a trial is
    A copy of params.yaml with the trial's values (``augment.strength``,
    ``train.learning_rate``, ``train.unfreeze_depth``; optionally ``train.strategy``,
    ``train.backbone``, ``train.pretrained``), validated like params.yaml, and trained by the
    training engine (:func:`transferlab.engine.fit`, the train stage's own) for ``tune.epochs`` (+
    ``tune.finetune_epochs``). The training set is augmented in memory at the trial's
    strength exactly as the augment stage would (originals + ``augment.copies`` variants);
    nothing is written per trial. Trials train on a seeded subset of the training split
    (``tune.train_images``; null: all of it) and are scored on one of the validation split
    (``tune.val_images``), which keeps a study small; the winner then trains on everything.
    The value is the validation metric (``tune.metric``) of the trained model -- by default
    character accuracy for plates, since the plate accuracy of a few-epoch trial is mostly
    still 0 and cannot rank trials. The test split is never read.

Pruning
    After every epoch the validation metric is reported to Optuna at step = epochs done so
    far (head and finetune phases count on, so the two phases never share a step, and the
    steps match the MLflow curves); the pruner (median or Hyperband) stops trials that fall
    behind. ``tune.pruner_warmup_epochs: n``: no trial is pruned during its first n epochs,
    nor at its last (stopping then would save nothing and lose a complete result).

Resuming
    The study lives in ``tune.storage`` (default ``sqlite:///<project root>/tune/optuna.db``).
    ``tune.n_trials`` is the number of *finished* (complete or pruned) trials the study should
    have; running again continues until it has them, keeping every finished trial. Ctrl-C
    or SIGTERM stops the running trial after its current batch (recorded FAIL; a second
    signal stops at once), never inside TensorFlow. A trial left RUNNING by a killed process
    is marked FAIL on restart: at once when the process ran on this machine (its pid is
    gone), otherwise when its heartbeat is older than :data:`GRACE_PERIOD_S`. Resuming a
    study whose trials ran with other training settings or data is refused (their values
    would not be comparable): use a new ``tune.study_name``.

Reproducibility
    The sampler is re-seeded for every trial from (``tune.seed``, trial number), and every
    trial's weights from ``train.seed``: with one worker, the same seed and the same storage
    history (same finished/failed trials), the same parameters are proposed -- also after an
    interruption, since trial ``k`` is proposed from the seed and trials ``0..k-1`` only.
    With several workers, which worker gets which trial is timing-dependent.

Scale-out
    Point ``tune.storage`` at a database every worker reaches (e.g.
    ``postgresql://user:password@host/optuna``; needs a driver such as psycopg2) and run the
    stage on several processes or machines at once: Optuna hands out trial numbers
    atomically, and each worker stops when the study has ``tune.n_trials`` finished or
    running trials (``max_trials`` also caps one worker). Create the study by starting one
    worker first when the database is not a local sqlite file.

MLflow
    One parent run per study (found again on resume by the study's uid), a nested child run
    per trial with its parameters, per-epoch curves and the tag ``optuna_state``
    (COMPLETE / PRUNED / FAIL). Run status: COMPLETE -> FINISHED, FAIL -> FAILED (KILLED
    when interrupted), PRUNED -> KILLED (stopped early on purpose; the tag says why). The
    parent gets the best value and parameters, parameter importances and Optuna's plots.

Outputs
    ``tune.output`` (``tune/best_params.yaml``): the best parameters, params.yaml-style, and a
    printed ``dvc exp run -S ...`` line that trains the winner with the full pipeline. The best
    trial is called the winner only when its validation accuracy is clearly above chance and
    distinguishable from the runner-up's (intervals on the validation count, see
    :func:`unclear_winner`); otherwise the file says at its top that it is not a clear winner
    and the command is printed as the best trial's, to train anyway.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from transferlab.config import DEFAULT_PARAMS_FILE, Params, SearchSpace, TuneConfig, load_params, parse_params
from transferlab.errors import TransferlabError

METRICS_FILE = "metrics/tune.json"
DEFAULT_STORAGE_FILE = "tune/optuna.db"  # under the project root; git-ignored
HEARTBEAT_INTERVAL_S = 60
GRACE_PERIOD_S = 180  # a RUNNING trial without heartbeat for this long is failed (other machines)
MAX_FAILURES_IN_A_ROW = 5

# Optuna parameter names are the dotted params.yaml keys they set.
P_STRENGTH, P_RATE, P_DEPTH = "augment.strength", "train.learning_rate", "train.unfreeze_depth"
P_STRATEGY, P_BACKBONE, P_PRETRAINED = "train.strategy", "train.backbone", "train.pretrained"
P_COPIES = "augment.copies"


# --------------------------------------------------------------------------- parameters


def load_tune_params(path: str | Path = DEFAULT_PARAMS_FILE) -> tuple[Params, TuneConfig]:
    """params.yaml and its ``tune`` section."""
    params = load_params(path)
    return params, params.tune


def _config_of(params: Params, cfg: TuneConfig | None) -> TuneConfig:
    return cfg or params.tune


def storage_url(cfg: TuneConfig, root: Path) -> str:
    """The study's database URL; relative sqlite paths are taken from the project root, so
    DVC's temporary experiment copies and every stage share one study."""
    if cfg.storage is None:
        return "sqlite:///" + (root / DEFAULT_STORAGE_FILE).as_posix()
    from sqlalchemy.engine import make_url

    url = make_url(cfg.storage)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:" \
            and not Path(url.database).is_absolute():
        return "sqlite:///" + (root / url.database).as_posix()
    return cfg.storage


def _sqlite_file(url: str) -> Path | None:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        return Path(parsed.database)
    return None


def shown_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


# --------------------------------------------------------------------------- search space


def metric_name(params: Params, cfg: TuneConfig) -> str:
    """The study's value. Plates default to character accuracy: in trials of a few epochs the
    plate accuracy (every slot right) is still 0 for most of them and cannot rank them."""
    metric = cfg.metric or ("val_char_accuracy" if params.task == "plates" else "val_accuracy")
    allowed = {"plates": ("val_plate_accuracy", "val_char_accuracy", "val_loss"),
               "classification": ("val_accuracy", "val_loss")}[params.task]
    if metric not in allowed:
        raise TransferlabError(f"tune.metric: {metric} is not measured for task {params.task} "
                               f"(use one of {', '.join(allowed)})")
    return metric


def direction_of(metric: str) -> str:
    return "minimize" if metric.endswith("loss") else "maximize"


def searched_keys(search: SearchSpace) -> list[str]:
    names = {"augment_strength": P_STRENGTH, "learning_rate": P_RATE, "unfreeze_depth": P_DEPTH,
             "strategy": P_STRATEGY, "backbone": P_BACKBONE, "pretrained": P_PRETRAINED}
    return [key for field, key in names.items() if getattr(search, field) is not None]


def block_counts(params: Params, cfg: TuneConfig) -> dict[str, int]:
    """Blocks of every backbone the study may use (the top of the unfreeze_depth range)."""
    import keras

    from transferlab.backbones import build_backbone

    shape = (params.data.image_height, params.data.image_width, 3)
    names = cfg.search.backbone or [params.train.backbone]
    missing = [name for name in names if (name, shape) not in _BLOCK_COUNTS]
    for name in missing:  # the layer structure does not depend on the weights
        _BLOCK_COUNTS[name, shape] = len(build_backbone(name, shape, pretrained=False).blocks)
    if missing:
        keras.backend.clear_session()
    return {name: _BLOCK_COUNTS[name, shape] for name in names}


_BLOCK_COUNTS: dict[tuple[str, tuple[int, int, int]], int] = {}


def check_search_space(params: Params, cfg: TuneConfig, blocks: dict[str, int]) -> list[str]:
    """Errors for ranges the backbones cannot honour; returns notes worth printing."""
    notes = []
    depth = cfg.search.unfreeze_depth
    if depth is not None:
        low, high = depth
        top = max(blocks.values())
        for value, end in ((low, "low"), (high, "high")):
            if value != "all" and value > top:
                owner = ", ".join(f"{name} has {count}" for name, count in blocks.items())
                raise TransferlabError(f"tune.search.unfreeze_depth: {end} {value} but {owner} blocks "
                                       f"(use 0..{top}, or all)")
        if "finetune" not in (cfg.search.strategy or [params.train.strategy]):
            notes.append(f"train.strategy is {params.train.strategy}: tune.search.unfreeze_depth has no effect "
                         "(it only applies to finetune)")
    if cfg.search.augment_strength is not None and params.augment.copies == 0:
        notes.append("augment.copies is 0: trials (and the winner's parameters) use augment.copies 1, "
                     "or the searched strength would change nothing")
    return notes


def _choose(trial, key: str, choices: list) -> Any:
    """One of ``choices``; a single choice is set, not searched (Optuna's plots and
    importances have nothing to say about a parameter that never varies)."""
    return choices[0] if len(choices) == 1 else trial.suggest_categorical(key, choices)


def suggest(trial, cfg: TuneConfig, params: Params, blocks: dict[str, int]) -> dict[str, Any]:
    """The trial's values, keyed by the dotted params.yaml keys they set.

    Conditional: ``train.unfreeze_depth`` only when the strategy is finetune; pretrained
    weights are impossible (forced false, not searched) for plain_cnn and for scratch; with
    ``augment.copies: 0`` a searched strength comes with ``augment.copies: 1`` (forced, and
    part of the winner's parameters, so that it trains as the trials did).
    """
    search, values = cfg.search, {}
    if search.backbone:
        values[P_BACKBONE] = _choose(trial, P_BACKBONE, search.backbone)
    backbone = values.get(P_BACKBONE, params.train.backbone)
    if search.strategy:
        values[P_STRATEGY] = _choose(trial, P_STRATEGY, search.strategy)
    strategy = values.get(P_STRATEGY, params.train.strategy)
    can_pretrain = backbone != "plain_cnn" and strategy != "scratch"
    if search.pretrained and can_pretrain:
        values[P_PRETRAINED] = _choose(trial, P_PRETRAINED, search.pretrained)
    elif not can_pretrain and (search.pretrained or params.train.pretrained):
        values[P_PRETRAINED] = False
    if search.augment_strength:
        values[P_STRENGTH] = trial.suggest_float(P_STRENGTH, *search.augment_strength)
        if params.augment.copies == 0:  # no augmented copies: the strength would change nothing
            values[P_COPIES] = 1
    if search.learning_rate:
        values[P_RATE] = trial.suggest_float(P_RATE, *search.learning_rate, log=True)
    if search.unfreeze_depth and strategy == "finetune":
        low, high = search.unfreeze_depth
        high = max(blocks.values()) if high == "all" else high
        # One distribution for every backbone (a static search space); a shallower backbone
        # gets the depth clipped to its block count (then "all").
        values[P_DEPTH] = min(trial.suggest_int(P_DEPTH, low, high), blocks[backbone])
    return values


def trial_params(params: Params, cfg: TuneConfig, values: dict[str, Any], source: str = "tune trial") -> Params:
    """params.yaml with the trial's values and the study's epochs, validated like params.yaml."""
    raw = params.model_copy(deep=True).model_dump()
    if cfg.epochs is not None:
        raw["train"]["epochs"] = cfg.epochs
    if cfg.finetune_epochs is not None:
        raw["train"]["finetune_epochs"] = cfg.finetune_epochs
    for key, value in values.items():
        section, name = key.split(".")
        raw[section][name] = value
    return parse_params(raw, source)


def study_settings(params: Params, cfg: TuneConfig, fingerprints: dict[str, str]) -> dict[str, Any]:
    """Everything that shapes a trial's value except the searched values, flat.

    A study resumed with other settings would compare apples and oranges, so it is refused.
    """
    base = trial_params(params, cfg, {}).model_dump()
    flat: dict[str, Any] = {"task": base["task"], "tune.metric": metric_name(params, cfg),
                            "tune.search": json.dumps(cfg.search.model_dump(), sort_keys=True),
                            "tune.train_images": cfg.train_images, "tune.val_images": cfg.val_images}
    for section, keys in (("plates", None), ("data", ("image_height", "image_width")),
                          ("augment", ("strength", "copies", "seed")), ("train", None)):
        for key, value in base[section].items():
            if (keys is None or key in keys) and f"{section}.{key}" not in ("train.output",):
                flat[f"{section}.{key}"] = value
    for key in searched_keys(cfg.search):
        flat.pop(key, None)
    flat.update({f"data.fingerprint.{k}": v for k, v in sorted(fingerprints.items())})
    return json.loads(json.dumps(flat))  # lists/tuples as JSON would store them


# --------------------------------------------------------------------------- data and training


def load_tune_data(params: Params, cfg: TuneConfig | None = None):
    """The training and validation splits (the study's seeded subsets of them); never the test split."""
    from transferlab.data import load_prepared, seeded_subset

    cfg = _config_of(params, cfg)
    data = load_prepared(params).subset(cfg.train_images, cfg.seed)
    picked_val = seeded_subset(len(data.y_val), cfg.val_images, cfg.seed + 1)
    return data.replace(x_val=data.x_val[picked_val], y_val=data.y_val[picked_val])


def data_fingerprints(params: Params) -> dict[str, str]:
    """Content hashes of the training and validation splits: a study is tied to its data."""
    from transferlab.split import read_meta

    fingerprints = read_meta(params.split.output)["fingerprints"]
    return {name: fingerprints[name] for name in ("train", "val")}


_STOP_SIGNALS: list[int] = []  # signals received while a trial trains (see _stop_at_safe_points)
_SWALLOWED_INTERRUPTS: list[BaseException] = []


@contextlib.contextmanager
def _stop_at_safe_points() -> Iterator[None]:
    """While a trial trains, Ctrl-C / SIGTERM stop it at the end of the current batch.

    A KeyboardInterrupt raised at an arbitrary point inside TensorFlow (e.g. while it traces
    a graph) leaves its graph stack corrupted and every later trial of the process failing,
    or is dropped by Python when it lands in a garbage-collection callback. So the signal
    is only recorded here: the pruning callback raises KeyboardInterrupt between two
    batches, and the study loop before the next trial (a trial that finished meanwhile is
    kept). A second signal stops at once.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):  # noqa: ARG001 - signal handler signature
        if _STOP_SIGNALS:
            raise KeyboardInterrupt(f"received signal {signum} again")
        _STOP_SIGNALS.append(signum)
        print("tune: interrupted: stopping after this batch (send it again to stop at once)", file=sys.stderr,
              flush=True)

    handled = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) not in (signal.SIG_IGN, None)]
    previous = {s: signal.signal(s, handler) for s in handled}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


@contextlib.contextmanager
def _interrupts_not_lost() -> Iterator[None]:
    """Keep a Ctrl-C/SIGTERM that Python had to drop.

    The KeyboardInterrupt that a signal handler raises is only printed ("Exception ignored
    in ...") when the signal lands in a garbage-collection callback, which TensorFlow runs
    often; the study would then go on. Such interrupts are kept here and raised again at the
    next trial (:func:`_raise_lost_interrupt`).
    """
    previous = sys.unraisablehook

    def hook(unraisable):
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            _SWALLOWED_INTERRUPTS.append(unraisable.exc_value)
        previous(unraisable)

    _SWALLOWED_INTERRUPTS.clear()
    _STOP_SIGNALS.clear()
    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous
        _SWALLOWED_INTERRUPTS.clear()
        _STOP_SIGNALS.clear()


def _raise_lost_interrupt() -> None:
    """Stop here if a signal asked to (recorded while training, or dropped by Python)."""
    if _STOP_SIGNALS:
        raise KeyboardInterrupt(f"received signal {_STOP_SIGNALS[0]}")
    if _SWALLOWED_INTERRUPTS:
        exc = _SWALLOWED_INTERRUPTS[0]
        _SWALLOWED_INTERRUPTS.clear()
        raise KeyboardInterrupt(*exc.args)


class TrialDiverged(Exception):
    """The metric became NaN or infinite: the trial fails (a bad point, not a broken study)."""


def _pruning_callback(trial, metric: str):
    import keras
    import optuna

    class PruningCallback(keras.callbacks.Callback):
        """Report the validation metric after every epoch; stop the trial when the pruner says so."""

        def __init__(self):
            super().__init__()
            self.trainer = None

        def on_train_batch_end(self, batch, logs=None):
            _raise_lost_interrupt()

        def on_epoch_end(self, epoch, logs=None):
            _raise_lost_interrupt()
            logs = logs or {}
            if metric not in logs:
                raise TransferlabError(f"tune.metric: {metric} is not among the epoch metrics ({', '.join(logs)})")
            value = float(logs[metric])
            step = self.trainer.epochs_done + epoch + 1  # epochs so far, across the head/finetune phases
            if not math.isfinite(value):
                raise TrialDiverged(f"{metric} is {value} at epoch {step}")
            trial.report(value, step)
            if step < self.trainer.total_epochs and trial.should_prune():  # the last epoch saves nothing
                trial.set_user_attr("pruned_at_epoch", step)
                raise optuna.TrialPruned(f"pruned at epoch {step} ({metric} {value:.4f})")

    return PruningCallback()


@dataclass
class TrialResult:
    value: float
    metrics: dict[str, float]
    epochs: int
    seconds: float


def train_trial(params: Params, data, trial, metric: str, log_metric: Callable[[dict, int], None]) -> TrialResult:
    """Train one trial through the training engine, on its training set augmented in memory;
    its value is the validation metric of the kept weights."""
    import keras

    from transferlab import engine

    pruning = _pruning_callback(trial, metric)
    try:
        result = engine.fit(params, data.augmented(params.augment), log_metric, extra_callbacks=[pruning],
                            on_trainer=lambda trainer: setattr(pruning, "trainer", trainer))
        final = {f"val_{k}": v for k, v in
                 engine.score_model(result.model, data, data.x_val, data.y_val, params.train.batch_size).items()}
    finally:
        keras.backend.clear_session()  # the next trial builds its own graph; free this one
    value = final[metric]
    if not math.isfinite(value):
        raise TrialDiverged(f"final {metric} is {value}")
    final["kept_epoch"] = result.selection.kept_epoch
    return TrialResult(value=value, metrics=final, epochs=result.epochs, seconds=result.seconds)


# --------------------------------------------------------------------------- study


@contextlib.contextmanager
def _file_lock(path: Path | None) -> Iterator[None]:
    """An exclusive inter-process lock on ``path`` (no-op for None or without fcntl)."""
    if path is None:
        yield
        return
    try:
        import fcntl
    except ImportError:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def make_sampler(cfg: TuneConfig, seed: int):
    import optuna

    if cfg.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=cfg.startup_trials)


def trial_seed(seed: int, number: int) -> int:
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0] % (2**31 - 1))


def per_trial_sampler(cfg: TuneConfig):
    """A sampler re-seeded from (tune.seed, trial number) at the start of every trial.

    A resumed study then proposes what an uninterrupted one would have: trial k depends on
    the seed and trials 0..k-1 only, never on how many trials this process has sampled.
    Two workers never share a seed (trial numbers are unique).
    """
    import optuna

    class PerTrialSeededSampler(optuna.samplers.BaseSampler):
        def __init__(self):
            self._inner = make_sampler(cfg, trial_seed(cfg.seed, 0))

        def before_trial(self, study, trial):
            self._inner = make_sampler(cfg, trial_seed(cfg.seed, trial.number))
            self._inner.before_trial(study, trial)

        def infer_relative_search_space(self, study, trial):
            return self._inner.infer_relative_search_space(study, trial)

        def sample_relative(self, study, trial, search_space):
            return self._inner.sample_relative(study, trial, search_space)

        def sample_independent(self, study, trial, param_name, param_distribution):
            return self._inner.sample_independent(study, trial, param_name, param_distribution)

        def after_trial(self, study, trial, state, values):
            self._inner.after_trial(study, trial, state, values)

        def reseed_rng(self):
            self._inner.reseed_rng()

    return PerTrialSeededSampler()


def make_pruner(cfg: TuneConfig, max_epochs: int):
    import optuna

    if cfg.pruner == "none":
        return optuna.pruners.NopPruner()
    if cfg.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, cfg.pruner_warmup_epochs),
                                              max_resource=max(max_epochs, cfg.pruner_warmup_epochs + 1))
    # Steps are 1-based epochs: step < n_warmup_steps is never pruned.
    return optuna.pruners.MedianPruner(n_startup_trials=cfg.pruner_startup_trials,
                                       n_warmup_steps=cfg.pruner_warmup_epochs + 1)


def max_trial_epochs(params: Params, cfg: TuneConfig) -> int:
    base = trial_params(params, cfg, {})
    strategies = cfg.search.strategy or [params.train.strategy]
    return base.train.epochs + (base.train.finetune_epochs if "finetune" in strategies else 0)


def _open_storage(url: str):
    import optuna

    kwargs: dict[str, Any] = {}
    if _sqlite_file(url) is not None:
        _sqlite_file(url).parent.mkdir(parents=True, exist_ok=True)
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}  # several workers write one file
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats: there since 2.9
            # Optuna's heartbeat fails a trial whose worker stopped beating (any machine) and
            # then calls the callback, which closes the trial's MLflow run.
            return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_INTERVAL_S,
                                              grace_period=GRACE_PERIOD_S,
                                              heartbeat_stale_trial_callback=_stale_trial_failed, **kwargs)
    except ImportError as exc:
        raise TransferlabError(f"tune.storage: {shown_url(url)} needs a database driver that is not installed "
                               f"({exc}); e.g. pip install psycopg2-binary for PostgreSQL") from None


def open_study(url: str, cfg: TuneConfig, direction: str, settings: dict[str, Any], pruner):
    """Create the study, or load it (resume / another worker); refuse other settings."""
    import optuna

    sqlite = _sqlite_file(url)
    with _file_lock(sqlite.with_name(sqlite.name + ".lock") if sqlite else None):
        storage = _open_storage(url)
        try:
            study = optuna.create_study(storage=storage, study_name=cfg.study_name, direction=direction,
                                        sampler=per_trial_sampler(cfg), pruner=pruner)
            study.set_user_attr("settings", settings)
            study.set_user_attr("study_uid", uuid.uuid4().hex)  # last: its presence means "set up"
            return study, True
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(storage=storage, study_name=cfg.study_name, sampler=per_trial_sampler(cfg),
                                      pruner=pruner)
    deadline = time.monotonic() + 60
    while "study_uid" not in study.user_attrs and time.monotonic() < deadline:  # its creator is setting it up
        time.sleep(0.5)
    if "study_uid" not in study.user_attrs:
        study.set_user_attr("study_uid", uuid.uuid4().hex)
    stored_direction = study.direction.name.lower()
    if stored_direction != direction:
        raise TransferlabError(f"tune: study {cfg.study_name!r} {stored_direction}s its value but tune.metric "
                               f"{settings['tune.metric']} needs {direction}: use a new tune.study_name")
    previous = study.user_attrs.get("settings")
    if previous is not None and previous != settings:
        changed = [f"{k}: {previous.get(k)!r} -> {settings.get(k)!r}" for k in sorted(set(previous) | set(settings))
                   if previous.get(k) != settings.get(k)]
        raise TransferlabError(
            f"tune: study {cfg.study_name!r} in {shown_url(url)} was run with other settings, so its trials "
            f"are not comparable with new ones:\n  " + "\n  ".join(changed)
            + "\nSet tune.study_name to a new name to start a new study (or restore the settings to resume).")
    return study, False


def _pid_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    except (TypeError, ValueError):
        return True  # unknown: leave it to the heartbeat
    return True


def fail_orphaned_trials(study, worker: dict[str, Any]) -> list[int]:
    """Mark FAIL the RUNNING trials whose worker is gone; returns their numbers.

    Same machine: the worker's process no longer exists (or is this process, from an earlier
    run that was killed before it could close the trial). Other machines: heartbeat older
    than GRACE_PERIOD_S (Optuna's own check).
    """
    import optuna
    from optuna.trial import TrialState

    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        attrs = trial.user_attrs
        if attrs.get("worker_host") != worker["worker_host"] or attrs.get("worker_run") == worker["worker_run"]:
            continue
        if attrs.get("worker_pid") == worker["worker_pid"] or not _pid_alive(attrs.get("worker_pid")):
            # study.tell with a trial number is Optuna's public way to close another worker's trial.
            if study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True).state == TrialState.FAIL:
                failed.append(trial.number)
    if failed:
        _close_orphaned_runs(study, failed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        optuna.storages.fail_stale_trials(study)  # heartbeat-stale ones: _stale_trial_failed closes their runs
        after = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    return sorted(failed + list(before - after - set(failed)))


def _stale_trial_failed(study, trial) -> None:
    """Optuna's heartbeat callback: a trial whose worker stopped beating was failed; close its run."""
    _close_orphaned_runs(study, [trial.number])


def _close_orphaned_runs(study, numbers: list[int]) -> None:
    """The MLflow runs of trials whose worker died: KILLED, optuna_state FAIL (when in this store)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from transferlab import tracking

    client = mlflow.MlflowClient(tracking_uri=tracking.configure())
    for trial in study.get_trials(deepcopy=False):
        run_id = trial.user_attrs.get("mlflow_run_id")
        if trial.number not in numbers or not run_id:
            continue
        try:
            if client.get_run(run_id).info.status == "RUNNING":
                client.set_tag(run_id, "optuna_state", "FAIL")
                client.set_terminated(run_id, "KILLED")
        except MlflowException:
            pass  # another machine's MLflow store


@dataclass
class Counts:
    complete: int
    pruned: int
    failed: int
    running: int

    @property
    def finished(self) -> int:
        return self.complete + self.pruned


def count_trials(study) -> Counts:
    from optuna.trial import TrialState

    states = [t.state for t in study.get_trials(deepcopy=False)]
    return Counts(*(states.count(s) for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL,
                                               TrialState.RUNNING)))


# --------------------------------------------------------------------------- MLflow


def _parent_run_id(experiment: str, study_uid: str) -> str | None:
    import mlflow

    from transferlab import tracking

    experiment_id = tracking.ensure_experiment(experiment)
    found = mlflow.MlflowClient(tracking_uri=tracking.configure()).search_runs(
        [experiment_id], filter_string=f"tags.optuna_study_uid = '{study_uid}' and tags.tune_role = 'study'",
        order_by=["attributes.start_time ASC"], max_results=1)
    return found[0].info.run_id if found else None


@contextlib.contextmanager
def parent_run(params: Params, cfg: TuneConfig, study, url: str) -> Iterator[Any]:
    """The study's MLflow run: created once, resumed by every later run or worker."""
    from transferlab import tracking

    tracking.configure()
    uid = study.user_attrs["study_uid"]
    with contextlib.ExitStack() as stack:
        with _file_lock(tracking.store_dir() / ".tune.lock"):  # local workers must not both create one
            run_id = _parent_run_id(params.mlflow.experiment, uid)
            if run_id is None:
                tags = tracking.run_tags()
                tags.update({"stage": "tune", "tune_role": "study", "optuna_study": cfg.study_name,
                             "optuna_study_uid": uid, "optuna_storage": shown_url(url)})
                logged = {**params.model_dump(), "tune": cfg.model_dump()}
                run = stack.enter_context(tracking.tracked_run(params.mlflow.experiment, f"tune {cfg.study_name}",
                                                               logged, tags))
            else:
                run = stack.enter_context(tracking.tracked_run(params.mlflow.experiment, None, {}, {}, run_id=run_id))
        yield run


def _set_terminated(run_id: str, status: str) -> None:
    import mlflow

    from transferlab import tracking

    mlflow.MlflowClient(tracking_uri=tracking.configure()).set_terminated(run_id, status)


def save_study_plots(study, folder: Path) -> dict[str, Path]:
    """Optuna's matplotlib plots of the study; a plot the trials cannot support yet is skipped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as plots

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    names = sorted({name for t in complete for name in t.params})
    wanted: dict[str, Callable[[], Any]] = {"optimization_history": lambda: plots.plot_optimization_history(study)}
    if any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        wanted["intermediate_values"] = lambda: plots.plot_intermediate_values(study)
    if len(complete) >= 2:
        wanted["param_importances"] = lambda: plots.plot_param_importances(study)
        wanted["slice"] = lambda: plots.plot_slice(study)
        if len(names) >= 2:
            wanted["contour"] = lambda: plots.plot_contour(study, params=names[:3])
    saved = {}
    for name, make in wanted.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                axes = make()
            figure = np.asarray(axes, dtype=object).flat[0].figure
            figure.set_size_inches(max(6.0, figure.get_figwidth()), max(4.0, figure.get_figheight()))
            path = folder / f"{name}.png"
            figure.savefig(path, dpi=90, bbox_inches="tight")
            saved[name] = path
        except (ValueError, RuntimeError, ZeroDivisionError, optuna.exceptions.OptunaError) as exc:
            print(f"tune: skipped plot {name}: {exc}")
        finally:
            plt.close("all")
    return saved


def param_importances(study) -> dict[str, float]:
    import optuna
    from optuna.trial import TrialState

    if len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) < 2:
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return {k: float(v) for k, v in optuna.importance.get_param_importances(study).items()}
    except (ValueError, RuntimeError, ZeroDivisionError, optuna.exceptions.OptunaError) as exc:
        print(f"tune: no parameter importances yet: {exc}")
        return {}


# --------------------------------------------------------------------------- outputs


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(value, ".6g")
    return str(value)


def best_values(best) -> dict[str, Any]:
    """The winner's params.yaml values (searched ones and the ones forced with them)."""
    values = best.user_attrs.get("values") or best.params
    return {key: (float(_format_value(v)) if isinstance(v, float) else v) for key, v in values.items()}


def exp_run_command(values: dict[str, Any]) -> str:
    return "dvc exp run " + " ".join(f"-S {key}={_format_value(value)}" for key, value in values.items())


def chance_of(metric: str, classes: int, slots: int) -> float:
    """Accuracy of uniform guessing for a validation metric (NaN for a loss)."""
    from transferlab.stats import plate_chance

    if metric.endswith("loss"):
        return float("nan")
    return plate_chance(classes, slots) if metric == "val_plate_accuracy" else 1.0 / classes


def unclear_winner(metric: str, best: float, second: float | None, val_images: int, chance: float,
                   second_trial: int | None = None) -> str | None:
    """Why the best trial is not a clear winner (:func:`transferlab.stats.unclear_best`), or None.

    The count is the validation images, also for character accuracy: a plate's characters are
    not independent trials, so counting images is the conservative choice. A loss has no
    interval from the validation count, so it is never called clear.
    """
    from transferlab.stats import unclear_best

    if metric.endswith("loss"):
        return (f"ranked by {metric}, which has no interval from the validation count: chance and the runner-up "
                "cannot be ruled out")
    rival = f"trial {second_trial}" if second_trial is not None else "the runner-up"
    return unclear_best(best, second, val_images, chance, metric, rival)


def next_step(summary: dict[str, Any]) -> str:
    """The closing lines of a study: the command, as a winner's only when it is a clear one."""
    if summary.get("unclear"):
        return (f"tune: no clear winner (the best trial is {summary['unclear']}); "
                f"to train the best trial anyway:\n{summary['command']}")
    return f"tune: train the winner with the full pipeline:\n{summary['command']}"


def write_best_params(path: Path, values: dict[str, Any], header: list[str]) -> None:
    nested: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        section, name = key.split(".")
        nested.setdefault(section, {})[name] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    text = "".join(f"# {line}\n" for line in header) + yaml.safe_dump(nested, sort_keys=False)
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


# --------------------------------------------------------------------------- the stage


def run(params: Params, cfg: TuneConfig | None = None, max_trials: int | None = None) -> dict:
    """Run (or continue) the study until it has ``tune.n_trials`` finished trials.

    ``max_trials`` caps the trials this process runs (a worker's share when several work on
    one study). Writes ``tune.output`` and ``metrics/tune.json``; returns the summary.
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow
    import optuna
    from optuna.trial import TrialState

    from transferlab import tracking

    cfg = _config_of(params, cfg)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    root = tracking.project_root()
    url = storage_url(cfg, root)
    metric = metric_name(params, cfg)
    direction = direction_of(metric)
    data = load_tune_data(params, cfg)
    blocks = block_counts(params, cfg)
    for note in check_search_space(params, cfg, blocks):
        print(f"tune: note: {note}")
    fingerprints = data_fingerprints(params)
    settings = study_settings(params, cfg, fingerprints)
    pruner = make_pruner(cfg, max_trial_epochs(params, cfg))
    study, created = open_study(url, cfg, direction, settings, pruner)
    worker = {"worker_host": socket.gethostname(), "worker_pid": os.getpid(), "worker_run": uuid.uuid4().hex}
    orphans = fail_orphaned_trials(study, worker)
    if orphans:
        print(f"tune: marked FAIL trial(s) {orphans} left RUNNING by a stopped worker")
    counts = count_trials(study)
    print(f"tune: study {cfg.study_name!r} in {shown_url(url)} ({'new' if created else 'resumed'}): "
          f"{counts.finished}/{cfg.n_trials} trials finished ({counts.pruned} pruned, {counts.failed} failed)")
    print(f"tune: {'maximising' if direction == 'maximize' else 'minimising'} {metric} on {len(data.x_train)} "
          f"training / {len(data.x_val)} validation images; sampler {cfg.sampler} (seed {cfg.seed}), pruner "
          f"{cfg.pruner}; searching {', '.join(searched_keys(cfg.search))}")

    current: dict[str, Any] = {}
    base_tags = tracking.run_tags(fingerprint=fingerprints["train"])

    def objective(trial) -> float:
        current.clear()
        current.update(number=trial.number, error=None)
        try:
            return run_trial(trial)
        except optuna.TrialPruned:
            raise
        except BaseException as exc:
            current["error"] = exc
            raise

    def run_trial(trial) -> float:
        for key, value in worker.items():
            trial.set_user_attr(key, value)
        values = suggest(trial, cfg, params, blocks)
        trial.set_user_attr("values", values)
        current["values"] = values
        p = trial_params(params, cfg, values, source=f"tune trial {trial.number}")
        tags = {**base_tags, "stage": "tune", "tune_role": "trial", "optuna_study": cfg.study_name,
                "optuna_study_uid": study.user_attrs["study_uid"], "optuna_trial": trial.number,
                "backbone": p.train.backbone, "strategy": p.train.strategy, "pretrained": str(p.train.pretrained)}
        pruned: optuna.TrialPruned | None = None
        logged = p.model_dump(exclude={"tune"})  # the study's settings are on the parent run
        with tracking.tracked_run(p.mlflow.experiment, f"trial {trial.number}", logged, tags, nested=True) as child:
            current["run_id"] = child.info.run_id
            trial.set_user_attr("mlflow_run_id", child.info.run_id)

            def log_metric(logs: dict, step: int) -> None:
                mlflow.log_metrics({k: float(v) for k, v in logs.items()}, step=step)

            try:
                with _stop_at_safe_points():
                    result = train_trial(p, data, trial, metric, log_metric)
            except optuna.TrialPruned as exc:
                mlflow.set_tag("optuna_state", "PRUNED")
                pruned = exc
            except BaseException:
                mlflow.set_tag("optuna_state", "FAIL")
                raise
            else:
                mlflow.set_tag("optuna_state", "COMPLETE")
                mlflow.log_metrics({"objective": result.value, **{f"final_{k}": v for k, v in result.metrics.items()},
                                    "epochs": result.epochs, "train_seconds": round(result.seconds, 1)})
                trial.set_user_attr("epochs", result.epochs)
        if pruned is not None:
            trial.set_user_attr("epochs", trial.user_attrs.get("pruned_at_epoch", 0))
            _set_terminated(current["run_id"], "KILLED")  # stopped early on purpose (tag: PRUNED)
            raise pruned
        return result.value

    started = time.monotonic()
    ran, failures_in_row, durations = 0, 0, []
    with _interrupts_not_lost(), parent_run(params, cfg, study, url) as parent:
        mlflow.set_tag("optuna_storage", shown_url(url))
        while True:
            _raise_lost_interrupt()
            fail_orphaned_trials(study, worker)
            counts = count_trials(study)
            if counts.finished + counts.running >= cfg.n_trials:
                break
            if max_trials is not None and ran >= max_trials:
                print(f"tune: this worker ran its {max_trials} trial(s)")
                break
            if cfg.timeout is not None and time.monotonic() - started >= cfg.timeout:
                print(f"tune: timeout ({cfg.timeout:g}s) reached; run again to continue the study")
                break
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.optimize(objective, n_trials=1, catch=(Exception,))  # train_trial frees the model
            ran += 1
            trial = next(t for t in study.get_trials(deepcopy=False) if t.number == current["number"])
            seconds = (trial.datetime_complete - trial.datetime_start).total_seconds() \
                if trial.datetime_complete and trial.datetime_start else 0.0
            durations.append(seconds)
            counts = count_trials(study)
            left = max(0, cfg.n_trials - counts.finished - counts.running)
            if max_trials is not None:
                left = min(left, max_trials - ran)
            shown = " ".join(f"{k}={_format_value(v)}" for k, v in current.get("values", {}).items())
            state = trial.state.name
            if trial.state == TrialState.COMPLETE:
                state += f" {metric} {trial.value:.4f}"
            elif trial.state == TrialState.PRUNED:
                state += f" after epoch {trial.user_attrs.get('pruned_at_epoch', '?')}"
            elif current.get("error") is not None:
                state += f" ({type(current['error']).__name__}: {current['error']})"
            try:
                best = f"best {study.best_value:.4f} (trial {study.best_trial.number})"
            except ValueError:
                best = "no complete trial yet"
            print(f"tune: trial {trial.number} {state} in {_duration(seconds)}  {shown}  "
                  f"[{counts.finished}/{cfg.n_trials} finished, {best}, ETA {_duration(np.mean(durations) * left)}]",
                  flush=True)
            error = current.get("error")
            if trial.state != TrialState.FAIL:
                failures_in_row = 0
            elif isinstance(error, TransferlabError):
                raise error  # a configuration problem: every trial would fail the same way
            else:
                failures_in_row += 1
                if failures_in_row >= MAX_FAILURES_IN_A_ROW:
                    hint = " (narrow tune.search.learning_rate?)" if isinstance(error, TrialDiverged) else ""
                    raise TransferlabError(f"tune: {failures_in_row} trials in a row failed, the last with "
                                           f"{type(error).__name__}: {error}{hint}; see the traceback above")
        summary = summarise(params, cfg, study, url, metric, parent.info.run_id, data)
    summary["seconds"] = round(time.monotonic() - started, 1)
    summary["trials_run_here"] = ran
    print(next_step(summary))
    return summary


def runner_up(study, best) -> Any:
    """The second-best complete trial (None when the best is the only one)."""
    from optuna.trial import TrialState

    others = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.number != best.number]
    if not others:
        return None
    sign = -1 if study.direction.name == "MAXIMIZE" else 1
    return min(others, key=lambda t: sign * t.value)


def summarise(params: Params, cfg: TuneConfig, study, url: str, metric: str, parent_id: str, data) -> dict:
    """Best params file, metrics, and the parent run's best values, importances and plots; the best
    trial is called a winner only when it is clearly above chance and ahead of the runner-up."""
    import mlflow

    from transferlab.io import write_json

    counts = count_trials(study)
    try:
        best = study.best_trial
    except ValueError:
        raise TransferlabError(f"tune: study {cfg.study_name!r} has no complete trial yet ({counts.pruned} pruned, "
                               f"{counts.failed} failed): run it again, or widen the search") from None
    values = best_values(best)
    command = exp_run_command(values)
    second = runner_up(study, best)
    unclear = unclear_winner(metric, best.value, second.value if second else None, len(data.x_val),
                             chance_of(metric, len(data.classes), data.slots), second.number if second else None)
    header = [f"Best trial {best.number} of Optuna study {cfg.study_name!r} ({shown_url(url)}):",
              f"{metric} {best.value:.4f} after {best.user_attrs.get('epochs', '?')} epochs on {len(data.x_val)} "
              f"validation images ({counts.complete} complete, {counts.pruned} pruned, {counts.failed} failed trials).",
              "Train it with the full pipeline:", f"  {command}"]
    if unclear:
        header = [f"NOT A CLEAR WINNER: the best trial is {unclear}.",
                  "These values are the best trial's, not a tuned result; a larger study (more validation images,",
                  "epochs or trials) is needed to tell trials apart.", *header[:2], "To train it anyway:", header[3]]
    write_best_params(Path(cfg.output), values, header)
    importances = param_importances(study)
    summary = {"study": cfg.study_name, "metric": metric, "best_value": best.value, "best_trial": best.number,
               "clear_winner": unclear is None, "unclear": unclear or "", "val_images": len(data.x_val),
               "best_params": values, "complete": counts.complete, "pruned": counts.pruned, "failed": counts.failed,
               "epochs_run": int(sum(t.user_attrs.get("epochs", 0) for t in study.get_trials(deepcopy=False))),
               "trial_seconds": round(sum((t.datetime_complete - t.datetime_start).total_seconds()
                                          for t in study.get_trials(deepcopy=False)
                                          if t.datetime_complete and t.datetime_start), 1),
               "importances": importances, "mlflow_run_id": parent_id, "command": command}
    write_json(METRICS_FILE, {k: v for k, v in summary.items() if k != "command"})
    mlflow.log_metrics({"best_value": best.value, "best_trial": best.number, "trials_complete": counts.complete,
                        "trials_pruned": counts.pruned, "trials_failed": counts.failed,
                        "epochs_run": summary["epochs_run"], "trial_seconds": summary["trial_seconds"],
                        **{f"importance.{k}": v for k, v in importances.items()}})
    mlflow.set_tags({"best_trial": best.number, "best_value": f"{best.value:.6g}", "best_command": command,
                     "clear_winner": str(unclear is None), "not_clear_because": (unclear or "")[:500],
                     "best_mlflow_run_id": best.user_attrs.get("mlflow_run_id", ""),
                     **{f"best.{k}": _format_value(v) for k, v in values.items()}})
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for path in save_study_plots(study, folder).values():
            mlflow.log_artifact(str(path), "plots")
        study.trials_dataframe().to_csv(folder / "trials.csv", index=False)
        mlflow.log_artifact(str(folder / "trials.csv"))
        mlflow.log_artifact(cfg.output)
    print(f"tune: best trial {best.number}{'' if unclear is None else ' (not a clear winner)'}: {metric} {best.value:.4f}  "
          + " ".join(f"{k}={_format_value(v)}" for k, v in values.items()) + f"  -> {cfg.output}")
    if importances:
        print("tune: parameter importances: " + ", ".join(f"{k} {v:.2f}" for k, v in importances.items()))
    return summary
