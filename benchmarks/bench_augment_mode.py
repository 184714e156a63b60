"""Per-epoch augmentation against offline copies on real plates, at the same budget.

    python benchmarks/bench_augment_mode.py CSV --test CSV [--init-from MODEL | --synthetic N] [--seeds 0 1 2] ...
    python benchmarks/bench_augment_mode.py CSV --test CSV --quick     # a smoke run: tiny CNN, 2 epochs, 1 seed

Fine-tunes the same model on the real plates of CSV (``image_path,plate_text``; ``--test``: a
fixed test CSV, else a seeded 40 % of CSV is held out) twice per seed, from the same initial
weights and with the same schedule (the modes alternate, and which goes first alternates by seed):

- ``offline``: ``augment.copies`` variants of every training image drawn once, before training
  (what the augment stage writes to disk); every epoch sees the same ones;
- ``per_epoch``: ``copies`` fresh variants of every image drawn before each epoch by the training
  engine (``augment.mode: per_epoch``).

Both epochs hold the originals plus ``copies`` variants of each at ``--augment`` strength, so the
optimizer steps are the same; early stopping is off by default (``--patience 0``: every epoch is
trained, the best validation epoch kept), so both modes train the same number of epochs. The
augmentation seed follows the training seed. Prints validation and test plate and character
accuracy per mode (mean and 95 % t-interval over the seeds), the paired per_epoch − offline
difference in test plate accuracy, and the wall time per seed with the part spent augmenting.

Initial weights: ``--init-from`` a model (e.g. a synthetic pretraining of the pipeline,
``pretrain/model.keras``, read at the same size and alphabet), or ``--synthetic N`` plates rendered
like CSV's labels in ``--params``' look and pretrained on once from ImageNet (its time printed
apart), or neither: ``--start`` ImageNet (default) or random weights. With a few hundred real
plates ImageNet weights alone read almost none (README, *In-domain transfer*), so a comparison
that means something starts from a synthetic pretraining. Data, schedule and pretraining options
are benchmarks/bench_real.py's, which this reuses.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from arms import Arm, print_table, run_arm  # noqa: E402
from bench_real import add_arguments, pretrain, set_up, source_params  # noqa: E402
from transferlab.config import Params  # noqa: E402

MODES = ("offline", "per_epoch")
METRICS = ("plate_accuracy", "char_accuracy")
QUICK = {"backbone": "plain_cnn", "start": "scratch", "epochs": 2, "seeds": [0], "height": 32, "width": 96,
         "copies": 1, "synthetic": 0, "init_from": None}


def mode_params(params: Params, source: str, mode: str, seed: int, init_from: str | None) -> Params:
    """The fine-tuning of ``source`` at ``seed`` with augmentation drawn in ``mode`` (its seed the training seed's)."""
    tuned = source_params(params, source, seed, init_from)
    augment = {**tuned.augment.model_dump(), "mode": mode, "seed": seed}
    return Params.model_validate({**tuned.model_dump(), "augment": augment})


def merged(name: str, parts: list[Arm]) -> Arm:
    """One arm of ``parts``, each a single seed's run: scores in seed order, times per seed."""
    arm = Arm(name, {key: [v for part in parts for v in part.scores[key]] for key in parts[0].scores})
    arm.kept = [k for part in parts for k in part.kept]
    arm.seconds = sum(part.seconds for part in parts) / len(parts)
    arm.augment_seconds = sum(part.augment_seconds for part in parts) / len(parts)
    return arm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--init-from", help="initial weights: a .keras model (e.g. pretrain/model.keras)")
    parser.add_argument("--start", default="imagenet", choices=("imagenet", "scratch"),
                        help="initial weights without --init-from or --synthetic")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--quick", action="store_true", help="smoke run: " + ", ".join(f"{k} {v}" for k, v in QUICK.items()))
    parser.set_defaults(synthetic=0, patience=0)  # bench_real pretrains 30,000 plates and stops early by default
    args = parser.parse_args()
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    if args.init_from and args.synthetic:
        parser.error("--init-from and --synthetic both give initial weights: choose one")
    if args.copies < 1 or args.augment <= 0:
        parser.error("--copies >= 1 and --augment > 0: without augmentation the two modes are the same")
    started = time.monotonic()
    params, real, workdir = set_up(args, "bench_augment_mode_")
    print(f"real plates: {len(real.x_train)} train / {len(real.x_val)} validation / {len(real.x_test)} test; "
          f"{params.plates.slots} slots, alphabet {params.plates.alphabet}; {params.train.backbone} at "
          f"{args.height}x{args.width}, {args.epochs} epochs of {len(real.x_train) * (1 + args.copies)} images "
          f"(the originals and {args.copies} augmented variant(s) of each at strength {args.augment:g}), seeds {args.seeds}", flush=True)
    source, init_from, pretrain_seconds = args.start, None, 0.0
    if args.init_from:
        source, init_from = "imagenet+synthetic", str(Path(args.init_from).resolve())
    elif args.synthetic:
        source = "imagenet+synthetic"
        init_from, pretrain_seconds = pretrain(params, real, source, args.synthetic, workdir)
    print(f"initial weights: {init_from or source}", flush=True)
    runs: dict[str, list[Arm]] = {mode: [] for mode in args.modes}
    for i, seed in enumerate(args.seeds):
        # The modes alternate, so a change in the machine's load reaches both, and which goes first
        # alternates too: the process's first fit also pays one-time set-up (tracing, imports).
        for mode in args.modes if i % 2 == 0 else args.modes[::-1]:
            runs[mode].append(run_arm(mode, lambda s, mode=mode: mode_params(params, source, mode, s, init_from),
                                      real, [seed], METRICS, validation=True))
    arms = [merged(mode, parts) for mode, parts in runs.items()]
    for arm in arms:
        arm.extra_seconds = pretrain_seconds
    print_table(arms, (*METRICS, *(f"val_{m}" for m in METRICS)), len(real.x_test),
                baseline="offline" if len(arms) > 1 else None)
    for arm in arms:
        print(f"{arm.name}: {arm.seconds:.0f}s per seed, of which {arm.augment_seconds:.1f}s augmenting "
              f"({100 * arm.augment_seconds / max(arm.seconds, 1e-9):.1f} %)")
    if pretrain_seconds:
        print(f"pretraining (once, shared by both modes): {pretrain_seconds / 60:.1f} min")
    print(f"wall time: {(time.monotonic() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
