"""DVC stage `pretrain`: the work is in transferlab.pretrain.run."""

from transferlab import pretrain
from transferlab.stage import run_stage

if __name__ == "__main__":
    run_stage(pretrain.run)
