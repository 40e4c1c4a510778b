"""The worker side of pytest-xdist's contract, so plugins written for xdist work unchanged.

What such plugins look for on a worker, and where herd's worker gets it:

* ``PYTEST_XDIST_WORKER``, ``PYTEST_XDIST_WORKER_COUNT``, ``PYTEST_XDIST_TESTRUNUID``: set by
  the coordinator when it spawns the worker, so they are there before any conftest file loads;
* ``config.workerinput`` (``workerid``, ``workercount``, ``testrunuid``, ``mainargv``, what
  the controller's plugins added in ``pytest_configure_node`` (see :mod:`herd_pytest.nodes`),
  and pytest-randomly's seed) and ``config.workeroutput = {}``, set
  after the conftest files load and before ``pytest_configure``, as xdist sets them;
* a ``--basetemp`` of its own under one directory per session, so
  ``tmp_path_factory.getbasetemp().parent`` is shared by the workers of a session;
* the ``worker_id`` and ``testrun_uid`` fixtures, when xdist itself is not active.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from . import nodes

ENV_WORKER = "PYTEST_XDIST_WORKER"
ENV_WORKER_COUNT = "PYTEST_XDIST_WORKER_COUNT"
ENV_TESTRUNUID = "PYTEST_XDIST_TESTRUNUID"
#: A JSON object merged into ``config.workerinput``: what a controller's plugins add there.
ENV_EXTRA_INPUT = "HERD_WORKERINPUT"
#: The arguments herd adds to the user's pytest command line (not part of ``mainargv``).
HERD_ARGS = ["-p", "herd_pytest.plugin", "-p", "no:xdist"]


def requested(environ=None):
    """Whether the coordinator asked this worker to take xdist's contract (it set the run id)."""
    env = os.environ if environ is None else environ
    return bool(env.get(ENV_TESTRUNUID))


def become_worker(config, incarnation):
    """Makes this pytest look like an xdist worker: ``workerinput``, ``workeroutput`` and its
    own ``--basetemp``. Called after the conftest files load, before ``pytest_configure``."""
    workerinput = worker_input(config, incarnation=incarnation)
    config.workerinput = workerinput
    config.workeroutput = {}
    name = workerinput["workerid"]
    if incarnation > 1:
        name = f"{name}-{incarnation}"  # a respawn keeps what the dead process left
    config.option.basetemp = str(worker_basetemp(config, name, workerinput["testrunuid"]))


def worker_input(config, environ=None, argv=None, incarnation=1):
    """``config.workerinput`` as xdist's controller would send it (to this slot's
    ``incarnation``: a respawn's own node has its own)."""
    env = os.environ if environ is None else environ
    uid = env[ENV_TESTRUNUID]
    workerinput = {
        "workerid": env.get(ENV_WORKER) or env.get("HERD_WORKER_ID", "w0"),
        "workercount": int(env.get(ENV_WORKER_COUNT) or 1),
        "testrunuid": uid,
        "mainargv": main_argv(sys.argv if argv is None else argv),
    }
    workerinput.update(plugin_inputs(config, uid))
    workerinput.update(nodes.worker_extras(workerinput["workerid"], env, incarnation))
    extra = env.get(ENV_EXTRA_INPUT)
    if extra:
        workerinput.update(json.loads(extra))
    return workerinput


def main_argv(argv):
    """The user's pytest command line: this worker's, without the arguments herd added."""
    argv = list(argv)
    n = len(HERD_ARGS)
    for at in range(len(argv) - n + 1):
        if argv[at : at + n] == HERD_ARGS:
            return argv[:at] + argv[at + n :]
    return argv


def plugin_inputs(config, testrunuid):
    """What well-known controller plugins put into ``workerinput`` in ``pytest_configure_node``,
    computed the same on every worker: pytest-randomly's seed."""
    if not config.pluginmanager.hasplugin("randomly"):
        return {}
    return {"randomly_seed": randomly_seed(config, testrunuid)}


