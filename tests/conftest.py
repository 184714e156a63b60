import os
import sys
from pathlib import Path

import pytest

# Tests import their helpers as a module; quiet TensorFlow and MLflow telemetry.
sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

# Tests that make throw-away git/DVC repositories need an identity, also on a bare CI machine.
for _var, _value in (("GIT_AUTHOR_NAME", "transferlab tests"), ("GIT_AUTHOR_EMAIL", "tests@transferlab.invalid"),
                     ("GIT_COMMITTER_NAME", "transferlab tests"), ("GIT_COMMITTER_EMAIL", "tests@transferlab.invalid")):
    os.environ.setdefault(_var, _value)
# A wrapper run first ends last: the line comes after pytest's own skip list, just above the counts.
@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter):
    """One closing line that names what was skipped and how to enable it: `make test` passes
    without Chromium, PostgreSQL or JAX, and that must not go unnoticed."""
    yield
    reasons: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    if reasons:
        listed = "; ".join(f"{count} × {reason}" for reason, count in sorted(reasons.items()))
        terminalreporter.write_line(f"skipped: {listed}; as root, .ci/run installs all of them and runs make test",
                                    yellow=True, bold=True)
