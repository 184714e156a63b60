"""The study's MLflow runs: one parent run per study (found again by the study's uid on resume
and by every worker), under which each trial opens a nested run of its own."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from transferlab.config import Params, TuneConfig
from transferlab.locks import file_lock
from transferlab.tune.storage import shown_url


def _parent_run_id(experiment: str, study_uid: str) -> str | None:
    """The study's parent run in ``experiment`` (the first one, should two exist), or None."""
    import mlflow

    from transferlab import tracking

    experiment_id = tracking.ensure_experiment(experiment)
    found = mlflow.MlflowClient(tracking_uri=tracking.configure()).search_runs(
        [experiment_id], filter_string=f"tags.optuna_study_uid = '{study_uid}' and tags.tune_role = 'study'",
        order_by=["attributes.start_time ASC"], max_results=1)
    return found[0].info.run_id if found else None


@contextlib.contextmanager
def parent_run(params: Params, cfg: TuneConfig, study, url: str) -> Iterator[Any]:
    """The study's MLflow run: created once, resumed by every later run or worker."""
    from transferlab import tracking

    tracking.configure()
    uid = study.user_attrs["study_uid"]
    with contextlib.ExitStack() as stack:
        with file_lock(tracking.store_dir() / ".tune.lock"):  # local workers must not both create one
            run_id = _parent_run_id(params.mlflow.experiment, uid)
            if run_id is None:
                tags = tracking.run_tags()
                tags.update({"stage": "tune", "tune_role": "study", "optuna_study": cfg.study_name,
                             "optuna_study_uid": uid, "optuna_storage": shown_url(url)})
                logged = {**params.model_dump(), "tune": cfg.model_dump()}
                run = stack.enter_context(tracking.tracked_run(params.mlflow.experiment, f"tune {cfg.study_name}",
                                                               logged, tags))
            else:
                run = stack.enter_context(tracking.tracked_run(params.mlflow.experiment, None, {}, {}, run_id=run_id))
        yield run


def trial_tags(base: dict[str, str], cfg: TuneConfig, study, number: int, params: Params) -> dict[str, Any]:
    """The tags of trial ``number``'s run: provenance (``base``), its study, and what it trains."""
    return {**base, "stage": "tune", "tune_role": "trial", "optuna_study": cfg.study_name,
            "optuna_study_uid": study.user_attrs["study_uid"], "optuna_trial": number,
            "backbone": params.train.backbone, "strategy": params.train.strategy,
            "pretrained": str(params.train.pretrained)}


def set_terminated(run_id: str, status: str) -> None:
    """End run ``run_id`` with ``status`` (after its ``with`` block closed it otherwise)."""
    import mlflow

    from transferlab import tracking

    mlflow.MlflowClient(tracking_uri=tracking.configure()).set_terminated(run_id, status)

