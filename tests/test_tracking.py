"""MLflow tracking: the store's location (also from DVC's queued-experiment copies) and run states."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from helpers import run_status
from pydantic import BaseModel

from transferlab import tracking

from transferlab.tracking import servers as mlflow_servers

from transferlab.tracking import hygiene as run_hygiene

DVC_ENV = ("DVC_ROOT", "DVC_EXP_NAME", "DVC_EXP_BASELINE_REV", "DVC_STAGE", "MLFLOW_TRACKING_URI")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """No DVC variables from an outer run; MLflow's global tracking URI reset afterwards."""
    for name in DVC_ENV:
        monkeypatch.delenv(name, raising=False)
    yield
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
    os.environ.pop("MLFLOW_TRACKING_URI", None)


@pytest.fixture
def fresh_repo(tmp_path, monkeypatch) -> Path:
    """A minimal DVC repository (a `.dvc` folder is all project_root needs); cwd is a sub-folder."""
    root = tmp_path / "repo"
    (root / ".dvc").mkdir(parents=True)
    (root / "src").mkdir()
    monkeypatch.chdir(root / "src")
    return root.resolve()


@pytest.fixture(scope="session")
def empty_db(tmp_path_factory) -> Path:
    """An initialised, empty MLflow database: creating the tables takes seconds, copying it none."""
    root = tmp_path_factory.mktemp("template")
    tracking.configure(root)
    mlflow.set_tracking_uri(None)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    return tracking.store_dir(root) / tracking.DB_FILENAME


@pytest.fixture
def repo(fresh_repo, empty_db) -> Path:
    """``fresh_repo`` whose store already holds an empty database."""
    (fresh_repo / "mlruns").mkdir()
    shutil.copy(empty_db, fresh_repo / "mlruns" / tracking.DB_FILENAME)
    return fresh_repo


def client(root: Path) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=tracking.tracking_uri(root))


# --------------------------------------------------------------------------- locations


def test_project_root_sees_through_dvc_experiment_copies(tmp_path):
    root = tmp_path / "repo"
    copy = root / ".dvc" / "tmp" / "exps" / "tmpab12cd" / "stages"
    (copy.parent / ".dvc").mkdir(parents=True)  # the copy is a full repository itself
    copy.mkdir()
    assert tracking.project_root(copy) == root.resolve()
    assert tracking.project_root(copy.parent) == root.resolve()


def test_project_root_walks_up_to_the_repository(tmp_path):
    root = tmp_path / "repo"
    (root / ".dvc").mkdir(parents=True)
    (root / "sub" / "dvc.yaml").parent.mkdir()
    (root / "sub" / "dvc.yaml").write_text("stages: {}\n")  # a sub-pipeline is not the root
    (root / "sub" / "deeper").mkdir()
    assert tracking.project_root(root / "sub" / "deeper") == root.resolve()
    assert tracking.project_root(root) == root.resolve()

    plain = tmp_path / "plain" / "a"
    plain.mkdir(parents=True)
    (tmp_path / "plain" / "dvc.yaml").write_text("stages: {}\n")
    assert tracking.project_root(plain) == (tmp_path / "plain").resolve()


