"""What a study reports: the best trial's parameters (``tune.output``), whether it is a clear
winner, the command that trains it, metrics, parameter importances and Optuna's plots."""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from transferlab.config import Params, TuneConfig
from transferlab.errors import TransferlabError
from transferlab.tune.storage import BASELINE_ATTR, Counts, count_trials, shown_url

METRICS_FILE = "metrics/tune.json"


def save_study_plots(study, folder: Path) -> dict[str, Path]:
    """Optuna's matplotlib plots of the study; a plot the trials cannot support yet is skipped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as plots

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    names = sorted({name for t in complete for name in t.params})
    wanted: dict[str, Callable[[], Any]] = {"optimization_history": lambda: plots.plot_optimization_history(study)}
    if any(t.intermediate_values for t in study.get_trials(deepcopy=False)):
        wanted["intermediate_values"] = lambda: plots.plot_intermediate_values(study)
    if len(complete) >= 2:
        wanted["param_importances"] = lambda: plots.plot_param_importances(study)
        wanted["slice"] = lambda: plots.plot_slice(study)
        if len(names) >= 2:
            wanted["contour"] = lambda: plots.plot_contour(study, params=names[:3])
    saved = {}
    for name, make in wanted.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                axes = make()
            figure = np.asarray(axes, dtype=object).flat[0].figure
            figure.set_size_inches(max(6.0, figure.get_figwidth()), max(4.0, figure.get_figheight()))
            path = folder / f"{name}.png"
            figure.savefig(path, dpi=90, bbox_inches="tight")
            saved[name] = path
        except (ValueError, RuntimeError, ZeroDivisionError, optuna.exceptions.OptunaError) as exc:
            print(f"tune: skipped plot {name}: {exc}")
        finally:
            plt.close("all")
    return saved


def plots_folder(cfg: TuneConfig) -> Path:
    """Where the study's plots are written on disk: beside ``tune.output``, named after it."""
    output = Path(cfg.output)
    return output.with_name(f"{output.stem}_plots")


def baseline_report(study, metric: str, best) -> tuple[dict[str, Any], str | None]:
    """How params.yaml's own values (the enqueued first trial) compare to the best trial:
    metrics for the summary, and the line to print (None when the study has no baseline trial)."""
    from optuna.trial import TrialState

    baseline = next((t for t in study.get_trials(deepcopy=False) if t.user_attrs.get(BASELINE_ATTR)), None)
    if baseline is None:
        return {}, None
    found: dict[str, Any] = {"baseline_trial": baseline.number, "baseline_state": baseline.state.name}
    shown = f"tune: baseline (params.yaml's values, trial {baseline.number}): "
    if baseline.state != TrialState.COMPLETE:
        at = baseline.user_attrs.get("pruned_at_epoch")
        return found, shown + baseline.state.name + (f" after epoch {at}" if at else "")
    found["baseline_value"] = baseline.value
    if baseline.number == best.number:
        return found, shown + f"{metric} {baseline.value:.4f}, the best trial: the search found nothing better"
    return found, shown + f"{metric} {baseline.value:.4f}; the best trial {best.number} is {best.value:.4f} " \
                          f"({best.value - baseline.value:+.4f})"


