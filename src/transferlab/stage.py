"""How every DVC stage script runs: ``stages/<name>.py`` is ``run_stage(<module>.run)``.

Kept apart from the click CLI so that a stage imports only what it runs: the DVC deps of a
stage (``dvc.yaml``) list exactly the modules its script reaches (``tests/test_dvc_deps.py``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from transferlab.errors import TransferlabError

DEFAULT_PARAMS_FILE = "params.yaml"

# TensorFlow's C++ start-up logs (and a harmless tf.data "use_unbounded_threadpool" error
# line per fit) bury the messages users need; real failures still raise Python exceptions.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def run_stage(stage: Callable[[Any], Any], params_file: str | None = DEFAULT_PARAMS_FILE,
              overrides: Sequence[str] = ()) -> None:
    """Load params.yaml (unless ``params_file`` is None; ``overrides``: ``-S KEY=VALUE``), run one
    stage, and turn user errors into one message and exit code 1."""
    from transferlab.config import load_params

    try:
        stage(load_params(params_file, overrides) if params_file else None)
    except TransferlabError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
    except KeyboardInterrupt:
        print("interrupted: no output was replaced", file=sys.stderr, flush=True)
        sys.exit(130)
