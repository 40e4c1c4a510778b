"""The fork server's Python side: what makes a process unsafe to fork, and the socket
conversation (ready, a fork request with two fds, the pid of a worker in its own session)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading

import pytest

PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, PYTHON_DIR)

from herd_pytest import zygote  # noqa: E402


def test_a_running_thread_makes_the_process_unsafe_to_fork():
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="poller", daemon=True)
    thread.start()
    try:
        why = zygote.fork_unsafe()
        assert why is not None and "poller" in why
    finally:
        stop.set()
        thread.join()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/fd")
def test_an_open_socket_makes_the_process_unsafe_to_fork_unless_kept():
    before = zygote._open_sockets(())
    a, b = socket.socketpair()
    try:
        assert zygote._open_sockets(()) == before + 2
        assert zygote._open_sockets({a.fileno(), b.fileno()}) == before
        assert "socket(s) open" in zygote.fork_unsafe()
    finally:
        a.close()
        b.close()


def test_only_the_zygote_variable_makes_a_zygote():
    assert zygote.active({zygote.ENV_ZYGOTE_SOCKET: "/tmp/x.sock"})
    assert not zygote.active({})


WORKER = """
import os, sys
sys.path.insert(0, {python_dir!r})
from herd_pytest import zygote
env, fds = zygote.serve({path!r})
os.dup2(fds[0], 1)
print(env["X"], os.getpgid(0) == os.getpid(), flush=True)
os._exit(0)
"""


def _become_subreaper():
    """As herd does: the worker, orphaned by the zygote's intermediate process, becomes ours."""
    import ctypes

    assert ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a child subreaper (Linux)")
def test_the_zygote_says_ready_then_forks_a_worker_in_its_own_session(tmp_path):
    _become_subreaper()
    path = str(tmp_path / "z.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    listener.settimeout(20)
    script = WORKER.format(python_dir=PYTHON_DIR, path=path)
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        conn, _ = listener.accept()
        conn.settimeout(20)
        reader = conn.makefile("rb")
        assert json.loads(reader.readline()) == {"ready": True}
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        request = json.dumps({"fork": {"env": {"X": "w7"}}}).encode() + b"\n"
        socket.send_fds(conn, [request], [out_w, err_w])
        os.close(out_w)
        os.close(err_w)
        reply = json.loads(reader.readline())
        assert reply["pid"] > 1
        with os.fdopen(out_r, "rb") as out:
            assert out.read().decode().split() == ["w7", "True"]
        assert os.waitpid(reply["pid"], 0)[1] == 0  # re-parented to us
        os.close(err_r)
        # A malformed request is answered, and the server goes on.
        conn.sendall(b'{"fork": {}}\n')
        assert "error" in json.loads(reader.readline())
        reader.close()
        conn.close()  # herd is gone: the zygote ends
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        listener.close()


def test_an_unsafe_zygote_says_why_and_exits(tmp_path):
    path = str(tmp_path / "z.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    listener.settimeout(20)
    script = (
        f"import sys, threading, time\nsys.path.insert(0, {PYTHON_DIR!r})\n"
        "from herd_pytest import zygote\n"
        "threading.Thread(target=time.sleep, args=(30,), name='db-pool', daemon=True).start()\n"
        f"zygote.serve({path!r})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        conn, _ = listener.accept()
        conn.settimeout(20)
        said = json.loads(conn.makefile("rb").readline())
        assert "db-pool" in said["unsafe"]
        assert proc.wait(timeout=20) == 0
        conn.close()
    finally:
        if proc.poll() is None:
            proc.kill()
        listener.close()
