"""Team mode: several people (or machines) record their runs in one MLflow server backed by PostgreSQL.

By default every repository records into its own ``mlruns/`` (sqlite + files,
:mod:`transferlab.tracking`). A team runs one MLflow tracking server instead, its runs in a
PostgreSQL database and its artifacts in a folder the server serves (``--serve-artifacts``:
clients need no access to that folder or any cloud credentials):

    transferlab team-server --backend-store-uri postgresql://mlflow:secret@db-host/mlflow \\
        --artifacts /srv/mlflow-artifacts --host 0.0.0.0 --port 5000

and every member sets ``TRANSFERLAB_TRACKING_URI=http://that-host:5000``: stages, tuning,
the study and ``transferlab predict runs:/...`` then use the server; nothing else changes.
A variable rather than a params.yaml key, because where runs are recorded is no experiment
parameter: changing it must not re-run a DVC stage.
"""

from __future__ import annotations

import os
import sys

from transferlab.errors import TransferlabError

TEAM_URI_ENV = "TRANSFERLAB_TRACKING_URI"
_SCHEMES = ("http://", "https://", "postgresql://", "postgresql+psycopg2://")


def team_uri() -> str | None:
    """The team's tracking URI from ``$TRANSFERLAB_TRACKING_URI``, or None for the repository's store."""
    uri = os.environ.get(TEAM_URI_ENV, "").strip()
    if not uri:
        return None
    if not uri.startswith(_SCHEMES):
        raise TransferlabError(f"{TEAM_URI_ENV}={uri!r}: expected the team's MLflow server (http://host:port) "
                               "or a PostgreSQL database (postgresql://user:password@host/db)")
    return database_uri(uri)


def is_server(uri: str) -> bool:
    """Whether ``uri`` is an MLflow server (which chooses artifact locations itself) rather than a database."""
    return uri.startswith(("http://", "https://"))


def database_uri(uri: str) -> str:
    """``postgresql://`` with the driver named: SQLAlchemy 2.1 defaults to psycopg 3, the team extra
    installs psycopg2 (``postgresql+psycopg2://``)."""
    return "postgresql+psycopg2://" + uri[len("postgresql://"):] if uri.startswith("postgresql://") else uri


def server_command(backend_store_uri: str, artifacts: str, host: str = "127.0.0.1", port: int = 5000,
                   workers: int = 2) -> list[str]:
    """The ``mlflow server`` argv of a team server: runs in ``backend_store_uri``, artifacts served
    from ``artifacts`` (proxied: clients upload and download through the server)."""
    if not backend_store_uri.startswith(("postgresql://", "postgresql+psycopg2://", "sqlite:///")):
        raise TransferlabError(f"--backend-store-uri {backend_store_uri!r}: expected postgresql://user:password@host/db")
    if backend_store_uri.startswith("postgresql"):
        try:
            import psycopg2  # noqa: F401 - MLflow's PostgreSQL driver
        except ImportError:
            raise TransferlabError("the team server's PostgreSQL store needs the psycopg2 driver: "
                                   "pip install 'transferlab[team]' (psycopg2-binary)") from None
    return [sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", database_uri(backend_store_uri),
            "--artifacts-destination", artifacts, "--serve-artifacts",
            "--host", host, "--port", str(port), "--workers", str(workers)]
