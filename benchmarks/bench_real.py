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

The synthetic plates follow ``--params``' ``generate`` look (styles, prefix glyphs, capture,
render size) with labels imitating CSV's (``generate.formats: auto``); each source is
pretrained once, so the intervals cover the fine-tuning seeds, not the pretraining's. The
defaults are the in-domain recipe the README measured through the pipeline (30,000 plates,
4 pretraining epochs; fine-tuning at 0.0005 for up to 15 epochs, augmentation 0.3 x 4 copies). Everything runs through the
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

from arms import print_table, run_arm  # noqa: E402
from transferlab import split  # noqa: E402
from transferlab.config import Params, load_params  # noqa: E402
from transferlab.data.arrays import load_prepared  # noqa: E402
from transferlab.generate.formats import resolve_plates  # noqa: E402
from transferlab.pretrain import pretrain_model  # noqa: E402

SOURCES = ("scratch", "imagenet", "synthetic", "imagenet+synthetic")


def bench_params(args, workdir: Path) -> Params:
    raw = load_params(args.params).model_dump()
    raw["plates"].update(alphabet="auto", slots="auto")
    raw["data"].update(source=str(Path(args.csv).resolve()), test_source=str(Path(args.test).resolve())
                       if args.test else None, image_height=args.height, image_width=args.width)
    raw["split"].update(output=str(workdir / "prepared"), val_fraction=0.15, test_fraction=0.4)
    raw["pretrain"].update(epochs=args.pretrain_epochs, learning_rate=args.pretrain_lr)
    raw["train"].update(backbone=args.backbone, pretrained=False, strategy="scratch", epochs=args.epochs, learning_rate=args.lr,
                        head_pooling=args.head_pooling, early_stopping_patience=args.patience, init_from=None)
    raw["augment"].update(strength=args.augment, copies=args.copies)
    return resolve_plates(Params.model_validate(raw))


def set_up(args, prefix: str):
    """The benchmark's params, its split of the CSV and its work folder (``--workdir`` or a new
    temporary one named ``prefix...``)."""
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix=prefix)).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    params = bench_params(args, workdir)
    return params, prepare(params, workdir), workdir


def prepare(params: Params, workdir: Path):
    """Run the split stage inside ``workdir`` (it writes metrics/data.json relative to the working
    directory: run from a checkout, it would overwrite the committed one); the real plates with
    their test split."""
    here = Path.cwd()
    os.chdir(workdir)
    try:
        split.run(params)
    finally:
        os.chdir(here)
    return load_prepared(params, test=True)


def source_params(params: Params, source: str, seed: int, init_from: str | None) -> Params:
    train = {**params.train.model_dump(), "seed": seed, "init_from": init_from,
             "pretrained": source in ("imagenet", "imagenet+synthetic"),
             "strategy": "scratch" if source == "scratch" else "full"}
    return Params.model_validate({**params.model_dump(), "train": train})


def pretrain(params: Params, real, source: str, count: int, workdir: Path) -> tuple[str, float]:
    """Render plates like the real ones and pretrain on them; (model path, wall seconds)."""
    started = time.monotonic()
    folder = workdir / source.replace("+", "_")
    folder.mkdir(parents=True, exist_ok=True)
    found = pretrain_model(params, real, count, source == "imagenet+synthetic", folder)
    seconds = time.monotonic() - started
    print(f"pretrain {source}: {count} synthetic plates, kept epoch {found['kept_epoch']}; synthetic validation "
          f"plate accuracy {found['synthetic_val_plate_accuracy']:.3f}, real validation before fine-tuning "
          f"{found['real_val_plate_accuracy']:.3f} (char {found['real_val_char_accuracy']:.3f}); {seconds:.0f}s",
          flush=True)
    return str(folder / "model.keras"), seconds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The data, pretraining and fine-tuning options :func:`bench_params` reads (shared with
    bench_augment_mode.py, which changes some defaults with ``parser.set_defaults``)."""
    parser.add_argument("csv")
    parser.add_argument("--test", help="a fixed test CSV (default: 40 %% of CSV held out)")
    parser.add_argument("--params", default="params.yaml", help="look of the synthetic plates (generate section)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--synthetic", type=int, default=30000, help="synthetic plates rendered")
    parser.add_argument("--pretrain-epochs", type=int, default=4)
    parser.add_argument("--pretrain-lr", type=float, default=2e-3)
    parser.add_argument("--epochs", type=int, default=15, help="fine-tuning epochs on the real plates")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--augment", type=float, default=0.3)
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--height", type=int, default=48)
    parser.add_argument("--width", type=int, default=144)
    parser.add_argument("--head-pooling", default="spatial", choices=("global", "spatial"))
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--workdir", default=None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--sources", nargs="+", default=list(SOURCES), choices=SOURCES)
    args = parser.parse_args()
    if args.backbone == "plain_cnn" and {"imagenet", "imagenet+synthetic"} & set(args.sources):
        parser.error("plain_cnn has no ImageNet weights: choose --sources scratch synthetic")
    started = time.monotonic()
    params, real, workdir = set_up(args, "bench_real_")
    print(f"real plates: {len(real.x_train)} train / {len(real.x_val)} validation / {len(real.x_test)} test; "
          f"{params.plates.slots} slots, alphabet {params.plates.alphabet}", flush=True)
    models: dict[str, str | None] = {"scratch": None, "imagenet": None}
    seconds = {"scratch": 0.0, "imagenet": 0.0}
    for source in ("synthetic", "imagenet+synthetic"):
        if source in args.sources:
            models[source], seconds[source] = pretrain(params, real, source, args.synthetic, workdir)
    metrics = ("plate_accuracy", "char_accuracy")
    arms = []
    for source in args.sources:
        arm = run_arm(source, lambda seed, source=source: source_params(params, source, seed, models[source]),
                      real, args.seeds, metrics)
        arm.extra_seconds = seconds[source]
        arms.append(arm)
    print_table(arms, metrics, len(real.x_test), baseline="scratch" if "scratch" in args.sources else None)
    print(f"wall time: {(time.monotonic() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
