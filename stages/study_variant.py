"""DVC stage `study/dvc.yaml:<group>@...`: train and test one variant of the study.

    python stages/study_variant.py GROUP ARM AUGMENT TRAIN_SIZE SEED OUTPUT_FOLDER
"""

import sys

from transferlab import study
from transferlab.cli import run_stage
from transferlab.errors import TransferlabError


def main(params) -> None:
    if len(sys.argv) != 7:
        raise TransferlabError("usage: study_variant.py GROUP ARM AUGMENT TRAIN_SIZE SEED OUTPUT_FOLDER")
    group, arm, augment, size, seed, folder = sys.argv[1:]
    variant = study.find_variant(params.study, group, arm, float(augment), int(size), int(seed))
    study.run_variants(params, params.study, [variant], folder=folder)


if __name__ == "__main__":
    run_stage(main)
