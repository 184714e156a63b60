import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from helpers import random_plates, tiny_params, write_plate_csv
from transferlab import split, study, tracking
from transferlab.data.arrays import seeded_subset
from transferlab.evaluation import stats
from transferlab.study import curves as study_curves
from transferlab.study import diagnostics as study_diagnostics
from transferlab.study import evidence as study_evidence
from transferlab.study import verdict as study_report
from transferlab.config import StudyConfig, load_params, parse_params
from transferlab.errors import TransferlabError
from transferlab.examples import make_classification_example

REPO = Path(__file__).resolve().parents[1]


FACTORIAL = dict(arms=["scratch", "finetune"], augment_strengths=[0.0, 0.3], strategies=["frozen", "probe"],
                 train_sizes=[100])  # the factorial, strategies and sizes groups (the default study runs sources only)


def test_the_default_study_asks_where_the_weights_should_come_from():
    """params.yaml's study is the schema's default, and it runs the sources group only: four sources
    of the initial weights x the source strategies x 3 seeds, on the bundled real plates."""
    cfg = StudyConfig()
    assert load_params(REPO / "params.yaml").study == cfg  # one set of defaults
    groups = pd.Series([v.group for v in study.variants(cfg)]).value_counts().to_dict()
    assert groups == {"sources": 4 * len(cfg.source_strategies) * 3}
    assert cfg.sources == ["none", "imagenet", "synthetic", "imagenet_synthetic"] and len(cfg.source_strategies) >= 2
    assert (cfg.source, cfg.test_source, cfg.look) == ("auto", "auto", "auto")
    bundled = study.study_config(parse_params({}), cfg)  # data.source is generate's output: the bundled plates
    assert (bundled.source, bundled.test_source) == ("datasets/cn_plates/train.csv", "datasets/cn_plates/test.csv")
    assert (REPO / bundled.source).is_file() and (REPO / bundled.test_source).is_file()


def test_study_source_auto_studies_the_users_data_when_data_source_is_theirs():
    """The user who points data.source at their plates and types `transferlab study` gets a study
    of their plates (its own split of data.source, with data.test_source), not of the bundled ones."""
    users = parse_params({"data": {"source": "my/plates.csv", "test_source": "my/test.csv"}})
    assert (study.study_config(users).source, study.study_config(users).test_source) == ("my/plates.csv",
                                                                                          "my/test.csv")
    own = StudyConfig(source="their/train.csv")  # a path: its own split; test_source auto = none
    assert study.study_config(users, own).test_source is None
    assert study.study_config(users, own.model_copy(update={"test_source": "t.csv"})).test_source == "t.csv"


def test_default_grid_and_variant_params():
    cfg = StudyConfig(**FACTORIAL, sources=[])
    grid = study.variants(cfg)
    groups = pd.Series([v.group for v in grid]).value_counts().to_dict()
    assert groups == {"factorial": 2 * 2 * 3, "strategies": 2 * 3, "sizes": 2 * 1 * 3}
    params = tiny_params(Path("/tmp/unused"))
    scratch = study.variant_params(params, cfg, study.Variant("factorial", "scratch", 0.3, 400, 1))
    assert (scratch.train.pretrained, scratch.train.strategy, scratch.train.seed) == (False, "scratch", 1)
    assert scratch.train.epochs == cfg.epochs + cfg.finetune_epochs  # the same epoch budget as finetune
    assert (scratch.augment.strength, scratch.augment.copies, scratch.augment.seed) == (0.3, 1, 1)
    assert scratch.train.head_pooling == cfg.head_pooling != params.train.head_pooling  # the study's own head
    finetune = study.variant_params(params, cfg, study.Variant("factorial", "finetune", 0.0, 400, 0))
    assert (finetune.train.pretrained, finetune.train.epochs, finetune.augment.copies) == (True, cfg.epochs, 0)
    assert study.variant_params(params, cfg, study.Variant("strategies", "probe", 0.0, 400, 0)).train.strategy == "frozen"
    with pytest.raises(Exception, match="plain_cnn"):
        StudyConfig(backbone="plain_cnn", arms=["scratch", "finetune"])


def test_groups_switch_off_with_empty_lists_but_a_study_needs_a_variant():
    only_factorial = StudyConfig(arms=["scratch"], sources=[])
    assert {v.group for v in study.variants(only_factorial)} == {"factorial"}
    with pytest.raises(Exception, match="the study has no variant"):
        StudyConfig(arms=[], strategies=[], train_sizes=[], sources=[])
    with pytest.raises(Exception, match="sources must not repeat"):
        StudyConfig(sources=["none", "none"])


def test_seeded_training_subsets_pair_the_arms():
    a, b = seeded_subset(100, 20, seed=0), seeded_subset(100, 20, seed=0)
    assert np.array_equal(a, b) and len(np.unique(a)) == 20
    assert not np.array_equal(a, seeded_subset(100, 20, seed=1))
    assert np.array_equal(seeded_subset(10, 0, seed=3), np.arange(10))


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


