"""Where the study lives: its database URL, opening (or joining) the study under a file lock,
and closing the trials of workers that died (same machine: their pid is gone; elsewhere:
Optuna's heartbeat)."""

from __future__ import annotations

import os
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transferlab.config import TuneConfig
from transferlab.errors import TransferlabError
from transferlab.locks import file_lock
from transferlab.tune.samplers import per_trial_sampler

DEFAULT_STORAGE_FILE = "tune/optuna.db"  # under the project root; git-ignored
HEARTBEAT_INTERVAL_S = 60
GRACE_PERIOD_S = 180  # a RUNNING trial without heartbeat for this long is failed (other machines)


def storage_url(cfg: TuneConfig, root: Path) -> str:
    """The study's database URL; relative sqlite paths are taken from the project root, so
    DVC's temporary experiment copies and every stage share one study. ``postgresql://`` gets
    the driver named, as for the team's MLflow store (psycopg2, :func:`team_store.database_uri`)."""
    if cfg.storage is None:
        return "sqlite:///" + (root / DEFAULT_STORAGE_FILE).as_posix()
    from sqlalchemy.engine import make_url

    url = make_url(cfg.storage)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:" \
            and not Path(url.database).is_absolute():
        return "sqlite:///" + (root / url.database).as_posix()
    from transferlab.tracking.team_store import database_uri

    return database_uri(cfg.storage)


def _sqlite_file(url: str) -> Path | None:
    """The database file of a sqlite URL (None for other databases and in-memory sqlite)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        return Path(parsed.database)
    return None


def shown_url(url: str) -> str:
    """The URL as printed and logged: without its password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


BASELINE_ATTR = "baseline"  # user attribute of the trial that runs params.yaml's own values
SCHEMA_ATTEMPTS = 3  # creating the storage's tables, when several workers start on a new database


def open_storage(url: str):
    """Optuna's storage for ``url``, with heartbeats; a missing database driver is a clear error."""
    import optuna

    kwargs: dict[str, Any] = {}
    if _sqlite_file(url) is not None:
        _sqlite_file(url).parent.mkdir(parents=True, exist_ok=True)
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}  # several workers write one file
    from sqlalchemy.exc import DBAPIError

    for attempt in range(SCHEMA_ATTEMPTS):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats: since 2.9
                # Optuna's heartbeat fails a trial whose worker stopped beating (any machine) and
                # then calls the callback, which closes the trial's MLflow run.
                return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_INTERVAL_S,
                                                  grace_period=GRACE_PERIOD_S,
                                                  heartbeat_stale_trial_callback=_stale_trial_failed, **kwargs)
        except ImportError as exc:
            raise TransferlabError(f"tune.storage: {shown_url(url)} needs a database driver that is not installed "
                                   f"({exc}); e.g. pip install psycopg2-binary for PostgreSQL") from None
        except DBAPIError:
            # Workers started together on a new database race to create Optuna's tables (on
            # PostgreSQL: "duplicate key ... pg_type_typname_nsp_index"); the loser finds them made.
            if attempt == SCHEMA_ATTEMPTS - 1:
                raise
            time.sleep(1.0 + attempt)
    raise AssertionError("unreachable")


def open_study(url: str, cfg: TuneConfig, direction: str, settings: dict[str, Any], pruner,
               baseline: dict[str, Any] | None = None):
    """Create the study, or load it (resume / another worker); refuse other settings.

    A new study gets ``baseline`` (params.yaml's values) enqueued as its first trial; only on
    creation, under the lock, so a resumed study or a second worker never enqueues it again.
    """
    import optuna

    sqlite = _sqlite_file(url)
    with file_lock(sqlite.with_name(sqlite.name + ".lock") if sqlite else None):
        storage = open_storage(url)
        try:
            study = optuna.create_study(storage=storage, study_name=cfg.study_name, direction=direction,
                                        sampler=per_trial_sampler(cfg), pruner=pruner)
            study.set_user_attr("settings", settings)
            if baseline is not None:
                study.enqueue_trial(baseline, user_attrs={BASELINE_ATTR: True})
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
    """Whether process ``pid`` of this machine may still run (unknown counts as alive)."""
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
    """The study's trials by state."""

    complete: int
    pruned: int
    failed: int
    running: int

    @property
    def finished(self) -> int:
        """Trials that count towards ``tune.n_trials``: complete or pruned."""
        return self.complete + self.pruned


def count_trials(study) -> Counts:
    """The study's trials counted by state (every worker's)."""
    from optuna.trial import TrialState

    states = [t.state for t in study.get_trials(deepcopy=False)]
    return Counts(*(states.count(s) for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL,
                                               TrialState.RUNNING)))

