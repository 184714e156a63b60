import os
import sys
from pathlib import Path

# Tests import their helpers as a module; quiet TensorFlow and MLflow telemetry.
sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
