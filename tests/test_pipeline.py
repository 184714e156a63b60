"""The real pipeline end to end: `dvc repro` / `dvc exp run` on a tiny project, MLflow runs included.

One tiny project (tests/pipeline_project.py) is built and run once per session, about a
minute of the real stages; the checks here read what each step did. Changing a parameter
and a misspelt parameter are tried on copies of it, so the shared store keeps exactly the
two variants that tests/test_ui.py compares.
"""

from __future__ import annotations

import json
import math

import pytest
import yaml
from helpers import random_plates, write_plate_csv
from pipeline_project import ALWAYS_RUN, STAGES, PipelineProject, edit_params, mlflow_runs, run
from pipeline_project import pipeline_project  # noqa: F401 - the fixture, shared with test_ui.py

pytestmark = pytest.mark.slow

# What the two stages record in the one MLflow run of a variant.
TRAINING_METRICS = ("train_plate_accuracy", "best_val_plate_accuracy", "train_seconds")
EVALUATION_METRICS = ("test_plate_accuracy", "test_char_accuracy", "test_images")


def assert_complete_run(record, seed: str) -> None:
    """FINISHED, with the training's params and metrics and the evaluation's test_ metrics."""
    assert record.status == "FINISHED", f"run {record.run_id} is {record.status}"
    assert record.params.get("train.seed") == seed
    assert record.params.get("train.backbone") == "plain_cnn"
    assert record.params.get("augment.strength") is not None
    missing = [m for m in TRAINING_METRICS + EVALUATION_METRICS if m not in record.metrics]
    assert not missing, f"run {record.run_id} lacks {missing}; it has {sorted(record.metrics)}"
    assert record.tags.get("evaluated") == "true"
    assert 0.0 <= record.metrics["test_plate_accuracy"] <= 1.0


def test_first_repro_runs_every_stage_and_writes_the_metrics(pipeline_project: PipelineProject):
    step = pipeline_project.first_repro
    assert [s for s in STAGES if not step.ran(s)] == [], step.tail()
    evaluation = pipeline_project.first_evaluate_json
    assert isinstance(evaluation.get("test_plate_accuracy"), float), sorted(evaluation)
    assert 0.0 <= evaluation["test_plate_accuracy"] <= 1.0
    assert "val_plate_accuracy" in pipeline_project.first_train_json
    root = pipeline_project.root
    assert (root / "models" / "model.keras").is_file()
    assert (root / "metrics" / "data.json").is_file()
    assert (root / "dvc.lock").is_file()
    assert set(yaml.safe_load((root / "dvc.lock").read_text())["stages"]) == set(STAGES)


def test_first_repro_records_one_finished_run_with_training_and_evaluation(pipeline_project: PipelineProject):
    runs = pipeline_project.runs_after_first
    assert len(runs) == 1, [(r.run_id, r.status) for r in runs]
    record = runs[0]
    assert_complete_run(record, seed="0")
    # evaluate logged into the training run (models/run.json), not into a run of its own
    assert pipeline_project.first_run_json["run_id"] == record.run_id
    assert math.isclose(record.metrics["test_plate_accuracy"], pipeline_project.first_evaluate_json["test_plate_accuracy"])
    assert math.isclose(record.metrics["train_plate_accuracy"], pipeline_project.first_train_json["train_plate_accuracy"])
    assert (pipeline_project.root / "mlruns" / "mlflow.db").is_file()


def test_second_repro_runs_only_the_test_source_stamp(pipeline_project: PipelineProject):
    step = pipeline_project.noop_repro
    assert [s for s in STAGES if step.ran(s)] == list(ALWAYS_RUN), step.tail()
    assert all(step.skipped(s) for s in STAGES if s not in ALWAYS_RUN), step.tail()
    assert [r.run_id for r in pipeline_project.runs_after_noop] == [r.run_id for r in pipeline_project.runs_after_first]


def test_experiment_with_another_seed_is_a_second_finished_run(pipeline_project: PipelineProject):
    step = pipeline_project.exp_run
    assert step.ran("train") and step.ran("evaluate"), step.tail()
    assert not any(step.ran(s) for s in ("generate", "split", "augment")), step.tail()
    name = pipeline_project.exp_name
    assert name, f"no experiment name in the output of dvc exp run:\n{step.tail()}"

    # dvc exp show lists the experiment with its parameter and the evaluation's metric
    rows = {row["Experiment"]: row for row in pipeline_project.exp_rows if row.get("Experiment")}
    assert name in rows, f"{name} not in dvc exp show --csv:\n{pipeline_project.exp_show.output[:2000]}"
    assert rows[name]["train.seed"] == "1"
    assert rows[name]["test_plate_accuracy"] != ""

    runs = pipeline_project.runs_after_exp
    assert len(runs) == 2, [(r.run_id, r.status, r.params.get("train.seed")) for r in runs]
    first, second = runs
    assert first.run_id == pipeline_project.runs_after_first[0].run_id
    assert_complete_run(first, seed="0")
    assert_complete_run(second, seed="1")
    assert second.tags.get("dvc_exp_name") == name
    # the workspace holds the experiment's results, and they are the second run's
    evaluation = json.loads((pipeline_project.root / "metrics/evaluate.json").read_text())
    assert math.isclose(second.metrics["test_plate_accuracy"], evaluation["test_plate_accuracy"])
    assert json.loads((pipeline_project.root / "models/run.json").read_text())["run_id"] == second.run_id


