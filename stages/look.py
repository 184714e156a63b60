"""DVC stage `look`: the work is in transferlab.look.run."""

from transferlab import look
from transferlab.stage import run_stage

if __name__ == "__main__":
    run_stage(look.run)