def hand_made_results(probe_lead: float = 0.08) -> pd.DataFrame:
    """Known answers: finetune beats scratch by exactly 0.2 per seed; augmentation adds noise only;
    the probe leads finetune by ``probe_lead`` (+ noise) and frozen trails it."""
    rows = []
    noise = {0: 0.01, 1: -0.02, 2: 0.01}
    for seed in (0, 1, 2):
        base = 0.3 + 0.05 * seed
        for arm, gain in (("scratch", 0.0), ("finetune", 0.2)):
            for aug, extra in ((0.0, 0.0), (0.3, noise[seed])):
                rows.append({"group": "factorial", "arm": arm, "augment": aug, "train_size": 400, "seed": seed,
                             "pretrained": arm != "scratch", "test_char_accuracy": base + gain + extra,
                             "test_plate_accuracy": (base + gain + extra) ** 7,
                             "train_seconds": 60.0 if arm == "scratch" else 20.0, "key": f"{arm}-{aug}-{seed}"})
        for arm, value, seconds in (("frozen", 0.47 + 0.05 * seed, 5.0),
                                    ("probe", 0.5 + probe_lead + 0.05 * seed + noise[seed], 1.0)):
            rows.append({"group": "strategies", "arm": arm, "augment": 0.0, "train_size": 400, "seed": seed,
                         "pretrained": True, "test_char_accuracy": value, "test_plate_accuracy": value ** 7,
                         "train_seconds": seconds, "key": arm})
        for arm, value in (("scratch", 0.3), ("finetune", 0.2)):  # at 100 images scratch is clearly ahead
            rows.append({"group": "sizes", "arm": arm, "augment": 0.0, "train_size": 100, "seed": seed,
                         "pretrained": arm != "scratch", "test_char_accuracy": value + 0.01 * seed,
                         "test_plate_accuracy": 0.0, "train_seconds": 10.0, "key": f"{arm}-100-{seed}"})
    return pd.DataFrame(rows)


CHANCE = 1 / 35
DESIGN = study_evidence.Design.of(StudyConfig())  # 3 overlapping folds, 400 test images, ROPE 0.01


def marked(frame, histories=None):
    return study_evidence.assess_variants(frame, histories or {}, "char_accuracy")


def test_hypotheses_rank_and_size_curve_on_hand_made_results():
    frame, cfg = marked(hand_made_results()), StudyConfig()
    found = {f.key: f for f in study_report.hypotheses(frame, cfg, "char_accuracy", CHANCE, "char accuracy")}
    assert found["H1"].verdict == "supported"
    assert found["H2"].interval.estimate == pytest.approx(0.2)
    assert found["H2"].verdict == "supported" and "finetune − scratch without augmentation = +0.200" in found["H2"].sentence
    assert "P(finetune better) 1.00" in found["H2"].sentence  # the probabilities against the ROPE
    assert "corrected paired t (overlapping folds) + test-set error over 3 seeds" in found["H2"].sentence
    assert found["H3"].verdict == "undecided"  # augmentation adds noise only: neither better nor shown equivalent
    assert "undecided — P(augment 0.3 better) 0.4" in found["H3"].sentence
    assert found["H4"].verdict == "undecided"
    ranking = study_report.strategy_ranking(frame, cfg, "char_accuracy", CHANCE)
    assert list(ranking["strategy"]) == ["probe", "finetune", "frozen", "scratch"]
    assert set(ranking["status"]) == {"learned"} and "plate_accuracy" in ranking  # plate accuracy beside char
    verdict = study_report.recommendation(frame, ranking, "char_accuracy", "char accuracy", CHANCE, design=DESIGN)
    assert verdict.status == "recommended" and verdict.choice == "probe"
    assert verdict.text.startswith("**Recommended: probe.**")
    assert "practically better than every other strategy" in verdict.text
    assert "probe − finetune = +0.080" in verdict.text and "better (P(probe better) 0.9" in verdict.text
    table, crossing = study_curves.size_curve(frame, cfg, "char_accuracy", CHANCE)
    assert set(table["train_size"]) == {100, 400} and "plate_accuracy" in table
    assert "cross between n=100 and n=400" in crossing and crossing.startswith("The arms")
    cells = study_report.cell_table(frame, "char_accuracy", CHANCE)
    assert "plate_accuracy" in cells and "char_accuracy" not in cells  # the compared metric is the mean column
    by_plate = study_report.cell_table(frame, "plate_accuracy", stats.plate_chance(35, 7))
    assert "char_accuracy" in by_plate  # and the other way round


def test_no_recommendation_when_the_best_and_the_runner_up_are_indistinguishable():
    frame, cfg = marked(hand_made_results(probe_lead=0.01)), StudyConfig()
    ranking = study_report.strategy_ranking(frame, cfg, "char_accuracy", CHANCE)
    assert list(ranking["strategy"][:2]) == ["probe", "finetune"]
    verdict = study_report.recommendation(frame, ranking, "char_accuracy", "char accuracy", CHANCE, design=DESIGN)
    assert verdict.status == "uninformative" and verdict.choice is None
    assert verdict.text.startswith("No recommendation: the study is uninformative")
    assert ("probe, and the runner-up, finetune, are not distinguishable nor shown practically equivalent "
            "(probe − finetune = +0.010") in verdict.text
    # A difference the size of the ROPE: no number of seeds separates them by more than the ROPE.
    assert "No number of seeds up to 50 would separate them by more than the ROPE" in verdict.text
    assert "if cost decides, probe trains in 1s instead of 20s" in verdict.text
    assert "Recommended" not in verdict.text


