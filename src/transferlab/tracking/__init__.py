"""MLflow tracking: one MLflow run per training run, in one store per repository.

The store is ``<repository>/mlruns/``: a sqlite database ``mlruns/mlflow.db`` plus a file
artifact root ``mlruns/artifacts/`` (MLflow's plain file store is in maintenance mode and
raises). Every way of running the pipeline writes to the same store with nothing to set:

* ``dvc repro`` and ``dvc exp run`` run stages in the repository itself;
* queued experiments (``dvc exp run --queue`` + ``dvc queue start``) and ``--temp`` runs
  execute in a throw-away copy under ``<repository>/.dvc/tmp/exps/<tmpdir>/``, which DVC
  deletes afterwards. :func:`project_root` sees through that copy (the ``.dvc/tmp/exps``
  component of the working directory, and the ``DVC_ROOT`` variable DVC sets to the real
  repository), so runs are never written into the copy and lost.

Team mode: with ``$TRANSFERLAB_TRACKING_URI`` set, runs go to the team's MLflow server (or
database) instead (:mod:`transferlab.tracking.team_store`); everything else here stays the same.

Concurrency: queued experiments may run in parallel (``dvc queue start -j 2``), several
processes writing one sqlite file. MLflow waits up to 20 s on a locked database in every
session; creating the tables of a new database is serialised here with a file lock
(``mlruns/.lock``), since MLflow's own first-time migration is not safe against a second
process doing the same.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

# MLflow otherwise records telemetry state under ~/.config; set before mlflow is imported. Its
# "Downloading artifacts" bars (every model load, the stages' reads of their own runs) count
# local files in milliseconds: noise to a user. Both are defaults: the environment wins.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

import mlflow  # noqa: E402
from mlflow.entities import RunStatus  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

from transferlab.tracking import hygiene as run_hygiene  # noqa: E402

from transferlab.tracking import records as run_records

from transferlab.tracking import team_store
from transferlab.locks import file_lock  # noqa: E402
from transferlab.tracking.locations import (  # noqa: E402, F401 - re-exported
    ARTIFACTS_DIRNAME, DB_FILENAME, STORE_DIRNAME, artifacts_dir, project_root, store_dir, tracking_uri, _root)
from transferlab.tracking.params import (  # noqa: E402, F401 - re-exported
    MAX_KEY_LENGTH, MAX_PARAM_VALUE_LENGTH, MAX_TAG_VALUE_LENGTH, TAG_DATASET_FINGERPRINT, TAG_DVC_EXP_NAME,
    TAG_DVC_STAGE, TAG_GIT_COMMIT, _cut, _key, _scalar, flatten_params, run_tags)

# MLflow's notices about choices transferlab makes on purpose, which its users cannot act on: the
# reader is logged as a Python object (its class travels in code_paths) and its input example is
# checked against the signature (INFO on every run). Other records, warnings and errors pass.
# Creating the local store's tables (INFO, once per stage process on a fresh store) is the same.
MLFLOW_NOTICES = ("Passing a Python object as `python_model`", "Validating input example against model signature",
                  "Creating initial MLflow database tables", "Updating database tables")


class _DropNotices(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(MLFLOW_NOTICES)


@contextmanager
def without_mlflow_notices(logger_name: str = "mlflow.pyfunc") -> Iterator[None]:
    """Around one MLflow call: drop :data:`MLFLOW_NOTICES` from ``logger_name``, nothing else."""
    logger, notices = logging.getLogger(logger_name), _DropNotices()
    logger.addFilter(notices)
    try:
        yield
    finally:
        logger.removeFilter(notices)


_initialized: set[str] = set()
_cleaned: set[str] = set()  # stores already searched for dead runs by this process
_init_lock = threading.Lock()


def _store_lock(store: Path) -> AbstractContextManager[None]:
    """An exclusive lock on the store, across processes (``mlruns/.lock``)."""
    return file_lock(store / ".lock")


_GITIGNORE = (
    "# Written by transferlab: the MLflow store is local experiment history, not source.\n"
    "*\n"
    "!README.md\n"
)


def configure(root: Path | str | None = None) -> str:
    """Point MLflow at the repository's store, creating it if needed; returns the tracking URI.

    Idempotent and cheap after the first call in a process. The first call creates
    ``mlruns/`` (with a ``.gitignore`` so git and DVC never pick the database up) and the
    database tables under an inter-process lock, and makes the default experiment's
    artifact location ``mlruns/artifacts/0`` rather than a path relative to the cwd.
    In team mode (``$TRANSFERLAB_TRACKING_URI``, :mod:`transferlab.tracking.team_store`) it points
    MLflow at the team's server or database instead.
    """
    team = team_store.team_uri()
    if team is not None:
        mlflow.set_tracking_uri(team)
        return team
    root = _root(root)
    uri = tracking_uri(root)
    with _init_lock:
        if uri not in _initialized:
            store = store_dir(root)
            with _store_lock(store):
                gitignore = store / ".gitignore"
                if not gitignore.exists():
                    gitignore.write_text(_GITIGNORE)
                (store / ARTIFACTS_DIRNAME).mkdir(exist_ok=True)
                from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

                # Creates the tables (first time only) and the default experiment; the engine
                # is cached by MLflow per URI and shared with the store the client builds.
                with without_mlflow_notices("mlflow.store.db.utils"):
                    SqlAlchemyStore(uri, (store / ARTIFACTS_DIRNAME).as_uri())
            _initialized.add(uri)
    mlflow.set_tracking_uri(uri)
    return uri


def close_dead_runs(root: Path | str | None = None, once: bool = True) -> list[str]:
    """Mark KILLED the runs left RUNNING by a dead process of this host (:mod:`run_hygiene`).

    With ``once``, only the first call per store in a process searches (every stage start
    calls it; a tuning study opens a run per trial).
    """
    uri = configure(root)
    if once and uri in _cleaned:
        return []
    _cleaned.add(uri)
    return run_hygiene.close_zombie_runs(mlflow.MlflowClient(tracking_uri=uri))


def _safe_dirname(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "experiment"


def ensure_experiment(name: str, root: Path | str | None = None) -> str:
    """The id of experiment ``name``, created if missing (restored if deleted).

    New experiments keep their artifacts in ``<root>/mlruns/artifacts/<name>`` (absolute
    ``file://`` URI), whichever directory the run starts from; every experiment is tagged
    :func:`run_records.experiment_tags` (the model-training kind the UI's runs table needs).
    """
    root = _root(root)
    uri = configure(root)
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        # A team server chooses (and serves) the artifact location itself.
        team = team_store.team_uri()
        location = None if team and team_store.is_server(team) else (artifacts_dir(root) / _safe_dirname(name)).as_uri()
        # Two queued runs must not both create it; a team's store is not a local file to lock.
        with nullcontext() if team else _store_lock(store_dir(root)):
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                try:
                    return client.create_experiment(name, artifact_location=location,
                                                    tags=run_records.experiment_tags())
                except MlflowException as exc:  # created meanwhile (no file lock on Windows)
                    experiment = client.get_experiment_by_name(name)
                    if experiment is None:
                        raise exc
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    run_records.tag_experiment(client, experiment)  # stores made before the tag existed
    return experiment.experiment_id


# --------------------------------------------------------------------------- runs


def _raise_interrupt(signum, frame):  # noqa: ARG001 - signal handler signature
    raise KeyboardInterrupt(f"received signal {signum}")


@contextmanager
def sigterm_raises_interrupt() -> Iterator[None]:
    """While open, SIGTERM (what DVC and job queues send) raises KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM while a run is being created or closed; re-deliver them afterwards.

    A Ctrl-C in the middle of ``start_run``/``end_run`` must not leave the run RUNNING.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    signums = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, lambda signum, frame: received.append(signum)) for s in signums}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for s in dict.fromkeys(received):
            signal.raise_signal(s)


