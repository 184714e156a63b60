"""Backend-neutral: the logged requirements follow the backend, and the tiny pipeline runs on JAX."""

from __future__ import annotations

import importlib.util
import json
import sys

import keras
import pytest

from transferlab.training import backend

from transferlab.inference import predict


def test_requirements_name_keras_and_the_installed_backend_distribution():
    found = backend.requirements()
    assert found[0] == f"keras=={keras.__version__}"
    distributions = [r.split("==")[0] for r in found[1:]]
    if keras.backend.backend() == "tensorflow":
        assert len(distributions) == 1 and distributions[0].startswith("tensorflow")
    else:
        assert distributions[0] == "jax"
    assert set(found) <= set(predict.pip_requirements())  # the pyfunc names the same backend


def test_a_missing_distribution_is_left_out_not_invented():
    assert backend.installed(("no-such-distribution-xyz",)) is None
    assert backend.installed(("no-such-distribution-xyz", "numpy")).startswith("numpy==")


@pytest.mark.slow
@pytest.mark.jax
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="JAX is not installed (make setup JAX=1)")
def test_the_tiny_pipeline_and_predict_run_on_the_jax_backend(tmp_path, monkeypatch):
    from pipeline_project import build_project, mlflow_runs, run

    monkeypatch.setenv("KERAS_BACKEND", "jax")
    project = build_project(tmp_path / "project")
    root = project.root
    repro = run(root, "dvc", "repro")
    assert "Running stage 'evaluate'" in repro.output, repro.tail()
    evaluation = json.loads((root / "metrics/evaluate.json").read_text())
    assert 0.0 <= evaluation["test_plate_accuracy"] <= 1.0
    (record,) = [r for r in mlflow_runs(root) if r.tags.get("stage") == "train"]
    assert record.tags["keras_backend"] == "jax"
    logged = [p.read_text() for p in (root / "mlruns").rglob("requirements.txt")]
    assert logged and all("jax==" in r and "tensorflow" not in r for r in logged), logged
    images = sorted((root / "data/prepared").rglob("*.png"))[:2] or sorted((root / "data/synthetic").rglob("*.png"))[:2]
    read = run(root, sys.executable, "-m", "transferlab.cli", "predict", "models/model.keras", *map(str, images))
    assert read.output.count("\n") >= len(images), read.tail()