def near_chance_results() -> pd.DataFrame:
    """The default study's regime: every arm about 0.08 char accuracy (chance 1/35); the data-size
    curve rises from 0.05 at 100 images to 0.08 at 400 (+0.015 per doubling)."""
    rows = []
    jitter = {0: 0.002, 1: -0.003, 2: 0.001}
    for seed in (0, 1, 2):
        for group, arm, aug, n, value in (("factorial", "scratch", 0.0, 400, 0.080), ("factorial", "finetune", 0.0, 400, 0.083),
                                          ("strategies", "frozen", 0.0, 400, 0.079), ("strategies", "probe", 0.0, 400, 0.081),
                                          ("sizes", "scratch", 0.0, 100, 0.05), ("sizes", "finetune", 0.0, 100, 0.05),
                                          ("sizes", "scratch", 0.0, 200, 0.065), ("sizes", "finetune", 0.0, 200, 0.066)):
            rows.append({"group": group, "arm": arm, "augment": aug, "train_size": n, "seed": seed,
                         "pretrained": arm != "scratch", "test_char_accuracy": value + jitter[seed],
                         "test_plate_accuracy": 0.0, "train_seconds": 10.0, "key": f"{arm}-{n}-{seed}"})
    return pd.DataFrame(rows)


def test_no_recommendation_when_every_arm_is_near_chance_and_it_says_what_budget_would_help():
    frame, cfg = marked(near_chance_results()), StudyConfig()
    found = {f.key: f for f in study_report.hypotheses(frame, cfg, "char_accuracy", CHANCE, "char accuracy")}
    assert found["H1"].verdict == "uninformative" and "not clearly above chance" in found["H1"].sentence
    assert found["H2"].verdict == "uninformative" and found["H2"].interval is None
    assert "neither finetune (augment 0) 0.083" in found["H2"].sentence and "0.126 char accuracy" in found["H2"].sentence
    ranking = study_report.strategy_ranking(frame, cfg, "char_accuracy", CHANCE)
    assert set(ranking["status"]) == {"near chance"}
    sizes, text = study_curves.size_curve(frame, cfg, "char_accuracy", CHANCE)
    assert text.startswith("No size shows a difference") and "n=400: both arms near chance" in text
    verdict = study_report.recommendation(frame, ranking, "char_accuracy", "char accuracy", CHANCE, sizes, DESIGN)
    assert verdict.status == "uninformative" and "Recommended" not in verdict.text
    assert "every strategy is near chance (finetune 0.083 (95 % CI" in verdict.text
    # Budget from the curve: mean = 0.05 + 0.015 * log2(n / 100) reaches 0.126 + the half width of its
    # interval (about 0.03 with the 400 test images' own error) near 8,000 images.
    assert "finetune would reach" in verdict.text and "training images" in verdict.text
    estimate = int(verdict.text.split("finetune would reach")[1].split("at about ")[1].split(" training")[0].replace(",", ""))
    assert 5000 <= estimate <= 12000
    short = study_report.recommendation(frame, ranking, "char_accuracy", "char accuracy", CHANCE, None)
    assert "No data-size curve was run" in short.text


def test_size_budget_says_when_the_curve_is_flat_or_too_short():
    table = pd.DataFrame({"arm": ["finetune"] * 3, "train_size": [100, 200, 400], "mean": [0.08, 0.081, 0.08],
                          "ci_low": [0.07] * 3, "ci_high": [0.09] * 3})
    assert "is flat" in study_evidence.size_budget(table, "finetune", 0.126, "char accuracy")
    assert "too short" in study_evidence.size_budget(table.iloc[2:], "finetune", 0.126, "char accuracy")
    far = table.assign(mean=[0.030, 0.036, 0.042])  # +0.006 per doubling: 0.126 is ~2^15 times further
    assert "too far to extrapolate" in study_evidence.size_budget(far, "finetune", 0.126, "char accuracy")


def premature_scratch(kind: str) -> tuple[pd.DataFrame, dict]:
    """The real-digits failure: scratch seemingly far behind finetune, but it had not learned yet:
    one class predicted for every validation image, or its validation accuracy still climbing."""
    frame = hand_made_results()
    frame["epochs"] = 8
    frame["val_majority_fraction"] = np.where(frame["arm"] == "scratch", 1.0 if kind == "one class" else 0.3, 0.2)
    histories = {}
    for _, row in frame[frame["arm"] == "scratch"].iterrows():
        val = [0.1, 0.1, 0.12, 0.15, 0.2, 0.26, 0.31, 0.37] if kind == "still improving" else [0.1] * 8
        histories[f"{row['group']}/{row['key']}"] = pd.DataFrame(
            {"epoch": range(1, 9), "char_accuracy": np.linspace(0.3, 1.0, 8), "val_char_accuracy": val})
    return frame, histories


