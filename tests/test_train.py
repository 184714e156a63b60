import os
import subprocess
import sys
from pathlib import Path

import keras
import mlflow
import numpy as np
import pytest
import yaml

import train_worker
from helpers import random_plates, tiny_params, write_params, write_plate_csv
from transferlab import augment, evaluate, split, tracking, train
from transferlab.inference import predict, runtime
from transferlab.training import engine
from transferlab.training.backbones import build_backbone
from transferlab.errors import TransferlabError
from transferlab.io import read_json
from transferlab.training.models import build_model, count_trainable, set_backbone_trainable
from transferlab.tracking.stage_params import PARAMS_ARTIFACT, STAGE_SECTIONS

SHAPE = (32, 96, 3)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A tiny prepared and augmented plate dataset in a throw-away project folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")  # marks the project root for the MLflow store
    write_plate_csv(tmp_path / "plates", random_plates(40))
    base = tiny_params(tmp_path, data={"source": str(tmp_path / "plates")})
    split.run(base)
    augment.run(base)
    return tmp_path


def params_for(root, **train_cfg):
    defaults = {"backbone": "plain_cnn", "pretrained": False, "strategy": "scratch", "epochs": 2, "batch_size": 16,
                "head_units": 16, "output": str(root / "models")}
    return tiny_params(root, data={"source": str(root / "plates")}, train={**defaults, **train_cfg})


def lite0_model():
    backbone = build_backbone("efficientnet_lite0", SHAPE, pretrained=False)
    return backbone, build_model(backbone, "plates", 7, 35, 16, 0.2)


def trainable_layers(backbone):
    return {layer.name for layer in backbone.model.layers if layer.trainable and layer.weights}


def test_frozen_trains_only_the_head():
    backbone, model = lite0_model()
    set_backbone_trainable(backbone, 0, bn_trainable=False)
    assert trainable_layers(backbone) == set()
    head_weights = count_trainable(model.get_layer("head"))
    assert count_trainable(model) == head_weights > 0


def test_finetune_unfreezes_exactly_the_top_blocks_with_batchnorm_in_inference_mode():
    backbone, model = lite0_model()
    set_backbone_trainable(backbone, 2, bn_trainable=False)
    top = {name for block in backbone.blocks[-2:] for name in block}
    unfrozen = trainable_layers(backbone)
    assert unfrozen and unfrozen <= top
    assert all(not isinstance(backbone.model.get_layer(n), keras.layers.BatchNormalization) for n in unfrozen)
    convs_in_top = {n for n in top if isinstance(backbone.model.get_layer(n), keras.layers.Conv2D)}
    assert convs_in_top <= unfrozen
    # A frozen BatchNormalization layer normalises with its moving statistics even when
    # called in training mode, so small fine-tuning batches cannot overwrite them.
    bn = next(backbone.model.get_layer(n) for n in top if isinstance(backbone.model.get_layer(n), keras.layers.BatchNormalization))
    before = [w.numpy().copy() for w in bn.non_trainable_weights]
    model(np.random.default_rng(0).uniform(0, 255, (4, *SHAPE)).astype("float32"), training=True)
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(before, bn.non_trainable_weights))


def test_finetune_with_trainable_batchnorm_unfreezes_it():
    backbone, _ = lite0_model()
    set_backbone_trainable(backbone, 2, bn_trainable=True)
    assert any(isinstance(backbone.model.get_layer(n), keras.layers.BatchNormalization) for n in trainable_layers(backbone))


def test_unfreeze_depth_beyond_the_backbone_is_a_clear_error():
    backbone, _ = lite0_model()
    with pytest.raises(TransferlabError, match="train.unfreeze_depth: 99 but efficientnet_lite0 has 18 blocks"):
        set_backbone_trainable(backbone, 99, bn_trainable=False)


