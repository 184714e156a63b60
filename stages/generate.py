"""DVC stage `generate`: the work is in transferlab.synth.run."""

from transferlab import synth
from transferlab.stage import run_stage

if __name__ == "__main__":
    run_stage(synth.run)
