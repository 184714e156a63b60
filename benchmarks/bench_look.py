"""The synthetic-to-real gap before and after the look is fitted, on your real plates.

    python benchmarks/bench_look.py CSV [--test CSV] [--synthetic 15000] [--pretrain-epochs 4] [--trials 40]

Splits CSV (``image_path,plate_text``) as the pipeline does, fits the renderer's look to the
training crops (the ``look`` stage's own code), then pretrains Lite0 from ImageNet twice through
the training engine, once on plates in params.yaml's look and once in the fitted look, the same
number of plates and epochs each, and prints for both: the Fréchet distance of the renders to
the real training crops, the synthetic validation accuracy, and the accuracy on the real
validation plates before any fine-tuning (zero-shot). The budget is reduced (the pipeline
pretrains on 30,000 plates for 4 epochs): the figures compare the looks, not the final reader.
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

from transferlab import look, split  # noqa: E402
from transferlab.config import Params, load_params, recipe  # noqa: E402
from transferlab.data.arrays import load_prepared  # noqa: E402
from transferlab.generate.fitted import read_look, with_look  # noqa: E402
from transferlab.generate.formats import resolve_plates  # noqa: E402
from transferlab.pretrain import pretrain_model  # noqa: E402


def bench_params(args, workdir: Path) -> Params:
    raw = load_params(args.params).model_dump()
    raw["plates"].update(alphabet="auto", slots="auto")
    raw["data"].update(source=str(Path(args.csv).resolve()),
                       test_source=str(Path(args.test).resolve()) if args.test else None)
    raw["split"].update(output=str(workdir / "prepared"))
    raw["pretrain"].update(enabled=True, epochs=args.pretrain_epochs)
    raw["look"].update(trials=args.trials, output=str(workdir / "look"))
    return resolve_plates(Params.model_validate(raw))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv")
    parser.add_argument("--test", default=None, help="a fixed test CSV (only keeps its plates out of the split)")
    parser.add_argument("--params", default="params.yaml")
    # Measured on real Chinese plates: 8,000 plates x 2 epochs taught neither look to read a whole
    # synthetic plate (synthetic validation plate accuracy 0.000 for both), so the zero-shot figures
    # said nothing; the pipeline's pretraining read 0.55 of its synthetic plates after ~57,000
    # image-epochs. Half the pipeline's budget (60,000 image-epochs) per look.
    parser.add_argument("--synthetic", type=int, default=15000, help="plates rendered per look")
    parser.add_argument("--pretrain-epochs", type=int, default=4)
    parser.add_argument("--trials", type=int, default=40, help="look.trials of the fit")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_look_")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    params = bench_params(args, workdir)
    os.chdir(workdir)  # the stages' own files (metrics/*.json, mlruns) stay out of the project
    split.run(params)
    real = load_prepared(params)
    params, _ = recipe.apply(params, n_train=len(real.x_train))  # the head the pipeline pretrains
    params = params.model_copy(update={"pretrain": params.pretrain.model_copy(
        update={"epochs": args.pretrain_epochs})})
    started = time.monotonic()
    fit = look.fit_look(params)
    print(f"look fitted in {time.monotonic() - started:.0f}s")
    rows = []
    looks = (("params.yaml's look", "default", params, fit["distance_default"]),
             ("fitted look", "fitted", with_look(params, read_look(params)), fit["distance_fitted"]))
    for name, folder, look_params, distance in looks:
        started = time.monotonic()
        found = pretrain_model(look_params, real, args.synthetic, True, workdir / folder)
        rows.append((name, distance, found, time.monotonic() - started))
        print(f"{name}: pretrained in {rows[-1][3]:.0f}s", flush=True)
    print(f"\n{args.synthetic} synthetic plates x {args.pretrain_epochs} epochs per look, Lite0 from ImageNet; "
          f"{len(real.x_val)} real validation plates")
    print("| look | distance to the real crops | synthetic validation plate acc. | real validation plate acc. "
          "(zero-shot) | real validation char acc. | pretraining |")
    print("|---|---|---|---|---|---|")
    for name, distance, found, seconds in rows:
        print(f"| {name} | {distance:.1f} | {found['synthetic_val_plate_accuracy']:.3f} | "
              f"{found['real_val_plate_accuracy']:.3f} | {found['real_val_char_accuracy']:.3f} | {seconds / 60:.1f} min |")


if __name__ == "__main__":
    main()
