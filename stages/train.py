"""DVC stage `train`: the work is in transferlab.train.run."""

from transferlab import train
from transferlab.stage import run_stage

if __name__ == "__main__":
    run_stage(train.run)
