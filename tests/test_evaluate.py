import json
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from helpers import random_plates, tiny_params, write_class_folders, write_plate_csv
from transferlab import evaluate, split, tracking, train
from transferlab.training.backbones import build_backbone
from transferlab.errors import TransferlabError
from transferlab.io import read_json, write_json
from transferlab.training.models import build_model
from transferlab.tasks import task_for

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    """A throw-away repository (a .dvc marker), so the MLflow store is <repository>/mlruns.

    Shared by the tests of this module: creating a new MLflow database takes seconds.
    """
    root = tmp_path_factory.mktemp("repository")
    (root / ".dvc").mkdir()
    return root


@pytest.fixture(autouse=True)
def project(repository, request, monkeypatch):
    """Each test works in its own folder inside the repository (its own data, models, metrics)."""
    folder = repository / request.node.name
    folder.mkdir()
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(folder)
    yield folder
    mlflow.end_run()


def fake_training(params, classes, slots):
    """What the train stage leaves behind, without training: model, run.json, train metrics."""
    backbone = build_backbone("plain_cnn", (32, 96, 3), False)
    model = build_model(backbone, params.task, slots, len(classes), 8, 0.0)
    out = Path(params.train.output)
    out.mkdir(parents=True)
    model.save(out / "model.keras")
    with tracking.tracked_run(params.mlflow.experiment, "train", params={"train": {"backbone": "plain_cnn"}},
                              tags={"stage": "train"}) as run:
        mlflow.log_metric("val_loss", 1.0)
    write_json(out / "run.json", {"run_id": run.info.run_id, "experiment": params.mlflow.experiment,
                                  "tracking_uri": tracking.tracking_uri()})
    name = "plate_accuracy" if params.task == "plates" else "accuracy"
    write_json("metrics/train.json", {f"train_{name}": 0.9, f"val_{name}": 0.6, "epochs": 1})
    return run.info.run_id


def plate_params(root, **sections):
    return tiny_params(root, data={"source": str(root / "plates")},
                       train={"backbone": "plain_cnn", "pretrained": False, "strategy": "scratch",
                              "batch_size": 4, "output": str(root / "models")},
                       mlflow={"experiment": "evaluate-test"}, **sections)


