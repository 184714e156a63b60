"""The tune stage: a tiny Optuna study with nested MLflow runs, pruning, resuming, reproducible
proposals, clear errors for bad search ranges, and two workers on one storage.

Only the first test trains real (tiny) models; the others replace the training of a trial
by a fast stand-in (:func:`fake_train_trial`) that goes through the same study, MLflow and
pruning code, so the whole file stays well under two minutes on two cores.
"""

import math
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import mlflow
import optuna
import pytest
import yaml
from optuna.trial import TrialState

from helpers import random_plates, tiny_params, write_plate_csv, run_status
from transferlab import split, tracking, tune
from transferlab.config import SearchSpace, TuneConfig
from transferlab.errors import TransferlabError
from transferlab.tune import report as tune_report
from transferlab.tune import runner as tune_runner
from transferlab.tune import storage as tune_storage

METRIC = "val_plate_accuracy"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A tiny project with a prepared plate dataset whose test split is deleted (tuning must
    never need it). The tests share its MLflow store and study database (creating a store
    costs seconds); each test has a study of its own."""
    root = tmp_path_factory.mktemp("tune-project")
    (root / "dvc.yaml").write_text("stages: {}\n")  # the project root: MLflow store and study live here
    write_plate_csv(root / "plates", random_plates(30))
    params = tiny_params(root, data={"source": str(root / "plates")})
    cwd = Path.cwd()
    os.chdir(root)
    try:
        split.run(params)
    finally:
        os.chdir(cwd)
    for name in ("test_images.npy", "test_labels.npy", "test.csv"):
        (root / "data/prepared" / name).unlink()
    return root


@pytest.fixture
def project(monkeypatch, prepared):
    monkeypatch.chdir(prepared)
    return prepared


@pytest.fixture
def name(request):
    """A study of the test's own in the shared database."""
    return request.node.name.removeprefix("test_")[:40]


def params_for(prepared, **train):
    defaults = {"backbone": "plain_cnn", "pretrained": False, "strategy": "full", "epochs": 2, "batch_size": 16,
                "head_units": 16, "early_stopping_patience": 0}
    return tiny_params(prepared, data={"source": str(prepared / "plates")}, train={**defaults, **train})


def config(name="transferlab", **settings):
    defaults = {"study_name": name, "output": f"tune/{name}.yaml", "n_trials": 2, "epochs": 2,
                "finetune_epochs": 1, "startup_trials": 2, "pruner": "none",
                "search": {"augment_strength": [0.0, 1.0], "learning_rate": [1e-4, 1e-2], "unfreeze_depth": None}}
    return TuneConfig.model_validate({**defaults, **settings})


def fake_train_trial(params, data, trial, metric, log_metric):
    """Stands in for training: a smooth score of the trial's values, reported per epoch through
    the real pruning callback (so pruning and curves work as with Keras)."""
    assert len(data.x_val) and len(data.x_train)
    value = 1.0 - abs(params.augment.strength - 0.3) - abs(math.log10(params.train.learning_rate) + 3) / 10
    pruning = tune.pruning_callback(trial, metric)
    pruning.trainer = SimpleNamespace(epochs_done=0, total_epochs=params.train.epochs)
    for epoch in range(params.train.epochs):
        logs = {metric: value * (epoch + 1) / params.train.epochs, "val_loss": 1.0 - value}
        log_metric(logs, epoch + 1)
        pruning.on_epoch_end(epoch, logs)
    return tune.TrialResult(value=value, metrics={metric: value}, epochs=params.train.epochs, seconds=0.0)


class PruneTrial(optuna.pruners.BasePruner):
    """Prunes exactly one trial (by number) at its first report."""

    def __init__(self, number):
        self.number = number

    def prune(self, study, trial):
        return trial.number == self.number


def runs_of(study_uid):
    client = mlflow.MlflowClient(tracking_uri=tracking.configure())
    experiment = client.get_experiment_by_name("transferlab")
    runs = client.search_runs([experiment.experiment_id], f"tags.optuna_study_uid = '{study_uid}'")
    parents = [r for r in runs if r.data.tags.get("tune_role") == "study"]
    children = {int(r.data.tags["optuna_trial"]): r for r in runs if r.data.tags.get("tune_role") == "trial"}
    return client, parents, children


def load_study(root, name):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{root / 'tune/optuna.db'}")


