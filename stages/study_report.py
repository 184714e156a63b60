"""DVC stage `study/dvc.yaml:report`: hypotheses with intervals, strategy ranking, diagnostics, figures."""

from transferlab import study
from transferlab.stage import run_stage


def main(params) -> None:
    sparams = study.study_params(params)
    study.report(sparams, sparams.study)


if __name__ == "__main__":
    run_stage(main)