@pytest.mark.parametrize("kind", ["one class", "still improving"])
def test_h2_is_premature_when_scratch_had_not_finished_learning(kind):
    frame, histories = premature_scratch(kind)
    frame, cfg = marked(frame, histories), StudyConfig()
    found = {f.key: f for f in study_report.hypotheses(frame, cfg, "char_accuracy", CHANCE, "char accuracy")}
    h2 = found["H2"]
    assert h2.verdict == "premature" and h2.interval is None and "+0.200" not in h2.sentence
    assert "premature: scratch had not finished learning (seeds 0, 1, 2: " in h2.sentence
    assert "train longer (e.g. 16 epochs) before comparing" in h2.sentence
    evidence = "the same prediction for 100% of validation images" if kind == "one class" else \
        "val char accuracy still rising at its last epoch (+0.170 over the last 3 epochs)"
    assert evidence in h2.sentence
    assert found["H1"].verdict == "supported"  # finetune's own level above chance still stands
    assert found["H3"].verdict != "premature"  # finetune's augmentation comparison does not involve scratch
    ranking = study_report.strategy_ranking(frame, cfg, "char_accuracy", CHANCE)
    verdict = study_report.recommendation(frame, ranking, "char_accuracy", "char accuracy", CHANCE, design=DESIGN)
    if kind == "still improving":
        # Its high end (0.51) plus its rise continued for the longer budget (+0.45) reaches the leader (0.63).
        assert verdict.status == "premature" and verdict.text.startswith("No recommendation: premature — scratch")
        assert "It could still win (scratch: its 95 % high end 0.507 plus its recent rise" in verdict.text
        assert "(+0.453) reaches the leader's mean 0.630 − ROPE 0.01" in verdict.text
    else:
        # Stuck on one class with a flat curve, 0.28 behind: it withholds its own comparisons only.
        assert verdict.status == "recommended" and verdict.choice == "probe" and verdict.withheld == ("scratch",)
        assert "probe − scratch" not in verdict.text and "probe − finetune = +0.080" in verdict.text
        assert ("Withheld: the comparisons with scratch — scratch had not finished learning (seeds 0, 1, 2: the same "
                "prediction for 100% of validation images)") in verdict.text
        assert "it cannot plausibly win (scratch: its 95 % high end 0.507 plus" in verdict.text
        assert "(+0.000) stays below the leader's mean 0.630 − ROPE 0.01" in verdict.text


def test_practically_equivalent_strategies_are_a_verdict_and_the_cheaper_one_is_named():
    """Two strategies within ±0.01 of each other on every seed, on 3,000 test images whose per-image
    scores are stored: not "not distinguishable", but practically equivalent; the cheaper is named."""
    frame = hand_made_results(probe_lead=0.0)
    frame = frame[frame["arm"].isin(["finetune", "probe"]) & (frame["augment"] == 0)].copy()
    n, shift = 3000, {0: -0.002, 1: 0.001, 2: -0.001}  # finetune leads by 0.0007 on average
    frame["test_char_accuracy"] = [0.6 + (shift[seed] if arm == "probe" else 0.0)
                                   for arm, seed in zip(frame["arm"], frame["seed"])]
    frame["images_test_char_accuracy"] = [(np.arange(n) < round(p * n)).astype(float).tolist()
                                          for p in frame["test_char_accuracy"]]
    frame["test_images"] = n
    cfg = StudyConfig(arms=["finetune"], strategies=["probe"], transfer_arm="finetune")
    frame = marked(frame)
    ranking = study_report.strategy_ranking(frame, cfg, "char_accuracy", CHANCE)
    verdict = study_report.recommendation(frame, ranking, "char_accuracy", "char accuracy", CHANCE,
                                          design=study_evidence.Design.of(cfg))
    assert verdict.status == "practically equivalent" and verdict.choice == "probe"
    assert verdict.text.startswith("**Recommended: probe.** finetune has the highest mean char accuracy (0.600); "
                                   "probe is practically equivalent to it (within ±0.01), and probe trains cheapest "
                                   "(1s instead of 20s).")
    assert "finetune − probe = +0.001" in verdict.text and "equivalent (P(finetune better) 0.0" in verdict.text
    found = study_evidence.compare_rows(frame[frame["arm"] == "finetune"], frame[frame["arm"] == "probe"],
                                        "char_accuracy", study_evidence.Design.of(cfg))[1]
    assert found.test.basis == "paired per-image scores over 3000 test images"
    assert found.decision == "equivalent" and -0.01 < found.interval.low < found.interval.high < 0.01


