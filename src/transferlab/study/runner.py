"""Running the study: each variant trained through the engine (or the linear probe), its result
and history written, then the report.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from transferlab.config import Params, StudyConfig
from transferlab.errors import TransferlabError
from transferlab.data.arrays import seeded_subset
from transferlab.io import read_json, unlinked, write_json
from transferlab.study.grid import (HISTORY_FILE, IMAGE_SCORES, RESULT_FILE, Variant, fold_of, metric_name,
                                    variant_hash, variant_params, variants)


def load_study_data(params: Params, study: StudyConfig):
    """The study's prepared split (``params``: :func:`transferlab.study.dataset.study_params`) at
    the study's image size; fixed validation and test subsets (the same for every variant), the
    whole training split (subsets per variant)."""
    from transferlab.data.arrays import load_prepared

    data = load_prepared(params, test=True)
    val = np.sort(np.random.default_rng(12345).permutation(len(data.y_val))[:study.val_size]) \
        if study.val_size and study.val_size < len(data.y_val) else np.arange(len(data.y_val))
    test = np.sort(np.random.default_rng(12345).permutation(len(data.y_test))[:study.test_size]) \
        if study.test_size and study.test_size < len(data.y_test) else np.arange(len(data.y_test))
    data = data.replace(x_val=data.x_val[val], y_val=data.y_val[val], x_test=data.x_test[test], y_test=data.y_test[test])
    return data.resized(study.image_height, study.image_width)


def variant_data(data, study: StudyConfig, variant: Variant):
    """The variant's training and validation arrays: its fold (when ``study.folds`` is set),
    then its seeded training subset."""
    fold = fold_of(study, variant)
    if fold is not None:
        data = data.fold(fold, study.folds, seed=0)
        if study.val_size and len(data.y_val) > study.val_size:  # a large pool: validation stays study.val_size
            keep = np.sort(np.random.default_rng(12345).permutation(len(data.y_val))[:study.val_size])
            data = data.replace(x_val=data.x_val[keep], y_val=data.y_val[keep])
    return data.subset(variant.train_size, variant.seed)


# --------------------------------------------------------------------------- one variant


def _probe_variant(params: Params, study: StudyConfig, data, variant: Variant, log_metric) -> tuple[dict, pd.DataFrame]:
    """Linear probe on ImageNet features, and (for the domain gap) on random-init features."""
    from transferlab.training import engine
    from transferlab.training import probe
    from transferlab.augment import augment_images

    result: dict = {}
    train = variant_data(data, study, variant)
    cached_ok = variant.augment == 0 and fold_of(study, variant) is None
    idx = seeded_subset(len(data.y_train), variant.train_size, variant.seed)
    extractors: dict = {}

    def extractor(pretrained: bool):
        if pretrained not in extractors:
            extractors[pretrained] = probe.build_extractor(study.backbone, data.x_train.shape[1:], pretrained, seed=0)
        return extractors[pretrained]

    for pretrained in (True, False):
        cached = probe.feature_dir(Path(study.output) / "features", study.backbone, pretrained)
        if cached_ok and (cached / "train.npy").is_file():
            f_train, y_fit = probe.load_features(cached.parent, study.backbone, pretrained, "train")[idx], train.y_train
            f_test = probe.load_features(cached.parent, study.backbone, pretrained, "test")
        else:
            fitted = train.augmented(variant_params(params, study, variant).augment)
            f_train, y_fit = probe.pooled_features(extractor(pretrained), fitted.x_train), fitted.y_train
            f_test = probe.pooled_features(extractor(pretrained), data.x_test)
        started = time.monotonic()
        model = probe.LinearProbe(data.num_classes, kind=study.probe, c=study.probe_c).fit(f_train, y_fit)
        probs = model.predict_proba(f_test)
        scores = engine.score(data, data.y_test, probs)
        prefix = "test_" if pretrained else "random_test_"
        result.update({prefix + k: v for k, v in scores.items()})
        if pretrained:
            result.update(test_images=len(data.y_test), **engine.image_scores(data, data.y_test, probs, IMAGE_SCORES))
            result["train_seconds"] = round(time.monotonic() - started, 2)
            for strength in sorted({s for s in study.augment_strengths if s > 0}):
                aug = probe.pooled_features(extractor(True), augment_images(data.x_test, strength, seed=0))
                result.update({f"test_aug{strength:g}_{k}": v
                               for k, v in engine.score(data, data.y_test, model.predict_proba(aug)).items()})
    log_metric({k: v for k, v in result.items() if isinstance(v, float)}, 0)
    result.update({"epochs": 0, "trainable_bn": 0, "total_bn": 0})
    return result, pd.DataFrame()


def _keras_variant(params: Params, study: StudyConfig, data, variant: Variant, log_metric) -> tuple[dict, pd.DataFrame]:
    """Train through the engine (the train stage's own), then score the kept weights on the test set."""
    from transferlab.training import engine
    from transferlab.augment import augment_images
    from transferlab.evaluation.diagnostics import trainable_batchnorm_layers
    from transferlab.training.models import count_trainable
    from transferlab.training.normalization import batchnorm_layers

    vparams = variant_params(params, study, variant)
    cfg = vparams.train
    train = variant_data(data, study, variant)
    fitted = engine.fit(vparams, train.augmented(vparams.augment), log_metric, verbose=False)
    model, backbone, selection = fitted.model, fitted.backbone, fitted.selection
    result: dict = {"train_seconds": round(fitted.seconds, 1), "epochs": selection.epochs,
                    "kept_epoch": selection.kept_epoch, "monitor": selection.monitor,
                    "monitor_flat": selection.flat, "trainable_weights": count_trainable(model),
                    "trainable_bn": len(trainable_batchnorm_layers(backbone.model)) if cfg.strategy != "frozen" else 0,
                    "total_bn": len(batchnorm_layers(backbone.model))}
    val = engine.score_model(model, train, train.x_val, train.y_val, cfg.batch_size)
    result.update({f"val_{k}": v for k, v in val.items()})
    result.update({"val_images": len(train.y_val),
                   "train_class_counts": np.bincount(train.y_train.ravel(), minlength=train.num_classes).tolist()})
    probs = engine.predict(model, data.x_test, cfg.batch_size)
    result.update({f"test_{k}": v for k, v in engine.score(data, data.y_test, probs).items()})
    result.update(test_images=len(data.y_test), **engine.image_scores(data, data.y_test, probs, IMAGE_SCORES))
    for strength in sorted({s for s in study.augment_strengths if s > 0}):
        result.update({f"test_aug{strength:g}_{k}": v for k, v in engine.score_model(
            model, data, augment_images(data.x_test, strength, seed=0), data.y_test, cfg.batch_size).items()})
    return result, pd.DataFrame(fitted.history)


def run_variant(params: Params, study: StudyConfig, data, variant: Variant,
                folder: str | Path | None = None) -> dict:
    """Train and test one variant, as one MLflow run tagged with the study; write its folder
    (default ``variant.folder(study)``; DVC passes the output path it tracks)."""
    from transferlab import tracking
    from transferlab.evaluation.diagnostics import check_preprocessing

    n_train = len(variant_data(data, study, variant).y_train)
    vparams = variant_params(params, study, variant)
    tags = tracking.run_tags(fingerprint=data.fingerprint)
    tags.update({"study": study.name, "study_group": variant.group, "arm": variant.name,
                 "source": variant.source or ("imagenet" if variant.pretrained else "none"),
                 "pretrained": str(variant.pretrained), "augment_strength": f"{variant.augment:g}",
                 "seed": str(variant.seed), "train_size": str(n_train), "fold": str(fold_of(study, variant)), "backbone": study.backbone,
                 "strategy": variant.arm, "stage": "study"})
    logged = {"study": {k: v for k, v in study.model_dump().items()}, "variant": variant.__dict__,
              "task": params.task, "train": vparams.train.model_dump(), "augment.strength": variant.augment}
    preprocessing = check_preprocessing(data.x_train[:64], study.backbone, variant.pretrained)
    with tracking.tracked_run(study.experiment, run_name=variant.key, params=logged, tags=tags) as run:
        import mlflow

        def log_metric(logs: dict, step: int) -> None:
            mlflow.log_metrics(dict(logs), step=step)

        runner = _probe_variant if variant.arm == "probe" else _keras_variant
        result, history = runner(params, study, data, variant, log_metric)
        result.update({"group": variant.group, "arm": variant.name, "strategy": variant.arm,
                       "source": variant.source or ("imagenet" if variant.pretrained else "none"),
                       "pretrained": variant.pretrained,
                       "augment": variant.augment, "train_size": n_train, "seed": variant.seed,
                       "fold": fold_of(study, variant),
                       "key": variant.key, "run_id": run.info.run_id, "backbone": study.backbone,
                       "batch_size": study.batch_size, "input_min": preprocessing.evidence["min"],
                       "input_max": preprocessing.evidence["max"],
                       "hash": variant_hash(params, study, variant, data.fingerprint)})
        mlflow.log_metrics({k: float(v) for k, v in result.items()
                            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("seed",)})
    folder = Path(folder) if folder is not None else variant.folder(study)
    folder.mkdir(parents=True, exist_ok=True)
    history.to_csv(unlinked(folder / HISTORY_FILE), index=False)  # the folder is a DVC output
    write_json(folder / RESULT_FILE, result)
    return result


def finished(params: Params, study: StudyConfig, variant: Variant, fingerprint: str,
             folder: str | Path | None = None) -> dict | None:
    """The stored result of a variant when it was run with the same settings and data."""
    path = (Path(folder) if folder is not None else variant.folder(study)) / RESULT_FILE
    if not path.is_file():
        return None
    result = read_json(path)
    return result if result.get("hash") == variant_hash(params, study, variant, fingerprint) else None


def _progress(k: int, n: int, variant: Variant, result: dict | None, metric: str, seconds: float, started: float,
              remaining: int, done_times: list[float], skipped: bool = False) -> str:
    elapsed = time.monotonic() - started
    eta = (sum(done_times) / len(done_times) * remaining) if done_times else float("nan")
    value = f"{metric} {result['test_' + metric]:.3f}" if result else "failed"
    what = "cached" if skipped else f"{seconds:.0f}s"
    eta_text = f"ETA {eta / 60:.1f} min" if np.isfinite(eta) else "ETA ?"
    return (f"study: [{k}/{n}] {variant.group:<10} {variant.name:<8} aug {variant.augment:<4g} n {variant.train_size:<5} "
            f"seed {variant.seed}: {value} ({what}); elapsed {elapsed / 60:.1f} min, {eta_text}")


def run_variants(params: Params, study: StudyConfig, selected: list[Variant] | None = None,
                 data=None, folder: str | Path | None = None) -> list[dict]:
    """Run (or reuse) every selected variant, one progress line each."""
    grid = variants(study)
    selected = grid if selected is None else selected
    data = data or load_study_data(params, study)
    metric = metric_name(data.task, study)
    started, times, results = time.monotonic(), [], []
    todo = [v for v in selected if finished(params, study, v, data.fingerprint, folder) is None]
    print(f"study: {len(selected)} variant(s), {len(selected) - len(todo)} already done, "
          f"{data.task}, {study.image_height}x{study.image_width}", flush=True)
    for variant in selected:
        k = grid.index(variant) + 1 if variant in grid else len(results) + 1
        cached = finished(params, study, variant, data.fingerprint, folder)
        if cached is not None:
            results.append(cached)
            print(_progress(k, len(grid), variant, cached, metric, 0, started, len(todo), times, skipped=True), flush=True)
            continue
        t0 = time.monotonic()
        result = run_variant(params, study, data, variant, folder)
        times.append(time.monotonic() - t0)
        todo.remove(variant)
        results.append(result)
        print(_progress(k, len(grid), variant, result, metric, times[-1], started, len(todo), times), flush=True)
    return results


def compute_features(params: Params, study: StudyConfig, data=None) -> dict:
    """Cache pooled ImageNet and random-init features of the train and test splits (the probe's input)."""
    from transferlab.training import probe

    data = data or load_study_data(params, study)
    root = Path(study.output) / "features"
    summary = {}
    for pretrained in (False,) if study.backbone == "plain_cnn" else (True, False):  # plain_cnn: no ImageNet weights
        started = time.monotonic()
        found = probe.cache_features(root, study.backbone, pretrained, {"train": data.x_train, "test": data.x_test})
        name = f"{study.backbone}-{probe.weights_name(pretrained)}"
        summary[name] = {"images": int(sum(len(v) for v in found.values())), "dims": int(found["train"].shape[1]),
                         "seconds": round(time.monotonic() - started, 1)}
        print(f"study: cached {name} features of {summary[name]['images']} images "
              f"({summary[name]['dims']} dims) in {summary[name]['seconds']}s", flush=True)
    write_json(root / "summary.json", summary)
    return summary


# --------------------------------------------------------------------------- the report


def load_results(study: StudyConfig, params: Params | None = None,
                 fingerprint: str | None = None) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Results of the variants of the current grid (a table) and their histories by ``group/key``.

    Every ``result.json`` under ``<output>/variants`` is read (DVC names the folders, the
    in-process runner too); rows outside the current grid (removed list values) are left out.
    A variant found in two folders (DVC writes ``aug0.0`` where the runner writes ``aug0``)
    counts once: the result whose settings hash matches ``params`` and ``fingerprint`` (the
    prepared training split's), and among equals the first folder in sorted order, never the
    newer file.
    """
    grid = {(v.group, v.key): v for v in variants(study)}
    found: dict[tuple, list[tuple[dict, Path]]] = {}
    root = Path(study.output) / "variants"
    for path in sorted(root.glob(f"*/*/{RESULT_FILE}")) if root.is_dir() else []:
        result = read_json(path)
        key = (result.get("group"), result.get("key"))
        if key in grid:
            found.setdefault(key, []).append((result, path))
    rows, histories = [], {}
    for key, candidates in found.items():
        current = [] if params is None or fingerprint is None else \
            [c for c in candidates if c[0].get("hash") == variant_hash(params, study, grid[key], fingerprint)]
        result, path = (current or candidates)[0]
        rows.append(result)
        try:
            histories[f"{key[0]}/{key[1]}"] = pd.read_csv(path.parent / HISTORY_FILE)
        except (pd.errors.EmptyDataError, FileNotFoundError):
            histories[f"{key[0]}/{key[1]}"] = pd.DataFrame()
    missing = sorted(set(grid) - set(found))
    if missing:
        raise TransferlabError(f"{len(missing)} variant(s) of the study have no result yet (first: "
                               f"{missing[0][0]}/{missing[0][1]}): run them first (dvc repro study/dvc.yaml, "
                               "or transferlab study)")
    return pd.DataFrame(rows), histories