def test_training_writes_model_metrics_and_one_finished_mlflow_run(project):
    summary = train.run(params_for(project))
    assert set(summary) >= {"val_plate_accuracy", "val_char_accuracy", "train_plate_accuracy", "epochs"}
    assert (project / "models/model.keras").is_file() and (project / "models/curves.png").is_file()
    assert read_json(project / "metrics/train.json")["epochs"] == 2
    run_id = read_json(project / "models/run.json")["run_id"]
    run = mlflow.MlflowClient(tracking.configure(project)).get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["train.backbone"] == "plain_cnn"
    # The sections train reads are its params; the whole configuration is one artifact.
    assert {key.split(".")[0] for key in run.data.params} == set(STAGE_SECTIONS["train"])
    full = yaml.safe_load(mlflow.artifacts.load_text(f"runs:/{run_id}/{PARAMS_ARTIFACT}"))
    assert {"tune", "study", "evaluate", "generate"} <= set(full) and full["train"]["seed"] == 0
    # What differs leads the name; the data is a logged dataset whose digest is its fingerprint.
    assert run.info.run_name == "random-init-scratch-aug0.5-s0-plain_cnn"
    fingerprints = read_json(project / "data/prepared/meta.json")["fingerprints"]
    inputs = {d.dataset.name: d for d in run.inputs.dataset_inputs}
    assert inputs["train-aug0.5"].dataset.digest == fingerprints["train"] + "-aug0.5"
    assert inputs["validation"].dataset.digest == fingerprints["val"]
    assert {"val_plate_accuracy", "loss"} <= set(run.data.metrics)
    assert run.data.tags["dataset_fingerprint"] == read_json(project / "data/prepared/meta.json")["fingerprints"]["train"]
    history = mlflow.MlflowClient(tracking.configure(project)).get_metric_history(run_id, "val_loss")
    assert [m.step for m in history] == [1, 2]
    reloaded = keras.models.load_model(project / "models/model.keras")
    assert reloaded.output.shape[1:] == (7, 35)


def test_a_run_stores_its_model_once_per_format_and_registers_the_reader_predict_reads_by_alias(project, capsys):
    params = params_for(project, epochs=1)
    train.run(params)
    evaluate.run(params, evaluate.EvaluateConfig(output=str(project / "evaluation"), latency_calls=1,
                                                 augmented_strengths=[], export_samples=8))
    info = read_json(project / "models/run.json")
    stored = [p.suffix for p in tracking.store_dir().rglob("*") if p.is_file()]
    assert stored.count(".keras") == 1 and stored.count(".onnx") == 1  # the reader's and reader_onnx's

    client = mlflow.MlflowClient(tracking.configure(project))
    version = client.get_model_version_by_alias("transferlab-reader", "candidate")
    assert version.source == f"models:/{info['model_id']}" and version.run_id == info["run_id"]
    logged = mlflow.get_logged_model(info["model_id"])
    assert {m.key for m in logged.metrics} >= {"test_plate_accuracy", "test_char_accuracy"}  # on the model's page
    run = client.get_run(info["run_id"])
    saved = read_json(project / "metrics/evaluate.json")
    assert run.data.metrics["test_plate_accuracy"] == saved["test_plate_accuracy"]
    assert len(client.get_metric_history(info["run_id"], "test_plate_accuracy")) == 1
    printed = capsys.readouterr()
    assert "evaluate: reader registered as models:/transferlab-reader@candidate (version 1)" in printed.out
    assert "Successfully registered model" not in printed.err and "Created version" not in printed.err

    files = sorted(str(p) for p in (project / "plates").rglob("*.png"))[:5]
    uri = "models:/transferlab-reader@candidate"
    expected = predict.predict_files("models/model.keras", files)["plate_text"].tolist()
    assert predict.predict_files(uri, files)["plate_text"].tolist() == expected
    shown = []
    assert runtime.predict_command(uri, files, echo=shown.append) == 0  # transferlab predict models:/...@candidate
    rows = "\n".join(shown).splitlines()
    assert [row.split("\t")[:2] for row in rows] == [[f, text] for f, text in zip(files, expected)]

    # evaluated again (a new evaluation run): the same model keeps its one version
    evaluate.run(params, evaluate.EvaluateConfig(output=str(project / "evaluation"), latency_calls=1,
                                                 augmented_strengths=[], export=False))
    assert [str(v.version) for v in client.search_model_versions("name = 'transferlab-reader'")] == ["1"]


def test_same_seed_same_metrics(project):
    first = train.run(params_for(project))
    second = train.run(params_for(project))
    assert first["val_loss"] == second["val_loss"] and first["train_loss"] == second["train_loss"]


