"""What Optuna proposes and stops with: the sampler, re-seeded for every trial, and the pruner."""

from __future__ import annotations

import numpy as np

from transferlab.config import TuneConfig


def make_sampler(cfg: TuneConfig, seed: int):
    """``tune.sampler`` (random, or TPE after ``tune.startup_trials`` random ones) with ``seed``."""
    import optuna

    if cfg.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=cfg.startup_trials)


def trial_seed(seed: int, number: int) -> int:
    """The sampler's seed for trial ``number``: independent streams for every (seed, number)."""
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0] % (2**31 - 1))


def per_trial_sampler(cfg: TuneConfig):
    """A sampler re-seeded from (tune.seed, trial number) at the start of every trial.

    A resumed study then proposes what an uninterrupted one would have: trial k depends on
    the seed and trials 0..k-1 only, never on how many trials this process has sampled.
    Two workers never share a seed (trial numbers are unique).
    """
    import optuna

    class PerTrialSeededSampler(optuna.samplers.BaseSampler):
        def __init__(self):
            self._inner = make_sampler(cfg, trial_seed(cfg.seed, 0))

        def before_trial(self, study, trial):
            self._inner = make_sampler(cfg, trial_seed(cfg.seed, trial.number))
            self._inner.before_trial(study, trial)

        def infer_relative_search_space(self, study, trial):
            return self._inner.infer_relative_search_space(study, trial)

        def sample_relative(self, study, trial, search_space):
            return self._inner.sample_relative(study, trial, search_space)

        def sample_independent(self, study, trial, param_name, param_distribution):
            return self._inner.sample_independent(study, trial, param_name, param_distribution)

        def after_trial(self, study, trial, state, values):
            self._inner.after_trial(study, trial, state, values)

        def reseed_rng(self):
            self._inner.reseed_rng()

    return PerTrialSeededSampler()


def make_pruner(cfg: TuneConfig, max_epochs: int):
    """``tune.pruner``: none, median or Hyperband; ``max_epochs`` is a trial's longest training."""
    import optuna

    if cfg.pruner == "none":
        return optuna.pruners.NopPruner()
    if cfg.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, cfg.pruner_warmup_epochs),
                                              max_resource=max(max_epochs, cfg.pruner_warmup_epochs + 1))
    # Steps are 1-based epochs: step < n_warmup_steps is never pruned.
    return optuna.pruners.MedianPruner(n_startup_trials=cfg.pruner_startup_trials,
                                       n_warmup_steps=cfg.pruner_warmup_epochs + 1)