def test_learning_diagnostics_name_the_cells_that_had_not_learned():
    frame, histories = premature_scratch("one class")
    frame["monitor"] = "val_char_accuracy"
    found = study_diagnostics.learning_diagnostics(frame, histories, "char_accuracy", CHANCE, "val_plate_accuracy")
    fired = {x.name: x for x in found if x.fired}
    assert set(fired) == {"one class (scratch, augment 0)", "one class (scratch, augment 0.3)",
                          "memorisation (scratch, augment 0)", "memorisation (scratch, augment 0.3)",
                          "flat metric (scratch, augment 0)", "flat metric (scratch, augment 0.3)"}
    assert "training accuracy 1.000 but validation 0.100" in fired["memorisation (scratch, augment 0)"].message
    assert "(seed 0; 3 of 3 seeds)" in fired["one class (scratch, augment 0)"].message
    assert not any(x.fired for x in found if "finetune" in x.name)
    counted = frame.assign(train_class_counts=[[12] * 34 + [30]] * len(frame))
    check = study_diagnostics.samples_per_class(counted, "plates", 35, 7)
    assert check.fired and check.name == "samples per class" and "12 training examples of the rarest character" in check.message


def write_results(cfg: StudyConfig, frame: pd.DataFrame, histories: dict) -> None:
    """Constructed result.json / history.csv files where the runner writes them (no training)."""
    for _, row in frame.iterrows():
        folder = Path(cfg.output) / "variants" / row["group"] / row["key"]
        folder.mkdir(parents=True, exist_ok=True)
        result = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        (folder / "result.json").write_text(json.dumps(result))
        histories.get(f"{row['group']}/{row['key']}", pd.DataFrame()).to_csv(folder / "history.csv", index=False)


def test_report_on_constructed_results_refuses_and_shows_plate_accuracy(tmp_path):
    """The whole report (files, verdict, tables, diagnostics) on near-chance results, no training."""
    cfg = StudyConfig(arms=["scratch", "finetune"], augment_strengths=[0.0], strategies=["frozen", "probe"],
                      train_sizes=[100, 200], sources=[], train_size=400, output=str(tmp_path / "results"),
                      report=str(tmp_path / "docs"))
    frame = near_chance_results()
    frame["key"] = [study.Variant(g, a, au, n, s).key for g, a, au, n, s in
                    frame[["group", "arm", "augment", "train_size", "seed"]].itertuples(index=False)]
    keras_rows = frame["arm"] != "probe"
    frame = frame.assign(epochs=np.where(keras_rows, 8, 0), input_min=0.0, input_max=255.0, trainable_bn=0,
                         total_bn=10, batch_size=32, monitor="val_plate_accuracy", kept_epoch=1,
                         val_majority_fraction=np.where(keras_rows, 0.4, np.nan), val_images=200)
    histories = {f"{r.group}/{r.key}": pd.DataFrame({
        "epoch": range(1, 9), "plate_accuracy": 0.0, "char_accuracy": np.linspace(0.1, 0.6, 8),
        "val_plate_accuracy": 0.0, "val_char_accuracy": [0.05, 0.07, 0.08, 0.08, 0.079, 0.081, 0.08, 0.08]})
        for r in frame[keras_rows].itertuples()}
    write_results(cfg, frame, histories)
    (tmp_path / "prepared").mkdir()
    (tmp_path / "prepared/meta.json").write_text(json.dumps({"task": "plates", "classes": list("0123456789ABCDEFGHIJKLMNPQRSTUVWXYZ"),
                                                             "fingerprints": {}}))
    params = tiny_params(tmp_path, split={"output": str(tmp_path / "prepared")})
    summary = study_report.report(params, cfg, log_to_mlflow=False)

    assert summary["verdict"] == "uninformative" and summary["recommended"] is None
    assert summary["findings"]["H2"]["verdict"] == "uninformative" and "estimate" not in summary["findings"]["H2"]
    text = (tmp_path / "docs/report.md").read_text()
    assert "## Verdict\n\nNo recommendation: the study is uninformative — every strategy is near chance" in text
    assert "Recommended" not in text and "What would help: " in text
    assert text.count("| plate accuracy |") == 3  # factorial cells, data-size curve, strategies
    assert "**flat metric (scratch, augment 0)**: val plate accuracy stayed at 0.000 for all 8 epochs" in text
    assert "**samples per class (estimated)**" not in text  # 400 x 7 / 35 = 80 per character: silent
    assert "samples per class (estimated) (80 training examples" in text
    assert "corrected for the 3 overlapping training folds" in text and "within ±0.01 char accuracy" in text
    assert "## Verdict\n\nNo recommendation" in text and "\n![verdict](verdict.png)\n" in text
    assert (tmp_path / "docs/verdict.png").stat().st_size > 1000 and summary["rope"] == 0.01
    table = pd.read_csv(tmp_path / "docs/results.csv")
    assert {"premature", "longer_epochs", "headroom"} <= set(table.columns)


@pytest.fixture
def tiny_project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")  # marks the project root for the MLflow store
    return tmp_path


def tiny_study(root, **changes) -> StudyConfig:
    values = dict(name="tiny", experiment="tiny-study", arms=["scratch", "probe"], transfer_arm="probe",
                  augment_strengths=[0.0], seeds=[0, 1], strategies=[], train_sizes=[], sources=[], train_size=0,
                  val_size=0, test_size=0, image_height=32, image_width=96, epochs=1, finetune_epochs=0, batch_size=8,
                  head_pooling="global", source=None, test_source=None, look=None,
                  output=str(root / "study/results"), report=str(root / "docs/study"))
    return StudyConfig(**{**values, **changes})


