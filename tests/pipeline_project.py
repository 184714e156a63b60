"""A throw-away copy of this project that runs the real pipeline (DVC + MLflow) on a tiny configuration.

Shared by tests/test_pipeline.py and tests/test_ui.py. The pipeline is run once per test
session: :func:`pipeline_project` is imported into both test modules, and pytest keeps one
cache per module that imports a fixture, so the work itself is memoised here.

What the session fixture does, in order, recording each step for the tests to check:

1. copy ``dvc.yaml``, ``stages/`` and ``src/`` into a new folder, write a tiny ``params.yaml``
   (the real one with :data:`TINY` laid over it), ``git init``, ``dvc init``, commit;
2. ``dvc repro`` (every stage runs; one MLflow run); commit its results like a user would;
3. ``dvc repro`` again (nothing to do);
4. ``dvc exp run -S train.seed=1`` (a second variant: train and evaluate run again);
5. ``dvc exp show --csv``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from configobj import ConfigObj  # DVC's own config format (a DVC dependency)

REPO = Path(__file__).resolve().parents[1]
# The stage commands are `python stages/x.py`: the venv's interpreter must come first on PATH.
VENV_BIN = Path(sys.executable).parent
STAGES = ("look", "test-source", "generate", "split", "augment", "pretrain", "train", "evaluate")
# Runs on every repro (it stamps data.test_source, which DVC cannot depend on while it may be null).
ALWAYS_RUN = ("test-source",)
COMMAND_TIMEOUT_S = 600

# Laid over the real params.yaml, so the tiny project stays valid as the schema grows.
TINY: dict[str, Any] = {
    "generate": {"count": 40, "height": 32, "width": 96},
    "data": {"image_height": 32, "image_width": 96},
    "augment": {"copies": 1, "preview_images": 2, "preview_strengths": [0.0, 1.0]},
    "train": {"backbone": "plain_cnn", "pretrained": False, "strategy": "scratch", "epochs": 1,
              "finetune_epochs": 0, "batch_size": 16, "head_units": 16, "early_stopping_patience": 0,
              "seed": 0},
    "evaluate": {"latency_calls": 2, "worst_mistakes": 4, "example_images": 1},
}


def deep_merge(base: dict, overrides: dict) -> dict:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def tiny_params() -> dict:
    """The project's params.yaml with :data:`TINY` laid over it, checked against the schema."""
    from transferlab.config import parse_params

    raw = deep_merge(yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8")), TINY)
    parse_params(raw, "tiny params.yaml")  # a schema change that breaks TINY fails here, by name
    return raw


def edit_params(root: Path, section: str, **values: Any) -> None:
    """Set keys of one params.yaml section in ``root`` (as a user edits the file)."""
    path = root / "params.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw[section].update(values)
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")


@dataclass
class Step:
    """One command run in the project: its argv, exit code and combined stdout/stderr."""

    argv: list[str]
    returncode: int
    output: str
    seconds: float

    def tail(self, chars: int = 6000) -> str:
        return self.output[-chars:]

    def ran(self, stage: str) -> bool:
        return f"Running stage '{stage}'" in self.output

    def skipped(self, stage: str) -> bool:
        return f"Stage '{stage}' didn't change, skipping" in self.output or \
            f"Stage '{stage}' is cached - skipping run" in self.output


def command_env(home: Path) -> dict[str, str]:
    """The environment of every command: venv first on PATH, no outer DVC/git/MLflow state."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DVC_", "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE")) and k != "MLFLOW_TRACKING_URI"}
    env["PATH"] = os.pathsep.join([str(VENV_BIN), env.get("PATH", "")])
    env.update({
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(home / "dvc-site-cache"),  # not /var/tmp/dvc
        "PYTHONUNBUFFERED": "1",
    })
    for var, value in (("GIT_AUTHOR_NAME", "transferlab tests"), ("GIT_AUTHOR_EMAIL", "tests@transferlab.invalid"),
                       ("GIT_COMMITTER_NAME", "transferlab tests"), ("GIT_COMMITTER_EMAIL", "tests@transferlab.invalid")):
        env.setdefault(var, value)
    return env


def run(root: Path, *argv: str, check: bool = True, stdout_only: bool = False) -> Step:
    """Run one command in ``root``; with ``check``, fail with its output when it exits non-zero.

    ``Step.output`` is stdout and stderr together, or only stdout with ``stdout_only``.
    """
    started = time.monotonic()
    done = subprocess.run(list(argv), cwd=root, env=command_env(root.parent), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE if stdout_only else subprocess.STDOUT,
                          text=True, timeout=COMMAND_TIMEOUT_S)
    step = Step(list(argv), done.returncode, done.stdout, time.monotonic() - started)
    if check and done.returncode != 0 and stdout_only:
        step.output += done.stderr
    if check and done.returncode != 0:
        raise AssertionError(f"`{' '.join(argv)}` in {root} exited with {done.returncode}:\n{step.tail()}")
    return step


@dataclass
class RunRecord:
    """One MLflow run as the store holds it."""

    run_id: str
    name: str
    experiment_id: str
    status: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]


def mlflow_runs(root: Path) -> list[RunRecord]:
    """Every run (any status, any experiment) in ``<root>/mlruns/mlflow.db``, oldest first."""
    import mlflow
    from mlflow.entities import ViewType

    from transferlab import tracking

    assert (root / "mlruns" / tracking.DB_FILENAME).is_file(), f"no MLflow database in {root / 'mlruns'}"
    client = mlflow.MlflowClient(tracking_uri=tracking.tracking_uri(root))
    ids = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    runs = client.search_runs(ids, run_view_type=ViewType.ALL, order_by=["attributes.start_time ASC"])
    return [RunRecord(r.info.run_id, r.info.run_name, r.info.experiment_id, r.info.status, dict(r.data.params),
                      dict(r.data.metrics), dict(r.data.tags)) for r in runs]


@dataclass
class PipelineProject:
    """The tiny project after the steps in this module's docstring, and what each step did."""

    root: Path
    setup_seconds: float = 0.0
    first_repro: Step | None = None
    first_evaluate_json: dict = field(default_factory=dict)
    first_train_json: dict = field(default_factory=dict)
    first_run_json: dict = field(default_factory=dict)
    runs_after_first: list[RunRecord] = field(default_factory=list)
    noop_repro: Step | None = None
    runs_after_noop: list[RunRecord] = field(default_factory=list)
    exp_run: Step | None = None
    exp_name: str | None = None
    exp_show: Step | None = None
    exp_rows: list[dict[str, str]] = field(default_factory=list)
    runs_after_exp: list[RunRecord] = field(default_factory=list)

    def copy_to(self, destination: Path) -> Path:
        """A full copy (git, DVC cache, MLflow store, outputs) to change without touching this one."""
        shutil.copytree(self.root, destination, symlinks=True)
        return destination


def build_project(root: Path) -> PipelineProject:
    started = time.monotonic()
    root.mkdir(parents=True)
    shutil.copy2(REPO / "dvc.yaml", root / "dvc.yaml")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    # The stages' deps name src/transferlab/... files; the commands import the installed package.
    for folder in ("stages", "src"):
        shutil.copytree(REPO / folder, root / folder, ignore=ignore)
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False), encoding="utf-8")
    run(root, "git", "init", "-q")
    run(root, "dvc", "init", "-q")
    run(root, "dvc", "config", "core.analytics", "false")
    run(root, "dvc", "config", "core.check_update", "false")
    # the project's cache links (hardlinks here): outputs are read-only links, stages must replace them
    run(root, "dvc", "config", "cache.type", ",".join(ConfigObj(str(REPO / ".dvc/config"))["cache"]["type"]))
    run(root, "git", "add", "-A")
    run(root, "git", "commit", "-q", "-m", "tiny transferlab project")
    return PipelineProject(root=root, setup_seconds=time.monotonic() - started)


