"""Run hygiene: no MLflow run stays RUNNING after the process that owned it died.

:func:`transferlab.tracking.tracked_run` never leaves a run RUNNING on an exception, Ctrl-C
or SIGTERM, but nothing runs after ``kill -9``, an out-of-memory kill or a power cut: the
run then stays RUNNING for ever and looks like a variant still training. So every run
records which process owns it (:func:`owner_tags`: pid and host), and the next stage start
and ``transferlab ui`` close the runs whose owner is gone (:func:`close_zombie_runs`):
status KILLED plus a tag saying why.

Only runs owned by a process on *this* host are judged: a pid means nothing on another
machine, and a run of a live process (a parallel queued experiment) is left alone.
"""

from __future__ import annotations

import os
import socket
import sys
import time

TAG_PID = "transferlab.pid"
TAG_HOST = "transferlab.host"
TAG_KILLED = "transferlab.killed"  # why a run was closed by someone other than its owner


def owner_tags() -> dict[str, str]:
    """The tags naming the process that owns a run: this process on this host."""
    return {TAG_PID: str(os.getpid()), TAG_HOST: socket.gethostname()}


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine (a zombie process counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    stat = f"/proc/{pid}/stat"
    if os.path.exists(stat):  # Linux: a killed child its parent has not reaped yet is state Z
        try:
            with open(stat) as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        return state != "Z"
    return True


def _owner_dead(tags: dict[str, str]) -> bool:
    """True when the run's owner ran on this host and its process no longer exists."""
    if tags.get(TAG_HOST) != socket.gethostname():
        return False
    try:
        pid = int(tags.get(TAG_PID, ""))
    except ValueError:
        return False  # a run from before these tags existed: nothing to judge it by
    return pid != os.getpid() and not pid_alive(pid)


def close_zombie_runs(client, quiet: bool = False) -> list[str]:
    """Mark KILLED every RUNNING run whose owning process on this host is gone; returns their ids.

    ``client`` is an ``mlflow.MlflowClient`` of the store to clean. Each closed run gets the
    tag :data:`TAG_KILLED` naming the dead pid and when it was found, so the UI says why it
    ended. Errors from a busy store are reported and skipped: cleaning must never stop a stage.
    """
    from mlflow.entities import ViewType

    closed: list[str] = []
    try:
        experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
        running = client.search_runs(experiments, filter_string="attributes.status = 'RUNNING'",
                                     run_view_type=ViewType.ALL, max_results=10_000) if experiments else []
    except Exception as exc:  # noqa: BLE001 - a locked database must not stop the stage
        print(f"warning: could not look for runs left RUNNING: {exc}", file=sys.stderr)
        return closed
    for run in running:
        tags = run.data.tags
        if not _owner_dead(tags):
            continue
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
        reason = (f"process {tags[TAG_PID]} on {tags[TAG_HOST]} died without closing this run "
                  f"(killed outright); marked KILLED at {when} by process {os.getpid()}")
        try:
            client.set_tag(run.info.run_id, TAG_KILLED, reason)
            client.set_terminated(run.info.run_id, "KILLED")
        except Exception as exc:  # noqa: BLE001
            print(f"warning: could not close run {run.info.run_id}: {exc}", file=sys.stderr)
            continue
        closed.append(run.info.run_id)
        if not quiet:
            print(f"mlflow: run {run.info.run_id} ({run.info.run_name}) was left RUNNING by dead process "
                  f"{tags[TAG_PID]}: marked KILLED", file=sys.stderr)
    return closed
