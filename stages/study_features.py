"""DVC stage `study/dvc.yaml:features`: pooled backbone features (ImageNet and random init) for the linear probe."""

from transferlab import study
from transferlab.stage import run_stage

if __name__ == "__main__":
    run_stage(lambda params: study.compute_features(study.study_params(params), params.study))
