"""Team mode: a real PostgreSQL server, `transferlab team-server`'s MLflow server on it, and runs
recorded through TRANSFERLAB_TRACKING_URI (runs in PostgreSQL, artifacts served by the server):
one run from this process, two tune workers sharing one study in PostgreSQL (`tune.storage`),
and two queued `dvc exp` runs; no trial and no run lost, all visible through the server's API.

Needs PostgreSQL's binaries (initdb, pg_ctl; CI's .ci/run installs them) and the psycopg2 driver
(`pip install 'transferlab[team]'`); skipped without them. PostgreSQL refuses to run as root, so
as root its commands run as the `postgres` user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import json
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import pytest

from helpers import random_plates, tiny_params, write_plate_csv
from pipeline_project import build_project, command_env, edit_params, run
from transferlab import split, tracking
from transferlab.tracking import servers as mlflow_servers
from transferlab.tracking import team_store
from transferlab.errors import TransferlabError

INITDB, PG_CTL = shutil.which("initdb"), shutil.which("pg_ctl")
try:
    import psycopg2
except ImportError:
    psycopg2 = None

pytestmark = pytest.mark.skipif(INITDB is None or PG_CTL is None or psycopg2 is None,
                                reason="PostgreSQL is not installed (apt-get install postgresql, with initdb and "
                                       "pg_ctl on the PATH) or psycopg2 is missing (make setup)")
USER, DATABASE, STUDY_DATABASE = "transferlab", "mlflow", "optuna"
TEAM_HOST = "mlflow-host"  # the README's name for the team server, passed as --allowed-hosts


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
        for name in (DATABASE, STUDY_DATABASE):  # the MLflow server's and the tune study's
            connection.cursor().execute(f"CREATE DATABASE {name}")
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


@pytest.fixture(scope="module")
def team_server(postgres, tmp_path_factory):
    """`transferlab team-server`'s MLflow server on the PostgreSQL database (127.0.0.1, a free
    port), shared by the tests of this module; its URL and its artifacts folder."""
    uri, _ = postgres
    artifacts = tmp_path_factory.mktemp("team-artifacts")
    port = free_port()
    command = team_store.server_command(uri, str(artifacts), port=port, workers=2, hosts=[TEAM_HOST])
    server = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, server)
        yield url, artifacts
    finally:
        mlflow_servers._stop_group(server)


@pytest.fixture
def member(team_server, monkeypatch):
    """This process (and the commands it starts) records on the team server."""
    url, _ = team_server
    monkeypatch.setenv(team_store.TEAM_URI_ENV, url)
    yield url
    mlflow.set_tracking_uri(None)
    os.environ.pop("MLFLOW_TRACKING_URI", None)


def api_status(url: str, host: str) -> int:
    """The HTTP status of an API call to ``url`` sent with the ``Host`` header ``host``."""
    request = urllib.request.Request(f"{url}/api/2.0/mlflow/experiments/search?max_results=1", headers={"Host": host})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status
    except urllib.error.HTTPError as refused:
        return refused.code


def test_the_team_server_answers_the_names_members_use(team_server):
    url, _ = team_server
    port = url.rsplit(":", 1)[1]
    assert api_status(url, f"{TEAM_HOST}:{port}") == 200  # --allowed-hosts
    assert api_status(url, f"{socket.gethostname()}:{port}") == 200  # this machine's own name, by default
    assert api_status(url, f"elsewhere.invalid:{port}") == 403  # MLflow's DNS-rebinding check still holds


def test_a_member_reaches_the_team_server_by_its_host_name(team_server, member, tmp_path, monkeypatch):
    """TRANSFERLAB_TRACKING_URI=http://mlflow-host:PORT as in the README; the name resolves to this
    machine's loopback for this process only (no /etc/hosts entry), the Host header stays the name."""
    url, artifacts = team_server
    resolve = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo",
                        lambda host, *rest, **kw: resolve("127.0.0.1" if host == TEAM_HOST else host, *rest, **kw))
    named = url.replace("127.0.0.1", TEAM_HOST)
    monkeypatch.setenv(team_store.TEAM_URI_ENV, named)
    (tmp_path / "repo" / ".dvc").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "repo")
    assert tracking.configure() == named
    with tracking.tracked_run("team by name", "member run", {"train": {"seed": 5}}, {"stage": "train"}) as run:
        (tmp_path / "by-name.txt").write_text("hello")
        mlflow.log_artifact(str(tmp_path / "by-name.txt"))
    assert mlflow.MlflowClient(url).get_run(run.info.run_id).info.status == "FINISHED"
    assert list(artifacts.rglob("by-name.txt"))