def test_tiny_study_trains_prunes_and_records_nested_mlflow_runs(project, name, monkeypatch, capsys):
    """Real (tiny) Keras training: per-epoch reports, a trial pruned from inside model.fit."""
    monkeypatch.setattr(tune_runner, "make_pruner", lambda cfg, max_epochs: PruneTrial(1))
    summary = tune.run(params_for(project), config(name))

    study = load_study(project, name)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.PRUNED]
    assert list(study.trials[0].intermediate_values) == [1, 2]  # one report per epoch
    assert study.trials[1].user_attrs["pruned_at_epoch"] == 1 and list(study.trials[1].intermediate_values) == [1]
    assert summary["complete"] == 1 and summary["pruned"] == 1 and summary["epochs_run"] == 2 + 1

    client, parents, children = runs_of(study.user_attrs["study_uid"])
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    assert sorted(children) == [0, 1]
    for number, child in children.items():
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        trial = study.trials[number]
        assert float(child.data.params["augment.strength"]) == pytest.approx(trial.params["augment.strength"])
        assert float(child.data.params["train.learning_rate"]) == pytest.approx(trial.params["train.learning_rate"])
        assert child.data.params["train.epochs"] == "2"
        assert [m.step for m in client.get_metric_history(child.info.run_id, METRIC)] == [1, 2][: 2 - number]
    assert children[0].data.tags["optuna_state"] == "COMPLETE" and children[0].info.status == "FINISHED"
    assert children[0].data.metrics["objective"] == pytest.approx(study.trials[0].value)
    assert children[1].data.tags["optuna_state"] == "PRUNED" and children[1].info.status == "KILLED"

    best = study.best_trial
    assert parent.data.metrics["best_value"] == pytest.approx(best.value)
    written = yaml.safe_load(Path(f"tune/{name}.yaml").read_text())
    assert written["augment"]["strength"] == pytest.approx(best.params["augment.strength"], rel=1e-5)
    assert set(written["train"]) == {"learning_rate"}  # strategy full: unfreeze_depth is not searched
    out = capsys.readouterr().out
    assert "tune: trial 1 PRUNED after epoch 1" in out
    command = out.strip().splitlines()[-1]
    assert command == tune.exp_run_command(tune.best_values(best))
    assert command.startswith("dvc exp run -S augment.strength=") and "-S train.learning_rate=" in command


def test_timeout_starts_no_new_trial_and_a_second_run_continues_the_study(project, name, monkeypatch, capsys):
    def slow_trial(*args):
        time.sleep(0.3)
        return fake_train_trial(*args)

    monkeypatch.setattr(tune_runner, "train_trial", slow_trial)
    tune.run(params_for(project), config(name, n_trials=4, timeout=0.1))
    assert "timeout (0.1s) reached; run again to continue the study" in capsys.readouterr().out
    assert len(load_study(project, name).trials) == 1  # started before the timeout, then no other
    tune.run(params_for(project), config(name, n_trials=4))
    assert [t.state for t in load_study(project, name).trials] == [TrialState.COMPLETE] * 4


