"""Tuning-stage performance, measured side by side in one run.

    python benchmarks/bench_tune.py [--images 750] [--trials 6] [--epochs 4] [--finetune-epochs 3]
                                    [--default-trials 2]

Both parts start from the repository's params.yaml (its ``tune`` section, or the defaults of
:class:`transferlab.config.TuneConfig` while it has none).

1. Pruning must pay: the same study (same search space, seed and number of trials) once
   without a pruner and once with the median pruner, on a small but real configuration:
   the first ``--images`` synthetic plates of the default dataset, all of them used, with the
   params.yaml model and training settings and ``--epochs`` per trial. Reports the epochs
   trained, the CPU seconds (all threads: steadier than wall time when other jobs share the
   cores) and the wall seconds of each, the compute the pruner saved, and the best
   validation value each reached. The sampler is re-seeded per trial, so both studies
   propose the same start-up trials; a warm-up trial (not timed) takes TensorFlow's and the
   weight cache's one-off costs.
2. Trials/hour at the default configuration: params.yaml and its tune section as they are,
   on the default dataset (``data/prepared`` when it matches params.yaml, else generated),
   timed over ``--default-trials`` trials. These are the study's first (random start-up)
   trials, which the median pruner never prunes: the rate without pruning savings.

Everything is written to a temporary project folder (its own MLflow store and Optuna
storage); the repository's data is only read.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from transferlab import split, tune  # noqa: E402

from transferlab.generate import render as synth
from transferlab.config import parse_params  # noqa: E402


REPO = Path(__file__).resolve().parents[1]


def repo_params():
    """params.yaml of the repository and its tune section (defaults while it has none)."""
    return tune.load_tune_params(REPO / "params.yaml")


def with_data(params, root: Path, count: int):
    """``params`` on the default dataset's first ``count`` images, generated and split under ``root``."""
    raw = params.model_dump()
    raw["generate"].update(count=count, output=str(root / f"synthetic-{count}"))
    raw["data"]["source"] = str(root / f"synthetic-{count}")
    raw["split"]["output"] = str(root / f"prepared-{count}")
    raw["train"]["output"] = str(root / "models")
    small = parse_params(raw)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        synth.run(small)
        split.run(small)
    return small


def default_data(params, root: Path):
    """The repository's prepared default data when it matches params.yaml, else a fresh copy."""
    prepared = REPO / params.split.output
    meta = prepared / "meta.json"
    if meta.is_file():
        info = json.loads(meta.read_text())
        if (info.get("image_height"), info.get("image_width")) == (params.data.image_height, params.data.image_width):
            raw = params.model_dump()
            raw["split"]["output"] = str(prepared)
            raw["train"]["output"] = str(root / "models")
            return parse_params(raw), f"{prepared} (the repository's)"
    return with_data(params, root, params.generate.count), "generated"


