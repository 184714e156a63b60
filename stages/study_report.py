"""DVC stage `study/dvc.yaml:report`: hypotheses with intervals, strategy ranking, diagnostics, figures."""

from transferlab import study
from transferlab.stage import run_stage

if __name__ == "__main__":
    run_stage(lambda params: study.report(study.study_params(params), params.study))
