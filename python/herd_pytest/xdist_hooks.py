"""pytest-xdist's controller hook specifications, by the same names and arguments, for a
suite without xdist installed (with xdist, its own ``xdist.newhooks`` are registered instead).
herd fires them in its pytest controller (see :mod:`herd_pytest.nodes`)."""

import pytest


@pytest.hookspec
def pytest_xdist_setupnodes(config, specs):
    """Called once before the workers are set up; ``specs`` has one spec per worker slot."""


@pytest.hookspec
def pytest_configure_node(node):
    """Called per worker slot before its worker configures: keys added to
    ``node.workerinput`` reach that worker's ``config.workerinput``."""


@pytest.hookspec
def pytest_testnodedown(node, error):
    """A worker process ended: ``node.workeroutput`` is its ``config.workeroutput`` when it shut
    down cleanly (``error`` None); otherwise ``error`` says how it died."""
