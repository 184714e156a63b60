"""The MLflow servers transferlab starts: ``transferlab ui`` (this repository's store) and
``transferlab team-server`` (a team's PostgreSQL store, :mod:`transferlab.tracking.team_store`).

Both run in the foreground in their own process group, which is stopped whole on the way
out (Ctrl-C or SIGTERM), so no worker is left holding the port.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from transferlab import tracking

from transferlab.tracking import team_store
from transferlab.errors import TransferlabError


def ui_command(root: Path | str | None = None, host: str = "127.0.0.1", port: int = 5000) -> list[str]:
    """The ``mlflow ui`` argv that serves this repository's store (same Python as this process)."""
    return [sys.executable, "-m", "mlflow", "ui",
            "--backend-store-uri", tracking.tracking_uri(root),
            "--default-artifact-root", tracking.artifacts_dir(root).as_uri(),
            "--host", host, "--port", str(port),
            "--workers", "1"]


def _port_free(host: str, port: int) -> bool:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return True  # let mlflow report the bad host
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError:
            return False
    return True


def _stop_group(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """Stop the whole process group of ``process`` (TERM, then KILL after ``timeout``)."""
    if os.name != "posix":
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
        return
    pgid = process.pid  # start_new_session: the group id is the leader's pid
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                process.wait(0.1)
            except subprocess.TimeoutExpired:
                continue
            try:  # the leader is gone; are its workers?
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def serve_ui(root: Path | str | None = None, host: str = "127.0.0.1", port: int = 5000) -> None:
    """Serve the MLflow UI for this repository in the foreground until Ctrl-C (or SIGTERM).

    Runs left RUNNING by dead processes are closed first. In team mode the team's server
    is the UI (a database URI is served here like the local store).
    """
    tracking.close_dead_runs(root)
    team = team_store.team_uri()
    if team and team_store.is_server(team):
        raise TransferlabError(f"runs are recorded on the team's MLflow server ({team_store.TEAM_URI_ENV}={team}): "
                               "open it in a browser, it is the UI")
    command = ui_command(root, host, port)
    if team:
        command[command.index("--backend-store-uri") + 1] = team
    base = f"http://{host}:{port}"
    for name, experiment_id in experiments_with_runs(tracking.configure(root)):
        print(f"runs of experiment {name!r}: {runs_table_url(base, experiment_id)}", file=sys.stderr)
    serve(command, host, port, f"MLflow UI for {team or tracking.store_dir(root)}")


def runs_table_url(base: str, experiment_id: str) -> str:
    """The page of an experiment's runs table.

    MLflow 3's UI opens every experiment in its GenAI views (traces, usage) unless the URL asks
    for the model-training workflow; this is the page to start from when comparing variants.
    """
    return f"{base}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def experiments_with_runs(uri: str) -> list[tuple[str, str]]:
    """(name, id) of the store's active experiments that hold at least one run."""
    import mlflow

    client = mlflow.MlflowClient(uri)
    return [(e.name, e.experiment_id) for e in client.search_experiments()
            if client.search_runs([e.experiment_id], max_results=1)]


def serve(command: list[str], host: str, port: int, what: str) -> None:
    """Run an MLflow server ``command`` in the foreground until Ctrl-C (or SIGTERM).

    ``mlflow ui``/``mlflow server`` start a dozen server/worker processes; they run in their
    own process group and all of it is stopped on the way out, so the port is free again.
    """
    if not _port_free(host, port):
        raise TransferlabError(f"port {port} on {host} is already in use: pass another port")
    print(f"{what} at http://{host}:{port} (Ctrl-C stops it)", file=sys.stderr)
    process = subprocess.Popen(command, start_new_session=os.name == "posix")
    try:
        with tracking.sigterm_raises_interrupt():
            code = process.wait()
    except KeyboardInterrupt:
        return
    finally:
        _stop_group(process)
    if code != 0:
        raise TransferlabError(f"{command[2]} {command[3]} exited with code {code}")