def test_pruned_trial_is_recorded_as_pruned_and_the_parent_gets_plots(project, name, monkeypatch):
    monkeypatch.setattr(tune_runner, "train_trial", fake_train_trial)
    monkeypatch.setattr(tune_runner, "make_pruner", lambda cfg, max_epochs: PruneTrial(1))
    tune.run(params_for(project), config(name, n_trials=3))

    study = load_study(project, name)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.COMPLETE]
    client, parents, children = runs_of(study.user_attrs["study_uid"])
    assert children[1].data.tags["optuna_state"] == "PRUNED" and children[1].info.status == "KILLED"
    parent = parents[0]
    best = study.best_trial
    assert parent.data.tags["best_trial"] == str(best.number)
    assert parent.data.tags["best.train.learning_rate"] == format(best.params["train.learning_rate"], ".6g")
    assert {"importance.augment.strength", "importance.train.learning_rate"} <= set(parent.data.metrics)
    plots = {Path(a.path).name for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert {"optimization_history.png", "intermediate_values.png", "param_importances.png", "slice.png",
            "contour.png"} <= plots
    assert f"{name}.yaml" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    on_disk = {p.name for p in (project / f"tune/{name}_plots").iterdir()}  # files beside the output too
    assert {"optimization_history.png", "param_importances.png", "slice.png"} <= on_disk


def test_a_new_study_starts_with_the_baseline_and_a_resumed_one_does_not_repeat_it(project, name, monkeypatch,
                                                                                 capsys):
    monkeypatch.setattr(tune_runner, "train_trial", fake_train_trial)
    monkeypatch.setattr(tune_report, "save_study_plots", lambda study, folder: {})
    params = params_for(project, learning_rate=1e-3)
    summary = tune.run(params, config(name, n_trials=2))
    study = load_study(project, name)
    assert study.trials[0].params == {"augment.strength": 0.5, "train.learning_rate": 1e-3}  # params.yaml's
    assert study.trials[0].user_attrs["baseline"] is True
    assert summary["baseline_trial"] == 0 and summary["baseline_value"] == pytest.approx(study.trials[0].value)
    out = capsys.readouterr().out
    assert f"tune: baseline (params.yaml's values, trial 0): val_char_accuracy {study.trials[0].value:.4f}" in out

    tune.run(params, config(name, n_trials=4))  # resumed: sampled trials, no second baseline
    trials = load_study(project, name).trials
    assert len(trials) == 4 and [t.user_attrs.get("baseline", False) for t in trials] == [True, False, False, False]
    assert all(t.params != trials[0].params for t in trials[1:])

    # A value outside the searched range is left to the sampler, with a note.
    outside = config(f"{name}-outside", n_trials=1, search={"learning_rate": [1e-2, 1e-1], "unfreeze_depth": None})
    tune.run(params, outside)
    first = load_study(project, f"{name}-outside").trials[0]
    assert first.params["augment.strength"] == 0.5 and 1e-2 <= first.params["train.learning_rate"] <= 1e-1
    assert "params.yaml's train.learning_rate is outside tune.search" in capsys.readouterr().out


def test_median_and_hyperband_pruners_use_the_epoch_settings(project):
    cfg = config(pruner="median", pruner_startup_trials=2, pruner_warmup_epochs=1)
    pruner = tune.make_pruner(cfg, tune.max_trial_epochs(params_for(project, strategy="finetune"), cfg))
    assert isinstance(pruner, optuna.pruners.MedianPruner)
    assert pruner._n_startup_trials == 2 and pruner._n_warmup_steps == 2  # never pruned in its first epoch
    assert tune.max_trial_epochs(params_for(project, strategy="finetune"), cfg) == 2 + 1  # both phases
    hyperband = tune.make_pruner(config(pruner="hyperband"), 3)
    assert isinstance(hyperband, optuna.pruners.HyperbandPruner) and hyperband._max_resource == 3


def test_optional_dimensions_strategy_backbone_pretrained(project):
    cfg = config(search={"strategy": ["frozen", "finetune"], "backbone": ["plain_cnn", "mobilenet_v2"],
                         "pretrained": [True, False], "unfreeze_depth": [0, "all"], "learning_rate": None,
                         "augment_strength": None})
    params = params_for(project)
    blocks = {"plain_cnn": 5, "mobilenet_v2": 19}

    def values(**fixed):
        return tune.suggest(optuna.trial.FixedTrial(fixed), cfg, params, blocks)

    assert values(**{"train.backbone": "mobilenet_v2", "train.strategy": "finetune", "train.pretrained": True,
                     "train.unfreeze_depth": 19}) == {"train.backbone": "mobilenet_v2", "train.strategy": "finetune",
                                                      "train.pretrained": True, "train.unfreeze_depth": 19}
    # plain_cnn has no ImageNet weights: pretrained is forced off, and "all" means its 5 blocks
    assert values(**{"train.backbone": "plain_cnn", "train.strategy": "finetune", "train.unfreeze_depth": 19}) == {
        "train.backbone": "plain_cnn", "train.strategy": "finetune", "train.pretrained": False,
        "train.unfreeze_depth": 5}
    # unfreeze_depth only matters when fine-tuning
    assert "train.unfreeze_depth" not in values(**{"train.backbone": "mobilenet_v2", "train.strategy": "frozen",
                                                   "train.pretrained": False})
    only_finetune = config(search={"strategy": ["finetune"], "unfreeze_depth": [0, "all"], "augment_strength": None,
                                   "learning_rate": None})
    assert tune.suggest(optuna.trial.FixedTrial({"train.unfreeze_depth": 3}), only_finetune, params, blocks) == {
        "train.strategy": "finetune", "train.unfreeze_depth": 3}  # one choice: set, not searched
    trial = tune.trial_params(params, cfg, values(**{"train.backbone": "plain_cnn", "train.strategy": "frozen"}))
    assert (trial.train.backbone, trial.train.strategy, trial.train.pretrained) == ("plain_cnn", "frozen", False)
    assert tune.exp_run_command({"train.pretrained": False, "train.learning_rate": 0.000123456789}) == \
        "dvc exp run -S train.pretrained=false -S train.learning_rate=0.000123457"


def test_trials_use_seeded_subsets_and_augmented_copies_the_winner_can_reproduce(project):
    no_copies = tiny_params(project, data={"source": str(project / "plates")}, augment={"copies": 0})
    cfg = config(train_images=10, val_images=4)
    values = tune.suggest(optuna.trial.FixedTrial({"augment.strength": 0.4, "train.learning_rate": 1e-3}), cfg,
                          no_copies, {"efficientnet_lite0": 18})
    assert values == {"augment.strength": 0.4, "augment.copies": 1, "train.learning_rate": 1e-3}
    assert any("augment.copies is 0" in note for note in tune.check_search_space(no_copies, cfg, {"x": 18}))
    data = tune.load_tune_data(no_copies, cfg)
    assert (len(data.x_train), len(data.x_val)) == (10, 4)
    again = tune.load_tune_data(no_copies, cfg)
    assert (data.x_train == again.x_train).all() and (data.x_val == again.x_val).all()  # the same subset every run
    trial = data.augmented(tune.trial_params(no_copies, cfg, values).augment)
    assert len(trial.x_train) == 2 * 10  # originals + one augmented copy, in memory


def test_resume_after_interruption_continues_the_same_study(project, name, monkeypatch):
    calls = []

    def interrupted_at_second(*args):
        calls.append("started")
        if calls.count("started") == 2:
            # SIGTERM (what DVC and job queues send; Ctrl-C alike) in the middle of training: it
            # must not raise inside TensorFlow, only at the next batch or epoch end.
            os.kill(os.getpid(), signal.SIGTERM)
            calls.append("still training after the signal")
        return fake_train_trial(*args)

    monkeypatch.setattr(tune_runner, "train_trial", interrupted_at_second)
    monkeypatch.setattr(tune_report, "save_study_plots", lambda study, folder: {})  # speed: plots are tested above
    params = params_for(project)
    with pytest.raises(KeyboardInterrupt, match="received signal 15"):
        tune.run(params, config(name, n_trials=3))
    assert calls[-1] == "still training after the signal"
    study = load_study(project, name)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAIL]
    client, parents, children = runs_of(study.user_attrs["study_uid"])
    assert parents[0].info.status == "KILLED" and children[1].data.tags["optuna_state"] == "FAIL"

    # A worker killed outright (kill -9) leaves its trial RUNNING: it is failed on restart.
    orphan = study.ask()
    for key, value in {"worker_host": socket.gethostname(), "worker_pid": os.getpid(),
                       "worker_run": "a run that no longer exists"}.items():
        orphan.set_user_attr(key, value)

    monkeypatch.setattr(tune_runner, "train_trial", fake_train_trial)
    summary = tune.run(params, config(name, n_trials=3))
    study = load_study(project, name)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.FAIL,
                                               TrialState.COMPLETE, TrialState.COMPLETE]
    assert summary["complete"] == 3 and summary["failed"] == 2
    _, parents_after, children = runs_of(study.user_attrs["study_uid"])
    assert [p.info.run_id for p in parents_after] == [parents[0].info.run_id]  # the same parent run, resumed
    assert run_status(parents[0].info.run_id) == "FINISHED"
    assert sorted(children) == [0, 1, 3, 4]

    # Settings that change what a trial's value means are refused instead of mixed in.
    with pytest.raises(TransferlabError, match=r"other settings.*\n  train.batch_size: 16 -> 8"):
        tune.run(params_for(project, batch_size=8), config(name, n_trials=4))


