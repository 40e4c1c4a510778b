"""The fork server (zygote): a worker that loads the conftest files and plugins, configures
and starts the session once, then, as the collection is about to start, forks every worker
incarnation herd asks for (``HERD_ZYGOTE_SOCKET`` set). Each worker collects what its
``welcome`` asks, as a plain start does (a shard of the files, or the files of the tests dealt
to it): the test modules are imported after the fork.

The conversation with herd (JSON lines on a unix socket)::

    zygote -> herd   {"ready": true}  (or {"unsafe": "why"}, then it exits)
    herd -> zygote   {"fork": {"env": {...}}}  + two fds: the worker's stdout and stderr
    zygote -> herd   {"pid": N}  (or {"error": "why"})

On Linux each fork is a double fork: the intermediate process exits at once, so the worker is
re-parented to herd (a child subreaper), which waits on it and owns its process group as for any
worker. Where herd cannot be a subreaper (macOS), herd says so by giving the zygote an *exits
pipe* (``HERD_ZYGOTE_EXITS``, a file descriptor): the zygote forks each worker as its own child,
reaps it as it exits (SIGCHLD) and writes ``{"pid": N, "status": S}`` (the raw wait status) to
that pipe; herd still owns the worker's process group and kills it, only its exit status comes
from the zygote.
In the worker (``become_worker``), before anything else runs: its own session and process
group, stdout and stderr onto herd's pipes (pytest's capture restarted on them), death with
herd, its ``HERD_*`` / ``PYTEST_XDIST_*`` environment, and ``random`` reseeded. Its threads
(the heartbeat) and its ZeroMQ socket are created after the fork; the zygote never starts a
test, so every fixture is set up in the worker. The zygote never runs its exit handlers (it
ends with ``os._exit``): the ones it registered run once in each worker, as in a plain start.
"""

from __future__ import annotations

import gc
import json
import os
import random
import signal
import socket
import sys
import threading
import time

from . import nodes

ENV_ZYGOTE_SOCKET = "HERD_ZYGOTE_SOCKET"
#: The file descriptor of the exits pipe, when the zygote is its workers' parent (see above).
ENV_ZYGOTE_EXITS = "HERD_ZYGOTE_EXITS"
#: Most bytes a fork request may hold.
REQUEST_LIMIT = 1 << 20


def active(environ=None):
    """Whether this pytest is herd's fork server (not yet forked)."""
    env = os.environ if environ is None else environ
    return bool(env.get(ENV_ZYGOTE_SOCKET))


def _decline(problem):
    """Tells herd this suite must not be forked (workers then start the plain way), and ends."""
    try:
        Server(os.environ[ENV_ZYGOTE_SOCKET]).send({"unsafe": problem})
    except (OSError, KeyError) as exc:
        sys.stderr.write(f"herd: the fork server cannot reach herd: {exc}\n")
    os._exit(0)


def fork_unsafe(keep_fds=()):
    """Why this process must not be forked (threads running, connections open), or None."""
    problems = []
    threads = [t.name for t in threading.enumerate() if t is not threading.current_thread()]
    if threads:
        problems.append(f"{len(threads)} thread(s) running as the collection starts: {', '.join(threads[:5])}")
    else:
        tasks = _os_threads()
        if tasks > 1:
            problems.append(f"{tasks - 1} native thread(s) running as the collection starts")
    sockets = _open_sockets(keep_fds)
    if sockets:
        problems.append(f"{sockets} socket(s) open as the collection starts (connections would be shared)")
    return "; ".join(problems) or None


def _os_threads():
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def _open_sockets(keep_fds):
    count = 0
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return 0
    for name in fds:
        try:
            fd = int(name)
            if fd in keep_fds:
                continue
            if os.readlink(f"/proc/self/fd/{name}").startswith("socket:"):
                count += 1
        except (OSError, ValueError):
            pass
    return count


