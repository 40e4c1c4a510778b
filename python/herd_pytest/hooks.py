"""Hooks for harnesses that follow a herd session, fired in the pytest controller (the seed's
``pytest_parallel_configured`` and node-shutdown hooks). Implement them in a conftest file or a
plugin; herd registers these specifications on its workers and on its controller, so either can
load a conftest that implements them."""

import pytest


@pytest.hookspec
def pytest_herd_configured(config, workers):
    """The parallel session is configured: ``workers`` is a list of ``{"id": "w1",
    "appliance": "https://a1" or None}``, one per worker slot, in slot order. Called once, in
    the controller, before any test report."""


@pytest.hookspec
def pytest_herd_worker_down(config, worker, appliance, reason):
    """A worker shut down (its work done) or its slot was retired (``reason`` says which and
    why); ``appliance`` is the one it owned, or None. Called in the controller."""


def add_to(pluginmanager):
    """Registers these specifications once (the worker plugin and the controller may share a
    process when both are installed)."""
    import sys

    caller = getattr(pluginmanager.hook, "pytest_herd_configured", None)
    if caller is not None and caller.spec is not None:
        return
    pluginmanager.add_hookspecs(sys.modules[__name__])
