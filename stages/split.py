"""DVC stage `split`: the work is in transferlab.split.run."""

from transferlab import split
from transferlab.stage import run_stage

if __name__ == "__main__":
    run_stage(split.run)