def test_evaluate_plates_writes_metrics_figures_and_logs_into_the_training_run(project, capsys):
    write_plate_csv(project / "plates", random_plates(30))
    params = plate_params(project)
    split.run(params)
    run_id = fake_training(params, list(params.plates.alphabet), params.plates.slots)
    cfg = evaluate.EvaluateConfig(output=str(project / "evaluation"), worst_mistakes=4, latency_calls=3)

    scalars = evaluate.run(params, cfg)

    saved = read_json("metrics/evaluate.json")
    assert saved == pytest.approx(scalars)
    n_test = len(np.load(project / "data/prepared/test_labels.npy"))
    assert 0.0 <= saved["test_plate_accuracy"] <= 1.0 and saved["test_images"] == n_test
    for key in ("test_char_accuracy", "test_top3_char_accuracy", "test_slot_7_accuracy", "test_images_per_s",
                "test_latency_ms_median", "test_aug50_plate_accuracy", "test_aug100_plate_accuracy",
                "test_gap_train_val_plate_accuracy", "test_gap_val_test_plate_accuracy"):
        assert key in saved, key
    assert saved["test_gap_train_val_plate_accuracy"] == pytest.approx(0.3)
    assert saved["test_images_per_s"] > 0 and saved["test_latency_ms_median"] > 0

    figures = project / "evaluation"
    for name in ("confusion_matrix.png", "worst_mistakes.png", "augmented_examples.png", "predictions.csv",
                 "report.md"):
        assert (figures / name).stat().st_size > 0, name
    predictions = pd.read_csv(figures / "predictions.csv", keep_default_na=False, dtype={"actual": str})
    assert len(predictions) == n_test and set(predictions.columns) >= {"image_path", "actual", "predicted"}
    breakdown = pd.read_csv("metrics/evaluate_breakdown.csv")
    assert breakdown["group"].tolist() == [f"slot {i}" for i in range(1, 8)]
    augmented = pd.read_csv("metrics/evaluate_augmented.csv")
    assert augmented["strength"].tolist() == [0.0, 0.5, 1.0]
    assert augmented.loc[0, "accuracy"] == saved["test_plate_accuracy"]
    assert augmented.loc[2, "char_accuracy"] == saved["test_aug100_char_accuracy"]
    assert list(pd.read_csv("metrics/evaluate_confusions.csv").columns) == ["actual", "predicted", "count"]

    run = mlflow.MlflowClient(tracking.tracking_uri()).get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["test_plate_accuracy"] == pytest.approx(saved["test_plate_accuracy"])
    assert "val_loss" in run.data.metrics  # the training run itself, not a new one
    assert run.data.tags["evaluate.worst_mistakes"] == "4"
    assert run.info.run_name == "train"
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run_id, "evaluation")}
    assert "evaluation/confusion_matrix.png" in artifacts and "evaluation/worst_mistakes.png" in artifacts

    # evaluate.export (on by default): an ONNX reader checked against these test predictions, recorded
    assert saved["test_onnx_parity_samples"] == min(64, n_test) and saved["test_onnx_parity_text_mismatches"] == 0
    assert saved["test_onnx_parity_max_abs_diff"] < 1e-4 and saved["test_onnx_latency_ms_median"] > 0
    assert run.data.metrics["test_onnx_images_per_s"] == pytest.approx(saved["test_onnx_images_per_s"])
    reader = {a.path for a in mlflow.MlflowClient().list_artifacts(run_id, "evaluation/reader")}
    assert "evaluation/reader/model.labels.json" in reader
    assert "evaluation/reader/model.onnx" not in reader  # its one copy is the reader_onnx model's
    from transferlab.inference.runtime import FastReader

    fast = FastReader.load(figures / "reader/model.onnx").predict_arrays(np.load("data/prepared/test_images.npy"))
    predicted = pd.read_csv(figures / "predictions.csv", dtype=str, keep_default_na=False)["predicted"]
    assert fast["plate_text"].tolist() == predicted.tolist()
    pyfunc = mlflow.pyfunc.load_model(f"runs:/{run_id}/reader_onnx")
    assert pyfunc.predict(np.load("data/prepared/test_images.npy")[:3])["plate_text"].tolist() == predicted[:3].tolist()
    assert pyfunc.metadata.saved_input_example_info is not None  # as the training stage's reader: no MLflow warning

    out = capsys.readouterr().out
    assert "evaluate: test plate_accuracy" in out and "over-fitting" in out
    assert "evaluate: exported reader/model.onnx" in out


def test_a_second_evaluation_gets_its_own_run_and_leaves_the_training_runs_metrics(project, capsys):
    """Only evaluate.* changed: the new test metrics go to a linked run; the baseline's stay as they were."""
    write_plate_csv(project / "plates", random_plates(30))
    params = plate_params(project)
    split.run(params)
    run_id = fake_training(params, list(params.plates.alphabet), params.plates.slots)
    base = evaluate.EvaluateConfig(output=str(project / "evaluation"), latency_calls=1)
    evaluate.run(params, base)
    client = mlflow.MlflowClient(tracking.tracking_uri())
    before = client.get_run(run_id).data.metrics

    changed = base.model_copy(update={"augmented_strengths": [0.25]})
    evaluate.run(params, changed)

    training = client.get_run(run_id)
    assert training.data.metrics == before  # nothing overwritten, nothing added
    assert "test_aug25_plate_accuracy" not in training.data.metrics
    assert len(client.get_metric_history(run_id, "test_plate_accuracy")) == 1
    assert training.data.tags["evaluate.augmented_strengths"] == "[1.0]"  # the baseline's settings
    linked = client.get_run(training.data.tags["latest_evaluation_run_id"])
    assert linked.info.run_id != run_id and linked.info.status == "FINISHED"
    assert linked.data.tags["training_run_id"] == run_id and linked.data.tags["mlflow.parentRunId"] == run_id
    assert linked.data.tags["training_run_reused"] == "true"
    assert "test_aug25_plate_accuracy" in linked.data.metrics
    assert linked.data.params["evaluate.augmented_strengths"] == "[0.25]"
    assert "train.backbone" not in linked.data.params  # only what evaluate reads
    assert "already evaluated" in capsys.readouterr().out