def test_a_trial_whose_heartbeat_stopped_is_failed_and_its_run_closed(project, name, monkeypatch):
    """Another machine's worker killed outright: Optuna's heartbeat fails the trial, the callback closes its run."""
    monkeypatch.setattr(tune_storage, "GRACE_PERIOD_S", 1)
    storage = tune.open_storage(f"sqlite:///{project / 'tune/optuna.db'}")
    study = optuna.create_study(storage=storage, study_name=name)
    client = mlflow.MlflowClient(tracking_uri=tracking.configure())
    run = client.create_run(tracking.ensure_experiment("transferlab"), run_name=f"{name} orphan")
    trial = study.ask()
    trial.set_user_attr("mlflow_run_id", run.info.run_id)
    storage.record_heartbeat(trial._trial_id)  # what a worker's heartbeat thread does, once; then it dies
    time.sleep(2.5)
    worker = {"worker_host": "another-machine", "worker_pid": os.getpid(), "worker_run": "this run"}
    assert tune.fail_orphaned_trials(study, worker) == [trial.number]
    assert study.trials[0].state == TrialState.FAIL
    closed = client.get_run(run.info.run_id)
    assert closed.info.status == "KILLED" and closed.data.tags["optuna_state"] == "FAIL"


def test_same_seed_proposes_the_same_trials_also_when_resumed(project, name, monkeypatch):
    monkeypatch.setattr(tune_runner, "train_trial", fake_train_trial)
    monkeypatch.setattr(tune_report, "save_study_plots", lambda study, folder: {})
    params = params_for(project)

    def proposals(study, n_trials, seed=0):
        tune.run(params, config(f"{name}-{study}", n_trials=n_trials, seed=seed, startup_trials=2))
        return [t.params for t in load_study(project, f"{name}-{study}").trials]

    first = proposals("a", 4)
    assert proposals("b", 4) == first  # after the 2 random start-up trials TPE proposes the same too
    assert proposals("c", 3, seed=1) != first[:3]
    assert proposals("d", 2) == first[:2]
    assert proposals("d", 4) == first  # resumed: trials 2 and 3 as if never interrupted


