"""DVC stage `tune` (pipeline tune/dvc.yaml, not part of the default `dvc repro`): the work is
in transferlab.tune.run. Run it with `dvc repro tune/dvc.yaml` or `python stages/tune.py`."""

from transferlab import tune
from transferlab.cli import run_stage

if __name__ == "__main__":
    run_stage(lambda _params: tune.run(*tune.load_tune_params()), params_file=None)
