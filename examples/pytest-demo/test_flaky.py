"""A test that kills its worker the first time it runs: herd reports it, respawns the worker and,
with --crash-retries 1, runs it again on the fresh worker."""
import os
from pathlib import Path


def test_crashes_its_worker_once():
    mark = Path(os.environ.get("HERD_DEMO_MARK", ".herd/demo-pytest-crashed"))
    if not mark.exists():
        mark.parent.mkdir(parents=True, exist_ok=True)
        mark.touch()
        os._exit(1)
