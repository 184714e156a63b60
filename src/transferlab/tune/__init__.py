"""Stage ``tune``: an Optuna study over augmentation strength, learning rate and unfreeze depth.

Not part of the default ``dvc repro``: it is its own pipeline, ``tune/dvc.yaml``, run with
``dvc repro tune/dvc.yaml`` (or ``python stages/tune.py``). Everything is set in the
``tune`` section of params.yaml.

What a trial is
    A copy of params.yaml with the trial's values (``augment.strength``,
    ``train.learning_rate``, ``train.unfreeze_depth``; optionally ``train.strategy``,
    ``train.backbone``, ``train.pretrained``), validated like params.yaml, and trained by the
    training engine (:func:`transferlab.training.engine.fit`, the train stage's own) for ``tune.epochs`` (+
    ``tune.finetune_epochs``). The training set is augmented in memory at the trial's
    strength exactly as the augment stage would (originals + ``augment.copies`` variants);
    nothing is written per trial. Trials train on a seeded subset of the training split
    (``tune.train_images``; null: all of it) and are scored on one of the validation split
    (``tune.val_images``), which keeps a study small; the winner then trains on everything.
    The value is the validation metric (``tune.metric``) of the trained model -- by default
    character accuracy for plates, since the plate accuracy of a few-epoch trial is mostly
    still 0 and cannot rank trials. The test split is never read. Trial 0 of a new study is
    the baseline: params.yaml's own values of the searched dimensions (enqueued once, when the
    study is created), so every study reports how its best trial compares to what the user had.

Pruning
    After every epoch the validation metric is reported to Optuna at step = epochs done so
    far (head and finetune phases count on, so the two phases never share a step, and the
    steps match the MLflow curves); the pruner (median or Hyperband) stops trials that fall
    behind. ``tune.pruner_warmup_epochs: n``: no trial is pruned during its first n epochs,
    nor at its last (stopping then would save nothing and lose a complete result).

Resuming
    The study lives in ``tune.storage`` (default ``sqlite:///<project root>/tune/optuna.db``).
    ``tune.n_trials`` is the number of *finished* (complete or pruned) trials the study should
    have; running again continues until it has them, keeping every finished trial. Ctrl-C
    or SIGTERM stops the running trial after its current batch (recorded FAIL; a second
    signal stops at once), never inside TensorFlow. A trial left RUNNING by a killed process
    is marked FAIL on restart: at once when the process ran on this machine (its pid is
    gone), otherwise when its heartbeat is older than :data:`GRACE_PERIOD_S`. Resuming a
    study whose trials ran with other training settings or data is refused (their values
    would not be comparable): use a new ``tune.study_name``.

Reproducibility
    The sampler is re-seeded for every trial from (``tune.seed``, trial number), and every
    trial's weights from ``train.seed``: with one worker, the same seed and the same storage
    history (same finished/failed trials), the same parameters are proposed -- also after an
    interruption, since trial ``k`` is proposed from the seed and trials ``0..k-1`` only.
    With several workers, which worker gets which trial is timing-dependent.

Scale-out
    Point ``tune.storage`` at a database every worker reaches (e.g.
    ``postgresql://user:password@host/optuna``; needs a driver such as psycopg2) and run the
    stage on several processes or machines at once: Optuna hands out trial numbers
    atomically, and each worker stops when the study has ``tune.n_trials`` finished or
    running trials (``max_trials`` also caps one worker). Create the study by starting one
    worker first when the database is not a local sqlite file.

MLflow
    One parent run per study (found again on resume by the study's uid), a nested child run
    per trial with its parameters, per-epoch curves and the tag ``optuna_state``
    (COMPLETE / PRUNED / FAIL). Run status: COMPLETE -> FINISHED, FAIL -> FAILED (KILLED
    when interrupted), PRUNED -> KILLED (stopped early on purpose; the tag says why). The
    parent gets the best value and parameters, the baseline's value, parameter importances and
    Optuna's plots.

Outputs
    ``tune.output`` (``tune/best_params.yaml``): the best parameters, params.yaml-style, and a
    printed ``dvc exp run -S ...`` line that trains the winner with the full pipeline. The best
    trial is called the winner only when its validation accuracy is clearly above chance and
    distinguishable from the runner-up's (intervals on the validation count, see
    :func:`unclear_winner`); otherwise the file says at its top that it is not a clear winner
    and the command is printed as the best trial's, to train anyway. Optuna's plots (history,
    intermediate values, importances, slice, contour) go to ``<output stem>_plots/`` beside it
    (``tune/best_params_plots/``). To watch a study live: ``optuna-dashboard sqlite:///tune/optuna.db``.

Modules
    :mod:`~transferlab.tune.space` (what a trial sets and how it is proposed),
    :mod:`~transferlab.tune.trial` (its data and training), :mod:`~transferlab.tune.samplers`
    (sampler and pruner), :mod:`~transferlab.tune.interrupts` (stopping at safe points),
    :mod:`~transferlab.tune.storage` (the study's database and orphaned trials),
    :mod:`~transferlab.tune.runs` (MLflow runs), :mod:`~transferlab.tune.report` (the best
    trial and its outputs), :mod:`~transferlab.tune.runner` (the stage's :func:`run`).
"""

from transferlab.tune.report import (
    METRICS_FILE,
    baseline_report,
    best_values,
    chance_of,
    exp_run_command,
    next_step,
    param_importances,
    plots_folder,
    runner_up,
    save_study_plots,
    summarise,
    unclear_winner,
    write_best_params,
)
from transferlab.tune.runner import MAX_FAILURES_IN_A_ROW, run
from transferlab.tune.runs import parent_run
from transferlab.tune.samplers import make_pruner, make_sampler, per_trial_sampler, trial_seed
from transferlab.tune.space import (
    baseline_values,
    block_counts,
    check_search_space,
    direction_of,
    load_tune_params,
    max_trial_epochs,
    metric_name,
    searched_keys,
    study_settings,
    suggest,
    trial_params,
)
from transferlab.tune.storage import (
    DEFAULT_STORAGE_FILE,
    GRACE_PERIOD_S,
    HEARTBEAT_INTERVAL_S,
    Counts,
    count_trials,
    fail_orphaned_trials,
    open_storage,
    open_study,
    shown_url,
    storage_url,
)
from transferlab.tune.trial import (
    TrialDiverged,
    TrialResult,
    data_fingerprints,
    load_tune_data,
    pruning_callback,
    train_trial,
)

__all__ = [
    "Counts",
    "DEFAULT_STORAGE_FILE",
    "GRACE_PERIOD_S",
    "HEARTBEAT_INTERVAL_S",
    "MAX_FAILURES_IN_A_ROW",
    "METRICS_FILE",
    "TrialDiverged",
    "TrialResult",
    "baseline_report",
    "baseline_values",
    "best_values",
    "block_counts",
    "chance_of",
    "check_search_space",
    "count_trials",
    "data_fingerprints",
    "direction_of",
    "exp_run_command",
    "fail_orphaned_trials",
    "load_tune_data",
    "load_tune_params",
    "make_pruner",
    "make_sampler",
    "max_trial_epochs",
    "metric_name",
    "next_step",
    "open_storage",
    "open_study",
    "param_importances",
    "parent_run",
    "per_trial_sampler",
    "plots_folder",
    "pruning_callback",
    "run",
    "runner_up",
    "save_study_plots",
    "searched_keys",
    "shown_url",
    "storage_url",
    "study_settings",
    "suggest",
    "summarise",
    "train_trial",
    "trial_params",
    "trial_seed",
    "unclear_winner",
    "write_best_params",
]