class Server:
    """The zygote's end of the socket: says ready, then forks on request."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buffer = b""
        self.herd_pid = os.getppid()

    def send(self, message):
        self.sock.sendall(json.dumps(message).encode() + b"\n")

    def receive(self):
        """The next request and the fds that came with it; (None, []) when herd is gone."""
        fds = []
        while b"\n" not in self.buffer:
            try:
                data, more, _flags, _addr = socket.recv_fds(self.sock, 65536, 4)
            except OSError:
                return None, fds
            fds.extend(more)
            if not data or len(self.buffer) > REQUEST_LIMIT:
                return None, fds
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        try:
            return json.loads(line), fds
        except ValueError:
            return {}, fds


def serve(path):
    """Runs the fork server; returns only in a forked worker, with its environment and the fds
    of its stdout and stderr (the zygote itself ends with ``os._exit``)."""
    try:
        server = Server(path)
    except OSError as exc:
        sys.stderr.write(f"herd: the fork server cannot reach herd at {path}: {exc}\n")
        os._exit(1)
    _preload()
    problem = fork_unsafe(keep_fds={server.sock.fileno()})
    if problem:
        server.send({"unsafe": problem})
        os._exit(0)
    exits = Exits.from_environ()
    gc.collect()
    gc.freeze()  # what the zygote made stays shared with the workers (copy-on-write)
    server.send({"ready": True})
    while True:
        request, fds = server.receive()
        if request is None:
            os._exit(0)  # herd is gone, or done
        env = (request.get("fork") or {}).get("env")
        if not isinstance(env, dict) or len(fds) != 2:
            _close(fds)
            server.send({"error": "a fork request needs an env object and two fds"})
            continue
        forked = _fork(server, fds) if exits is None else _fork_child(server, exits)
        if forked is None:
            return env, fds  # the worker
        _close(fds)
        server.send(forked)


class Exits:
    """The zygote as its workers' parent: each child's exit, reaped on SIGCHLD, is written to
    herd's exits pipe as one JSON line (small enough to be written at once)."""

    def __init__(self, fd):
        self.fd = fd
        signal.signal(signal.SIGCHLD, self._reap)

    @classmethod
    def from_environ(cls):
        """The exits pipe herd gave, or None (herd is a subreaper: the double fork)."""
        value = os.environ.pop(ENV_ZYGOTE_EXITS, "")
        try:
            return cls(int(value)) if value else None
        except ValueError:
            return None

    def _reap(self, _signum=None, _frame=None):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            try:
                os.write(self.fd, json.dumps({"pid": pid, "status": status}).encode() + b"\n")
            except OSError:
                pass  # herd is gone

    def leave(self):
        """In a forked worker: SIGCHLD is its own again (its subprocesses are its to wait for)
        and the pipe is not held open by it."""
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        try:
            os.close(self.fd)
        except OSError:
            pass


def _fork_child(server, exits):
    """Forks a worker as the zygote's own child: in the zygote, the answer for herd; in the
    worker, None."""
    try:
        pid = os.fork()
    except OSError as exc:
        return {"error": f"fork failed: {exc}"}
    if pid == 0:
        try:
            os.setsid()  # its own session and process group, like a plain start
            exits.leave()
            server.sock.close()
        except BaseException:
            os._exit(1)
        return None
    return {"pid": pid}


def _preload():
    """What every worker needs once forked, imported here once (pyzmq takes some 30 ms); its
    context, and the threads that come with it, only after the fork."""
    try:
        import zmq  # noqa: F401
    except ImportError:
        pass


def _fork(server, fds):
    """Double-forks: in the zygote, the answer for herd; in the worker, None."""
    read_end, write_end = os.pipe()
    try:
        middle = os.fork()
    except OSError as exc:
        _close([read_end, write_end])
        return {"error": f"fork failed: {exc}"}
    if middle == 0:
        try:
            os.close(read_end)
            middle_pid = os.getpid()
            if os.fork() == 0:
                os.setsid()  # its own session and process group, like a plain start
                os.write(write_end, str(os.getpid()).encode())
                os.close(write_end)
                _settle(server, middle_pid)
                return None
        except BaseException:
            os._exit(1)
        os._exit(0)
    os.close(write_end)
    os.waitpid(middle, 0)
    with os.fdopen(read_end, "rb") as pipe:
        said = pipe.read()
    try:
        return {"pid": int(said)}
    except ValueError:
        return {"error": "the forked worker did not say its pid"}