def test_invalid_search_ranges_in_params_yaml_are_clear_errors(tmp_path, prepared):
    def load(tune_section):
        raw = tiny_params(prepared).model_dump()
        raw["tune"] = tune_section
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
        return tune.load_tune_params(tmp_path / "params.yaml")

    assert load({"n_trials": 3})[1].n_trials == 3
    cases = {
        "tune.search.learning_rate: low 0.1 must be below high 0.001": {"search": {"learning_rate": [0.1, 0.001]}},
        "tune.search.learning_rate: learning rates must be in (0, 1]": {"search": {"learning_rate": [0, 0.1]}},
        "tune.search.augment_strength.1: Input should be less than or equal to 1":
            {"search": {"augment_strength": [0.2, 1.5]}},
        "tune.search.augment_strength: expected [low, high]": {"search": {"augment_strength": [0.2]}},
        "tune.search.unfreeze_depth: low 3 must be below high 3": {"search": {"unfreeze_depth": [3, 3]}},
        "tune.search.strategy.0: Input should be 'scratch', 'frozen', 'finetune' or 'full'":
            {"search": {"strategy": ["finetuning"]}},
        "tune.serch: unknown key (did you mean search?)": {"serch": {}},
        "tune.search.learnig_rate: unknown key (did you mean learning_rate?)": {"search": {"learnig_rate": [1, 2]}},
        "tune.storage: not a database URL": {"storage": "tune/optuna.db"},
        "tune.search: every dimension is null": {"search": dict.fromkeys(SearchSpace.model_fields)},
    }
    for message, section in cases.items():
        with pytest.raises(TransferlabError, match="params.yaml: invalid parameters") as error:
            load(section)
        assert message in str(error.value), (message, str(error.value))
    cfg = config(search={"unfreeze_depth": [0, 30]})
    with pytest.raises(TransferlabError, match="tune.search.unfreeze_depth: high 30 but plain_cnn has 5 blocks"):
        tune.check_search_space(params_for(prepared, strategy="finetune"), cfg, {"plain_cnn": 5})


WORKER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    import test_tune
    from transferlab import tune
    from transferlab.tune import report, runner

    def slow_fake(*args):
        time.sleep(1.0)  # long enough for the two workers to overlap
        return test_tune.fake_train_trial(*args)

    runner.train_trial = slow_fake
    report.save_study_plots = lambda study, folder: {{}}
    tune.run(test_tune.params_for(__import__("pathlib").Path({prepared!r})),
             test_tune.config({name!r}, n_trials=4, startup_trials=2), max_trials=2)
