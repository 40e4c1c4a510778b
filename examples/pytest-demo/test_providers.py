"""Tests parametrized over providers: with --providers pg,mysql each provider's groups stay on
the worker that holds it."""
import os
import time

import pytest


@pytest.mark.parametrize("provider", ["pg", "mysql"])
@pytest.mark.parametrize("op", ["query", "migrate", "backup"])
def test_database(provider, op):
    time.sleep(0.1)
    print(f"{os.environ.get('HERD_WORKER_ID')} runs {op} on {provider}")


def test_needs_gpu():
    pytest.skip("no GPU on this machine")
