"""Real plates: which source of initial weights reads them after training on a few hundred?

    python benchmarks/bench_real.py CSV [--test CSV] [--params params.yaml] [--seeds 0 1 2] ...

Trains the project's reader on the real plates of CSV (``image_path,plate_text``; without
``--test`` a seeded 40 % of it is held out as the test set, no plate string in both) from four
sources of initial weights and prints plate and character accuracy on the test plates, mean
and 95 % t-interval over the seeds, and the wall time of each arm:

- ``scratch``: random weights;
- ``imagenet``: ImageNet weights;
- ``synthetic``: pretrained from random weights on synthetic plates like CSV's labels;
- ``imagenet+synthetic``: pretrained from ImageNet on those synthetic plates.

The synthetic plates follow ``--params``' ``generate`` look (styles, prefix glyphs, capture)
with labels imitating CSV's (``generate.formats: auto``); each source is pretrained once, so
the intervals cover the fine-tuning seeds, not the pretraining's. Everything runs through the
training engine, as the pipeline does; work files go to ``--workdir`` (a temporary folder).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from transferlab import engine, split, synth  # noqa: E402
from transferlab.config import Params, load_params  # noqa: E402
from transferlab.data import load_prepared  # noqa: E402
from transferlab.formats import generator_label_model, resolve_plates  # noqa: E402
from transferlab.pretrain import pretrain_params, synthetic_data  # noqa: E402
from transferlab.stats import t_interval  # noqa: E402

SOURCES = ("scratch", "imagenet", "synthetic", "imagenet+synthetic")


def bench_params(args, workdir: Path) -> Params:
    raw = load_params(args.params).model_dump()
    raw["plates"].update(alphabet="auto", slots="auto")
    raw["data"].update(source=str(Path(args.csv).resolve()), test_source=str(Path(args.test).resolve())
                       if args.test else None, image_height=args.height, image_width=args.width)
    raw["split"].update(output=str(workdir / "prepared"), val_fraction=0.15, test_fraction=0.4)
    raw["generate"].update(formats="auto", format_weights=None, count=args.synthetic, height=args.height,
                           width=args.width, output=str(workdir / "synthetic"))
    raw["pretrain"].update(enabled=True, epochs=args.pretrain_epochs, learning_rate=args.pretrain_lr)
    raw["train"].update(backbone=args.backbone, pretrained=False, strategy="scratch", epochs=args.epochs, learning_rate=args.lr,
                        head_pooling=args.head_pooling, early_stopping_patience=args.patience, init_from=None)
    raw["augment"].update(strength=args.augment, copies=args.copies)
    return resolve_plates(Params.model_validate(raw))


def source_params(params: Params, source: str, seed: int, init_from: str | None) -> Params:
    train = {**params.train.model_dump(), "seed": seed, "init_from": init_from,
             "pretrained": source in ("imagenet", "imagenet+synthetic"),
             "strategy": "scratch" if source == "scratch" else "full"}
    return Params.model_validate({**params.model_dump(), "train": train})


def pretrain(params: Params, real, synthetic, imagenet: bool, path: Path) -> float:
    """Pretrain on the synthetic plates; the model goes to ``path``; returns the wall seconds."""
    started = time.monotonic()
    p = pretrain_params(Params.model_validate({**params.model_dump(), "train": {
        **params.train.model_dump(), "pretrained": imagenet}}))
    result = engine.fit(p, synthetic, verbose=False)
    result.model.save(path)
    batch = p.train.batch_size
    syn = engine.score_model(result.model, synthetic, synthetic.x_val, synthetic.y_val, batch)
    zero_shot = engine.score_model(result.model, real, real.x_test, real.y_test, batch)
    print(f"pretrain ({'ImageNet' if imagenet else 'random'} start): kept epoch {result.selection.kept_epoch}; "
          f"synthetic validation plate accuracy {syn['plate_accuracy']:.3f}; real test without fine-tuning "
          f"{zero_shot['plate_accuracy']:.3f} (char {zero_shot['char_accuracy']:.3f}); {time.monotonic() - started:.0f}s",
          flush=True)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv")
    parser.add_argument("--test", help="a fixed test CSV (default: 40 %% of CSV held out)")
    parser.add_argument("--params", default="params.yaml", help="look of the synthetic plates (generate section)")
    parser.add_argument("--sources", nargs="+", default=list(SOURCES), choices=SOURCES)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--synthetic", type=int, default=20000, help="synthetic plates rendered")
    parser.add_argument("--pretrain-epochs", type=int, default=5)
    parser.add_argument("--pretrain-lr", type=float, default=2e-3)
    parser.add_argument("--epochs", type=int, default=30, help="fine-tuning epochs on the real plates")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--patience", type=int, default=8)
    parser.add_argument("--augment", type=float, default=0.3)
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--height", type=int, default=48)
    parser.add_argument("--width", type=int, default=144)
    parser.add_argument("--head-pooling", default="spatial", choices=("global", "spatial"))
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    if args.backbone == "plain_cnn" and {"imagenet", "imagenet+synthetic"} & set(args.sources):
        parser.error("plain_cnn has no ImageNet weights: choose --sources scratch synthetic")
    started = time.monotonic()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_real_"))
    workdir.mkdir(parents=True, exist_ok=True)
    params = bench_params(args, workdir)
    split.run(params)
    real = load_prepared(params, test=True)
    print(f"real plates: {len(real.x_train)} train / {len(real.x_val)} validation / {len(real.x_test)} test; "
          f"{params.plates.slots} slots, alphabet {params.plates.alphabet}", flush=True)
    models: dict[str, str | None] = {"scratch": None, "imagenet": None}
    seconds = {"scratch": 0.0, "imagenet": 0.0}
    if {"synthetic", "imagenet+synthetic"} & set(args.sources):
        t0 = time.monotonic()
        synth.generate_dataset(params.generate, params.plates, progress=False,
                               workers=synth.default_workers(args.synthetic), labels=generator_label_model(params))
        synthetic = synthetic_data(params, real)
        render = time.monotonic() - t0
        print(f"rendered {args.synthetic} synthetic plates like the real labels in {render:.0f}s", flush=True)
        for source, imagenet in (("synthetic", False), ("imagenet+synthetic", True)):
            if source in args.sources:
                models[source] = str(workdir / f"{source}.keras")
                seconds[source] = render + pretrain(params, real, synthetic, imagenet, Path(models[source]))
    rows = []
    for source in args.sources:
        plate, char, t0 = [], [], time.monotonic()
        for seed in args.seeds:
            p = source_params(params, source, seed, models[source])
            result = engine.fit(p, real.augmented(p.augment), verbose=False)
            scores = engine.score_model(result.model, real, real.x_test, real.y_test, p.train.batch_size)
            plate.append(scores["plate_accuracy"])
            char.append(scores["char_accuracy"])
            print(f"{source} seed {seed}: test plate accuracy {plate[-1]:.3f}, char {char[-1]:.3f} "
                  f"(kept epoch {result.selection.kept_epoch} of {result.epochs})", flush=True)
        rows.append((source, t_interval(plate), t_interval(char), (time.monotonic() - t0) / len(args.seeds),
                     seconds[source]))
    print(f"\n{len(real.x_test)} test plates, {len(args.seeds)} seeds, 95 % t-intervals over seeds")
    print(f"{'source':<20} {'plate accuracy':<24} {'char accuracy':<24} {'pretrain s':>10} {'train s/seed':>12}")
    for source, plate, char, train_s, pre_s in rows:
        print(f"{source:<20} {plate.estimate:.3f} ({plate.low:.3f} … {plate.high:.3f})  "
              f"{char.estimate:.3f} ({char.low:.3f} … {char.high:.3f})  {pre_s:>10.0f} {train_s:>12.0f}")
    print(f"wall time: {(time.monotonic() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