def test_two_variant_two_seed_study_end_to_end(tiny_project, capsys):
    """2 variants (no augmentation / augmentation) x 2 seeds of a tiny plain CNN, through the report,
    on a fresh project: the study runs the split stage itself."""
    root = tiny_project
    write_plate_csv(root / "plates", random_plates(40))
    params = tiny_params(root, data={"source": str(root / "plates")})
    cfg = tiny_study(root, backbone="plain_cnn", arms=["scratch"], transfer_arm="finetune",
                     augment_strengths=[0.0, 0.5])
    summary = study.run_all(params, cfg)

    out = capsys.readouterr().out
    assert "split: " + params.split.output + " is missing: running the split stage" in out
    assert "study: [4/4]" in out and "ETA" in out
    result = json.loads(next((root / "study/results/variants/factorial").glob("*/result.json")).read_text())
    assert len(result["images_test_char_accuracy"]) == result["test_images"]  # per-image scores for paired tests
    assert np.mean(result["images_test_char_accuracy"]) == pytest.approx(result["test_char_accuracy"], abs=1e-3)
    assert set(summary["findings"]) == {"H1", "H2", "H3 (scratch)", "H4"}
    assert summary["findings"]["H2"]["verdict"] == "not run"  # no pretrained arm with plain_cnn
    assert summary["findings"]["H4"]["verdict"] == "not run"
    # One epoch of a tiny CNN on 24 plates predicts one plate for every image: H3 is withheld as
    # premature, not reported as an effect.
    assert summary["findings"]["H3 (scratch)"]["verdict"] == "premature"
    report = (root / "docs/study/report.md").read_text()
    assert "H3 (scratch) (augmentation (strength 0.5) improves accuracy of scratch): premature: scratch had not " \
           "finished learning" in report
    assert "95 % CI" in report and "| plate accuracy |" in report
    # One epoch of a tiny CNN on 24 plates learns nothing: the study must say so, not recommend.
    assert summary["verdict"] == "premature" and "Recommended" not in report
    assert "No recommendation: premature — scratch had not finished learning" in report
    assert "## Diagnostics" in report and "## Learning curves" in report
    for figure in ("verdict", "factorial", "curves", "strategies"):
        assert (root / "docs/study" / study.FIGURES[figure]).stat().st_size > 1000
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


def test_the_split_is_run_when_missing_or_stale_and_reused_when_current(tiny_project, capsys):
    root = tiny_project
    write_plate_csv(root / "plates", random_plates(30))
    params = tiny_params(root, data={"source": str(root / "plates")})
    assert split.ensure_prepared(params) is True  # a fresh clone: no data/prepared yet
    assert split.ensure_prepared(params) is False  # same settings and files: reused
    changed = params.model_copy(update={"split": params.split.model_copy(update={"seed": params.split.seed + 1})})
    assert split.ensure_prepared(changed) is True  # other settings: made again
    write_plate_csv(root / "plates", random_plates(31))
    assert split.ensure_prepared(changed) is True  # other files: made again
    assert "is made from other settings or files: running the split stage" in capsys.readouterr().out


def test_study_runs_unchanged_on_a_classification_folder(tiny_project):
    root = tiny_project
    make_classification_example(root / "wallpapers", per_class=10, size=(32, 48), seed=0)
    params = tiny_params(root, task="classification",
                         data={"source": str(root / "wallpapers"), "image_height": 32, "image_width": 48})
    split.run(params)
    cfg = tiny_study(root, arms=["probe"], image_width=48)
    summary = study.run_all(params, cfg)
    assert summary["findings"]["H1"]["verdict"] in ("supported", "uninformative")
    assert summary["findings"]["H2"]["verdict"] == "not run"
    report = (root / "docs/study/report.md").read_text()
    assert "Task **classification**" in report and "test **accuracy**" in report


def test_the_grid_crosses_the_four_sources_of_initial_weights_with_strategies():
    cfg = StudyConfig(sources=["none", "imagenet", "synthetic", "imagenet_synthetic"],
                      source_strategies=["frozen", "finetune", "full"], seeds=[0, 1])
    grid = [v for v in study.variants(cfg) if v.group == "sources"]
    assert {v.source for v in grid} == {"none", "imagenet", "synthetic", "imagenet_synthetic"}
    assert len(grid) == 4 * 3 * 2
    chosen = next(v for v in grid if v.name == "imagenet_synthetic/finetune")
    assert chosen.pretrained and chosen.key.startswith("imagenet_synthetic-finetune-")
    params = parse_params({})
    vparams = study.variant_params(params, cfg, chosen)
    assert vparams.train.init_from.endswith("pretrained/imagenet_synthetic/model.keras")
    assert study.variant_params(params, cfg, next(v for v in grid if v.name == "imagenet/full")).train.init_from is None
    none = study.variant_params(params, cfg, next(v for v in grid if v.name == "none/full"))
    assert (none.train.pretrained, none.train.init_from) == (False, None)