def test_changing_augment_strength_reruns_augment_and_downstream_only(pipeline_project: PipelineProject, tmp_path):
    root = pipeline_project.copy_to(tmp_path / "project")
    before = {r.run_id for r in mlflow_runs(root)}
    edit_params(root, "augment", strength=0.5)

    step = run(root, "dvc", "repro")

    assert [s for s in ("augment", "train", "evaluate") if not step.ran(s)] == [], step.tail()
    assert step.skipped("generate") and step.skipped("split"), step.tail()
    assert not step.ran("generate") and not step.ran("split")
    new = [r for r in mlflow_runs(root) if r.run_id not in before]
    assert len(new) == 1, [(r.run_id, r.status) for r in new]
    assert new[0].params["augment.strength"] == "0.5"
    assert_complete_run(new[0], seed="1")  # the copy was taken with the seed-1 experiment applied


def test_split_follows_the_test_sources_content(pipeline_project: PipelineProject, tmp_path):
    root = pipeline_project.copy_to(tmp_path / "project")
    texts = random_plates(6, seed=5)
    write_plate_csv(root / "heldout", texts)
    edit_params(root, "data", test_source="heldout/labels.csv")

    step = run(root, "dvc", "repro", "split")
    assert step.ran("test-source") and step.ran("split"), step.tail()
    assert (root / "data/prepared/test.csv").read_text().count("\n") == 1 + len(texts)
    assert json.loads((root / "data/prepared/meta.json").read_text())["test_source"] == "heldout/labels.csv"

    assert run(root, "dvc", "repro", "split").skipped("split")  # same test set: nothing to do
    write_plate_csv(root / "heldout", texts[:5] + random_plates(1, seed=6))  # one image and label edited in place
    assert run(root, "dvc", "repro", "split").ran("split")
    edit_params(root, "data", test_source=None)  # back to a test split drawn from data.source
    run(root, "dvc", "repro", "split")  # DVC's run cache restores the earlier outputs of that state
    assert json.loads((root / "data/prepared/meta.json").read_text())["test_source"] is None


def test_misspelt_parameter_fails_naming_the_key(pipeline_project: PipelineProject, tmp_path):
    root = pipeline_project.copy_to(tmp_path / "project")
    path = root / "params.yaml"
    raw = yaml.safe_load(path.read_text())
    del raw["augment"]["strength"]
    raw["augment"]["strenght"] = 0.5  # the typo a user makes
    path.write_text(yaml.safe_dump(raw, sort_keys=False))

    step = run(root, "dvc", "repro", check=False)

    assert step.returncode != 0, step.tail()
    assert "augment.strenght: unknown key (did you mean strength?)" in step.output, step.tail()


def test_a_users_csv_with_a_test_set_and_synthetic_pretraining_end_to_end(pipeline_project: PipelineProject,
                                                                          tmp_path):
    """The in-domain path a user with a few hundred real plates takes: plates like theirs are
    rendered, the model pretrains on them, train starts from it, evaluate reads their test set."""
    root = pipeline_project.copy_to(tmp_path / "project")
    write_plate_csv(root / "real", random_plates(30, seed=11, alphabet="0123456789ABCDEF", length=6))
    test_texts = random_plates(8, seed=12, alphabet="0123456789ABCDEF", length=6)
    write_plate_csv(root / "heldout", test_texts)
    raw = yaml.safe_load((root / "params.yaml").read_text())
    raw["plates"].update(alphabet="auto", slots="auto")
    raw["data"].update(source="real/labels.csv", test_source="heldout/labels.csv")
    raw["pretrain"].update(enabled=True, epochs=1)
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))

    step = run(root, "dvc", "repro")

    assert [s for s in ("generate", "split", "pretrain", "train", "evaluate") if not step.ran(s)] == [], step.tail()
    assert "generate: plates like the 30 labels of real/labels.csv" in step.output, step.tail()
    synthetic = (root / "data/synthetic/labels.csv").read_text().splitlines()[1:]
    assert synthetic and all(len(line.split(",")[1]) == 6 and set(line.split(",")[1]) <= set("0123456789ABCDEF")
                             for line in synthetic)
    evaluation = json.loads((root / "metrics/evaluate.json").read_text())
    assert evaluation["test_images"] == len(test_texts)  # the user's own test set
    pretrained = json.loads((root / "metrics/pretrain.json").read_text())
    assert pretrained["enabled"] and {"synthetic_val_char_accuracy", "real_val_char_accuracy"} <= set(pretrained)
    runs = {r.run_id: r for r in mlflow_runs(root)}
    pretrain_run = runs[pretrained["run_id"]]
    assert pretrain_run.status == "FINISHED" and pretrain_run.tags["stage"] == "pretrain"
    train_run = runs[json.loads((root / "models/run.json").read_text())["run_id"]]
    assert train_run.tags["pretrain_run_id"] == pretrain_run.run_id  # the two runs are linked
    assert "synthetic" in train_run.name and train_run.tags.get("evaluated") == "true"
    assert train_run.params["train.init_from"] == "pretrain/model.keras"  # the start it really had