def test_project_root_trusts_dvc_root_only_around_the_cwd(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    (root / "work").mkdir(parents=True)
    (root / "work" / ".dvc").mkdir()  # a nearer marker: DVC_ROOT wins
    monkeypatch.setenv("DVC_ROOT", str(root))
    assert tracking.project_root(root / "work") == root.resolve()
    other = tmp_path / "other"
    (other / ".dvc").mkdir(parents=True)
    assert tracking.project_root(other) == other.resolve()  # a stale DVC_ROOT is ignored


def test_store_paths(repo):
    assert tracking.project_root() == repo
    assert tracking.store_dir() == repo / "mlruns"
    assert tracking.tracking_uri() == f"sqlite:///{repo.as_posix()}/mlruns/mlflow.db"
    assert tracking.tracking_uri().startswith("sqlite:////")
    assert tracking.configure() == tracking.tracking_uri()
    assert tracking.configure() == mlflow.get_tracking_uri()  # idempotent
    assert (repo / "mlruns" / "mlflow.db").is_file()
    assert (repo / "mlruns" / ".gitignore").read_text().splitlines()[1] == "*"


def test_ensure_experiment_keeps_artifacts_in_the_store(repo, monkeypatch):
    exp_id = tracking.ensure_experiment("plates/transfer")
    experiment = client(repo).get_experiment(exp_id)
    assert experiment.artifact_location == (repo / "mlruns" / "artifacts" / "plates_transfer").as_uri()
    monkeypatch.chdir(repo)
    assert tracking.ensure_experiment("plates/transfer") == exp_id
    client(repo).delete_experiment(exp_id)
    assert tracking.ensure_experiment("plates/transfer") == exp_id
    assert client(repo).get_experiment(exp_id).lifecycle_stage == "active"


# --------------------------------------------------------------------------- params and tags


class Section(BaseModel):
    lr: float = 0.001
    sizes: list[int] = [1, 2]


def test_flatten_params():
    nested = {"train": {"lr": 1, "schedule": {"warmup": 2}}, "task": "plates", "strengths": [0.0, 0.5],
              "empty": {}, "none": None, "flag": True, "model": Section()}
    assert tracking.flatten_params(nested) == {
        "train.lr": "1", "train.schedule.warmup": "2", "task": "plates", "strengths": "[0.0, 0.5]",
        "empty": "{}", "none": "None", "flag": "True", "model.lr": "0.001", "model.sizes": "[1, 2]",
    }
    assert tracking.flatten_params({"lr": 1}, prefix="train") == {"train.lr": "1"}
    long = tracking.flatten_params({"files": ["x" * 100] * 100})["files"]
    assert len(long) == tracking.MAX_PARAM_VALUE_LENGTH and long.endswith("...")
    assert tracking.flatten_params({"a@b": 1}) == {"a_b": "1"}


def test_run_tags(repo, monkeypatch):
    tags = tracking.run_tags("sha256:abc")
    assert tags["git_commit"] == "unknown"  # not a git repository
    assert tags["dataset_fingerprint"] == "sha256:abc"
    assert "dvc_exp_name" not in tags
    monkeypatch.setenv("DVC_EXP_NAME", "lucky-lynx")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "f" * 40)
    tags = tracking.run_tags()
    assert tags["dvc_exp_name"] == "lucky-lynx"
    assert tags["git_commit"] == tags["mlflow.source.git.commit"] == "f" * 40
    assert "dataset_fingerprint" not in tags


# --------------------------------------------------------------------------- runs


def only_run(root: Path, experiment: str = "exp"):
    store = client(root)
    runs = store.search_runs([store.get_experiment_by_name(experiment).experiment_id])
    assert len(runs) == 1
    return runs[0]


def test_run_finishes_with_params_and_tags(repo):
    with tracking.tracked_run("exp", "first", {"train": {"lr": 0.01, "layers": [3, 4]}}, {"kind": "test"}) as run:
        mlflow.log_metric("loss", 0.5)
        assert run_status(run.info.run_id) == "RUNNING"
    stored = only_run(repo)
    assert stored.info.status == "FINISHED"
    assert stored.info.run_name == "first"
    assert stored.data.params == {"train.lr": "0.01", "train.layers": "[3, 4]"}
    assert stored.data.tags["kind"] == "test"
    assert stored.info.artifact_uri.startswith((repo / "mlruns" / "artifacts" / "exp").as_uri())
    assert mlflow.active_run() is None


def test_run_that_raises_ends_failed(repo):
    with pytest.raises(ValueError, match="boom"):
        with tracking.tracked_run("exp", None, {}, {}):
            raise ValueError("boom")
    assert only_run(repo).info.status == "FAILED"
    assert mlflow.active_run() is None