def test_evaluate_classification(project):
    write_class_folders(project / "classes", {"cat": 8, "dog": 8, "owl": 8})
    params = tiny_params(project, task="classification", data={"source": str(project / "classes")},
                         train={"backbone": "plain_cnn", "pretrained": False, "strategy": "scratch",
                                "batch_size": 8, "output": str(project / "models")},
                         augment={"strength": 0.0}, mlflow={"experiment": "evaluate-test"})
    split.run(params)
    run_id = fake_training(params, ["cat", "dog", "owl"], 1)
    cfg = evaluate.EvaluateConfig(output="evaluation", augmented_strengths=[0.25], latency_calls=2, example_images=2,
                                  export=False)
    scalars = evaluate.run(params, cfg)
    assert not (project / "evaluation/reader").exists() and not any(k.startswith("test_onnx") for k in scalars)
    assert {"test_accuracy", "test_macro_f1", "test_recall_owl", "test_aug25_accuracy",
            "test_gap_val_test_accuracy"} <= set(scalars)
    assert "test_aug0_accuracy" not in scalars  # strength 0 (no augmentation) is the clean result
    assert pd.read_csv("metrics/evaluate_breakdown.csv")["group"].tolist() == ["cat", "dog", "owl"]
    assert (project / "evaluation/confusion_matrix.png").is_file()
    metrics = mlflow.MlflowClient(tracking.tracking_uri()).get_run(run_id).data.metrics
    assert metrics["test_macro_f1"] == pytest.approx(scalars["test_macro_f1"])


def rendered_plots(project: Path) -> dict[str, dict]:
    """``dvc plots show --json`` of the project's own dvc.yaml over ``project``'s metrics/: the vega specs."""
    copy = project / "dvc-copy"
    copy.mkdir()
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPO / name, copy / name)
    shutil.copytree(project / "metrics", copy / "metrics")
    dvc = str(Path(sys.executable).parent / "dvc")
    subprocess.run([dvc, "init", "--no-scm", "-q"], cwd=copy, check=True)
    shown = subprocess.run([dvc, "plots", "show", "--json"], cwd=copy, capture_output=True, text=True, check=True)
    rendered = json.loads(shown.stdout)
    assert "errors" not in rendered, rendered
    return {path: items[0]["content"] for path, items in rendered["data"].items()}


def declared_plots() -> set[str]:
    import yaml

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return {next(iter(p)) for stage in stages.values() for p in stage.get("plots", [])}


def axes(spec: dict) -> dict:
    """The x/y encoding of a rendered DVC template (layered or faceted specs nest it)."""
    if isinstance(spec, dict):
        if "x" in spec.get("encoding", {}) and "y" in spec.get("encoding", {}):
            return spec["encoding"]
        for value in spec.values():
            found = axes(value) if isinstance(value, (dict, list)) else None
            if found:
                return found
    if isinstance(spec, list):
        for value in spec:
            found = axes(value)
            if found:
                return found
    return {}


@pytest.mark.parametrize("task", ["plates", "classification"])
def test_every_declared_dvc_plot_renders_with_its_data_for_both_tasks(project, task):
    if task == "plates":
        write_plate_csv(project / "plates", random_plates(30))
        params, classes, slots = plate_params(project), None, 7
    else:
        write_class_folders(project / "classes", {"cat": 8, "dog": 8, "owl": 8})
        params = tiny_params(project, task="classification", data={"source": str(project / "classes")},
                             train={"backbone": "plain_cnn", "pretrained": False, "strategy": "scratch",
                                    "batch_size": 8, "output": str(project / "models")},
                             mlflow={"experiment": "evaluate-test"})
        classes, slots = ["cat", "dog", "owl"], 1
    split.run(params)
    classes = classes or list(params.plates.alphabet)
    fake_training(params, classes, slots)
    monitor = task_for(task).monitored_metric
    train.write_history(pd.DataFrame({"epoch": [1, 2], monitor: [0.2, 0.4], "val_loss": [2.0, 1.5]}), monitor)
    evaluate.run(params, evaluate.EvaluateConfig(output=str(project / "evaluation"), latency_calls=1))
    n_test = len(np.load(project / "data/prepared/test_labels.npy"))

    plots = rendered_plots(project)
    assert set(plots) == declared_plots()
    for path, spec in plots.items():
        rows, encoding = spec["data"]["values"], axes(spec)
        assert rows, path
        for axis in ("x", "y"):
            field = encoding[axis]["field"]
            assert all(row.get(field) not in (None, "") for row in rows), (path, axis, field)

    breakdown = plots["metrics/evaluate_breakdown.csv"]
    assert axes(breakdown)["y"]["field"] == "group" and axes(breakdown)["x"]["field"] == "accuracy"
    groups = [row["group"] for row in breakdown["data"]["values"]]
    assert groups == ([f"slot {i}" for i in range(1, 8)] if task == "plates" else classes)

    confusion = plots["metrics/evaluate_confusion_pairs.csv"]
    assert "aggregate" in json.dumps(confusion) and axes(confusion)["x"]["field"] == "predicted"
    assert len(confusion["data"]["values"]) == n_test * slots  # every test character (or image) once
    assert {row["actual"] for row in confusion["data"]["values"]} <= set(classes) | {"pad"}

    curve = plots["metrics/train_history.csv"]
    assert [float(row["val_monitored"]) for row in curve["data"]["values"]] == [0.2, 0.4]

    labels = plots["metrics/data_labels.csv"]
    counted = {row["label"]: int(row["train"]) for row in labels["data"]["values"]}
    train_labels = np.load(project / "data/prepared/train_labels.npy")
    assert sum(counted.values()) == train_labels.size  # every training character (or image) counted once
    assert set(counted) <= set(classes)
    assert "characters" not in json.dumps(read_json("metrics/data.json"))


