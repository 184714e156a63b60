"""The look stage (a renderer look fitted to real crops) and the in-domain recipe."""

import json

import cv2
import numpy as np
import optuna
import pandas as pd
import pytest
import yaml

from helpers import tiny_params
from transferlab import look
from transferlab.config import recipe
from transferlab.errors import TransferlabError
from transferlab.generate.fitted import with_fitted_look
from transferlab.look import space
from transferlab.look.crops import render_look
from transferlab.look.distance import FeatureDistance, frechet

ALPHABET = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"
# The hidden look of the "real" plates: US-style, loosely cropped, far away, rendered small.
HIDDEN = {"height": 24, "width": 72, "styles": {"eu": 0, "us": 1}, "uniform_share": 0.0,
          "capture": {"loose_crop": 0.6, "low_resolution": 0.7, "greyscale": 0.0}}


def in_domain_params(tmp_path, source, **sections):
    """Pretraining on the user's own plates: the look is fitted and the recipe applies."""
    base = {"plates": {"alphabet": ALPHABET, "slots": 6},
            "data": {"source": str(source), "image_height": 32, "image_width": 96},
            "pretrain": {"enabled": True}, "look": {"output": str(tmp_path / "look")},
            "generate": {"height": 48, "width": 144}}  # the defaults: the render size is then measured
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return tiny_params(tmp_path, **base)


def look_gap(a, b) -> float:
    """How far apart two looks are set: L1 over the styles' shares and the capture probabilities."""
    def vector(g):
        weights = np.array(list(g.styles.weights().values()))
        return np.concatenate([weights / weights.sum(), list(g.capture.model_dump().values())])
    return float(np.abs(vector(a) - vector(b)).sum())