""")


def test_two_workers_share_one_study_and_lose_no_trial(project, name):
    script = WORKER.format(tests=str(Path(__file__).parent), prepared=str(project), name=name)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "MLFLOW_DISABLE_TELEMETRY": "true"}
    workers = [subprocess.Popen([sys.executable, "-c", script], cwd=project, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [w.communicate(timeout=240)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), "\n".join(outputs)

    study = load_study(project, name)
    assert sorted(t.number for t in study.trials) == [0, 1, 2, 3]
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    pids = [t.user_attrs["worker_pid"] for t in study.trials]
    assert sorted(pids.count(p) for p in set(pids)) == [2, 2]  # each worker ran its share
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 4  # no proposal handed out twice
    _, parents, children = runs_of(study.user_attrs["study_uid"])
    assert len(parents) == 1 and sorted(children) == [0, 1, 2, 3]
    assert {c.data.tags["mlflow.parentRunId"] for c in children.values()} == {parents[0].info.run_id}
    assert all(c.data.tags["optuna_state"] == "COMPLETE" and c.info.status == "FINISHED" for c in children.values())


def near_chance_trial(params, data, trial, metric, log_metric):
    """A trial that learns nothing: about chance (1/35 per character) whatever its values."""
    value = 1 / 35 + 0.03 * params.augment.strength
    log_metric({metric: value}, 1)
    return tune.TrialResult(value=value, metrics={metric: value}, epochs=1, seconds=0.0)


def test_a_best_trial_near_chance_is_not_presented_as_a_winner(project, name, monkeypatch, capsys):
    monkeypatch.setattr(tune_runner, "train_trial", near_chance_trial)
    summary = tune.run(params_for(project), config(name))
    assert summary["clear_winner"] is False and summary["val_images"] == 6
    assert summary["unclear"].startswith("not distinguishable from chance (0.0286)")
    out = capsys.readouterr().out
    assert "train the winner" not in out and "(not a clear winner)" in out
    assert "tune: no clear winner (the best trial is not distinguishable from chance" in out
    assert out.strip().splitlines()[-1] == summary["command"]  # still printed, as the best trial's
    written = Path(f"tune/{name}.yaml").read_text()
    assert written.startswith("# NOT A CLEAR WINNER: the best trial is not distinguishable from chance")
    assert "To train it anyway:" in written and "augment" in yaml.safe_load(written)  # the values are still there
    assert tune.next_step({"unclear": "", "command": "dvc exp run"}).startswith("tune: train the winner")


def test_unclear_winner_needs_chance_and_the_runner_up_ruled_out():
    chance = tune.chance_of("val_char_accuracy", 35, 7)
    assert chance == pytest.approx(1 / 35)
    assert tune.chance_of("val_plate_accuracy", 35, 7) == pytest.approx(35.0 ** -7)
    # The tiny study of the brief: 0.064 on a handful of validation images.
    assert "not distinguishable from chance" in tune.unclear_winner("val_char_accuracy", 0.064, 0.05, 6, chance)
    tie = tune.unclear_winner("val_char_accuracy", 0.62, 0.60, 300, chance, second_trial=4)
    assert tie.startswith("not distinguishable from trial 4 (0.6000)")
    assert tune.unclear_winner("val_char_accuracy", 0.80, 0.60, 300, chance, second_trial=4) is None
    # The study's ROPE rule: a runner-up within ±tune.rope on many images is practically equivalent.
    same = tune.unclear_winner("val_char_accuracy", 0.8010, 0.8000, 100_000, chance, second_trial=4)
    assert same.startswith("practically equivalent to trial 4 (0.8000, within ±0.01)") and "P(best better) 0.00" in same
    strict = tune.unclear_winner("val_char_accuracy", 0.8010, 0.8000, 100_000, chance, second_trial=4, rope=0.0)
    assert strict.startswith("not distinguishable from trial 4") and "over 100000 validation images" in strict
    assert tune.unclear_winner("val_char_accuracy", 0.80, None, 300, chance) is None  # the only trial, well above chance
    assert "no interval" in tune.unclear_winner("val_loss", 0.3, 0.9, 300, float("nan"))
