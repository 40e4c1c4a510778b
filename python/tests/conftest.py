"""Fixtures for testing herd's worker plugin against a fake coordinator.

The fake coordinator is a ZeroMQ ROUTER bound to an ipc:// endpoint, driven from the test itself
(every receive has a timeout, so a broken plugin fails a test instead of hanging the suite). The
worker is a real ``python -m pytest -p herd_pytest.plugin`` subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
import zmq

PYTHON_DIR = Path(__file__).resolve().parent.parent  # the directory holding herd_pytest/
RECV_TIMEOUT = 20.0  # seconds; generous, only reached when something is broken


class FakeCoordinator:
    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind(endpoint)
        self.received = []  # every (identity, message), in arrival order
        self.pending = []  # messages of a batch frame not yet handed out
        self.heartbeats = 0
        self.frames = 0  # frames received, heartbeats not counted

    def recv(self, timeout=RECV_TIMEOUT):
        """The next (identity, message); fails the test after ``timeout`` seconds. A frame may
        hold a batch (a JSON array of messages): they are handed out one by one, in order."""
        if not self.pending:
            if not self.socket.poll(int(timeout * 1000)):
                raise AssertionError(
                    f"fake coordinator: nothing received within {timeout}s; so far: "
                    f"{[m for _, m in self.received]}"
                )
            frames = self.socket.recv_multipart()
            assert len(frames) == 2, f"expected [identity, payload], got {frames!r}"
            identity, payload = frames
            decoded = json.loads(payload)
            batch = decoded if isinstance(decoded, list) else [decoded]
            assert batch, "an empty batch"
            if batch != [{"type": "heartbeat"}]:
                self.frames += 1
            self.pending = [(identity, message) for message in batch]
        identity, message = self.pending.pop(0)
        assert isinstance(message, dict) and "type" in message, message
        if message["type"] == "heartbeat":
            # Heartbeats arrive at any time (from the worker's heartbeat thread): counted, not
            # handed out, so the tests see the protocol's conversation.
            self.heartbeats += 1
            return self.recv(timeout)
        self.received.append((identity, message))
        return identity, message

    def recv_message(self, timeout=RECV_TIMEOUT):
        return self.recv(timeout)[1]

    def expect(self, kind, timeout=RECV_TIMEOUT):
        identity, message = self.recv(timeout)
        assert message["type"] == kind, f"expected {kind!r}, got {message}"
        return identity, message

    def send(self, identity, message):
        self.socket.send_multipart([identity, json.dumps(message).encode()])

    def handshake(self):
        """Answers the hello with welcome; returns (identity, hello)."""
        identity, hello = self.expect("hello")
        self.send(
            identity,
            {"type": "welcome", "worker": hello["worker"], "incarnation": hello["incarnation"]},
        )
        return identity, hello

    def serve(self, identity, groups, timeout=RECV_TIMEOUT):
        """Deals out ``groups`` (lists of test ids) on need_tests, then an empty list, until the
        worker says shutdown. Returns the messages received meanwhile (shutdown included)."""
        groups = list(groups)
        messages = []
        while True:
            _, message = self.recv(timeout)
            messages.append(message)
            if message["type"] == "need_tests":
                self.send(identity, {"type": "tests", "tests": groups.pop(0) if groups else []})
            elif message["type"] == "shutdown":
                return messages

    def close(self):
        self.socket.close(0)
        self.context.term()


class Worker:
    """A worker subprocess with its output in files (no pipe can fill up and block it)."""

    def __init__(self, popen, out_path, err_path):
        self.popen = popen
        self.out_path = out_path
        self.err_path = err_path

    @property
    def pid(self):
        return self.popen.pid

    def wait(self, timeout=RECV_TIMEOUT):
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"worker did not exit within {timeout}s\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"
            )

    @property
    def stdout(self):
        return self.out_path.read_text(errors="replace") if self.out_path.exists() else ""

    @property
    def stderr(self):
        return self.err_path.read_text(errors="replace") if self.err_path.exists() else ""

    def kill(self):
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.popen.wait(5)


@pytest.fixture
def sock_dir():
    # ipc:// paths are limited to ~107 bytes, so keep them short rather than inside tmp_path.
    path = tempfile.mkdtemp(prefix="herd-t-")
    yield Path(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def coordinator(sock_dir):
    coord = FakeCoordinator(f"ipc://{sock_dir}/herd.sock")
    yield coord
    coord.close()


@pytest.fixture
def write_suite(tmp_path):
    """Writes test files (name -> source) into a fresh suite directory and returns it."""

    def write(files, name="suite"):
        root = tmp_path / name
        root.mkdir()
        for rel, source in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(source))
        return root

    return write


@pytest.fixture
def spawn_worker(tmp_path, coordinator):
    """Starts a worker on a suite directory: spawn_worker(suite, env={...}, args=[...])."""
    workers = []

    def spawn(suite, env=None, args=(), herd=True, endpoint=None):
        full_env = {
            k: v for k, v in os.environ.items() if not k.startswith(("HERD_", "PYTEST_"))
        }
        full_env["PYTHONPATH"] = os.pathsep.join(
            [str(PYTHON_DIR)] + ([full_env["PYTHONPATH"]] if full_env.get("PYTHONPATH") else [])
        )
        full_env["PYTHONDONTWRITEBYTECODE"] = "1"
        if herd:
            full_env.update(
                {
                    "HERD_ENDPOINT": endpoint or coordinator.endpoint,
                    "HERD_TOKEN": "t0ken",
                    "HERD_WORKER_ID": "w1",
                    "HERD_INCARNATION": "1",
                    "HERD_CONNECT_TIMEOUT": "10",
                }
            )
        full_env.update(env or {})
        n = len(workers)
        out_path = tmp_path / f"worker{n}.out"
        err_path = tmp_path / f"worker{n}.err"
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "herd_pytest.plugin",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "-p",
            "no:randomly",
            *args,
            str(suite),
        ]
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            popen = subprocess.Popen(
                cmd,
                cwd=str(suite),
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,  # like herd: the worker leads its own process group
            )
        worker = Worker(popen, out_path, err_path)
        workers.append(worker)
        return worker

    yield spawn
    for worker in workers:
        worker.kill()


def wait_for(predicate, timeout=10.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