def write_hidden_plates(folder, count: int, seed: int):
    """``count`` plates rendered in the hidden look, written as a user's CSV dataset."""
    params = tiny_params(folder, plates={"alphabet": ALPHABET, "slots": 6},
                         generate={**HIDDEN, "formats": ["@@####"], "output": str(folder / "unused")})
    (folder / "images").mkdir(parents=True)
    rows = []
    from transferlab.generate.render import render_sample

    generate = params.generate.model_copy(update={"seed": seed})
    for i in range(count):
        label, image = render_sample(generate, ALPHABET, i)
        cv2.imwrite(str(folder / f"images/{i:03d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        rows.append({"image_path": f"images/{i:03d}.png", "plate_text": label})
    pd.DataFrame(rows).to_csv(folder / "labels.csv", index=False)
    return folder / "labels.csv"


def test_the_fit_finds_a_hidden_look_it_was_not_told(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = write_hidden_plates(tmp_path / "real", 80, seed=1)
    params = in_domain_params(tmp_path, source, look={"trials": 24, "samples": 48})
    summary = look.run(params)
    assert summary["fitted"] and summary["distance_fitted"] < summary["distance_default"]
    fitted, applied = with_fitted_look(params)
    assert applied
    hidden = tiny_params(tmp_path, generate=HIDDEN).generate
    assert look_gap(fitted.generate, hidden) < 0.8 * look_gap(params.generate, hidden)  # measured 2.39 vs 3.23
    styles = fitted.generate.styles.weights()
    assert max(styles, key=styles.get) == "us"
    assert (fitted.generate.height, fitted.generate.width) == (24, 72)  # the crops' own size, measured
    # Judged on fresh plates of the hidden look, which the fit never saw.
    judge = FeatureDistance(render_look(tiny_params(tmp_path, plates={"alphabet": ALPHABET, "slots": 6},
                                                    data={"image_height": 32, "image_width": 96},
                                                    generate={**HIDDEN, "formats": ["@@####"]}), 64, seed=7))
    assert judge(render_look(fitted, 64, seed=3)) < 0.8 * judge(render_look(params, 64, seed=3))
    for name in ("look.yaml", "preview.png", "preview_default.png", "trials.csv", "trials.png"):
        assert (tmp_path / "look" / name).is_file()
    trials = pd.read_csv(tmp_path / "look/trials.csv")
    # 24 searched looks, then the best with the other prefix set
    assert len(trials) == 25 and trials["refine"].fillna(False).tolist() == [False] * 24 + [True]
    assert trials["prefix"].iloc[24] != trials.iloc[:24].sort_values("distance")["prefix"].iloc[0]


def test_the_fit_is_reproducible_and_keeps_hand_set_keys(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = write_hidden_plates(tmp_path / "real", 40, seed=2)
    outputs = []
    for run in ("a", "b"):
        params = in_domain_params(tmp_path, source, look={"trials": 3, "samples": 24, "output": str(tmp_path / run)},
                                  generate={"capture": {"night_ir": 0.25}, "prefix_glyphs": "京"})
        look.run(params)
        outputs.append(yaml.safe_load((tmp_path / run / "look.yaml").read_text(encoding="utf-8")))
    assert outputs[0] == outputs[1]
    assert outputs[0]["generate"]["capture"]["night_ir"] == 0.25 and outputs[0]["generate"]["prefix_glyphs"] == "京"


def test_no_look_is_fitted_for_the_built_in_data_or_without_pretraining(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = tiny_params(tmp_path, look={"output": str(tmp_path / "look")})
    assert look.run(params) == {"fitted": False}
    assert with_fitted_look(params) == (params, False)
    assert "generate's own output" in yaml.safe_load((tmp_path / "look/look.yaml").read_text())["why"]


def test_the_study_fits_its_synthetic_sources_look_to_data_without_a_look_file(tmp_path, monkeypatch, capsys):
    """study.source auto on the user's plates: the study fits the look itself (once: reused while the
    data and look settings hold) and its synthetic sources render in it; the look stage's fit, when
    there is one, is used instead; the pipeline's metrics/look.json is never written."""
    from transferlab import study
    from transferlab.config import StudyConfig

    monkeypatch.chdir(tmp_path)
    source = write_hidden_plates(tmp_path / "real", 40, seed=2)
    params = in_domain_params(tmp_path, source, look={"trials": 6, "samples": 24})
    cfg = StudyConfig(sources=["synthetic"], source_strategies=["full"], seeds=[0], image_height=32,
                      image_width=96, output=str(tmp_path / "study/results"), report=str(tmp_path / "docs/study"))
    assert study.study_params(params, cfg).study.source == str(source)  # auto: the user's data.source
    stamp = study.prepare(params, cfg)
    assert "study: fitting the synthetic sources' look" in capsys.readouterr().out
    fit = json.loads((tmp_path / "study/results/look/fit.json").read_text())
    assert fit["distance_fitted"] < fit["distance_default"]
    assert stamp["look_from"].endswith("(fitted by the study to the training crops)")
    found = study.study_params(params, cfg).generate
    assert (found.height, found.width) != (params.generate.height, params.generate.width)  # measured on the crops
    assert not (tmp_path / "metrics/look.json").exists()
    assert study.prepare(params, cfg) == stamp and "fitting" not in capsys.readouterr().out  # current: reused
    look.run(params)  # the look stage's own fit for these data wins
    assert study.prepare(params, cfg)["look_from"].endswith("(the look stage's fit)")


def test_a_broken_look_file_names_itself(tmp_path):
    params = tiny_params(tmp_path, look={"output": str(tmp_path)})
    (tmp_path / "look.yaml").write_text("fitted: true\ngenerate: {colour: red}\n")
    with pytest.raises(TransferlabError, match="look.yaml: generate must be a mapping of look keys"):
        with_fitted_look(params)


def test_searched_looks_are_valid_and_round_trip_through_optuna(tmp_path):
    params = tiny_params(tmp_path, generate={"capture": {"loose_crop": 0.3}})
    keys = space.searched_keys(params)
    assert "generate.capture.loose_crop" not in keys and "generate.capture.tight_crop" in keys
    assert space.kept_keys(params)["generate.capture.loose_crop"] == 0.3
    look_ = space.tidy({"generate.styles": {"eu": 0.01, "us": 0.02}, "generate.capture.tight_crop": 0.8,
                        "generate.capture.loose_crop": 0.6})
    assert look_["generate.styles"] == {"eu": 0.0, "us": 1.0}
    assert look_["generate.capture.tight_crop"] + look_["generate.capture.loose_crop"] <= 1
    for start in space.starting_looks(params, keys):
        assert space.suggest(optuna.trial.FixedTrial(space.trial_params(start)), keys) == space.tidy(start)


def test_frechet_distance_is_zero_for_the_same_gaussian_and_grows_with_the_shift():
    rng = np.random.default_rng(0)
    cov = np.cov(rng.normal(size=(200, 5)), rowvar=False)
    mu = np.zeros(5)
    assert frechet(mu, cov, mu, cov) == pytest.approx(0, abs=1e-6)
    assert frechet(mu, cov, mu + 1, cov) == pytest.approx(5, rel=1e-6)


def test_the_recipe_follows_the_real_training_set_and_hand_set_keys_win(tmp_path):
    params = in_domain_params(tmp_path, tmp_path / "labels.csv", augment={"copies": 0})
    chosen, record = recipe.apply(params, n_train=510)
    assert (chosen.augment.copies, chosen.train.epochs, chosen.train.early_stopping_patience) == (4, 15, 5)
    assert chosen.train.learning_rate == 5e-4 and chosen.train.head_pooling == "spatial"
    assert chosen.pretrain.epochs == 4 and "1200 optimizer steps" in record["train.epochs"]["reason"]
    big, _ = recipe.apply(params, n_train=50_000)
    assert big.augment.copies == 0 and big.train.epochs == 8
    hand, record = recipe.apply(in_domain_params(tmp_path, tmp_path / "labels.csv", train={"epochs": 7}), 510)
    assert hand.train.epochs == 7 and record["train.epochs"]["reason"].startswith("set in params.yaml")
    # tiny_params sets generate.count, so it is the user's: kept, and recorded as such.
    assert chosen.generate.count == params.generate.count
    assert record["generate.count"]["reason"].startswith("set in params.yaml")
    assert recipe.apply(params.model_copy(update={"pretrain": params.pretrain.model_copy(
        update={"recipe": "as_set"})}), 510)[1] == {}
    assert recipe.apply(tiny_params(tmp_path), 510)[1] == {}  # the built-in synthetic data: no recipe


def test_fitted_renders_stay_deterministic(tmp_path):
    params = tiny_params(tmp_path, plates={"alphabet": ALPHABET, "slots": 6}, generate={"formats": ["@@####"]})
    assert np.array_equal(render_look(params, 4, seed=5), render_look(params, 4, seed=5))


def test_the_best_look_is_tried_with_each_other_prefix_set():
    best = {"generate.bare_one": 0.2, "generate.prefix_glyphs": ""}
    others = space.alternatives(best)
    assert [o["generate.prefix_glyphs"] for o in others] == [space.PREFIX_SETS["cjk_province"]]
    assert all(o["generate.bare_one"] == 0.2 for o in others)
    assert space.alternatives({"generate.bare_one": 0.2}) == []  # a hand-set prefix is not searched