def run_pipeline(project: PipelineProject) -> PipelineProject:
    root = project.root
    project.first_repro = run(root, "dvc", "repro")
    project.first_evaluate_json = json.loads((root / "metrics/evaluate.json").read_text())
    project.first_train_json = json.loads((root / "metrics/train.json").read_text())
    project.first_run_json = json.loads((root / "models/run.json").read_text())
    project.runs_after_first = mlflow_runs(root)
    run(root, "git", "add", "-A")
    run(root, "git", "commit", "-q", "-m", "baseline results")

    project.noop_repro = run(root, "dvc", "repro")
    project.runs_after_noop = mlflow_runs(root)

    project.exp_run = run(root, "dvc", "exp", "run", "-S", "train.seed=1")
    found = re.search(r"Ran experiment\(s\): (\S+)", project.exp_run.output)
    project.exp_name = found.group(1) if found else None
    project.exp_show = run(root, "dvc", "exp", "show", "--csv", stdout_only=True)
    project.exp_rows = list(csv.DictReader(io.StringIO(project.exp_show.output)))
    project.runs_after_exp = mlflow_runs(root)
    return project


_built: dict[str, Any] = {}


@pytest.fixture(scope="session")
def pipeline_project(tmp_path_factory) -> PipelineProject:
    """The tiny project after the whole sequence (built once per session, however many modules use it)."""
    if "error" in _built:
        pytest.fail(f"building the pipeline project failed earlier in this session:\n{_built['error']}")
    if "project" not in _built:
        try:
            project = build_project(tmp_path_factory.mktemp("pipeline") / "project")
            _built["project"] = run_pipeline(project)
        except BaseException as exc:
            _built["error"] = f"{type(exc).__name__}: {exc}"
            raise
    return _built["project"]