def test_a_study_of_sources_pretrains_once_and_reports_each_source(tiny_project):
    root = tiny_project
    write_plate_csv(root / "plates", random_plates(40))
    params = tiny_params(root, data={"source": str(root / "plates")}, pretrain={"epochs": 1},
                         train={"head_units": 8})
    split.run(params)
    cfg = tiny_study(root, backbone="plain_cnn", arms=["scratch"], transfer_arm="finetune", sources=["none", "synthetic"],
                     source_strategies=["full"], synthetic_count=40, epochs=2)
    summary = study.run_all(params, cfg)
    table = pd.read_csv(root / "docs/study/results.csv")
    sources = table[table["group"] == "sources"]
    assert set(sources["arm"]) == {"none/full", "synthetic/full"} and len(sources) == 4
    assert (root / "study/results/pretrained/synthetic/model.keras").is_file()
    assert "H2 (synthetic)" in summary["findings"]
    report = (root / "docs/study/report.md").read_text()
    assert "## Sources of the initial weights × strategies" in report
    study.run_all(params, cfg)  # every variant and the pretrained source are reused


def test_a_variant_found_twice_counts_by_its_settings_not_by_the_newer_file(tiny_project):
    """DVC writes ``aug0.0`` where the in-process runner writes ``aug0``: the result whose settings
    hash matches the current params counts, even when the other file is newer."""
    import os

    from transferlab.study import grid as study_grid

    root = tiny_project
    params = tiny_params(root)
    cfg = tiny_study(root, arms=["scratch"], seeds=[0])
    (variant,) = study_grid.variants(cfg)
    current = study_grid.variant_hash(params, cfg, variant, "fingerprint")
    paths = {}
    for folder, value, hash_ in (("scratch-aug0-n0-s0", 0.25, current), ("scratch-aug0.0-n0-s0", 0.75, "stale")):
        path = Path(cfg.output) / "variants" / variant.group / folder / "result.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"group": variant.group, "key": variant.key, "hash": hash_, "test_char_accuracy": value}))
        paths[hash_] = path
    os.utime(paths[current], (1, 1))  # the matching result is the older file
    frame, _ = study.load_results(cfg, params, "fingerprint")
    assert frame["test_char_accuracy"].tolist() == [0.25]
    frame, _ = study.load_results(cfg)  # without params: the first folder in sorted order, not the newest
    assert frame["test_char_accuracy"].tolist() == [0.25]


@pytest.mark.parametrize("changes", [{}, {"arms": ["scratch", "full", "probe"], "augment_strengths": [0.0, 0.3],
                                          "strategies": ["probe", "finetune", "frozen"], "train_sizes": [50, 300],
                                          "size_seeds": [0, 1], "sources": ["none", "imagenet", "synthetic"],
                                          "source_strategies": ["full"], "seeds": [0, 1]}])
