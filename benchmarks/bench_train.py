"""Training-stage performance, measured side by side in one run.

    python benchmarks/bench_train.py [--images 1000] [--epochs 4] [--frozen-epochs 10]

1. Input-pipeline overhead: images/s of the stage's Trainer (its callbacks, checkpoints
   and logging) against a plain ``model.fit`` on the same in-memory arrays and the same
   model; the first epoch (graph tracing) is excluded from both. Target ratio >= 0.95.
2. ``frozen`` strategy: head trained on backbone features computed once, against running
   the frozen backbone every epoch; wall time (feature computation included) and the
   validation metrics of both. Target speed-up >= 10x.
3. The linear probe (the study's ``probe`` strategy: the frozen backbone's pooled features
   once, then one scikit-learn logistic regression per slot) on the same data, against the
   same uncached ``frozen`` run: wall time and validation character accuracy. A different
   classifier, so its metrics are its own, not the frozen head's.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

from transferlab.training.backbones import build_backbone
from transferlab.config import load_params, parse_params
from transferlab.training.models import build_model
from transferlab.generate.render import render_sample
from transferlab.data.plates import PlateCodec
from transferlab.data.arrays import ArrayData
from transferlab.training import probe
from transferlab.training.engine import Trainer, compile_model, one_hot, score, score_model, seed_everything


class EpochTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self.started)


def synthetic_data(params, count: int) -> ArrayData:
    codec = PlateCodec.from_config(params.plates)
    samples = [render_sample(params.generate, params.plates.alphabet, i) for i in range(count)]
    images = np.stack([image for _, image in samples])
    labels = codec.encode_many([text for text, _ in samples])
    n_val = count // 5
    return ArrayData(images[n_val:], labels[n_val:], images[:n_val], labels[:n_val], "plates",
                     list(codec.symbols), "benchmark")


def fresh_model(params, data: ArrayData):
    seed_everything(params.train.seed)
    cfg = params.train
    backbone = build_backbone(cfg.backbone, (params.data.image_height, params.data.image_width, 3), cfg.pretrained)
    model = build_model(backbone, "plates", data.slots, data.num_classes, cfg.head_units, cfg.dropout, cfg.head_pooling)
    return backbone, model


def steady_throughput(timer: EpochTimer, images: int) -> float:
    steady = timer.times[1:]  # epoch 1 includes graph tracing
    return images * len(steady) / sum(steady)


def plain_fit_throughput(params, data: ArrayData, epochs: int) -> float:
    _, model = fresh_model(params, data)
    compile_model(model, data, params.train.learning_rate, 0.0)
    timer = EpochTimer()
    k = data.num_classes
    model.fit(data.x_train, one_hot(data.y_train, k), validation_data=(data.x_val, one_hot(data.y_val, k)), epochs=epochs,
              batch_size=params.train.batch_size, shuffle=True, verbose=0, callbacks=[timer])
    return steady_throughput(timer, len(data.x_train))


def stage_throughput(params, data: ArrayData, epochs: int) -> float:
    backbone, model = fresh_model(params, data)
    with tempfile.TemporaryDirectory() as backups:
        trainer = Trainer(params, data, model, backbone, lambda logs, step: None, Path(backups), verbose=False)
        timer = EpochTimer()
        original = trainer.callbacks
        trainer.callbacks = lambda *a: [*original(*a), timer]
        trainer.fit(model, "all", epochs, params.train.learning_rate, data.x_train, data.x_val)
    return steady_throughput(timer, len(data.x_train))


def pipeline_overhead(params, data: ArrayData, epochs: int, rounds: int = 2) -> None:
    """Alternate the two (plain, stage, plain, stage ...) and keep each one's best round, so a
    burst of load from another process cannot decide the ratio."""
    plain, stage = [], []
    for _ in range(rounds):
        plain.append(plain_fit_throughput(params, data, epochs))
        stage.append(stage_throughput(params, data, epochs))
    print(f"[pipeline] plain model.fit: {max(plain):.1f} images/s; engine Trainer: {max(stage):.1f} images/s; "
          f"ratio {max(stage) / max(plain):.3f} (target >= 0.95); rounds: plain {[round(v) for v in plain]}, "
          f"stage {[round(v) for v in stage]}")


def frozen_speedup(params, data: ArrayData, epochs: int) -> float:
    """The same Trainer on the same data, ``cache_features`` true then false; wall time of
    ``Trainer.run`` (feature pass, compile, tracing, callbacks and checkpoints included)."""
    results, metrics, measured = {}, {}, {}
    for cached in (True, False):
        p = params.model_copy(deep=True)
        p.train.strategy, p.train.epochs, p.train.cache_features = "frozen", epochs, cached
        p.train.early_stopping_patience = 0
        backbone, model = fresh_model(p, data)
        with tempfile.TemporaryDirectory() as backups:
            trainer = Trainer(p, data, model, backbone, lambda logs, step: None, Path(backups), verbose=False)
            timer = EpochTimer()
            original = trainer.callbacks
            trainer.callbacks = lambda *a: [*original(*a), timer]
            started = time.perf_counter()
            trainer.run()
            seconds = time.perf_counter() - started
        metrics[cached] = score_model(model, data, data.x_val, data.y_val, p.train.batch_size)
        later = float(np.mean(timer.times[1:])) if len(timer.times) > 1 else timer.times[0]
        results[cached], measured[cached] = (seconds - sum(timer.times), timer.times[0], later), seconds
        print(f"[frozen] {'cached features' if cached else 'backbone every epoch'}: {seconds:.1f}s for {epochs} epochs "
              f"(outside epochs {results[cached][0]:.1f}s, first epoch {timer.times[0]:.1f}s, "
              f"then {later:.2f}s an epoch on average); "
              f"val char accuracy {metrics[cached]['char_accuracy']:.4f}, val loss {metrics[cached]['loss']:.6f}")
    print(f"[frozen] speed-up of cached features: {measured[False] / measured[True]:.1f}x (target >= 10x); "
          f"identical validation metrics: {metrics[True] == metrics[False]}")

    def wall(cached: bool, n: int) -> float:  # outside + first epoch + (n - 1) average epochs; n = epochs: measured
        outside, first, later = results[cached]
        return outside + first + (n - 1) * later

    implied = " / ".join(f"{wall(False, n) / wall(True, n):.1f}x" for n in (5, 10, 20, 50))
    print(f"[frozen] speed-up implied by these fixed and per-epoch costs at 5 / 10 / 20 / 50 epochs: {implied}")
    return measured[False]


def probe_speedup(params, data: ArrayData, uncached_seconds: float, epochs: int) -> None:
    """The study's linear probe (extractor, pooled features of both splits, fit, predict), timed whole."""
    started = time.perf_counter()
    extractor = probe.build_extractor(params.train.backbone, data.x_train.shape[1:], params.train.pretrained)
    f_train, f_val = probe.pooled_features(extractor, data.x_train), probe.pooled_features(extractor, data.x_val)
    features = time.perf_counter() - started
    fitted = probe.LinearProbe(data.num_classes).fit(f_train, data.y_train)
    val = score(data, data.y_val, fitted.predict_proba(f_val))
    seconds = time.perf_counter() - started
    print(f"[probe] linear probe: {seconds:.1f}s (features {features:.1f}s, fit and predict {seconds - features:.1f}s); "
          f"val char accuracy {val['char_accuracy']:.4f}")
    print(f"[probe] speed-up against the frozen backbone every epoch ({epochs} epochs, above): "
          f"{uncached_seconds / seconds:.1f}x (target >= 10x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--frozen-epochs", type=int, default=10)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    args = parser.parse_args()
    raw = load_params().model_dump()  # the project's params.yaml: its image size, batch and head
    raw["train"].update(backbone=args.backbone, strategy="full", pretrained=True)
    params = parse_params(raw)
    data = synthetic_data(params, args.images)
    print(f"{args.backbone}, {len(data.x_train)} training / {len(data.x_val)} validation images of "
          f"{params.data.image_height}x{params.data.image_width}, batch {params.train.batch_size}, "
          f"backend {keras.backend.backend()}")
    pipeline_overhead(params, data, args.epochs)
    uncached = frozen_speedup(params, data, args.frozen_epochs)
    probe_speedup(params, data, uncached, args.frozen_epochs)


if __name__ == "__main__":
    main()