def runs_seen_by_the_ui(url: str, experiment_id: str) -> list[dict]:
    """The experiment's runs as the server's REST API (what its UI calls) lists them."""
    request = urllib.request.Request(f"{url}/api/2.0/mlflow/runs/search", method="POST",
                                     data=json.dumps({"experiment_ids": [experiment_id], "max_results": 1000}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer).get("runs", [])


def test_a_run_through_the_team_server_lands_in_postgresql(postgres, team_server, member, tmp_path, monkeypatch):
    _, pg_port = postgres
    url, artifacts = team_server
    (tmp_path / "repo" / ".dvc").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "repo")
    assert tracking.configure() == url
    with tracking.tracked_run("team", "member run", {"train": {"seed": 3}}, {"stage": "train"}) as run:
        (tmp_path / "note.txt").write_text("hello")
        mlflow.log_artifact(str(tmp_path / "note.txt"))
    client = mlflow.MlflowClient(url)
    stored = client.get_run(run.info.run_id)
    assert stored.info.status == "FINISHED" and stored.data.params == {"train.seed": "3"}
    assert client.get_experiment_by_name("team").tags["mlflow.experimentKind"] == "custom_model_development"
    assert not (tmp_path / "repo" / "mlruns").exists()  # nothing recorded locally
    assert list(artifacts.rglob("note.txt"))  # the server stored the artifact
    with pytest.raises(TransferlabError, match="it is the UI"):
        mlflow_servers.serve_ui(port=free_port())
    connection = psycopg2.connect(host="127.0.0.1", port=pg_port, user=USER, dbname=DATABASE)
    with connection, connection.cursor() as cursor:
        cursor.execute("SELECT status FROM runs WHERE run_uuid = %s", (run.info.run_id,))
        assert cursor.fetchone() == ("FINISHED",)
    connection.close()


TUNE_WORKER = textwrap.dedent("""
    import sys
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from helpers import tiny_params
    from transferlab import tune
    from transferlab.config import TuneConfig

    root = Path({root!r})
    params = tiny_params(root, data={{"source": str(root / "plates")}}, train={train!r})
    tune.run(params, TuneConfig.model_validate({tune!r}), max_trials={share})
""")


@pytest.mark.slow
def test_two_tune_workers_share_a_postgresql_study_and_lose_no_trial(postgres, member, tmp_path, monkeypatch):
    """`tune.storage: postgresql://...`, two workers started together (real tiny training): every
    trial of both is in the study, finished, and has its run on the team server."""
    import optuna
    from optuna.trial import TrialState

    uri, _ = postgres
    url = member
    root = tmp_path / "tune-project"
    (root / "dvc.yaml").parent.mkdir()
    (root / "dvc.yaml").write_text("stages: {}\n")
    write_plate_csv(root / "plates", random_plates(30))
    monkeypatch.chdir(root)
    split.run(tiny_params(root, data={"source": str(root / "plates")}))
    storage = uri.rsplit("/", 1)[0] + f"/{STUDY_DATABASE}"  # as a team writes it in params.yaml
    share, workers = 2, 2
    script = TUNE_WORKER.format(
        tests=str(Path(__file__).parent), root=str(root), share=share,
        train={"backbone": "plain_cnn", "pretrained": False, "strategy": "full", "epochs": 1, "batch_size": 16,
               "head_units": 16, "early_stopping_patience": 0},
        tune={"study_name": "team", "storage": storage, "n_trials": share * workers, "epochs": 1,
              "finetune_epochs": 0, "startup_trials": 2, "pruner": "none", "output": "tune/team.yaml",
              "search": {"augment_strength": [0.0, 1.0], "learning_rate": [1e-4, 1e-2], "unfreeze_depth": None}})
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "MLFLOW_DISABLE_TELEMETRY": "true"}
    started = [subprocess.Popen([sys.executable, "-c", script], cwd=root, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for _ in range(workers)]
    outputs = [w.communicate(timeout=400)[0] for w in started]
    assert all(w.returncode == 0 for w in started), "\n".join(outputs)

    study = optuna.load_study(study_name="team", storage=team_store.database_uri(storage))
    assert sorted(t.number for t in study.trials) == list(range(share * workers))  # none lost
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)  # none left RUNNING
    pids = [t.user_attrs["worker_pid"] for t in study.trials]
    assert sorted(pids.count(p) for p in set(pids)) == [share] * workers  # each worker ran its share

    client = mlflow.MlflowClient(tracking_uri=url)
    experiment = client.get_experiment_by_name("transferlab")
    runs = client.search_runs([experiment.experiment_id], f"tags.optuna_study_uid = '{study.user_attrs['study_uid']}'")
    parents = [r for r in runs if r.data.tags.get("tune_role") == "study"]
    children = {int(r.data.tags["optuna_trial"]): r for r in runs if r.data.tags.get("tune_role") == "trial"}
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(children) == sorted(t.number for t in study.trials)
    for trial in study.trials:
        child = children[trial.number]
        assert child.info.run_id == trial.user_attrs["mlflow_run_id"]
        assert child.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert child.data.tags["optuna_state"] == trial.state.name
        assert child.info.status == ("FINISHED" if trial.state == TrialState.COMPLETE else "KILLED")
    shown = {r["info"]["run_id"] for r in runs_seen_by_the_ui(url, experiment.experiment_id)}
    assert {r.info.run_id for r in runs} <= shown
    assert not (root / "mlruns" / tracking.DB_FILENAME).exists()  # nothing recorded locally (a lock file at most)


