"""DVC stage `study/dvc.yaml:pretrained`: the synthetic sources of study.sources, pretrained once."""

from pathlib import Path

from transferlab import study
from transferlab.stage import run_stage
from transferlab.study.sources import pretrain_sources


def main(params) -> None:
    (Path(params.study.output) / "pretrained").mkdir(parents=True, exist_ok=True)  # DVC's output, even if empty
    sparams = study.study_params(params)
    pretrain_sources(sparams, sparams.study, study.load_study_data(sparams, sparams.study))


if __name__ == "__main__":
    run_stage(main)