def test_interrupted_run_ends_killed(repo):
    with pytest.raises(KeyboardInterrupt):
        with tracking.tracked_run("exp", None, {}, {}):
            raise KeyboardInterrupt
    assert only_run(repo).info.status == "KILLED"


def test_sigterm_ends_killed_and_the_handler_is_restored(repo):
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with tracking.tracked_run("exp", None, {}, {}):
            assert signal.getsignal(signal.SIGTERM) is not before
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler interrupts this
    assert only_run(repo).info.status == "KILLED"
    assert signal.getsignal(signal.SIGTERM) is before


def test_resumed_run_logs_into_the_same_run(repo):
    with tracking.tracked_run("exp", "train", {"lr": 1}, {"stage": "train"}) as run:
        mlflow.log_metric("val_loss", 0.3)
    with tracking.tracked_run("exp", None, {"ignored": 1}, {"evaluated": "yes"}, run_id=run.info.run_id) as again:
        assert again.info.run_id == run.info.run_id
        mlflow.log_metric("test_accuracy", 0.9)
    stored = only_run(repo)
    assert stored.info.status == "FINISHED"
    assert stored.data.metrics == {"val_loss": 0.3, "test_accuracy": 0.9}
    assert stored.data.params == {"lr": "1"}
    assert stored.data.tags["stage"] == "train" and stored.data.tags["evaluated"] == "yes"


def test_nested_run(repo):
    with tracking.tracked_run("exp", "parent", {}, {}) as parent:
        with tracking.tracked_run("exp", "trial", {"trial": 0}, {}, nested=True) as child:
            pass
    store = client(repo)
    assert store.get_run(child.info.run_id).data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert {store.get_run(r.info.run_id).info.status for r in (parent, child)} == {"FINISHED"}


_OWNER = """
import sys, time
from transferlab import tracking
with tracking.tracked_run("exp", "owner", {}, {}) as run:
    print(run.info.run_id, flush=True)
    time.sleep(600)
"""


