"""Team mode: a real PostgreSQL server, `transferlab team-server`'s MLflow server on it, and a run
recorded through TRANSFERLAB_TRACKING_URI (runs in PostgreSQL, artifacts served by the server).

Needs PostgreSQL's binaries (initdb, pg_ctl; CI's .ci/run installs them) and the psycopg2 driver
(`pip install 'transferlab[team]'`); skipped without them. PostgreSQL refuses to run as root, so
as root its commands run as the `postgres` user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest

from transferlab import mlflow_servers, team_store, tracking
from transferlab.errors import TransferlabError

INITDB, PG_CTL = shutil.which("initdb"), shutil.which("pg_ctl")
try:
    import psycopg2
except ImportError:
    psycopg2 = None

pytestmark = pytest.mark.skipif(INITDB is None or PG_CTL is None or psycopg2 is None,
                                reason="PostgreSQL binaries (initdb, pg_ctl) or psycopg2 not installed")
USER, DATABASE = "transferlab", "mlflow"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def as_postgres(argv: list[str]) -> list[str]:
    """PostgreSQL's commands run as the `postgres` user when the tests run as root."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@pytest.fixture(scope="module")
def postgres():
    """A throw-away PostgreSQL server on a free port, with an empty database; its URI and port."""
    # Not under pytest's tmp folder: that is private to this user, and postgres must reach it.
    folder = Path(tempfile.mkdtemp(prefix="transferlab-postgres-"))
    folder.chmod(0o755)
    data, sockets = folder / "data", folder / "sockets"
    sockets.mkdir()
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        os.chown(sockets, owner.pw_uid, owner.pw_gid)
    port = free_port()
    subprocess.run(as_postgres([INITDB, "-D", str(data), "-U", USER, "-A", "trust", "--no-sync"]),
                   check=True, capture_output=True)
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(as_postgres([PG_CTL, "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start"]),
                   check=True, capture_output=True)
    try:
        connection = psycopg2.connect(host="127.0.0.1", port=port, user=USER, dbname="postgres")
        connection.autocommit = True
        connection.cursor().execute(f"CREATE DATABASE {DATABASE}")
        connection.close()
        yield f"postgresql://{USER}@127.0.0.1:{port}/{DATABASE}", port
    finally:
        subprocess.run(as_postgres([PG_CTL, "-D", str(data), "-m", "fast", "-w", "stop"]), capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the team server exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise AssertionError(f"the team server at {url} did not answer within {timeout} s")


def test_a_run_through_the_team_server_lands_in_postgresql(postgres, tmp_path, monkeypatch):
    uri, pg_port = postgres
    port = free_port()
    command = team_store.server_command(uri, str(tmp_path / "artifacts"), port=port, workers=1)
    server = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, server)
        (tmp_path / "repo" / ".dvc").mkdir(parents=True)
        monkeypatch.chdir(tmp_path / "repo")
        monkeypatch.setenv(team_store.TEAM_URI_ENV, url)
        assert tracking.configure() == url
        with tracking.tracked_run("team", "member run", {"train": {"seed": 3}}, {"stage": "train"}) as run:
            (tmp_path / "note.txt").write_text("hello")
            mlflow.log_artifact(str(tmp_path / "note.txt"))
        client = mlflow.MlflowClient(url)
        stored = client.get_run(run.info.run_id)
        assert stored.info.status == "FINISHED" and stored.data.params == {"train.seed": "3"}
        assert client.get_experiment_by_name("team").tags["mlflow.experimentKind"] == "custom_model_development"
        assert not (tmp_path / "repo" / "mlruns").exists()  # nothing recorded locally
        assert list((tmp_path / "artifacts").rglob("note.txt"))  # the server stored the artifact
        with pytest.raises(TransferlabError, match="it is the UI"):
            mlflow_servers.serve_ui(port=free_port())
    finally:
        mlflow_servers._stop_group(server)
        mlflow.set_tracking_uri(None)
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    connection = psycopg2.connect(host="127.0.0.1", port=pg_port, user=USER, dbname=DATABASE)
    with connection, connection.cursor() as cursor:
        cursor.execute("SELECT status FROM runs WHERE run_uuid = %s", (run.info.run_id,))
        assert cursor.fetchone() == ("FINISHED",)
    connection.close()


def test_a_wrong_team_uri_and_a_wrong_backend_are_clear_errors(monkeypatch):
    monkeypatch.setenv(team_store.TEAM_URI_ENV, "mlflow-host:5000")
    with pytest.raises(TransferlabError, match=f"{team_store.TEAM_URI_ENV}='mlflow-host:5000': expected"):
        tracking.configure()
    with pytest.raises(TransferlabError, match="--backend-store-uri 'mysql://x': expected postgresql"):
        team_store.server_command("mysql://x", "/tmp/a")
    assert team_store.server_command("postgresql://u@h/db", "/srv/a")[:4] == [sys.executable, "-m", "mlflow", "server"]