def test_a_crash_marks_the_run_failed_and_writes_no_model(project, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(engine.Trainer, "run", explode)
    with pytest.raises(RuntimeError):
        train.run(params_for(project))
    runs = mlflow.search_runs(experiment_names=["transferlab"])
    assert list(runs["status"]) == ["FAILED"]
    assert not (project / "models").exists()


def test_frozen_on_cached_features_matches_running_the_backbone(project):
    config = {"backbone": "mobilenet_v2", "pretrained": True, "strategy": "frozen", "epochs": 2,
              "early_stopping_patience": 0}
    cached = train.run(params_for(project, cache_features=True, **config))
    direct = train.run(params_for(project, cache_features=False, **config))
    assert cached["trainable_weights"] == direct["trainable_weights"]
    assert cached["val_char_accuracy"] == pytest.approx(direct["val_char_accuracy"], abs=0.1)


def test_init_from_copies_an_earlier_model(project):
    train.run(params_for(project))
    earlier = keras.models.load_model(project / "models/model.keras")
    backbone = build_backbone("plain_cnn", SHAPE, pretrained=False)
    model = build_model(backbone, "plates", 7, 35, 16, 0.2)
    assert engine.initialise_from(model, str(project / "models/model.keras")) > 0
    probe = np.random.default_rng(1).uniform(0, 255, (2, *SHAPE)).astype("float32")
    assert np.allclose(model.predict(probe, verbose=0), earlier.predict(probe, verbose=0), atol=1e-5)


def test_init_from_a_missing_file_is_a_clear_error_before_any_mlflow_run(project, capsys):
    with pytest.raises(TransferlabError, match="train.init_from: .*nope.keras: model file not found"):
        train.run(params_for(project, init_from=str(project / "nope.keras")))
    assert capsys.readouterr().err == ""  # no MLflow line before the error
    assert mlflow.MlflowClient(tracking.configure(project)).search_runs(
        [e.experiment_id for e in mlflow.search_experiments()]) == []


def finished_run(project) -> dict:
    """What a train run leaves behind: its files, MLflow run, model weights and kept epoch."""
    run_id = read_json(project / "models/run.json")["run_id"]
    client = mlflow.MlflowClient(tracking.configure(project))
    run = client.get_run(run_id)
    return {"run_id": run_id, "status": run.info.status,
            "summary": {k: v for k, v in read_json(project / "metrics/train.json").items() if k != "train_seconds"},
            "history": (project / "metrics/train_history.csv").read_text(),
            "curves": {key: [(m.step, m.value) for m in client.get_metric_history(run_id, key)]
                       for key in ("loss", "val_loss", "val_char_accuracy")},
            "tags": {k: run.data.tags[k] for k in ("kept_epoch", "selection")},
            "weights": keras.models.load_model(project / "models/model.keras").get_weights()}


def run_worker(project, params_file: str, kill_epoch: int) -> subprocess.CompletedProcess:
    """tests/train_worker.py in a process of its own, on this checkout's transferlab."""
    path = os.pathsep.join([str(Path(train.__file__).parents[1]), str(Path(__file__).parent)])
    return subprocess.run([sys.executable, train_worker.__file__, params_file, str(kill_epoch)], cwd=project,
                          env={**os.environ, "PYTHONPATH": path}, capture_output=True, text=True, timeout=600)


def test_a_run_killed_after_its_best_epoch_resumes_to_the_same_kept_epoch_and_metrics(project, monkeypatch):
    """kill -9 in the middle of epoch 3, after the best epoch 2: the rerun keeps epoch 2's
    weights and reports what an uninterrupted run reports, bit for bit (CPU)."""
    params = params_for(project, epochs=4, early_stopping_patience=0, dropout=0.3)
    monkeypatch.setattr(engine.EpochReporter, "on_epoch_end", train_worker.scripted_on_epoch_end())
    train.run(params)
    uninterrupted = finished_run(project)
    assert uninterrupted["summary"]["kept_epoch"] == 2 and uninterrupted["summary"]["epochs"] == 4

    params_file = str(write_params(project / "resume.yaml", params))
    killed = run_worker(project, params_file, kill_epoch=3)
    assert killed.returncode == -9, killed.stderr
    assert "epoch 2/4" in killed.stdout and "epoch 3/4" not in killed.stdout
    checkpoint = train.backup_root(params, read_json(project / "data/prepared/meta.json")["fingerprints"]["train"])
    assert len(read_json(checkpoint / "state.json")["history"]) == 2

    rerun = run_worker(project, params_file, kill_epoch=0)  # a new process, as after a real kill
    assert rerun.returncode == 0, rerun.stderr
    assert "resumed after epoch 2/4" in rerun.stdout and "epoch 1/4" not in rerun.stdout
    resumed = finished_run(project)
    assert resumed["run_id"] != uninterrupted["run_id"] and resumed["status"] == "FINISHED"
    runs = mlflow.search_runs(experiment_names=["transferlab"])
    assert sorted(runs["status"]) == ["FINISHED", "FINISHED", "KILLED"]  # the killed process's run
    for key in ("summary", "history", "curves", "tags"):
        assert resumed[key] == uninterrupted[key], key
    assert all(np.array_equal(a, b) for a, b in zip(resumed["weights"], uninterrupted["weights"]))
    assert resumed["curves"]["val_loss"][0][0] == 1 and len(resumed["curves"]["val_loss"]) == 4
    assert not checkpoint.parent.exists()  # a finished run leaves nothing to resume from, not even the folder


def crash_in_epoch_3(monkeypatch) -> None:
    """Make the next training raise in the middle of epoch 3 (counted over all phases), after the
    checkpoint of epoch 2: a crash, as a real one leaves it."""
    def crash(self, batch, logs=None):
        if self.trainer.epochs_done + self.current_epoch == 3 and batch == 1:
            raise RuntimeError("simulated crash in epoch 3")

    monkeypatch.setattr(engine.EpochReporter, "on_epoch_begin",
                        lambda self, epoch, logs=None: setattr(self, "current_epoch", epoch + 1), raising=False)
    monkeypatch.setattr(engine.EpochReporter, "on_train_batch_end", crash, raising=False)


def test_an_interrupted_pretraining_resumes_to_the_uninterrupted_results(project, monkeypatch, capsys):
    """The pretrain stage checkpoints like train: stopped in the middle of epoch 3 (the crash
    leaves the checkpoint of epoch 2), run again, it reports what an uninterrupted run does."""
    from transferlab import pretrain
    from transferlab.generate import render

    params = tiny_params(project, data={"source": str(project / "plates")},
                         train={"backbone": "plain_cnn", "pretrained": False, "batch_size": 8, "head_units": 16,
                                "output": str(project / "models")},
                         pretrain={"enabled": True, "epochs": 4, "early_stopping_patience": 0,
                                   "output": str(project / "pretrain")})
    render.run(params)
    monkeypatch.setattr(engine.EpochReporter, "on_epoch_end", train_worker.scripted_on_epoch_end())
    uninterrupted = pretrain.run(params)

    crash_in_epoch_3(monkeypatch)
    with pytest.raises(RuntimeError, match="simulated crash"):
        pretrain.run(params)
    monkeypatch.undo()
    monkeypatch.chdir(project)
    monkeypatch.setattr(engine.EpochReporter, "on_epoch_end", train_worker.scripted_on_epoch_end())
    capsys.readouterr()
    resumed = pretrain.run(params)
    out = capsys.readouterr().out
    assert "resumed after epoch 2/4" in out and "epoch 2/4" not in out.replace("resumed after epoch 2/4", "")
    assert uninterrupted["kept_epoch"] == resumed["kept_epoch"] == 2
    assert uninterrupted["epochs"] == resumed["epochs"] == 4
    assert ({k: v for k, v in resumed.items() if k not in ("run_id", "train_seconds")}
            == {k: v for k, v in uninterrupted.items() if k not in ("run_id", "train_seconds")})
    curves = [mlflow.MlflowClient(tracking.configure(project)).get_metric_history(s["run_id"], "val_loss")
              for s in (uninterrupted, resumed)]
    assert [(m.step, m.value) for m in curves[0]] == [(m.step, m.value) for m in curves[1]]


def test_an_unreadable_checkpoint_is_one_clear_error_naming_it(tmp_path):
    from transferlab.training.checkpoint import EpochCheckpoint

    checkpoint = EpochCheckpoint(tmp_path / "backup")
    assert checkpoint.load() is None
    checkpoint.root.mkdir()
    checkpoint.state_path.write_text('{"format": 1, "phase": "all"')  # cut short
    with pytest.raises(TransferlabError, match=r"backup/state.json: unreadable training checkpoint .*delete"):
        checkpoint.load()
    checkpoint.state_path.write_text('{"format": 1, "phase": "all", "phase_epochs": 2, "history": [], '
                                     '"weights": "all-0002.weights.h5", "kept": null, "seed_states": []}')
    with pytest.raises(TransferlabError, match="all-0002.weights.h5 is missing"):
        checkpoint.load()


def test_a_long_epoch_reports_its_progress_at_most_once_a_minute(capsys):
    from types import SimpleNamespace

    from transferlab.training.engine import EpochReporter

    reporter = EpochReporter(SimpleNamespace(verbose=True, epochs_done=0, total_epochs=4), "all", 0)
    reporter.set_params({"steps": 100})
    reporter.on_epoch_begin(1)
    reporter.on_train_batch_end(10)  # less than a minute in: quiet
    assert capsys.readouterr().out == ""
    reporter.epoch_started -= 120  # two minutes into the epoch, the last line a minute ago
    reporter.last_line -= 61
    reporter.on_train_batch_end(49)
    reporter.on_train_batch_end(50)  # right after a line: quiet again
    assert capsys.readouterr().out == "train: epoch 2/4 [all]: 50/100 batches, 2.0 min left in this epoch\n"


def per_epoch_params(root, mode="per_epoch", **train_cfg):
    """``params_for`` with two augmented copies per image, drawn offline or every epoch."""
    return params_for(root, **train_cfg).model_copy(update={"augment": tiny_params(
        root, augment={"copies": 2, "mode": mode}).augment})


def test_per_epoch_augmentation_draws_new_variants_every_epoch_reproducibly_at_the_offline_epoch_size(
        project, monkeypatch):
    from transferlab.data.arrays import load_prepared

    drawn, sizes = [], []
    draw, order = augment.epoch_images, engine.epoch_order
    monkeypatch.setattr(augment, "epoch_images",
                        lambda images, cfg, epoch: drawn.append((epoch, found := draw(images, cfg, epoch))) or found)
    monkeypatch.setattr(engine, "epoch_order", lambda count, seed, epoch: sizes.append(count) or order(count, seed, epoch))
    originals = load_prepared(per_epoch_params(project))
    n = len(originals.x_train)

    def fit(mode):
        params = per_epoch_params(project, mode, epochs=3, early_stopping_patience=0)
        return engine.fit(params, originals.augmented(params.augment), verbose=False)

    fit("offline")
    assert sizes == [3 * n] * 3 and not drawn  # offline: the copies were drawn once, before training
    sizes.clear()
    first = fit("per_epoch")
    first_drawn, drawn[:] = list(drawn), []
    second = fit("per_epoch")
    assert sizes == [3 * n] * 6  # the same epoch size as offline copies give
    assert [epoch for epoch, _ in first_drawn] == [epoch for epoch, _ in drawn] == [0, 1, 2]
    images = [found for _, found in first_drawn]
    assert all(np.array_equal(found[:n], originals.x_train) for found in images)
    assert not np.array_equal(images[0][n:], images[1][n:]) and not np.array_equal(images[1][n:], images[2][n:])
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(first_drawn, drawn))  # same seed, same draws
    assert first.history == second.history
    assert all(np.array_equal(a, b) for a, b in zip(first.model.get_weights(), second.model.get_weights()))