def study(params, base_cfg, label: str, quiet: bool, **settings) -> dict:
    cfg = base_cfg.model_copy(update={"study_name": label, "output": str(Path.cwd() / f"{label}.yaml"), **settings})
    out = io.StringIO()
    started, cpu = time.monotonic(), time.process_time()
    with contextlib.redirect_stdout(out) if quiet else contextlib.nullcontext():
        summary = tune.run(params, cfg)
    summary["wall_seconds"] = time.monotonic() - started
    summary["cpu_seconds"] = time.process_time() - cpu  # all threads; steadier than wall time on a shared machine
    trial_lines = [line for line in out.getvalue().splitlines() if line.startswith("tune: trial ")]
    for line in trial_lines if label != "warm-up" else []:
        print(f"    {label}: {line.removeprefix('tune: ')}")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=750, help="synthetic images for the pruning comparison")
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=4, help="epochs per trial (finetune: of the head phase)")
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--default-trials", type=int, default=2, help="0 skips the default-configuration rate")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-tune-") as tmp:
        root = Path(tmp)
        (root / "dvc.yaml").write_text("stages: {}\n")  # the temporary project root (MLflow store, study db)
        os.chdir(root)
        print(f"{os.cpu_count()} CPU(s); load average at start {os.getloadavg()[0]:.1f}")

        params, tune_cfg = repo_params()
        small = with_data(params, root, args.images)
        data = tune.load_tune_data(small, tune_cfg.model_copy(update={"train_images": None, "val_images": None}))
        common = dict(n_trials=args.trials, epochs=args.epochs, finetune_epochs=args.finetune_epochs, seed=0,
                      startup_trials=3, pruner_startup_trials=2, pruner_warmup_epochs=1, train_images=None,
                      val_images=None)
        print(f"\n1. Pruning: {args.trials} trials; {len(data.x_train)} training / {len(data.x_val)} validation "
              f"images at {small.data.image_height}x{small.data.image_width}; {small.train.backbone} "
              f"pretrained={small.train.pretrained}, strategy {small.train.strategy}, {args.epochs} epochs"
              f"{f' + {args.finetune_epochs} finetune' if small.train.strategy == 'finetune' else ''}; "
              f"metric {tune.metric_name(small, tune_cfg)}; searching {', '.join(tune.searched_keys(tune_cfg.search))}")
        # Not timed: the first trial of a process pays one-off costs (TensorFlow start-up, the
        # ImageNet weight conversion cache) that would otherwise be billed to the first study.
        study(small, tune_cfg, "warm-up", quiet=True, **{**common, "n_trials": 1, "epochs": 1, "finetune_epochs": 1})
        results = {}
        for pruner in ("none", "median"):
            results[pruner] = study(small, tune_cfg, f"pruner-{pruner}", quiet=True, pruner=pruner, **common)
        base, pruned = results["none"], results["median"]
        print(f"\n{'':30}{'no pruner':>12}{'median':>12}{'ratio':>10}")
        for name, key, fmt in (("epochs trained", "epochs_run", "{:.0f}"),
                               ("CPU seconds (all threads)", "cpu_seconds", "{:.0f}"),
                               ("seconds in trials", "trial_seconds", "{:.0f}"),
                               ("seconds, wall (incl. set-up)", "wall_seconds", "{:.0f}"),
                               (f"best {base['metric']}", "best_value", "{:.4f}")):
            a, b = base[key], pruned[key]
            ratio = f"{b / a:.2f}" if a else "-"
            print(f"{name:30}{fmt.format(a):>12}{fmt.format(b):>12}{ratio:>10}")
        print(f"{'trials pruned':30}{base['pruned']:>12}{pruned['pruned']:>12}")
        saved_epochs = 1 - pruned["epochs_run"] / base["epochs_run"]
        saved_cpu = 1 - pruned["cpu_seconds"] / base["cpu_seconds"]
        print(f"compute saved by the pruner: {saved_epochs:.0%} of the epochs, {saved_cpu:.0%} of the CPU time; "
              f"best value {pruned['best_value'] - base['best_value']:+.4f} against no pruning")
        for label, result in results.items():
            print(f"  trials/hour ({label}): {args.trials / result['wall_seconds'] * 3600:.1f}")

        if args.default_trials:
            default, source = default_data(params, root)
            data = tune.load_tune_data(default, tune_cfg)
            strategy = default.train.strategy
            epochs = tune_cfg.epochs or default.train.epochs
            print(f"\n2. Default configuration: params.yaml + its tune section; data {source}; trials train on "
                  f"{len(data.x_train)} / score on {len(data.x_val)} images at {default.data.image_height}x"
                  f"{default.data.image_width}; {default.train.backbone} pretrained={default.train.pretrained}, "
                  f"strategy {strategy}, {epochs} epochs; metric {tune.metric_name(default, tune_cfg)}; "
                  f"timing {args.default_trials} trials")
            result = study(default, tune_cfg, "default", quiet=True, n_trials=args.default_trials)
            print(f"  {args.default_trials} trials in {result['wall_seconds']:.0f}s (study set-up and plots included): "
                  f"{args.default_trials / result['wall_seconds'] * 3600:.1f} trials/hour; "
                  f"best {result['metric']} {result['best_value']:.4f}")
        print(f"load average at the end {os.getloadavg()[0]:.1f} (other processes share these cores)")


if __name__ == "__main__":
    main()
