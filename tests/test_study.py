import mlflow
import numpy as np
import pandas as pd
import pytest

from helpers import random_plates, tiny_params, write_plate_csv
from transferlab import split, study, tracking
from transferlab.config import StudyConfig, load_params
from transferlab.errors import TransferlabError
from transferlab.examples import make_classification_example


def test_default_grid_and_variant_params():
    cfg = StudyConfig()
    grid = study.variants(cfg)
    groups = pd.Series([v.group for v in grid]).value_counts().to_dict()
    assert groups == {"factorial": 2 * 2 * 3, "strategies": 2 * 3, "sizes": 2 * 1 * 3}
    params = tiny_params(__import__("pathlib").Path("/tmp/unused"))
    scratch = study.variant_params(params, cfg, study.Variant("factorial", "scratch", 0.3, 400, 1))
    assert (scratch.train.pretrained, scratch.train.strategy, scratch.train.seed) == (False, "scratch", 1)
    assert scratch.train.epochs == cfg.epochs + cfg.finetune_epochs  # the same epoch budget as finetune
    assert (scratch.augment.strength, scratch.augment.copies, scratch.augment.seed) == (0.3, 1, 1)
    finetune = study.variant_params(params, cfg, study.Variant("factorial", "finetune", 0.0, 400, 0))
    assert (finetune.train.pretrained, finetune.train.epochs, finetune.augment.copies) == (True, cfg.epochs, 0)
    assert study.variant_params(params, cfg, study.Variant("strategies", "probe", 0.0, 400, 0)).train.strategy == "frozen"
    with pytest.raises(Exception, match="plain_cnn"):
        StudyConfig(backbone="plain_cnn", arms=["scratch", "finetune"])


def test_seeded_training_subsets_pair_the_arms():
    a, b = study.train_subset(100, 20, seed=0), study.train_subset(100, 20, seed=0)
    assert np.array_equal(a, b) and len(np.unique(a)) == 20
    assert not np.array_equal(a, study.train_subset(100, 20, seed=1))
    assert np.array_equal(study.train_subset(10, 0, seed=3), np.arange(10))


