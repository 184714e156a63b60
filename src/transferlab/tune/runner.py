"""The stage's entry, :func:`run`: this process joins the study as one worker and runs trials
until the study has ``tune.n_trials`` finished trials, then reports the best one."""

from __future__ import annotations

import os
import socket
import time
import uuid
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from transferlab.config import Params, TuneConfig
from transferlab.errors import TransferlabError
from transferlab.tune.interrupts import interrupts_not_lost, raise_lost_interrupt, stop_at_safe_points
from transferlab.tune.report import format_value, next_step, summarise, trial_seconds
from transferlab.tune.runs import parent_run, set_terminated, trial_tags
from transferlab.tune.samplers import make_pruner
from transferlab.tune.space import (baseline_values, block_counts, check_search_space, config_of, direction_of,
                                    max_trial_epochs, metric_name, searched_keys, study_settings, suggest, trial_params)
from transferlab.tune.storage import count_trials, fail_orphaned_trials, open_study, shown_url, storage_url
from transferlab.tune.trial import TrialDiverged, TrialResult, data_fingerprints, load_tune_data, train_trial

MAX_FAILURES_IN_A_ROW = 5


def run(params: Params, cfg: TuneConfig | None = None, max_trials: int | None = None) -> dict:
    """Run (or continue) the study until it has ``tune.n_trials`` finished trials.

    ``max_trials`` caps the trials this process runs (a worker's share when several work on
    one study). Writes ``tune.output`` and ``metrics/tune.json``; returns the summary.
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow
    import optuna

    cfg = config_of(params, cfg)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    worker = open_worker(params, cfg, max_trials)
    with interrupts_not_lost(), parent_run(params, cfg, worker.study, worker.url) as parent:
        mlflow.set_tag("optuna_storage", shown_url(worker.url))
        worker.run_trials()
        summary = summarise(params, cfg, worker.study, worker.url, worker.metric, parent.info.run_id, worker.data)
    summary["seconds"] = round(time.monotonic() - worker.started, 1)
    summary["trials_run_here"] = worker.ran
    print(next_step(summary))
    return summary


def open_worker(params: Params, cfg: TuneConfig, max_trials: int | None) -> Worker:
    """Load the data, open (or create) the study, fail trials orphaned by dead workers, and
    print where the study stands."""
    from transferlab import tracking

    url = storage_url(cfg, tracking.project_root())
    metric = metric_name(params, cfg)
    direction = direction_of(metric)
    data = load_tune_data(params, cfg)
    blocks = block_counts(params, cfg)
    baseline, baseline_notes = baseline_values(params, cfg, blocks)
    for note in check_search_space(params, cfg, blocks) + baseline_notes:
        print(f"tune: note: {note}")
    fingerprints = data_fingerprints(params)
    settings = study_settings(params, cfg, fingerprints)
    pruner = make_pruner(cfg, max_trial_epochs(params, cfg))
    study, created = open_study(url, cfg, direction, settings, pruner, baseline or None)
    identity = {"worker_host": socket.gethostname(), "worker_pid": os.getpid(), "worker_run": uuid.uuid4().hex}
    orphans = fail_orphaned_trials(study, identity)
    if orphans:
        print(f"tune: marked FAIL trial(s) {orphans} left RUNNING by a stopped worker")
    counts = count_trials(study)
    print(f"tune: study {cfg.study_name!r} in {shown_url(url)} ({'new' if created else 'resumed'}): "
          f"{counts.finished}/{cfg.n_trials} trials finished ({counts.pruned} pruned, {counts.failed} failed)")
    print(f"tune: {'maximising' if direction == 'maximize' else 'minimising'} {metric} on {len(data.x_train)} "
          f"training / {len(data.x_val)} validation images; sampler {cfg.sampler} (seed {cfg.seed}), pruner "
          f"{cfg.pruner}; searching {', '.join(searched_keys(cfg.search))}")
    return Worker(params, cfg, max_trials, url, metric, data, blocks, study, identity,
                  tracking.run_tags(fingerprint=fingerprints["train"]))


@dataclass
class Attempt:
    """The trial this worker is running: what the progress line and the failure count need."""

    number: int
    values: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    error: BaseException | None = None  # why it failed (not set when pruned)


@dataclass
class Worker:
    """This process's share of the study: it runs one trial at a time until the study (or this
    worker's ``max_trials``, or ``tune.timeout``) is done."""

    params: Params
    cfg: TuneConfig
    max_trials: int | None
    url: str
    metric: str
    data: Any
    blocks: dict[str, int]
    study: Any
    identity: dict[str, Any]  # worker_host, worker_pid, worker_run: how orphaned trials are told apart
    base_tags: dict[str, str]  # provenance tags of every trial's run
    started: float = field(default_factory=time.monotonic)
    ran: int = 0
    failures_in_row: int = 0
    durations: list[float] = field(default_factory=list)
    current: Attempt | None = None

    def run_trials(self) -> None:
        """Optuna's own loop: ``study.optimize`` with ``tune.timeout``, this worker's
        ``max_trials`` and a ``MaxTrialsCallback`` that stops every worker once the study has
        ``tune.n_trials`` complete, pruned or running trials. Every trial is reported, and
        repeated failures stop the study (:meth:`after_trial`)."""
        import optuna
        from optuna.study import MaxTrialsCallback
        from optuna.trial import TrialState

        if self.study_is_full():
            return
        enough = MaxTrialsCallback(self.cfg.n_trials, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                              TrialState.RUNNING))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.study.optimize(self.objective, n_trials=self.max_trials, timeout=self.cfg.timeout,
                                catch=(Exception,), callbacks=[self.after_trial, enough])  # train_trial frees the model
        if self.study_is_full():
            return
        if self.max_trials is not None and self.ran >= self.max_trials:
            print(f"tune: this worker ran its {self.max_trials} trial(s)")
        elif self.cfg.timeout is not None and time.monotonic() - self.started >= self.cfg.timeout:
            print(f"tune: timeout ({self.cfg.timeout:g}s) reached; run again to continue the study")

    def study_is_full(self) -> bool:
        """Whether the study has its trials (after :meth:`settle`)."""
        self.settle()
        counts = count_trials(self.study)
        return counts.finished + counts.running >= self.cfg.n_trials

    def settle(self) -> None:
        """Between trials: raise a pending interrupt, and fail the trials of dead workers (so
        that they do not count as running)."""
        raise_lost_interrupt()
        fail_orphaned_trials(self.study, self.identity)

    def after_trial(self, study, trial) -> None:  # noqa: ARG002 - Optuna's callback signature
        """Optuna's callback after every trial of this worker: report it, count failures."""
        self.ran += 1
        self.durations.append(trial_seconds(trial))
        self.report(trial)
        self.check_failures(trial)
        self.settle()  # before MaxTrialsCallback counts

    def objective(self, trial) -> float:
        """Optuna's objective: the trial's value; remembers why it failed, if it did."""
        import optuna

        self.current = Attempt(number=trial.number)
        try:
            return self.train(trial)
        except optuna.TrialPruned:
            raise
        except BaseException as exc:
            self.current.error = exc
            raise

    def train(self, trial) -> float:
        """Train the trial's values in a nested MLflow run whose ``optuna_state`` tag says how it ended."""
        from transferlab import tracking

        for key, value in self.identity.items():
            trial.set_user_attr(key, value)
        values = suggest(trial, self.cfg, self.params, self.blocks)
        trial.set_user_attr("values", values)
        self.current.values = values
        p = trial_params(self.params, self.cfg, values, source=f"tune trial {trial.number}")
        tags = trial_tags(self.base_tags, self.cfg, self.study, trial.number, p)
        logged = p.model_dump(exclude={"tune"})  # the study's settings are on the parent run
        with tracking.tracked_run(p.mlflow.experiment, f"trial {trial.number}", logged, tags, nested=True) as child:
            self.current.run_id = child.info.run_id
            trial.set_user_attr("mlflow_run_id", child.info.run_id)
            result, pruned = self.train_in_run(p, trial)
        if pruned is not None:
            trial.set_user_attr("epochs", trial.user_attrs.get("pruned_at_epoch", 0))
            set_terminated(self.current.run_id, "KILLED")  # stopped early on purpose (tag: PRUNED)
            raise pruned
        return result.value

    def train_in_run(self, p: Params, trial) -> tuple[TrialResult | None, Exception | None]:
        """Train inside the trial's active run: (result, None), or (None, the prune) when pruned."""
        import mlflow
        import optuna

        def log_metric(logs: dict, step: int) -> None:
            mlflow.log_metrics({k: float(v) for k, v in logs.items()}, step=step)

        try:
            with stop_at_safe_points():
                result = train_trial(p, self.data, trial, self.metric, log_metric)
        except optuna.TrialPruned as exc:
            mlflow.set_tag("optuna_state", "PRUNED")
            return None, exc
        except BaseException:
            mlflow.set_tag("optuna_state", "FAIL")
            raise
        mlflow.set_tag("optuna_state", "COMPLETE")
        mlflow.log_metrics({"objective": result.value, **{f"final_{k}": v for k, v in result.metrics.items()},
                            "epochs": result.epochs, "train_seconds": round(result.seconds, 1)})
        trial.set_user_attr("epochs", result.epochs)
        return result, None

    def report(self, trial) -> None:
        """The progress line of a finished trial: its state, values, the best so far and an ETA."""
        counts = count_trials(self.study)
        left = max(0, self.cfg.n_trials - counts.finished - counts.running)
        if self.max_trials is not None:
            left = min(left, self.max_trials - self.ran)
        shown = " ".join(f"{k}={format_value(v)}" for k, v in self.current.values.items())
        print(f"tune: trial {trial.number} {self.state_of(trial)} in {_duration(self.durations[-1])}  {shown}  "
              f"[{counts.finished}/{self.cfg.n_trials} finished, {self.best_so_far()}, "
              f"ETA {_duration(np.mean(self.durations) * left)}]", flush=True)

    def state_of(self, trial) -> str:
        """The trial's state with what it means: its value, the epoch it was pruned at, or its error."""
        from optuna.trial import TrialState

        state = trial.state.name
        if trial.state == TrialState.COMPLETE:
            state += f" {self.metric} {trial.value:.4f}"
        elif trial.state == TrialState.PRUNED:
            state += f" after epoch {trial.user_attrs.get('pruned_at_epoch', '?')}"
        elif self.current.error is not None:
            state += f" ({type(self.current.error).__name__}: {self.current.error})"
        return state

    def best_so_far(self) -> str:
        """The study's best value so far, for the progress line."""
        try:
            return f"best {self.study.best_value:.4f} (trial {self.study.best_trial.number})"
        except ValueError:
            return "no complete trial yet"

    def check_failures(self, trial) -> None:
        """Stop the study on a configuration error (every trial would fail alike) or after
        :data:`MAX_FAILURES_IN_A_ROW` failed trials in a row."""
        from optuna.trial import TrialState

        error = self.current.error
        if trial.state != TrialState.FAIL:
            self.failures_in_row = 0
        elif isinstance(error, TransferlabError):
            raise error  # a configuration problem: every trial would fail the same way
        else:
            self.failures_in_row += 1
            if self.failures_in_row >= MAX_FAILURES_IN_A_ROW:
                hint = " (narrow tune.search.learning_rate?)" if isinstance(error, TrialDiverged) else ""
                raise TransferlabError(f"tune: {self.failures_in_row} trials in a row failed, the last with "
                                       f"{type(error).__name__}: {error}{hint}; see the traceback above")


def _duration(seconds: float) -> str:
    """Seconds as the progress line shows them: 45s, 12m05s, 3h20m."""
    seconds = int(round(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