def _end_run(status: str) -> None:
    """End the active run with ``status``, retrying a busy database; never raises."""
    with _signals_deferred():
        for attempt in range(5):
            try:
                mlflow.end_run(status)
                return
            except Exception as exc:  # noqa: BLE001 - a failing end must not hide the run's error
                if attempt == 4:
                    print(f"warning: could not mark MLflow run {status}: {exc}", file=sys.stderr)
                    return
                time.sleep(0.5 * 2**attempt)


def _tag_values(tags: Mapping[str, Any]) -> dict[str, str]:
    return {_key(str(k)): _cut(_scalar(v), MAX_TAG_VALUE_LENGTH) for k, v in tags.items() if v is not None}


@contextmanager
def tracked_run(experiment: str, run_name: str | None, params: Mapping[str, Any], tags: Mapping[str, Any],
                run_id: str | None = None, nested: bool = False) -> Iterator[mlflow.ActiveRun]:
    """One MLflow run in the repository's store, never left RUNNING.

    Starts a run in ``experiment`` (created if needed) and logs ``params`` flattened
    (:func:`flatten_params`) and ``tags``; with ``run_id``, resumes that run instead (the
    evaluate stage logs into the training run) and logs only the tags. Ends FINISHED on
    normal exit, KILLED on KeyboardInterrupt or SIGTERM (turned into KeyboardInterrupt
    while the run is open), FAILED on any other exception; exceptions are re-raised.
    The run is tagged with this process's pid and host, so that a later start can tell
    it was abandoned when the process is killed outright (:func:`close_dead_runs`, which
    runs first).
    """
    close_dead_runs()
    tags = {**tags, **run_hygiene.owner_tags()}
    active = None
    status = RunStatus.to_string(RunStatus.FAILED)
    try:
        with sigterm_raises_interrupt():
            # A signal while the run is being created is held until the run exists, so the
            # KeyboardInterrupt it then raises ends the run KILLED instead of leaving it RUNNING.
            with _signals_deferred():
                if run_id is None:
                    experiment_id = ensure_experiment(experiment)
                    active = mlflow.start_run(experiment_id=experiment_id, run_name=run_name, nested=nested,
                                              tags=_tag_values(tags) or None)
                else:
                    active = mlflow.start_run(run_id=run_id, nested=nested)
            if run_id is None:
                flat = flatten_params(params)
                if flat:
                    mlflow.log_params(flat)
            else:
                mlflow.set_tags(_tag_values(tags))  # includes the new owner of the resumed run
            yield active
        status = RunStatus.to_string(RunStatus.FINISHED)
    except KeyboardInterrupt:
        status = RunStatus.to_string(RunStatus.KILLED)
        raise
    except SystemExit as exc:
        if exc.code in (None, 0):
            status = RunStatus.to_string(RunStatus.FINISHED)
        raise
    finally:
        if active is not None:
            _end_run(status)