def param_importances(study) -> dict[str, float]:
    """Optuna's parameter importances (empty before two complete trials, or when it cannot tell)."""
    import optuna
    from optuna.trial import TrialState

    if len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) < 2:
        return {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return {k: float(v) for k, v in optuna.importance.get_param_importances(study).items()}
    except (ValueError, RuntimeError, ZeroDivisionError, optuna.exceptions.OptunaError) as exc:
        print(f"tune: no parameter importances yet: {exc}")
        return {}


def format_value(value: Any) -> str:
    """A value as params.yaml and ``dvc exp run -S`` spell it (floats to 6 significant digits)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(value, ".6g")
    return str(value)


def best_values(best) -> dict[str, Any]:
    """The winner's params.yaml values (searched ones and the ones forced with them)."""
    values = best.user_attrs.get("values") or best.params
    return {key: (float(format_value(v)) if isinstance(v, float) else v) for key, v in values.items()}


def exp_run_command(values: dict[str, Any]) -> str:
    """The command that trains ``values`` with the full pipeline."""
    return "dvc exp run " + " ".join(f"-S {key}={format_value(value)}" for key, value in values.items())


def chance_of(metric: str, classes: int, slots: int) -> float:
    """Accuracy of uniform guessing for a validation metric (NaN for a loss)."""
    from transferlab.evaluation.stats import plate_chance

    if metric.endswith("loss"):
        return float("nan")
    return plate_chance(classes, slots) if metric == "val_plate_accuracy" else 1.0 / classes


def unclear_winner(metric: str, best: float, second: float | None, val_images: int, chance: float,
                   second_trial: int | None = None, rope: float | None = None) -> str | None:
    """Why the best trial is not a clear winner (:func:`transferlab.evaluation.stats.unclear_best`), or None.

    The study's rule (:mod:`transferlab.evaluation.comparison`): the best trial must be practically
    better than the runner-up, by more than ``rope`` (``tune.rope``) with probability 0.95, given
    the validation set's sampling error; within the ROPE the two are practically equivalent. The
    count is the validation images, also for character accuracy: a plate's characters are not
    independent trials, so counting images is the conservative choice. Each trial ran once, so its
    seed's noise is not included. A loss has no interval from the validation count, so it is
    never called clear.
    """
    from transferlab.evaluation.stats import unclear_best

    if metric.endswith("loss"):
        return (f"ranked by {metric}, which has no interval from the validation count: chance and the runner-up "
                "cannot be ruled out")
    rival = f"trial {second_trial}" if second_trial is not None else "the runner-up"
    return unclear_best(best, second, val_images, chance, metric, rival, rope)


def next_step(summary: dict[str, Any]) -> str:
    """The closing lines of a study: the command, as a winner's only when it is a clear one."""
    if summary.get("unclear"):
        return (f"tune: no clear winner (the best trial is {summary['unclear']}); "
                f"to train the best trial anyway:\n{summary['command']}")
    return f"tune: train the winner with the full pipeline:\n{summary['command']}"


def write_best_params(path: Path, values: dict[str, Any], header: list[str]) -> None:
    """``values`` params.yaml-style under ``header`` comment lines, written atomically."""
    nested: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        section, name = key.split(".")
        nested.setdefault(section, {})[name] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    text = "".join(f"# {line}\n" for line in header) + yaml.safe_dump(nested, sort_keys=False)
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def runner_up(study, best) -> Any:
    """The second-best complete trial (None when the best is the only one)."""
    from optuna.trial import TrialState

    others = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.number != best.number]
    if not others:
        return None
    sign = -1 if study.direction.name == "MAXIMIZE" else 1
    return min(others, key=lambda t: sign * t.value)


def trial_seconds(trial) -> float:
    """How long a finished trial took (0 while it has no start and end)."""
    if trial.datetime_complete and trial.datetime_start:
        return (trial.datetime_complete - trial.datetime_start).total_seconds()
    return 0.0


def _best_trial(study, cfg: TuneConfig, counts: Counts):
    """The study's best complete trial; none yet is an error that says what to do."""
    try:
        return study.best_trial
    except ValueError:
        raise TransferlabError(f"tune: study {cfg.study_name!r} has no complete trial yet ({counts.pruned} pruned, "
                               f"{counts.failed} failed): run it again, or widen the search") from None


def _best_params_header(cfg: TuneConfig, url: str, metric: str, best, counts: Counts, val_images: int,
                        command: str, unclear: str | None) -> list[str]:
    """The comment lines atop ``tune.output``: which trial, how good, and the command; a best
    trial that is not a clear winner says so first."""
    header = [f"Best trial {best.number} of Optuna study {cfg.study_name!r} ({shown_url(url)}):",
              f"{metric} {best.value:.4f} after {best.user_attrs.get('epochs', '?')} epochs on {val_images} "
              f"validation images ({counts.complete} complete, {counts.pruned} pruned, {counts.failed} failed trials).",
              "Train it with the full pipeline:", f"  {command}"]
    if unclear:
        header = [f"NOT A CLEAR WINNER: the best trial is {unclear}.",
                  "These values are the best trial's, not a tuned result; a larger study (more validation images,",
                  "epochs or trials) is needed to tell trials apart.", *header[:2], "To train it anyway:", header[3]]
    return header


