"""The controller side of pytest-xdist's contract: xdist's controller hooks, fired in herd's
pytest controller with node objects shaped like xdist's, so controller plugins written for xdist
(pytest-cov's distributed mode) work unchanged.

* ``pytest_xdist_setupnodes(config, specs)`` once, then ``pytest_configure_node(node)`` once per
  worker slot, as the controller's session starts (before any worker reaches
  ``pytest_configure``): what plugins add to ``node.workerinput`` is written to the *nodes file*
  (``HERD_PYTEST_NODES``, ``{"nodes": {"w1": {...}}}``), which each worker waits for and merges
  into its ``config.workerinput`` (:func:`worker_extras`).
* ``pytest_configure_node(node)`` again for each replacement process (a respawn: herd says
  ``node_up``), as xdist configures the node that replaces a crashed one: its node's id is
  ``w1-2`` (slot and incarnation), its ``workerinput`` the slot's (``workerid`` stays the slot's,
  herd's worker id), and what plugins add goes to that incarnation's own nodes file
  (``<nodes file>.w1.2``), which the replacement waits for.
* ``pytest_testnodedown(node, error)`` for each worker process that ended, with the node object
  it was configured with, ``node.workeroutput`` set to that process's ``config.workeroutput``
  when it shut down cleanly (``error`` None), or without it and with ``error`` saying how it
  died.

The hook specifications are xdist's own (``xdist.newhooks``) when xdist is installed, else
:mod:`herd_pytest.xdist_hooks` (the same names and arguments).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import types
import warnings

ENV_NODES = "HERD_PYTEST_NODES"
ENV_WORKERS = "HERD_PYTEST_WORKERS"
ENV_TESTRUNUID = "HERD_PYTEST_TESTRUNUID"
#: How long a worker waits for the controller's nodes file (seconds).
ENV_NODES_TIMEOUT = "HERD_PYTEST_NODES_TIMEOUT"


def add_hookspecs(pluginmanager):
    """Registers xdist's controller hook specifications unless they already are (xdist's own
    plugin registers them when it loads)."""
    caller = getattr(pluginmanager.hook, "pytest_configure_node", None)
    if caller is not None and caller.spec is not None:
        return
    try:
        from xdist import newhooks
    except ImportError:
        from . import xdist_hooks as newhooks
    pluginmanager.add_hookspecs(newhooks)


class Spec:
    """What ``pytest_xdist_setupnodes`` gets for a worker slot (xdist's ``XSpec``): ``id`` and
    ``popen``, written as xdist writes a local spec."""

    def __init__(self, worker_id):
        self.id = worker_id
        self.popen = True
        self.execmodel = "main_thread_only"
        self.chdir = None
        self.python = None

    def __str__(self):
        return f"popen//id={self.id}"

    __repr__ = __str__


class _Gateway:
    """The part of an execnet gateway that controller plugins read of a node."""

    def __init__(self, spec):
        self.spec = spec
        self.id = spec.id

    def _rinfo(self):
        # herd's workers run the same Python as the controller (the suite's).
        return types.SimpleNamespace(
            executable=sys.executable,
            version_info=sys.version_info,
            platform=sys.platform,
            cwd=os.getcwd(),
            pid=None,
        )


class _NodeManager:
    """What plugins read of xdist's node manager: the rsync roots (herd rsyncs nothing)."""

    def __init__(self, specs, testrunuid):
        self.specs = specs
        self.roots = []
        self.testrunuid = testrunuid


class Node:
    """A worker as xdist's controller hooks see it (xdist's ``WorkerController``)."""

    def __init__(self, config, spec, manager, workerinput):
        self.config = config
        self.gateway = _Gateway(spec)
        self.nodemanager = manager
        self.workerinput = workerinput
        self.workerinfo = {
            "version": sys.version,
            "version_info": tuple(sys.version_info),
            "sysplatform": sys.platform,
            "platform": platform.platform(),
            "executable": sys.executable,
            "cwd": os.getcwd(),
            "id": spec.id,
            "spec": spec,
        }
        self.shutting_down = False

    @property
    def workerid(self):
        return self.gateway.id

    def __repr__(self):
        return f"<WorkerController {self.gateway.id}>"


class Nodes:
    """The session's nodes, one per worker slot, in the controller."""

    def __init__(self, config, environ=None):
        env = os.environ if environ is None else environ
        self.config = config
        self.path = env.get(ENV_NODES) or None
        ids = [w for w in (env.get(ENV_WORKERS) or "").split(",") if w]
        uid = env.get(ENV_TESTRUNUID) or ""
        self.specs = [Spec(w) for w in ids]
        self.manager = _NodeManager(self.specs, uid)
        self.slots = {}  # slot id -> the node of its first process
        self.processes = {}  # (slot id, incarnation) -> node, until it goes down
        self.mainargv = []
        self.written = False

    def set_up(self, mainargv):
        """``pytest_xdist_setupnodes``, then ``pytest_configure_node`` per slot; writes what
        plugins added to each ``workerinput`` to the nodes file. Always writes the file (with
        nothing for the workers if a hook failed), so no worker waits in vain."""
        self.mainargv = list(mainargv)
        extras, error = {}, None
        try:
            self.config.hook.pytest_xdist_setupnodes(config=self.config, specs=self.specs)
            for spec in self.specs:
                node, extras[spec.id] = self._configure(spec, spec.id)
                self.slots[spec.id] = node
                self.processes[(spec.id, 1)] = node
        except BaseException as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self.write({"nodes": extras, "error": error})

    def _configure(self, spec, worker):
        """A node for ``spec`` (of slot ``worker``) through ``pytest_configure_node``, and what
        the plugins added to its ``workerinput``."""
        base = {
            "workerid": worker,
            "workercount": len(self.specs),
            "testrunuid": self.manager.testrunuid,
            "mainargv": list(self.mainargv),
        }
        node = Node(self.config, spec, self.manager, dict(base))
        self.config.hook.pytest_configure_node(node=node)
        added = {k: v for k, v in node.workerinput.items() if k not in base or base[k] != v}
        return node, added

    def node_up(self, worker, incarnation):
        """``pytest_configure_node`` for the process replacing one of slot ``worker``; what the
        plugins added goes to its incarnation's nodes file (always written, so the process
        never waits in vain)."""
        content = {"nodes": {}, "error": None}
        try:
            spec = Spec(f"{worker}-{incarnation}")
            node, added = self._configure(spec, worker)
            self.processes[(worker, incarnation)] = node
            content["nodes"][worker] = added
        except Exception as exc:
            content["error"] = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            if self.path is not None:
                _write_atomically(incarnation_path(self.path, worker, incarnation), content)

    def write(self, content):
        """Writes the nodes file once, atomically (a worker never reads half of it)."""
        if self.path is None or self.written:
            return
        self.written = True
        _write_atomically(self.path, content)

    def node_down(self, worker, incarnation, workeroutput, error):
        """``pytest_testnodedown`` for one process of slot ``worker``: the node it was configured
        as (a respawn is a node of its own, as xdist replaces a crashed worker with a new one),
        with ``workeroutput`` when it shut down cleanly."""
        node = self.processes.pop((worker, incarnation), None)
        if node is None:  # never configured here (the slot came after the session started)
            slot = self.slots.get(worker)
            spec = Spec(worker if incarnation <= 1 else f"{worker}-{incarnation}")
            workerinput = dict(slot.workerinput) if slot is not None else {"workerid": worker}
            node = Node(self.config, spec, self.manager, workerinput)
        if workeroutput is not None:
            node.workeroutput = workeroutput
        node.shutting_down = True
        self.config.hook.pytest_testnodedown(node=node, error=error)


def incarnation_path(path, worker, incarnation):
    """The nodes file of one replacement process (slot ``worker``, ``incarnation`` > 1)."""
    return f"{path}.{worker}.{incarnation}"


def _write_atomically(path, content):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(content, f, default=str)
    os.replace(tmp, path)


def write_if_missing(environ=None):
    """At the controller's exit: a nodes file with nothing in it if the controller ended before
    setting up the workers, so no worker waits for it in vain."""
    path = (os.environ if environ is None else environ).get(ENV_NODES)
    if path and not os.path.exists(path):
        try:
            Nodes(None, {ENV_NODES: path}).write(
                {"nodes": {}, "error": "the controller ended before setting up the workers"}
            )
        except OSError:
            pass


def worker_extras(worker_id, environ=None, incarnation=1):
    """On a worker: what the controller's plugins added to this worker's ``workerinput``,
    waiting for the controller's nodes file (``{}`` without a controller, or when it never
    comes: then a warning says so). A replacement process (``incarnation`` > 1) waits for its
    own, configured when it started."""
    env = os.environ if environ is None else environ
    path = env.get(ENV_NODES)
    if path and incarnation > 1:
        return _read_nodes(incarnation_path(path, worker_id, incarnation), env).get(worker_id) or {}
    return node_extras(environ).get(worker_id) or {}


def node_extras(environ=None):
    """What the controller's plugins added to each worker's ``workerinput`` (worker id ->
    keys), from the controller's nodes file, waiting for it (``{}`` without a controller)."""
    env = os.environ if environ is None else environ
    path = env.get(ENV_NODES)
    return _read_nodes(path, env) if path else {}


def _read_nodes(path, env):
    """The ``nodes`` of a nodes file, waiting for it to appear."""
    try:
        timeout = float(env.get(ENV_NODES_TIMEOUT) or 30)
    except ValueError:
        timeout = 30.0
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            warnings.warn(
                f"herd: the pytest controller did not set up this worker within {timeout:g}s: "
                "what its plugins add to workerinput (pytest_configure_node) is missing"
            )
            return {}
        time.sleep(0.002)
    with open(path) as f:
        content = json.load(f)
    nodes = content.get("nodes") or {}
    return nodes if isinstance(nodes, dict) else {}
