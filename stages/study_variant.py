"""DVC stage `study/dvc.yaml:<group>@...`: train and test one variant of the study.

    python stages/study_variant.py GROUP ARM AUGMENT TRAIN_SIZE SEED OUTPUT_FOLDER [SOURCE]
"""

import sys

from transferlab import study
from transferlab.stage import run_stage
from transferlab.errors import TransferlabError


def main(params) -> None:
    if len(sys.argv) not in (7, 8):
        raise TransferlabError("usage: study_variant.py GROUP ARM AUGMENT TRAIN_SIZE SEED OUTPUT_FOLDER [SOURCE]")
    group, arm, augment, size, seed, folder = sys.argv[1:7]
    source = sys.argv[7] if len(sys.argv) == 8 else ""
    variant = study.find_variant(params.study, group, arm, float(augment), int(size), int(seed), source)
    sparams = study.study_params(params)
    study.run_variants(sparams, sparams.study, [variant], folder=folder)


if __name__ == "__main__":
    run_stage(main)
