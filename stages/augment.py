"""DVC stage `augment`: the work is in transferlab.augment.run."""

from transferlab import augment
from transferlab.stage import run_stage

if __name__ == "__main__":
    run_stage(augment.run)
