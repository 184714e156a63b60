"""Stage ``pretrain``: in-domain transfer. Train on synthetic plates like the user's, then let
``train`` start from that model.

With a few hundred real plates, ImageNet weights alone read almost nothing: ImageNet
features know cats and cups, not characters in slots. Synthetic plates rendered like the
user's (``generate`` with ``generate.formats: auto`` imitates data.source's labels: their
alphabet, lengths, patterns and character frequencies) teach the model to read plates
first; fine-tuning on the real ones then only has to close the synthetic-to-real gap.

- Off (``pretrain.enabled: false``, the default): writes a small marker; ``train`` starts
  from ImageNet or random weights as configured.
- On: trains ``train.backbone`` on the synthetic set (from ImageNet when ``train.pretrained``,
  else from random weights) through the training engine, scores it on a synthetic
  validation part *and* on the real validation split (the synthetic-vs-real gap), records
  its own MLflow run, and ``train`` then initialises from ``<pretrain.output>/model.keras``
  (unless ``train.init_from`` names another model), tagging its run with this one's id.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from transferlab.config import Params
from transferlab.data.arrays import ArrayData, load_prepared
from transferlab.data.prepared import with_recipe
from transferlab.errors import TransferlabError
from transferlab.io import atomic_output_dir, read_stage_json, unlinked, write_json

# The training engine (TensorFlow) and MLflow are imported where pretraining runs: the default,
# disabled stage only writes its marker and must not pay seconds of imports on every repro.

STATUS_FILE = "pretrain.json"
METRICS_FILE = "metrics/pretrain.json"
MODEL_FILE = "model.keras"


def check(params: Params) -> None:
    if not params.kind.plate_strings:
        raise TransferlabError("pretrain.enabled: synthetic pretraining renders plates; task is "
                               f"{params.task} (set pretrain.enabled: false)")


def pretrain_params(params: Params) -> Params:
    """params.yaml with the pretraining's own schedule; strategy full (ImageNet start) or scratch."""
    cfg = params.pretrain
    train = {**params.train.model_dump(), "strategy": "full" if params.train.pretrained else "scratch",
             "epochs": cfg.epochs, "learning_rate": cfg.learning_rate, "init_from": None,
             "early_stopping_patience": cfg.early_stopping_patience, "seed": cfg.seed}
    return Params.model_validate({**params.model_dump(), "train": train})


def synthetic_data(params: Params, real: ArrayData) -> ArrayData:
    """The generate stage's plates at the working size, with a seeded synthetic validation part."""
    from transferlab.data.datasets import load_dataset

    source = Params.model_validate({**params.model_dump(), "data": {
        **params.data.model_dump(), "source": params.generate.output, "test_source": None, "skip_invalid": False}})
    dataset = load_dataset(source)
    labels = source.kind.encode_labels(source, dataset.classes, dataset.frame["label"].tolist())
    n_val = max(1, round(len(labels) * params.pretrain.val_fraction))
    order = np.random.default_rng(params.pretrain.seed).permutation(len(labels))
    val, train = order[:n_val], order[n_val:]
    if not len(train):
        raise TransferlabError(f"{params.generate.output}: {len(labels)} synthetic plate(s) leave none to train on "
                               "(raise generate.count)")
    return real.replace(x_train=dataset.images[train], y_train=labels[train], x_val=dataset.images[val],
                        y_val=labels[val], fingerprint=f"synthetic:{len(labels)}", x_test=None, y_test=None,
                        epoch_augment=None)  # synthetic plates are not augmented, whatever augment.mode


def plate_texts(data: ArrayData) -> list[str]:
    """The label strings of a plate training set (pads removed)."""
    pad = data.classes[data.pad_index] if data.pad_index is not None else ""
    return ["".join(data.classes[i] for i in row).replace(pad, "") if pad else "".join(data.classes[i] for i in row)
            for row in data.y_train.reshape(len(data.y_train), -1)]