def randomly_seed(config, testrunuid):
    """The seed every worker shuffles with: the user's ``--randomly-seed``, else one derived
    from the session's run id (32 bits, as pytest-randomly draws them)."""
    session_seed = int(testrunuid[:8], 16)
    given = config.getoption("randomly_seed", "default")
    if given == "last":
        try:
            from _pytest.cacheprovider import Cache

            return Cache.for_config(config, _ispytest=True).get("randomly_seed", session_seed)
        except Exception:  # no cache here: the session's seed
            return session_seed
    if given in (None, "default"):
        return session_seed
    return given


def seed_notice(config):
    """The line that says the session's pytest-randomly seed, or None without pytest-randomly."""
    workerinput = getattr(config, "workerinput", {})
    if "randomly_seed" not in workerinput:
        return None
    return f"Using --randomly-seed={workerinput['randomly_seed']}"


# ---- basetemp --------------------------------------------------------------------------------


def worker_basetemp(config, name, testrunuid):
    """This worker's ``--basetemp``: ``ROOT/NAME``, ROOT being the user's ``--basetemp`` or
    else one directory per session where pytest makes its own (``pytest-of-USER/pytest-N``)."""
    given = config.getoption("basetemp", None)
    if given:
        root = Path(os.path.abspath(given))
        root.mkdir(parents=True, exist_ok=True)
    else:
        root = session_root(config, testrunuid)
    return root / name


def session_root(config, testrunuid):
    """The session's directory, shared by its workers on this host: the first worker to get here
    makes a ``pytest-N`` the way plain pytest does (with its lock and retention), and leaves a
    link ``pytest-of-USER/herd-RUNID`` to it for the others."""
    from _pytest.tmpdir import TempPathFactory, get_user

    temproot = Path(os.environ.get("PYTEST_DEBUG_TEMPROOT") or tempfile.gettempdir()).resolve()
    link = temproot / f"pytest-of-{get_user() or 'unknown'}" / f"herd-{testrunuid}"
    found = _linked_root(link)
    if found is not None:
        return found
    mine = TempPathFactory.from_config(config, _ispytest=True).getbasetemp()
    try:
        os.symlink(mine, link)
    except FileExistsError:
        found = _linked_root(link)
        if found is not None:
            shutil.rmtree(mine, ignore_errors=True)
            return found
        return mine
    _sweep_dangling_links(link.parent)
    return mine


def _linked_root(link):
    """The directory ``link`` points to, if it is one of ours."""
    try:
        target = Path(os.readlink(link))
        st = target.stat()
    except OSError:
        return None
    if not target.is_dir() or st.st_uid != os.getuid() or target.parent != link.parent:
        return None
    return target


def _sweep_dangling_links(folder):
    """Removes the links of past sessions whose directory pytest's retention has removed."""
    for entry in folder.glob("herd-*"):
        if entry.is_symlink() and not entry.exists():
            try:
                entry.unlink()
            except OSError:
                pass


# ---- fixtures --------------------------------------------------------------------------------


# Registered as a plugin (this module) only when xdist, which has its own, is not active.


@pytest.fixture(scope="session")
def worker_id(request):
    """This worker's id (``w1``, ...), or ``"master"`` when not running under herd (as xdist)."""
    workerinput = getattr(request.config, "workerinput", None)
    return workerinput["workerid"] if workerinput else "master"


@pytest.fixture(scope="session")
def testrun_uid(request):
    """One id for the whole test run, the same on every worker."""
    workerinput = getattr(request.config, "workerinput", None)
    return workerinput["testrunuid"] if workerinput else uuid.uuid4().hex


def register_fixtures(config):
    """Provides ``worker_id`` and ``testrun_uid`` unless xdist (which has its own) is active."""
    manager = config.pluginmanager
    if manager.hasplugin("xdist") or manager.has_plugin("herd_xdist_fixtures"):
        return
    manager.register(sys.modules[__name__], "herd_xdist_fixtures")