def test_a_run_of_a_killed_process_is_closed_by_the_next_start(repo, monkeypatch):
    """kill -9 runs no cleanup: the next run start marks the dead owner's run KILLED, with a reason."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    owner = subprocess.Popen([sys.executable, "-c", _OWNER], cwd=repo / "src", env=env, stdout=subprocess.PIPE,
                             text=True)
    try:
        run_id = owner.stdout.readline().strip()
        assert run_id, "the owner process did not start its run"
        tags = client(repo).get_run(run_id).data.tags
        assert tags[run_hygiene.TAG_PID] == str(owner.pid)
        monkeypatch.setattr(tracking, "_cleaned", set())
        with tracking.tracked_run("exp", "live neighbour", {}, {}):
            pass
        assert run_status(run_id) == "RUNNING"  # its owner is alive: left alone
    finally:
        owner.kill()  # SIGKILL: no handler, no finally, no end_run
        owner.wait()
    assert run_status(run_id) == "RUNNING"

    monkeypatch.setattr(tracking, "_cleaned", set())
    with tracking.tracked_run("exp", "next stage", {}, {}):
        pass
    runs = client(repo).search_runs([r.info.experiment_id for r in [client(repo).get_run(run_id)]])
    assert [r.info.run_name for r in runs if r.info.status == "RUNNING"] == []
    closed = client(repo).get_run(run_id)
    assert closed.info.status == "KILLED"
    assert f"process {owner.pid}" in closed.data.tags[run_hygiene.TAG_KILLED]


def test_ui_start_closes_dead_runs_and_names_the_runs_table(repo, monkeypatch, capsys):
    with tracking.tracked_run("exp", "dead", {}, {}) as run:
        pass
    store = client(repo)
    store.update_run(run.info.run_id, status="RUNNING")
    store.set_tag(run.info.run_id, run_hygiene.TAG_PID, "999999999")  # no such process
    monkeypatch.setattr(tracking, "_cleaned", set())
    monkeypatch.setattr(mlflow_servers, "_port_free", lambda host, port: False)  # stop before serving
    with pytest.raises(mlflow_servers.TransferlabError, match="already in use"):
        mlflow_servers.serve_ui(port=5999)
    assert run_status(run.info.run_id) == "KILLED"
    experiment = store.get_run(run.info.run_id).info.experiment_id
    assert (f"runs of experiment 'exp': http://127.0.0.1:5999/#/experiments/{experiment}/runs?"
            "workflowType=machine_learning") in capsys.readouterr().err


def test_each_stage_logs_the_sections_dvc_gives_it():
    """STAGE_SECTIONS holds at least every params entry of the stage in dvc.yaml (what it reads)."""
    import yaml

    from transferlab.config import Params
    from transferlab.tracking.stage_params import STAGE_SECTIONS, stage_params

    stages = yaml.safe_load((Path(__file__).resolve().parents[1] / "dvc.yaml").read_text())["stages"]
    for stage, sections in STAGE_SECTIONS.items():
        declared = {entry if isinstance(entry, str) else next(iter(entry)) for entry in stages[stage]["params"]}
        covered = {d for d in declared if d in sections or d.split(".")[0] in sections}
        assert covered == declared, (stage, declared - covered)
    picked = stage_params(Params(), "evaluate")
    assert picked["augment"] == {"strength": Params().augment.strength, "copies": Params().augment.copies}
    assert "tune" not in picked and "study" not in picked and set(picked["data"]) == {"source"}  # not the whole section


def test_experiments_are_of_the_model_development_kind(repo):
    store = client(repo)
    made = tracking.ensure_experiment("new")
    assert store.get_experiment(made).tags["mlflow.experimentKind"] == "custom_model_development"
    older = store.create_experiment("older")  # as made before the tag existed
    assert tracking.ensure_experiment("older") == older
    assert store.get_experiment(older).tags["mlflow.experimentKind"] == "custom_model_development"


def test_ui_command_serves_this_store(repo):
    argv = mlflow_servers.ui_command(port=5123)
    assert argv[:4] == [sys.executable, "-m", "mlflow", "ui"]
    assert argv[argv.index("--backend-store-uri") + 1] == tracking.tracking_uri(repo)
    assert argv[argv.index("--default-artifact-root") + 1] == (repo / "mlruns" / "artifacts").as_uri()
    assert argv[argv.index("--port") + 1] == "5123"


# --------------------------------------------------------------------------- real DVC runs

STAGE_SCRIPT = """\
import time

import yaml
import mlflow
from transferlab import tracking

x = yaml.safe_load(open("params.yaml"))["x"]
with tracking.tracked_run("dvc-test", f"x={x}", {"x": x}, tracking.run_tags()):
    for step in range(10):  # a few writes over a second: parallel queued runs contend for the db
        mlflow.log_metric("y", 2 * x, step=step)
        time.sleep(0.1)
"""

DVC_YAML = """\
stages:
  log:
    cmd: python log_run.py
    deps: [log_run.py]
    params: [x]