def pretrain_model(params: Params, real: ArrayData, count: int, imagenet: bool, folder: Path) -> dict:
    """Render ``count`` synthetic plates like ``real``'s training labels (``params.generate``'s
    look, rendered at ``generate.height`` × ``generate.width`` and read at ``real``'s image
    size, as the pipeline's stages do) into ``folder``, pretrain on them (from ImageNet or
    random weights) and save ``folder/model.keras``; returns the pretraining's scores.

    The study's synthetic sources and the real-plates benchmark use this; the pipeline's
    own stage renders through ``generate`` instead, so DVC caches the plates.
    """
    from transferlab.generate.formats import infer_label_model
    from transferlab.generate.render import default_workers, generate_dataset
    from transferlab.training import engine

    height, width = real.x_train.shape[1:3]
    # Minutes of rendering and training: say what starts, then the engine's per-epoch lines.
    print(f"pretrain: rendering {count} synthetic plates into {folder}, then training from "
          f"{'ImageNet' if imagenet else 'random'} weights", flush=True)
    generate = params.generate.model_copy(update={"count": count, "output": str(folder / "synthetic")})
    generate_dataset(generate, params.plates, progress=False, workers=default_workers(count),
                     labels=infer_label_model(plate_texts(real)))
    p = Params.model_validate({**params.model_dump(), "generate": generate.model_dump(),
                               "data": {**params.data.model_dump(), "image_height": height, "image_width": width},
                               "train": {**params.train.model_dump(), "pretrained": imagenet,
                                         "strategy": "full" if imagenet else "scratch"}})
    synthetic = synthetic_data(p, real)
    result = engine.fit(pretrain_params(p), synthetic)
    result.model.save(unlinked(folder / MODEL_FILE))  # the study's folder is a DVC output
    batch = p.train.batch_size
    summary = {"imagenet": imagenet, "synthetic_plates": count, "kept_epoch": result.selection.kept_epoch,
               "train_seconds": round(result.seconds, 1),
               **{f"synthetic_val_{k}": v for k, v in
                  engine.score_model(result.model, synthetic, synthetic.x_val, synthetic.y_val, batch).items()},
               **{f"real_val_{k}": v for k, v in
                  engine.score_model(result.model, real, real.x_val, real.y_val, batch).items()}}
    write_json(folder / STATUS_FILE, summary)
    return summary


def run(params: Params) -> dict:
    """Pretrain (or, when disabled, say so); write the model, metrics and the MLflow run."""
    output = Path(params.pretrain.output)
    if not params.pretrain.enabled:
        with atomic_output_dir(output) as out:
            write_json(out / STATUS_FILE, {"enabled": False})
        write_json(METRICS_FILE, {"enabled": False})
        print("pretrain: disabled (pretrain.enabled: false): train starts from "
              f"{'ImageNet' if params.train.pretrained else 'random'} weights")
        return {"enabled": False}
    check(params)
    from transferlab import tracking
    from transferlab.tracking.stage_params import log_full_params, stage_params
    from transferlab.training import engine

    params, recipe = with_recipe(params)  # the synthetic budget's epochs and the shared head pooling
    real = load_prepared(params)
    data = synthetic_data(params, real)
    p = pretrain_params(params)
    tracking.configure()
    tags = {**tracking.run_tags(fingerprint=data.fingerprint), "stage": "pretrain", "backbone": p.train.backbone,
            "strategy": p.train.strategy, "pretrained": str(p.train.pretrained), "real_data": real.fingerprint}
    name = f"pretrain-synthetic-{'imagenet' if p.train.pretrained else 'random-init'}-{p.train.backbone}"
    with tracking.tracked_run(params.mlflow.experiment, run_name=name, params=stage_params(p, "pretrain"),
                              tags=tags) as run:
        import mlflow

        log_full_params(p)

        print(f"pretrain: {len(data.x_train)} synthetic training / {len(data.x_val)} synthetic validation plates, "
              f"{p.train.backbone} from {'ImageNet' if p.train.pretrained else 'random'} weights")
        result = engine.fit(p, data, lambda logs, step: mlflow.log_metrics(logs, step=step),
                            backup_root=backup_root(p, data))
        batch = p.train.batch_size
        summary = {"enabled": True, "synthetic_plates": len(data.x_train) + len(data.x_val),
                   "epochs": result.epochs, "kept_epoch": result.selection.kept_epoch,
                   "train_seconds": round(result.seconds, 1), "run_id": run.info.run_id}
        summary.update({f"synthetic_val_{k}": v for k, v in
                        engine.score_model(result.model, data, data.x_val, data.y_val, batch).items()})
        summary.update({f"real_val_{k}": v for k, v in
                        engine.score_model(result.model, real, real.x_val, real.y_val, batch).items()})
        summary["synthetic_real_gap_char_accuracy"] = (summary["synthetic_val_char_accuracy"]
                                                       - summary["real_val_char_accuracy"])
        summary.update(log_look(params))
        if recipe:
            summary["recipe"] = recipe
            mlflow.log_dict(recipe, "recipe.json")
        mlflow.log_metrics({k: float(v) for k, v in summary.items()
                            if isinstance(v, (int, float)) and not isinstance(v, bool)})
        with atomic_output_dir(output) as out:
            result.model.save(out / MODEL_FILE)
            write_json(out / STATUS_FILE, summary)
            preview = comparison_preview(params, data, real, out / "synthetic_vs_real.png")
            mlflow.log_artifact(str(preview), "plots")
        write_json(METRICS_FILE, summary)
    print(f"pretrain: synthetic validation plate accuracy {summary['synthetic_val_plate_accuracy']:.3f}, "
          f"real validation {summary['real_val_plate_accuracy']:.3f} (character accuracy "
          f"{summary['synthetic_val_char_accuracy']:.3f} vs {summary['real_val_char_accuracy']:.3f}): "
          "the synthetic-to-real gap that fine-tuning on the real plates closes")
    return summary


