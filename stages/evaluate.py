"""DVC stage `evaluate`: the work is in transferlab.evaluate.run."""

from transferlab import evaluate
from transferlab.stage import run_stage

if __name__ == "__main__":
    run_stage(evaluate.run)