"""


def sh(root: Path, env: dict, *argv: str, timeout: float = 120) -> str:
    done = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_queued_and_workspace_dvc_experiments_share_one_store(tmp_path):
    root = (tmp_path / "proj").resolve()
    root.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in DVC_ENV and not k.startswith("GIT_")}
    env.update(PATH=os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""),
               MLFLOW_DISABLE_TELEMETRY="true", DVC_NO_ANALYTICS="true",
               GIT_AUTHOR_NAME="test", GIT_AUTHOR_EMAIL="test@example.com",
               GIT_COMMITTER_NAME="test", GIT_COMMITTER_EMAIL="test@example.com")
    (root / "log_run.py").write_text(STAGE_SCRIPT)
    (root / "dvc.yaml").write_text(DVC_YAML)
    (root / "params.yaml").write_text("x: 0\n")
    sh(root, env, "git", "init", "-q")
    sh(root, env, "dvc", "init", "-q")
    sh(root, env, "dvc", "config", "core.check_update", "false")
    sh(root, env, "git", "add", "-A")
    sh(root, env, "git", "commit", "-qm", "init")

    for x in (1, 2):
        sh(root, env, "dvc", "exp", "run", "--queue", "-S", f"x={x}")
    try:
        # The workers it starts inherit its stdout/stderr: a pipe would keep the call waiting
        # until they exit, so they write to a file instead.
        with open(tmp_path / "queue.log", "w") as log:
            started = subprocess.run(["dvc", "queue", "start", "-j", "2"], cwd=root, env=env, stdout=log,
                                     stderr=subprocess.STDOUT, timeout=120)
        assert started.returncode == 0, (tmp_path / "queue.log").read_text()
        deadline = time.monotonic() + 150
        while True:
            status = sh(root, env, "dvc", "queue", "status")
            tasks = [line for line in status.splitlines()[1:] if line.strip() and not line.startswith("Worker")]
            if len(tasks) == 2 and not any(s in status for s in ("Queued", "Running")):
                break
            assert time.monotonic() < deadline, f"queue did not finish:\n{status}"
            time.sleep(2)  # each `dvc queue status` costs ~1 s of CPU: poll gently
        assert "Failed" not in status, status
    finally:
        subprocess.run(["dvc", "queue", "stop", "--kill"], cwd=root, env=env, capture_output=True, timeout=60)

    sh(root, env, "dvc", "exp", "run", "-S", "x=3")  # in the workspace
    sh(root, env, "dvc", "repro", "--force")  # plain repro: x=3 again, not an experiment

    store = mlflow.MlflowClient(tracking_uri=f"sqlite:///{root.as_posix()}/mlruns/mlflow.db")
    default = store.get_experiment("0")  # created with the database, by whichever run came first
    assert default.artifact_location == (root / "mlruns" / "artifacts" / "0").as_uri()
    experiment = store.get_experiment_by_name("dvc-test")
    assert experiment.artifact_location == (root / "mlruns" / "artifacts" / "dvc-test").as_uri()
    runs = store.search_runs([experiment.experiment_id])
    assert sorted(r.data.params["x"] for r in runs) == ["1", "2", "3", "3"]
    assert {r.info.status for r in runs} == {"FINISHED"}
    assert sorted(r.data.metrics["y"] for r in runs) == [2.0, 4.0, 6.0, 6.0]
    assert sum(1 for r in runs if r.data.tags.get("dvc_exp_name")) == 3  # repro is no experiment
    assert {r.data.tags["dvc_stage"] for r in runs} == {"log"}
    baseline = sh(root, env, "git", "rev-parse", "HEAD").strip()
    assert {r.data.tags["git_commit"] for r in runs} == {baseline}
    assert not list((root / ".dvc" / "tmp").rglob("mlflow.db"))  # nothing written into copies
    assert "mlruns" not in sh(root, env, "git", "status", "--porcelain")  # ignored by its .gitignore


def test_a_fresh_store_is_created_without_mlflow_notices(tmp_path):
    """Every stage process on a fresh store printed MLflow's "Creating initial MLflow database
    tables" INFO lines, nothing a user can act on. In a fresh process: MLflow's migrations
    reconfigure logging, so only the printed output tells."""
    import subprocess
    import sys

    code = "import sys; from transferlab import tracking; tracking.configure(sys.argv[1])"
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "mlruns").is_dir()
    assert "MLflow database tables" not in done.stderr + done.stdout


def test_logging_a_dataset_warns_nothing(tmp_path):
    """MLflow warned on every local dataset path that two source classes match it (both its own)."""
    import warnings

    import mlflow
    import numpy as np

    from transferlab.tracking.records import log_dataset

    experiment = tracking.ensure_experiment("datasets", tmp_path)
    with mlflow.start_run(experiment_id=experiment), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        log_dataset(np.zeros((2, 4, 4, 3), np.uint8), np.zeros(2), "abc123", tmp_path / "data", "train", "training")
    assert not [str(w.message) for w in caught if "mlflow" in w.filename or "dataset" in str(w.message)]