def test_study_section_is_validated(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("task: plates\nstudy:\n  seeds: [4, 5]\n  train_size: 50\n")
    params = load_params(path)
    assert params.study.seeds == [4, 5] and params.study.train_size == 50
    path.write_text("task: plates\n")
    assert load_params(path).study == StudyConfig()
    path.write_text("study:\n  seeds: [1, 1]\n")
    with pytest.raises(TransferlabError, match="seeds must not repeat"):
        load_params(path)


def hand_made_results() -> pd.DataFrame:
    """Known answers: finetune beats scratch by exactly 0.2 per seed; augmentation adds noise only."""
    rows = []
    noise = {0: 0.01, 1: -0.02, 2: 0.01}
    for seed in (0, 1, 2):
        base = 0.3 + 0.05 * seed
        for arm, gain in (("scratch", 0.0), ("finetune", 0.2)):
            for aug, extra in ((0.0, 0.0), (0.3, noise[seed])):
                rows.append({"group": "factorial", "arm": arm, "augment": aug, "train_size": 400, "seed": seed,
                             "pretrained": arm != "scratch", "test_char_accuracy": base + gain + extra,
                             "train_seconds": 60.0 if arm == "scratch" else 20.0, "key": f"{arm}-{aug}-{seed}"})
        for arm, value, seconds in (("frozen", 0.47 + 0.05 * seed, 5.0), ("probe", 0.505 + 0.05 * seed + noise[seed], 1.0)):
            rows.append({"group": "strategies", "arm": arm, "augment": 0.0, "train_size": 400, "seed": seed,
                         "pretrained": True, "test_char_accuracy": value, "train_seconds": seconds, "key": arm})
        for arm, value in (("scratch", 0.25), ("finetune", 0.2)):  # at 100 images scratch is ahead
            rows.append({"group": "sizes", "arm": arm, "augment": 0.0, "train_size": 100, "seed": seed,
                         "pretrained": arm != "scratch", "test_char_accuracy": value + 0.01 * seed,
                         "train_seconds": 10.0, "key": f"{arm}-100-{seed}"})
    return pd.DataFrame(rows)


def test_hypotheses_rank_and_size_curve_on_hand_made_results():
    frame, cfg = hand_made_results(), StudyConfig()
    found = {f.key: f for f in study.hypotheses(frame, cfg, "char_accuracy", 1 / 35, "char accuracy")}
    assert found["H1"].verdict == "supported"
    assert found["H2"].interval.estimate == pytest.approx(0.2)
    assert found["H2"].verdict == "supported" and "finetune − scratch without augmentation = +0.200" in found["H2"].sentence
    assert found["H3"].verdict == "not distinguishable from no effect"
    assert "not distinguishable from no effect" in found["H3"].sentence
    assert found["H4"].verdict == "not distinguishable from no effect"
    ranking = study.strategy_ranking(frame, cfg, "char_accuracy")
    assert list(ranking["strategy"]) == ["probe", "finetune", "frozen", "scratch"]
    text = study.recommendation(frame, ranking, "char_accuracy", "char accuracy")
    assert text.startswith("**Recommended: probe.**") and "not distinguishable from it" in text
    table, crossing = study.size_curve(frame, cfg, "char_accuracy")
    assert set(table["train_size"]) == {100, 400}
    assert "cross between n=100 and n=400" in crossing and crossing.startswith("The arms")


@pytest.fixture
def tiny_project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")  # marks the project root for the MLflow store
    return tmp_path


def tiny_study(root, **changes) -> StudyConfig:
    values = dict(name="tiny", experiment="tiny-study", arms=["scratch", "probe"], transfer_arm="probe",
                  augment_strengths=[0.0], seeds=[0, 1], strategies=[], train_sizes=[], train_size=0, val_size=0,
                  test_size=0, image_height=32, image_width=96, epochs=1, finetune_epochs=0, batch_size=8,
                  output=str(root / "study/results"), report=str(root / "docs/study"))
    return StudyConfig(**{**values, **changes})


def test_two_variant_two_seed_study_end_to_end(tiny_project, capsys):
    """2 variants (no augmentation / augmentation) x 2 seeds of a tiny plain CNN, through the report."""
    root = tiny_project
    write_plate_csv(root / "plates", random_plates(40))
    params = tiny_params(root, data={"source": str(root / "plates")})
    split.run(params)
    cfg = tiny_study(root, backbone="plain_cnn", arms=["scratch"], transfer_arm="finetune",
                     augment_strengths=[0.0, 0.5])
    summary = study.run_all(params, cfg)

    out = capsys.readouterr().out
    assert "study: [4/4]" in out and "ETA" in out
    assert set(summary["findings"]) == {"H1", "H2", "H3 (scratch)", "H4"}
    assert summary["findings"]["H2"]["verdict"] == "not run"  # no pretrained arm with plain_cnn
    assert summary["findings"]["H4"]["verdict"] == "not run"
    assert summary["findings"]["H3 (scratch)"]["verdict"] in ("supported", "contradicted",
                                                              "not distinguishable from no effect")
    report = (root / "docs/study/report.md").read_text()
    assert "H3 (scratch) (augmentation (strength 0.5)" in report and "95 % CI" in report
    assert "paired t-interval over 2 seeds" in report
    assert "Recommended: scratch" in report and "## Diagnostics" in report and "## Learning curves" in report
    for figure in study.FIGURES.values():
        assert (root / "docs/study" / figure).stat().st_size > 1000
    table = pd.read_csv(root / "docs/study/results.csv")
    assert len(table) == 4 and set(table["augment"]) == {0.0, 0.5}
    assert {"test_char_accuracy", "test_plate_accuracy", "test_aug0.5_char_accuracy"} <= set(table.columns)

    client = mlflow.MlflowClient(tracking.configure(root))
    experiment = client.get_experiment_by_name("tiny-study")
    runs = client.search_runs([experiment.experiment_id], "tags.study = 'tiny'")
    assert sorted(r.data.tags["study_group"] for r in runs) == ["factorial"] * 4 + ["report"]

    study.run_variants(params, cfg)  # finished variants are not trained again
    assert "4 variant(s), 4 already done" in capsys.readouterr().out
    assert len(client.search_runs([experiment.experiment_id], "tags.study_group = 'factorial'")) == 4


def test_study_runs_unchanged_on_a_classification_folder(tiny_project):
    root = tiny_project
    make_classification_example(root / "wallpapers", per_class=10, size=(32, 48), seed=0)
    params = tiny_params(root, task="classification",
                         data={"source": str(root / "wallpapers"), "image_height": 32, "image_width": 48})
    split.run(params)
    cfg = tiny_study(root, arms=["probe"], image_width=48)
    summary = study.run_all(params, cfg)
    assert summary["findings"]["H1"]["verdict"] in ("supported", "not distinguishable from no effect")
    assert summary["findings"]["H2"]["verdict"] == "not run"
    report = (root / "docs/study/report.md").read_text()
    assert "Task **classification**" in report and "test **accuracy**" in report
