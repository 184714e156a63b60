"""DVC stage `test-source`: the work is in transferlab.stamp.run."""

from transferlab import stamp
from transferlab.stage import run_stage

if __name__ == "__main__":
    run_stage(stamp.run)