def queue_status(root: Path) -> str:
    return run(root, "dvc", "queue", "status").output


@pytest.mark.slow
def test_two_queued_dvc_experiments_record_on_the_team_server(member, tmp_path):
    """`dvc exp run --queue` twice, `dvc queue start`: both pipelines' runs are FINISHED on the
    team server with their seeds, none lost, and the UI's API lists them."""
    url = member
    project = build_project(tmp_path / "project")
    root = project.root
    edit_params(root, "mlflow", experiment="queued")  # this test's runs only
    run(root, "git", "commit", "-q", "-am", "record queued runs in their own experiment")
    for seed in (1, 2):
        run(root, "dvc", "exp", "run", "--queue", "-S", f"train.seed={seed}")
    try:
        # Its workers inherit stdout/stderr: a pipe would keep the call waiting until they exit.
        with open(tmp_path / "queue.log", "w") as log:
            started = subprocess.run(["dvc", "queue", "start", "-j", "1"], cwd=root, env=command_env(root.parent),
                                     stdout=log, stderr=subprocess.STDOUT, timeout=120)
        assert started.returncode == 0, (tmp_path / "queue.log").read_text()
        deadline = time.monotonic() + 500
        while any(word in (status := queue_status(root)) for word in ("Queued", "Running")):
            assert time.monotonic() < deadline, f"the queue did not finish:\n{status}"
            time.sleep(3)
    finally:
        run(root, "dvc", "queue", "stop", "--kill", check=False)
    assert status.count("Success") == 2, status

    client = mlflow.MlflowClient(tracking_uri=url)
    experiment = client.get_experiment_by_name("queued")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.params["train.seed"] for r in runs) == ["1", "2"], [r.data.params for r in runs]
    assert all(r.info.status == "FINISHED" for r in runs)
    assert len({r.data.tags.get("dvc_exp_name") for r in runs}) == 2  # one run per experiment
    assert {r["info"]["run_id"] for r in runs_seen_by_the_ui(url, experiment.experiment_id)} == \
        {r.info.run_id for r in runs}
    assert not (root / "mlruns").exists()  # nothing recorded locally


def test_a_wrong_team_uri_and_a_wrong_backend_are_clear_errors(monkeypatch):
    monkeypatch.setenv(team_store.TEAM_URI_ENV, "mlflow-host:5000")
    with pytest.raises(TransferlabError, match=f"{team_store.TEAM_URI_ENV}='mlflow-host:5000': expected"):
        tracking.configure()
    with pytest.raises(TransferlabError, match="--backend-store-uri 'mysql://x': expected postgresql"):
        team_store.server_command("mysql://x", "/tmp/a")
    assert team_store.server_command("postgresql://u@h/db", "/srv/a")[:4] == [sys.executable, "-m", "mlflow", "server"]
    # tune.storage: postgresql:// means the psycopg2 driver the team extra installs (not psycopg 3)
    from transferlab.config import TuneConfig
    from transferlab.tune import storage_url

    assert storage_url(TuneConfig(storage="postgresql://u@h/db"), Path("/p")) == "postgresql+psycopg2://u@h/db"
    assert storage_url(TuneConfig(storage="sqlite:///tune/x.db"), Path("/p")) == "sqlite:////p/tune/x.db"
