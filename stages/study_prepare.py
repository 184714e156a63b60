"""DVC stage `study/dvc.yaml:prepare`: the study's data (its own split of study.source, or the
pipeline's split) and the stamp the other study stages depend on."""

from transferlab import study
from transferlab.stage import run_stage

if __name__ == "__main__":
    run_stage(study.prepare)