def log_look(params: Params) -> dict:
    """The look stage's fitted look and previews into this run; its distances for pretrain.json."""
    import mlflow

    from transferlab.generate.fitted import METRICS_FILE as LOOK_METRICS, look_path

    path = look_path(params)
    metrics = Path(LOOK_METRICS)
    if not path.is_file() or not metrics.is_file():
        return {}
    look = read_stage_json(metrics, "look")
    if not look.get("fitted"):
        return {"look_fitted": False}
    for name in (path.name, "preview.png", "preview_default.png", "trials.png"):
        if (path.parent / name).is_file():
            mlflow.log_artifact(str(path.parent / name), "look")
    return {"look_fitted": True, "look_distance_default": look["distance_default"],
            "look_distance_fitted": look["distance_fitted"]}


def backup_root(params: Params, data: ArrayData) -> Path:
    """Epoch checkpoints of an interrupted pretraining, keyed by what shapes it (the synthetic
    plates' fingerprint is only their count, so the generate section is part of the key)."""
    from transferlab.training.checkpoint import checkpoint_root

    return checkpoint_root(params.pretrain.output, params.train.model_dump(), params.data.model_dump(), params.task,
                           data.fingerprint, params.pretrain.model_dump(), params.generate.model_dump())


def comparison_preview(params: Params, data: ArrayData, real: ArrayData, path: Path) -> Path:
    """The user's real plates next to the synthetic ones, at the working size the model sees."""
    from transferlab.generate.render import save_comparison_preview

    count = min(12, len(real.x_train), len(data.x_train))
    save_comparison_preview(list(data.x_train[:count]), list(real.x_train[:count]), path)
    return path


def initial_model(params: Params) -> tuple[str | None, str | None]:
    """(model path, pretrain run id) that ``train`` starts from: ``train.init_from`` when set,
    else the pretrained model when pretraining is on, else none."""
    if params.train.init_from:
        return params.train.init_from, None
    if not params.pretrain.enabled:
        return None, None
    status = read_stage_json(Path(params.pretrain.output) / STATUS_FILE, "pretrain")
    if not status.get("enabled"):
        raise TransferlabError(f"{params.pretrain.output}: written with pretrain.enabled: false; "
                               "run the pretrain stage again (dvc repro pretrain)")
    return str(Path(params.pretrain.output) / MODEL_FILE), status.get("run_id")

