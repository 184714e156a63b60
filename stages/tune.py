"""DVC stage `tune` (pipeline tune/dvc.yaml, not part of the default `dvc repro`): the work is
in transferlab.tune.run. Run it with `dvc repro tune/dvc.yaml` or `transferlab tune`."""

from transferlab import tune
from transferlab.stage import run_stage

if __name__ == "__main__":
    run_stage(tune.run)