def test_missing_model_or_run_is_a_clear_error_and_leaves_no_output(project):
    write_plate_csv(project / "plates", random_plates(20))
    params = plate_params(project)
    split.run(params)
    with pytest.raises(TransferlabError, match="run the train stage first"):
        evaluate.run(params)
    fake_training(params, list(params.plates.alphabet), params.plates.slots)
    (project / "models/run.json").write_text(json.dumps({"run_id": "0" * 32, "experiment": "evaluate-test"}))
    with pytest.raises(TransferlabError, match="train again"):
        evaluate.run(params, evaluate.EvaluateConfig(latency_calls=1, augmented_strengths=[]))
    assert not Path("evaluation").exists() and not Path("metrics/evaluate.json").exists()


def test_config_rejects_unknown_keys_and_bad_strengths():
    with pytest.raises(Exception, match="extra"):
        evaluate.EvaluateConfig(outptu="x")
    with pytest.raises(Exception):
        evaluate.EvaluateConfig(augmented_strengths=[1.5])
    assert evaluate.strength_key(0.3) == "aug30" and evaluate.strength_key(0.125) == "aug12p5"


def test_trained_without_augmentation_is_said_so_and_no_strength_is_the_training_strength(project, capsys):
    write_plate_csv(project / "plates", random_plates(30))
    params = plate_params(project, augment={"strength": 0.5, "copies": 0})
    split.run(params)
    fake_training(params, list(params.plates.alphabet), params.plates.slots)
    scalars = evaluate.run(params, evaluate.EvaluateConfig(output=str(project / "evaluation"), latency_calls=1))
    out = capsys.readouterr().out
    assert "trained without augmentation" in out and "the training strength" not in out
    assert {"test_aug50_plate_accuracy", "test_aug100_plate_accuracy"} <= set(scalars)  # still measured

    # With copies the same strength is the training strength, and said to be.
    lines = evaluate.diagnosis("plates", {}, {"test_plate_accuracy": 0.8}, 10, 10, [(0.5, 0.7)], 0.5)
    assert any("(the training strength)" in line for line in lines)
    assert not any("without augmentation" in line for line in lines)


def test_small_data_diagnostics_are_named_in_the_evaluate_report():
    history = pd.DataFrame({"epoch": [1, 2, 3, 4], "val_accuracy": [0.1004] * 4})
    train_metrics = {"monitor": "val_accuracy", "kept_epoch": 4, "train_accuracy": 0.98, "val_accuracy": 0.1004,
                     "val_majority_fraction": 1.0}
    lines = evaluate.regime_findings("classification", train_metrics, history, np.repeat(np.arange(10), 5), 10)
    fired = {line.split(":")[0] for line in lines}
    assert fired == {"diagnostic samples per class", "diagnostic one class", "diagnostic memorisation",
                     "diagnostic flat metric"}
    learning = pd.DataFrame({"epoch": [1, 2, 3], "val_accuracy": [0.3, 0.6, 0.9]})
    healthy = {"monitor": "val_accuracy", "train_accuracy": 0.95, "val_accuracy": 0.9, "val_majority_fraction": 0.1}
    lines = evaluate.regime_findings("classification", healthy, learning, np.repeat(np.arange(10), 30), 10)
    assert [line.split(":")[0] for line in lines] == ["diagnostic still improving"]
