"""Stage ``look``: fit the synthetic plates' look to the user's real training crops.

In-domain transfer pretrains on rendered plates; it works when the renders look like the
user's plates (the default EU look read 3 % of real US/European validation plates zero-shot).
So before ``generate`` renders, this stage searches the renderer's look keys (plate styles,
EU strip, prefix glyphs, bare '1', every capture condition) with a seeded Optuna TPE study:
each trial renders ``look.samples`` plates with the labels' formats and measures their
:class:`~transferlab.look.distance.FeatureDistance` to as many real training crops (never
validation or test ones). The best look is then tried with each other prefix set. The render
size is the real crops' median size. Keys the user changed from their defaults are kept, not
searched.

Writes ``<look.output>/look.yaml`` (the effective look, which ``generate`` applies),
``preview.png`` (real crops beside renders of the fitted look), ``preview_default.png`` (beside
the look params.yaml gives), ``trials.csv``, ``trials.png`` and ``metrics/look.json``.
Without pretraining on the user's own plates it writes ``look.yaml`` with ``fitted: false``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from transferlab.config import Params
from transferlab.config.recipe import value_of, with_updates
from transferlab.generate.fitted import LOOK_FILE, LOOK_KEYS, METRICS_FILE
from transferlab.io import atomic_output_dir, write_json
from transferlab.look import space
from transferlab.look.crops import render_look, training_crops


def applies(params: Params) -> tuple[bool, str]:
    """(whether a look is fitted, why not)."""
    if not params.look.fit:
        return False, "look.fit is false"
    if not params.kind.plate_strings:
        return False, f"task is {params.task}: looks are for rendered plates"
    if params.reads_generator_output:
        return False, "data.source is generate's own output: there is no real look to fit"
    if not params.pretrain.enabled:
        return False, "pretrain.enabled is false: no stage reads synthetic plates"
    return True, ""


def run(params: Params) -> dict:
    fit, why = applies(params)
    if not fit:
        with atomic_output_dir(params.look.output) as out:
            (out / LOOK_FILE).write_text(yaml.safe_dump({"fitted": False, "why": why}, sort_keys=False),
                                         encoding="utf-8")
        write_json(METRICS_FILE, {"fitted": False, "why": why})
        print(f"look: not fitted: {why}")
        return {"fitted": False}
    summary = fit_look(params)
    write_json(METRICS_FILE, summary)
    return summary


def fit_look(params: Params) -> dict:
    """Search the look (see the module's text) and write it to ``look.output``; returns the summary
    that the stage writes to metrics/look.json (the study fits its own look through this too)."""
    import optuna

    from transferlab.look.distance import FeatureDistance

    stage_started = started = time.perf_counter()
    crops, size = training_crops(params)
    print(f"look: {len(crops)} real training crops, median size {size[1]}x{size[0]}; measuring renders against "
          "them on frozen ImageNet features")
    distance = FeatureDistance(crops)
    kept = space.kept_keys(params)
    base = {f"generate.{k}": value_of(params, f"generate.{k}") for k in ("height", "width", "uniform_share")}
    measured = {"generate.height": size[0], "generate.width": size[1], "generate.uniform_share": space.UNIFORM_SHARE}
    fixed = {key: kept.get(key, measured[key]) for key in base}
    keys = space.searched_keys(params)

    def score(look: dict[str, Any], with_size: dict[str, Any]) -> tuple[float, np.ndarray]:
        images = render_look(with_updates(params, {**look, **with_size}), len(crops), params.look.seed)
        return distance(images), images

    default_distance, default_images = score({}, {})
    rows: list[dict] = []
    best: list = [None, np.inf]

    def objective(trial) -> float:
        look = space.suggest(trial, keys)
        value, _ = score(look, fixed)
        rows.append({"trial": trial.number, "distance": round(value, 3), **space.trial_params(look)})
        if value < best[1]:
            best[:] = [look, value]
        _progress(trial.number + 1, params.look.trials, value, best[1], started, space.describe(look))
        return value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=params.look.seed))
    for look in space.starting_looks(params, keys)[:params.look.trials]:
        study.enqueue_trial(space.trial_params(look))
    started = time.perf_counter()  # the time left is the trials' alone
    study.optimize(objective, n_trials=params.look.trials)
    for number, other in enumerate(space.alternatives(best[0]), start=params.look.trials):
        value, _ = score(other, fixed)
        rows.append({"trial": number, "distance": round(value, 3), "refine": True, **space.trial_params(other)})
        print(f"look: best look with one choice changed [{space.describe(other)}]: distance {value:.1f} "
              f"(best {min(value, best[1]):.1f})", flush=True)
        if value < best[1]:
            best[:] = [other, value]
    look = {**best[0], **fixed}
    fitted = {k: value_of(with_updates(params, look), f"generate.{k}") for k in LOOK_KEYS}
    fitted_distance, fitted_images = score(look, {})
    seconds = time.perf_counter() - stage_started
    summary = {"fitted": True, "distance_default": round(default_distance, 3),
               "distance_fitted": round(fitted_distance, 3), "trials": params.look.trials,
               "real_crops": len(crops), "render_height": fitted["height"], "render_width": fitted["width"],
               "kept_from_params": sorted(kept), "seconds": round(seconds, 1)}
    _write(params, fitted, summary, rows, crops, fitted_images, default_images)
    print(f"look: fitted in {summary['seconds']:.0f} s: distance to the real crops {fitted_distance:.1f} "
          f"(params.yaml's look: {default_distance:.1f}); {Path(params.look.output) / LOOK_FILE}, preview.png")
    return summary


def _progress(done: int, total: int, value: float, best: float, started: float, tried: str) -> None:
    elapsed = time.perf_counter() - started
    left = elapsed / done * (total - done)
    print(f"look: trial {done}/{total} [{tried}]: distance {value:.1f} (best {best:.1f}); {left / 60:.1f} min left",
          flush=True)


def _write(params: Params, fitted: dict, summary: dict, rows: list[dict], crops: np.ndarray,
           fitted_images: np.ndarray, default_images: np.ndarray) -> None:
    import pandas as pd

    from transferlab.generate.render import save_comparison_preview
    from transferlab.look.plots import plot_trials

    header = ("# The look generate renders: fitted by the look stage to the real training crops\n"
              f"# (Fréchet distance on frozen ImageNet features {summary['distance_fitted']}, params.yaml's look "
              f"{summary['distance_default']}).\n# Keys kept as set in params.yaml: "
              f"{', '.join(summary['kept_from_params']) or 'none'}. Paste the generate section into params.yaml "
              "to keep it.\n")
    doc = {"fitted": True, "generate": fitted, "distance": {"fitted": summary["distance_fitted"],
                                                            "params_yaml": summary["distance_default"]}}
    count = min(12, len(crops))
    with atomic_output_dir(params.look.output) as out:
        (out / LOOK_FILE).write_text(header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True),
                                     encoding="utf-8")
        save_comparison_preview(list(fitted_images[:count]), list(crops[:count]), out / "preview.png")
        save_comparison_preview(list(default_images[:count]), list(crops[:count]), out / "preview_default.png")
        frame = pd.DataFrame(rows)
        frame.to_csv(out / "trials.csv", index=False)
        plot_trials(frame, summary, out / "trials.png")
