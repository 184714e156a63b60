"""Where the evaluate stage records its results in MLflow, without ever overwriting a record.

The first evaluation of a training run goes into that run (one row of the UI holds the
whole variant). A later evaluation of the same model -- only ``evaluate.*`` changed, or DVC
restored the train stage's outputs from its run cache so no training code ran -- must not
overwrite the test metrics the run already holds: it gets a run of its own, nested under the
training run (``mlflow.parentRunId``) and tagged ``training_run_id``, and says that the model
came from that earlier run. The training run only gains the tag ``latest_evaluation_run_id``.
"""

from __future__ import annotations

import os
from pathlib import Path

from transferlab.config import EvaluateConfig, Params
from transferlab.errors import TransferlabError
from transferlab.tracking.stage_params import log_full_params, stage_params

TAG_EVALUATED = "evaluated"
TAG_TRAINING_RUN = "training_run_id"
TAG_LATEST_EVALUATION = "latest_evaluation_run_id"
TAG_REUSED = "training_run_reused"
CANDIDATE_ALIAS = "candidate"  # the latest evaluated reader: models:/<evaluate.registered_model>@candidate


def check_training_run(tracking, run_info: dict, params: Params) -> None:
    """Fail early, with a clear message, when the training run is not in this repository's store."""
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = tracking.configure()
    try:
        mlflow.MlflowClient(uri).get_run(run_info["run_id"])
    except (MlflowException, KeyError):
        raise TransferlabError(f"MLflow run {run_info.get('run_id')!r} of {params.train.output}/run.json is not in "
                               f"{uri}: train again (dvc repro train)") from None


def reuse_note(training_run) -> str:
    """Why this evaluation is a run of its own: the model is an earlier run's (which, from where)."""
    tags = training_run.data.tags
    where = f" in DVC experiment {tags['dvc_exp_name']}" if tags.get("dvc_exp_name") else ""
    now = os.environ.get("DVC_EXP_NAME")
    here = f" (this evaluation: DVC experiment {now})" if now else ""
    return (f"the model was trained by the earlier MLflow run {training_run.info.run_id} "
            f"({training_run.info.run_name}{where}), which was already evaluated; its outputs were reused{here}, "
            "so these test metrics are a run of their own, linked to it")


def log_outputs(output: Path, files: list[str]) -> None:
    """evaluate's folder and metric ``files`` as artifacts of the active run, except the exported
    model, which ``reader_onnx`` already holds (one copy of it per run)."""
    import mlflow

    from transferlab.inference.export import READER_FOLDER

    for path in sorted(p for p in output.rglob("*") if p.is_file()):
        relative = path.relative_to(output)
        if relative.parent.name == READER_FOLDER and relative.suffix in (".onnx", ".tflite"):
            continue
        mlflow.log_artifact(str(path), (Path("evaluation") / relative.parent).as_posix())
    for path in files:
        mlflow.log_artifact(path, "evaluation/metrics")


# What mlflow.register_model prints on every registration; evaluate says it in its own line.
REGISTRY_NOTICES = ("Successfully registered model", "Created version")


def _quietly_registered(source: str, name: str):
    """``mlflow.register_model`` without its two notices (anything else it prints still shows)."""
    import contextlib
    import io
    import sys

    import mlflow

    printed = io.StringIO()
    with contextlib.redirect_stderr(printed):
        found = mlflow.register_model(source, name)
    for line in printed.getvalue().splitlines(keepends=True):
        if not line.startswith(REGISTRY_NOTICES):
            sys.stderr.write(line)
    return found


def register_reader(client, model_id: str, name: str) -> str:
    """Register the logged reader ``model_id`` under ``name`` (once: an evaluation of the same
    model again reuses its version) and point the alias ``candidate`` at it; returns the version.

    Only ``candidate``: which reader is the ``champion`` (the one to serve) is a decision over
    compared runs and seeds (:mod:`transferlab.evaluation.comparison`), which one evaluation cannot make.
    """
    import mlflow

    source = f"models:/{model_id}"  # a version's source (its model_id field stays empty in a sqlite store)
    existing = [v for v in client.search_model_versions(f"name = '{name}'") if v.source == source]
    version = existing[0].version if existing else _quietly_registered(source, name).version
    client.set_registered_model_alias(name, CANDIDATE_ALIAS, version)
    return str(version)


def log_evaluation(tracking, run_info: dict, params: Params, cfg: EvaluateConfig, scalars: dict,
                   output: Path, files: list[str], example=None) -> str:
    """Record the test metrics, figures and metric ``files``; returns the id of the run they went to.
    ``example``: a few test images, the input example of the ONNX reader logged with them."""
    import mlflow

    train_id = run_info["run_id"]
    experiment = run_info.get("experiment", params.mlflow.experiment)
    client = mlflow.MlflowClient(tracking.configure())
    training_run = client.get_run(train_id)
    tags = {f"evaluate.{k}": v for k, v in tracking.flatten_params(cfg).items()}
    tags.update({TAG_EVALUATED: "true", TAG_TRAINING_RUN: train_id})
    first = training_run.data.tags.get(TAG_EVALUATED) != "true"
    if first:
        opened = tracking.tracked_run(experiment, run_name=None, params={}, tags=tags, run_id=train_id)
    else:
        note = reuse_note(training_run)
        print(f"evaluate: {note}", flush=True)
        tags.update({"stage": "evaluate", "mlflow.parentRunId": train_id, TAG_REUSED: "true",
                     "mlflow.note.content": f"Evaluation only: {note}."})
        for key in ("backbone", "strategy", "pretrained", tracking.TAG_DATASET_FINGERPRINT):
            if key in training_run.data.tags:  # so the run filters and groups like its training run
                tags[key] = training_run.data.tags[key]
        opened = tracking.tracked_run(experiment, run_name=f"{training_run.info.run_name} / evaluate",
                                      params=stage_params(params.model_copy(update={"evaluate": cfg}), "evaluate"),
                                      tags=tags)
    model_id = run_info.get("model_id")  # the training run's reader (older run.json files lack it)
    with opened as run:
        mlflow.log_metrics(scalars, model_id=model_id)  # the run's, and the logged model's (its UI page shows them)
        log_outputs(output, files)
        from transferlab.inference.export import log_evaluated_reader

        log_evaluated_reader(output, example)  # runs:/<id>/reader_onnx, when evaluate exported
        if not first:
            log_full_params(params)
    if model_id and cfg.registered_model:
        version = register_reader(client, model_id, cfg.registered_model)
        print(f"evaluate: reader registered as models:/{cfg.registered_model}@{CANDIDATE_ALIAS} "
              f"(version {version})", flush=True)
    if not first:
        client.set_tag(train_id, TAG_LATEST_EVALUATION, run.info.run_id)
    print(f"evaluate: logged {len(scalars)} metrics into MLflow run {run.info.run_id}"
          + ("" if first else f" (linked to training run {train_id})"), flush=True)
    return run.info.run_id
