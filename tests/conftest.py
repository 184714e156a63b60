import os
import sys
from pathlib import Path

# Tests import their helpers as a module; quiet TensorFlow and MLflow telemetry.
sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

# Tests that make throw-away git/DVC repositories need an identity, also on a bare CI machine.
for _var, _value in (("GIT_AUTHOR_NAME", "transferlab tests"), ("GIT_AUTHOR_EMAIL", "tests@transferlab.invalid"),
                     ("GIT_COMMITTER_NAME", "transferlab tests"), ("GIT_COMMITTER_EMAIL", "tests@transferlab.invalid")):
    os.environ.setdefault(_var, _value)
