"""Team mode: several people (or machines) record their runs in one MLflow server backed by PostgreSQL.

By default every repository records into its own ``mlruns/`` (sqlite + files,
:mod:`transferlab.tracking`). A team runs one MLflow tracking server instead, its runs in a
PostgreSQL database and its artifacts in a folder the server serves (``--serve-artifacts``:
clients need no access to that folder or any cloud credentials):

    transferlab team-server --backend-store-uri postgresql://mlflow:secret@db-host/mlflow \\
        --artifacts /srv/mlflow-artifacts --host 0.0.0.0 --port 5000 --allowed-hosts mlflow-host

and every member sets ``TRANSFERLAB_TRACKING_URI=http://mlflow-host:5000``: stages, tuning,
the study and ``transferlab predict runs:/...`` then use the server; nothing else changes.
A variable rather than a params.yaml key, because where runs are recorded is no experiment
parameter: changing it must not re-run a DVC stage.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Sequence

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


def allowed_hosts(names: Sequence[str] = ()) -> list[str]:
    """The ``Host`` headers the team server answers: MLflow's default (localhost and private
    addresses), this machine's own names and ``names`` (a name without a port on any port).

    MLflow 3 answers 403 to every other name (DNS-rebinding protection), so without this a
    member's ``http://mlflow-host:5000`` would be refused; ``*`` accepts every name.
    """
    from mlflow.server.security_utils import get_default_allowed_hosts

    own = {socket.gethostname(), socket.getfqdn()} - {""}
    patterns = list(get_default_allowed_hosts())
    for name in [*sorted(own), *(n.strip() for n in names if n.strip())]:
        patterns += [name] if name == "*" or ":" in name else [name, f"{name}:*"]
    return list(dict.fromkeys(patterns))


def server_command(backend_store_uri: str, artifacts: str, host: str = "127.0.0.1", port: int = 5000,
                   workers: int = 2, hosts: Sequence[str] = ()) -> list[str]:
    """The ``mlflow server`` argv of a team server: runs in ``backend_store_uri``, artifacts served
    from ``artifacts`` (proxied: clients upload and download through the server), answering the
    host names of :func:`allowed_hosts` (``hosts``: the names members use beyond this machine's)."""
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
            "--host", host, "--port", str(port), "--workers", str(workers),
            "--allowed-hosts", ",".join(allowed_hosts(hosts))]
