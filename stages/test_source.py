"""DVC stage `test-source`: the work is in transferlab.test_source.run."""

from transferlab import test_source
from transferlab.stage import run_stage

if __name__ == "__main__":
    run_stage(test_source.run)
