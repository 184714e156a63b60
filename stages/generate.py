"""DVC stage `generate`: the work is in transferlab.generate (render.run)."""

from transferlab.generate import render
from transferlab.stage import run_stage

if __name__ == "__main__":
    run_stage(render.run)