def test_a_per_epoch_augmented_run_crashed_in_epoch_3_resumes_to_the_uninterrupted_results(project, monkeypatch):
    """As the kill test above, in one process (cheaper): the resumed run draws epochs 3-4's
    variants from (augment.seed, epoch) alone, so it ends where the uninterrupted one did."""
    params = per_epoch_params(project, epochs=4, early_stopping_patience=0, dropout=0.3)
    augment.run(params)  # the pointer, not copies
    drawn = []
    draw = augment.epoch_images
    monkeypatch.setattr(augment, "epoch_images",
                        lambda images, cfg, epoch: drawn.append((epoch, found := draw(images, cfg, epoch))) or found)
    monkeypatch.setattr(engine.EpochReporter, "on_epoch_end", train_worker.scripted_on_epoch_end())
    train.run(params)
    uninterrupted, uninterrupted_drawn = finished_run(project), dict(drawn)
    assert uninterrupted["summary"]["kept_epoch"] == 2 and sorted(uninterrupted_drawn) == [0, 1, 2, 3]
    run = mlflow.MlflowClient(tracking.configure(project)).get_run(uninterrupted["run_id"])
    assert run.info.run_name == "random-init-scratch-aug0.5x2-per-epoch-s0-plain_cnn"

    crash_in_epoch_3(monkeypatch)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train.run(params)
    monkeypatch.setattr(engine.EpochReporter, "on_train_batch_end", lambda self, batch, logs=None: None)
    drawn.clear()
    train.run(params)
    resumed = finished_run(project)
    assert [epoch for epoch, _ in drawn] == [2, 3]  # epochs 1-2 came back from the checkpoint
    assert all(np.array_equal(found, uninterrupted_drawn[epoch]) for epoch, found in drawn)
    for key in ("summary", "history", "curves", "tags"):
        assert resumed[key] == uninterrupted[key], key
    assert all(np.array_equal(a, b) for a, b in zip(resumed["weights"], uninterrupted["weights"]))