def _settle(server, middle_pid):
    """In the worker: the socket closed, death with herd."""
    server.sock.close()
    deadline = time.monotonic() + 5
    while os.getppid() == middle_pid and time.monotonic() < deadline:
        time.sleep(0.0005)  # until the intermediate process is gone
    _die_with_parent()
    if os.getppid() != server.herd_pid:
        os._exit(70)  # herd died while we were forked


def _die_with_parent():
    """SIGTERM when herd dies (Linux's parent-death signal), as for a plain start."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def become_worker(config, env, fds):
    """In the forked worker, before it says hello: its environment, a fresh ``random``, its
    stdout and stderr onto herd's pipes ``fds``, with pytest's capture (and faulthandler) moved
    there too."""
    for key, value in env.items():
        os.environ[str(key)] = str(value)
    random.seed()
    capman = config.pluginmanager.getplugin("capturemanager")
    capturing = capman is not None and capman.is_globally_capturing()
    if capturing:
        # The zygote's capture files are shared with every other fork: start new ones, once
        # the zygote's stdout and stderr are put back.
        capman.stop_global_capturing()
    for fd, target in zip(fds, (1, 2)):
        os.dup2(fd, target)
        os.close(fd)
    if capturing:
        capman.start_global_capturing()
        capman.suspend_global_capture()
    _move_faulthandler(config)


def provisional_identity(config):
    """In the zygote: xdist's ``workerinput`` (so plugins see a worker as they configure),
    refreshed in place by each forked worker (``take_identity``); no basetemp of its own."""
    from . import xdist_contract

    config.workerinput = xdist_contract.worker_input(config)
    config.workeroutput = {}
    extras = [value for value in nodes.node_extras().values() if value]
    if extras and any(value != extras[0] for value in extras):
        # Plugins read workerinput as they configure, which the fork server does once: it
        # declines before any plugin configures.
        keys = ", ".join(sorted({k for value in extras for k in value}))
        _decline(
            "the pytest controller's plugins give each worker its own workerinput in "
            f"pytest_configure_node ({keys}), which plugins read as they configure: the fork "
            "server would configure once for all"
        )
    elif extras:
        # The same for every worker (pytest-cov's): the fork server configures with it.
        config.workerinput.update(extras[0])


def take_identity(config, incarnation):
    """In the forked worker: its own ``workerinput`` (the same dict, updated, so plugins that
    kept it see the worker's), ``workeroutput`` and basetemp."""
    from . import xdist_contract

    if not xdist_contract.requested():
        return
    kept = getattr(config, "workerinput", None)
    # What plugins put into workeroutput as they configured (pytest-metadata's metadata) is
    # the worker's too: the same dict goes on.
    output = getattr(config, "workeroutput", None)
    xdist_contract.become_worker(config, incarnation)
    if isinstance(kept, dict):
        kept.clear()
        kept.update(config.workerinput)
        config.workerinput = kept
    if isinstance(output, dict):
        output.update(config.workeroutput)
        config.workeroutput = output
    try:
        from _pytest.tmpdir import TempPathFactory

        config._tmp_path_factory = TempPathFactory.from_config(config, _ispytest=True)
    except Exception as exc:  # a pytest without these internals: the zygote's basetemp root
        sys.stderr.write(f"herd: cannot give the forked worker its own basetemp: {exc}\n")


def _move_faulthandler(config):
    """pytest's faulthandler writes to a copy of the zygote's stderr: point it at ours."""
    try:
        from _pytest.faulthandler import fault_handler_stderr_fd_key

        fd = config.stash.get(fault_handler_stderr_fd_key, None)
        if fd is not None:
            os.dup2(2, fd)
    except Exception:
        pass


def _close(fds):
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