def _log_to_parent(study, cfg: TuneConfig, summary: dict[str, Any], best) -> None:
    """The parent run's record of the study: best value and parameters, importances, plots, trials."""
    import mlflow

    mlflow.log_metrics({"best_value": summary["best_value"], "best_trial": summary["best_trial"],
                        "trials_complete": summary["complete"], "trials_pruned": summary["pruned"],
                        "trials_failed": summary["failed"], "epochs_run": summary["epochs_run"],
                        "trial_seconds": summary["trial_seconds"],
                        **{k: summary[k] for k in ("baseline_trial", "baseline_value") if k in summary},
                        **{f"importance.{k}": v for k, v in summary["importances"].items()}})
    mlflow.set_tags({"best_trial": summary["best_trial"], "best_value": f"{summary['best_value']:.6g}",
                     "best_command": summary["command"], "clear_winner": str(summary["clear_winner"]),
                     "not_clear_because": summary["unclear"][:500],
                     "best_mlflow_run_id": best.user_attrs.get("mlflow_run_id", ""),
                     **{f"best.{k}": format_value(v) for k, v in summary["best_params"].items()}})
    for path in sorted(plots_folder(cfg).glob("*.png")):
        mlflow.log_artifact(str(path), "plots")
    with tempfile.TemporaryDirectory() as tmp:
        study.trials_dataframe().to_csv(Path(tmp) / "trials.csv", index=False)
        mlflow.log_artifact(str(Path(tmp) / "trials.csv"))
    mlflow.log_artifact(cfg.output)


def summarise(params: Params, cfg: TuneConfig, study, url: str, metric: str, parent_id: str, data) -> dict:
    """Best params file, metrics, and the parent run's best values, importances and plots; the best
    trial is called a winner only when it is clearly above chance and ahead of the runner-up."""
    from transferlab.io import atomic_output_dir, write_json

    counts = count_trials(study)
    best = _best_trial(study, cfg, counts)
    values = best_values(best)
    command = exp_run_command(values)
    second = runner_up(study, best)
    unclear = unclear_winner(metric, best.value, second.value if second else None, len(data.x_val),
                             chance_of(metric, len(data.classes), data.slots), second.number if second else None,
                             cfg.rope)
    write_best_params(Path(cfg.output), values,
                      _best_params_header(cfg, url, metric, best, counts, len(data.x_val), command, unclear))
    importances = param_importances(study)
    trials = study.get_trials(deepcopy=False)
    summary = {"study": cfg.study_name, "metric": metric, "best_value": best.value, "best_trial": best.number,
               "clear_winner": unclear is None, "unclear": unclear or "", "val_images": len(data.x_val),
               "best_params": values, "complete": counts.complete, "pruned": counts.pruned, "failed": counts.failed,
               "epochs_run": int(sum(t.user_attrs.get("epochs", 0) for t in trials)),
               "trial_seconds": round(sum(trial_seconds(t) for t in trials), 1),
               "importances": importances, "mlflow_run_id": parent_id, "command": command}
    baseline, baseline_line = baseline_report(study, metric, best)
    summary.update(baseline)
    with atomic_output_dir(plots_folder(cfg)) as folder:  # files too, not only in MLflow
        save_study_plots(study, folder)
    write_json(METRICS_FILE, {k: v for k, v in summary.items() if k != "command"})
    _log_to_parent(study, cfg, summary, best)
    print(f"tune: best trial {best.number}{'' if unclear is None else ' (not a clear winner)'}: {metric} {best.value:.4f}  "
          + " ".join(f"{k}={format_value(v)}" for k, v in values.items()) + f"  -> {cfg.output}")
    if baseline_line:
        print(baseline_line)
    if importances:
        print("tune: parameter importances: " + ", ".join(f"{k} {v:.2f}" for k, v in importances.items()))
    return summary