def test_the_dvc_matrix_runs_exactly_the_grid_the_report_reads(tmp_path, changes):
    """One grid: study/dvc.yaml's matrix stages, expanded by DVC from params.yaml, are the
    variants the runner and the report expect (params.yaml's study, and a fuller one)."""
    import shlex
    import shutil
    import subprocess

    import yaml
    from dvc.repo import Repo

    from transferlab.study.grid import variants

    repo_root = Path(__file__).resolve().parents[1]
    raw = yaml.safe_load((repo_root / "params.yaml").read_text())
    raw["study"].update(changes)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    (tmp_path / "study").mkdir()
    shutil.copy(repo_root / "study/dvc.yaml", tmp_path / "study/dvc.yaml")
    subprocess.run(["dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    expanded = set()
    for stage in Repo(str(tmp_path)).index.stages:
        args = shlex.split(str(stage.cmd))
        if "stages/study_variant.py" in args:
            group, arm, augment, size, seed = args[2:7]
            expanded.add((group, arm, float(augment), int(size), int(seed), args[8] if len(args) > 8 else ""))
    grid = {(v.group, v.arm, v.augment, v.train_size, v.seed, v.source)
            for v in variants(StudyConfig(**raw["study"]))}
    assert expanded == grid and len(grid) > 1


def own_source(root: Path) -> tuple[Path, Path]:
    """A tiny plate set of the study's own (6 characters from a small alphabet), with a test CSV."""
    texts = random_plates(36, seed=3, alphabet="ABCDE12345", length=6)
    return (write_plate_csv(root / "own/train", texts[:24]), write_plate_csv(root / "own/test", texts[24:]))


def test_a_study_source_is_split_into_the_study_folder_and_the_pipeline_split_is_untouched(tiny_project, capsys):
    """study.source set: the study prepares its own split (plates auto from its labels) under
    <study.output>/prepared, runs on it and says so; data/prepared and metrics/ are never written."""
    root = tiny_project
    train_csv, test_csv = own_source(root)
    params = tiny_params(root)  # the pipeline's data.source (data/synthetic) does not even exist here
    cfg = tiny_study(root, backbone="plain_cnn", arms=[], sources=["none"], source_strategies=["full"],
                     source=str(train_csv), test_source=str(test_csv))
    sparams = study.study_params(params, cfg)
    assert (sparams.data.source, sparams.data.test_source) == (str(train_csv), str(test_csv))
    assert sparams.split.output == str(root / "study/results/prepared")
    assert (sparams.plates.alphabet, sparams.plates.slots) == ("12345ABCDE", 6)  # auto, from the study's labels
    assert (sparams.data.image_height, sparams.data.image_width) == (cfg.image_height, cfg.image_width)

    summary = study.run_all(params, cfg)
    out = capsys.readouterr().out
    assert f"study: data: its own split of {train_csv} ({root / 'study/results/prepared'})" in out
    meta = json.loads((root / "study/results/prepared/meta.json").read_text())
    assert meta["test_source"] == str(test_csv) and meta["plates"]["slots"] == 6
    assert json.loads((root / "study/results/prepared/split.json").read_text())["test"]["count"] == 12
    stamp = json.loads((root / "study/results/study_data.json").read_text())
    assert stamp["source"] == str(train_csv) and stamp["fingerprints"] == meta["fingerprints"]
    assert not (root / "data").exists() and not (root / "metrics").exists()  # the pipeline's split and metrics
    assert summary["variants"] == 2 and set(summary["findings"]) == {"H1", "H2", "H3", "H4"}  # sources only
    table = pd.read_csv(root / "docs/study/results.csv")
    assert set(table["arm"]) == {"none/full"} and set(table["test_images"]) == {12}
    report = (root / "docs/study/report.md").read_text()
    assert f"Data: `{train_csv}`, test set `{test_csv}` (study.source)." in report
    assert "## Factorial cells" not in report and "## Learning curves" not in report  # groups not run: not shown
    assert not (root / "docs/study" / study.FIGURES["factorial"]).exists()

    study.prepare(params, cfg)  # current: reused, and the stamp is byte for byte the same
    assert "study/results/prepared is current: reused" in capsys.readouterr().out
    assert json.loads((root / "study/results/study_data.json").read_text()) == stamp


def test_the_study_look_comes_from_beside_its_source_or_the_file_named(tiny_project):
    root = tiny_project
    train_csv, test_csv = own_source(root)
    params = tiny_params(root)
    cfg = tiny_study(root, sources=["synthetic"], source=str(train_csv), test_source=str(test_csv), look="auto")
    assert study.study_params(params, cfg).generate == study.study_params(params, cfg.model_copy(
        update={"look": None})).generate  # auto, and no look.yaml beside the source: params.yaml's look
    (train_csv.parent / "look.yaml").write_text("fitted: true\ngenerate:\n  styles: {eu: 0, cn_blue: 1}\n  bare_one: 0.5\n")
    found = study.study_params(params, cfg).generate
    assert (found.styles.cn_blue, found.styles.eu, found.bare_one) == (1.0, 0.0, 0.5)
    assert study.study_params(params, cfg.model_copy(update={"look": None})).generate.styles.eu == 1.0
    with pytest.raises(TransferlabError, match=r"study\.look: nowhere/look\.yaml: look file not found"):
        study.study_params(params, cfg.model_copy(update={"look": "nowhere/look.yaml"}))


def test_a_bad_study_source_is_one_clear_error_naming_the_key_and_the_file(tiny_project):
    root = tiny_project
    params = tiny_params(root)
    cfg = tiny_study(root, sources=["none"], source=str(root / "missing.csv"), test_source=None)
    with pytest.raises(TransferlabError, match=r"^study\.source: .*missing\.csv: not found"):
        study.prepare(params, cfg)
    bad = root / "bad.csv"
    bad.write_text("path,text\nimages/0.png,AB12\n")
    with pytest.raises(TransferlabError) as info:
        study.prepare(params, cfg.model_copy(update={"source": str(bad)}))
    assert str(info.value).startswith(f"study.source ({bad})") and "plate_text" in str(info.value)
    write_plate_csv(root / "broken", ["AB12", "CD34"])
    (root / "broken/images/001.png").unlink()  # a listed image that is not there
    with pytest.raises(TransferlabError, match=r"^study\.source \(.*broken"):
        study.prepare(params, cfg.model_copy(update={"source": str(root / "broken")}))
    assert not (root / "study/results/prepared").exists()
    for source in (None, "auto"):
        with pytest.raises(TransferlabError, match=r"study: test_source is a path but source is (null|auto)"):
            parse_params({"study": {"source": source, "test_source": "x.csv"}})


def test_the_study_stages_depend_on_the_studys_data_stamp_not_the_pipelines_split():
    """study/dvc.yaml: a prepare stage (run on every repro, like test-source) writes the stamp of the
    study's data; every stage that reads the data depends on it, none on ${split.output}."""
    import yaml

    spec = yaml.safe_load((REPO / "study/dvc.yaml").read_text())["stages"]
    prepare = spec["prepare"]
    assert prepare["always_changed"] and "stages/study_prepare.py" in prepare["cmd"]
    assert [next(iter(o)) for o in prepare["outs"]] == ["${study.output}/study_data.json"]
    assert {"study.source", "study.test_source", "study.look"} <= set(prepare["params"])
    for name, stage in spec.items():
        deps = [d if isinstance(d, str) else next(iter(d)) for d in stage.get("deps", [])]
        assert "${split.output}" not in deps, name
        if name != "prepare":
            assert "${study.output}/study_data.json" in deps, name
