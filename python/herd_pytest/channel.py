"""The worker's side of the conversation with the coordinator: one ZeroMQ DEALER socket.

Two threads use the socket, always under ``io_lock``::

    main thread (pytest)                     io thread ("herd-io", every IO_TICK_S)
    --------------------                     --------------------------------------
    send / queue + flush                     heartbeat every HEARTBEAT_S
    receive_until(kinds) / poll_stop()       reads what arrives while a test runs:
         |                                     release -> answer_release
         v                                     anything else -> inbox (for the main thread)
    one rule for what arrives (``_apply_rule``):
      release -> answer_release (the one steal path, whichever thread reads it)
      stop    -> stop_requested; every wait ends (now and later) with None
      error   -> refused: the socket closes at once and the worker ends with the message
      other   -> handed to the waiter if it is of a kind it waits for, else ignored

Queued messages (test starts, passing reports, warnings) go out together as one frame holding
a JSON array: with the next ``send`` or ``flush``, or as a test starts once ``BATCH_S`` has
passed since the last frame (checked too by the io thread while a test runs). A test longer
than that costs one frame, sent as it starts, as before; a worker running tiny tests sends a
few dozen frames a second, not one per test. Anything that did not pass is flushed at once.
Starts wait only while the status file records them (``plugin.pytest_runtest_logstart``): herd
reads from it which test a worker that died was running, and the tests whose passes had not
left yet go back to the queue and run again.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import deque

import pytest

from .process import LEAVING
from .wire import MESSAGE_LIMIT, decode, encode

#: How long closing the socket may wait for the last frames to leave (milliseconds).
LINGER_MS = 2000
#: Seconds between heartbeats (promised in ``hello``; herd takes a silent worker for hung).
HEARTBEAT_S = 1.0
#: How long a blocking wait sleeps in one poll, so signals are handled promptly (milliseconds).
POLL_SLICE_MS = 500
#: How often the io thread looks for a ``release`` while a test runs (seconds).
IO_TICK_S = 0.05
#: The shortest time between two frames of queued messages (seconds).
BATCH_S = 0.025
#: pytest's exit code for a usage error: herd stops the session with the worker's message.
USAGE_EXIT = 4


def _import_zmq():
    """pyzmq, or the end of this worker with herd's usage error: herd's preflight only finds
    pyzmq (importing it costs time before anything starts), so a pyzmq that is there but does
    not import is said here, as the preflight says a missing one, once (exit 4, before hello)."""
    try:
        import zmq
    except ImportError as exc:
        py = sys.executable
        sys.stderr.write(
            f"herd: error: {py} cannot import zmq (pyzmq) ({type(exc).__name__}: {exc}): "
            f"install it with {py} -m pip install pyzmq\n"
        )
        sys.stderr.flush()
        os._exit(USAGE_EXIT)
    return zmq



class HerdError(Exception):
    """The coordinator refused us or went away; the worker must end."""


class ReplyTimeout(Exception):
    """The awaited reply did not come in time."""


class Channel:
    """The socket to the coordinator, the io thread, and the one rule for what arrives.

    ``give_back(ids) -> given`` drops the requested tests that have not started from the
    worker's queue and returns the ids it gave back; it answers every ``release``.
    """

    def __init__(self, endpoint, identity, give_back):
        self.endpoint = endpoint
        self.identity = identity
        self.give_back = give_back
        self.zmq = None
        self.context = None
        self.socket = None
        self.poller = None
        # The socket is shared with the io thread: every use takes this lock.
        self.io_lock = threading.RLock()
        self.io_stop = threading.Event()
        self.inbox = deque()  # messages the io thread read for the main thread
        self.queued = []  # encoded messages not sent yet
        self.queued_bytes = 0  # their size, so a batch never outgrows a frame
        self.last_frame = 0.0  # when the last frame was sent (monotonic)
        #: The coordinator said ``stop``: nothing more is started.
        self.stop_requested = False
        #: ``shutdown`` sent (or the coordinator refused us): nothing more is said.
        self.finished = False

    # ---- the socket -------------------------------------------------------------------------

    def connect(self, socket_name):
        """Connects to the coordinator; ``socket_name`` is the ZeroMQ identity (unguessable)."""
        zmq = _import_zmq()
        self.zmq = zmq
        self.context = zmq.Context()
        sock = self.context.socket(zmq.DEALER)
        sock.setsockopt(zmq.IDENTITY, socket_name.encode())
        sock.setsockopt(zmq.LINGER, LINGER_MS)
        sock.setsockopt(zmq.SNDHWM, 100000)
        sock.setsockopt(zmq.RCVHWM, 100000)
        sock.connect(self.endpoint)
        self.socket = sock
        self.poller = zmq.Poller()
        self.poller.register(sock, zmq.POLLIN)

    def close(self, linger=None):
        """Stops the io thread and closes the socket: queued messages are flushed first,
        unless ``linger`` (milliseconds) is given, which also bounds how long they may wait."""
        self.io_stop.set()
        with self.io_lock:
            if self.queued and linger is None:
                try:
                    self.flush()
                except Exception:
                    pass
            sock, self.socket = self.socket, None
            if sock is not None:
                try:
                    if linger is not None:
                        sock.setsockopt(self.zmq.LINGER, linger)
                    sock.close()
                except Exception:
                    pass
            ctx, self.context = self.context, None
            if ctx is not None:
                try:
                    ctx.term()
                except Exception:
                    pass

    def start_io_thread(self):
        """Starts the io thread: ``heartbeat`` every HEARTBEAT_S, even while a test runs, and
        ``release`` answered at once (other messages are left in the inbox)."""
        threading.Thread(target=self._io_thread, name="herd-io", daemon=True).start()

    def _io_thread(self):
        last_beat = time.monotonic()
        while not self.io_stop.wait(IO_TICK_S):
            with self.io_lock:
                sock = self.socket
                if sock is None:
                    return
                try:
                    self.flush_if_due()
                    if time.monotonic() - last_beat >= HEARTBEAT_S:
                        sock.send(b'{"type":"heartbeat"}')
                        last_beat = time.monotonic()
                    while sock.getsockopt(self.zmq.EVENTS) & self.zmq.POLLIN:
                        message = self._decode(sock.recv_multipart(), warn=False)
                        if message is not None and not self.answer_release(message):
                            self.inbox.append(message)
                except Exception:
                    return

    # ---- sending ----------------------------------------------------------------------------

    def send(self, message):
        """Sends one message now (after any queued ones, so the order is kept)."""
        sock = self.socket
        if sock is not None:
            with self.io_lock:
                if self.queued:
                    self.flush()
                sock.send(encode(message))

    def send_raw(self, data):
        """Sends bytes as they are, after any queued messages (chaos: a malformed frame)."""
        self.flush()
        with self.io_lock:
            if self.socket is not None:
                self.socket.send(data)

    def queue(self, message):
        """Encodes a message now and sends it with the next flush (or the next send); a batch
        that would outgrow a frame is sent first."""
        data = encode(message)
        with self.io_lock:
            if self.queued and self.queued_bytes + len(data) > MESSAGE_LIMIT:
                self.flush()
            self.queued.append(data)
            self.queued_bytes += len(data) + 1

    def flush_if_due(self):
        """Flushes the queue if ``BATCH_S`` has passed since the last frame."""
        if self.queued and time.monotonic() - self.last_frame >= BATCH_S:
            self.flush()

    def flush(self):
        """Sends the queued messages as one frame."""
        # Queued messages go out as one frame holding a JSON array (protocol v1 batches): one
        # send, one wake-up of each ZeroMQ I/O thread and of the coordinator, instead of one per
        # message, which is most of the cost of a message on a busy machine.
        with self.io_lock:
            sock = self.socket
            queued, self.queued = self.queued, []
            self.queued_bytes = 0
            if sock is not None and queued:
                sock.send(queued[0] if len(queued) == 1 else b"[" + b",".join(queued) + b"]")
                self.last_frame = time.monotonic()

    def message(self, text):
        """A line for herd to show the user."""
        self.send({"type": "message", "text": text})

    # ---- ending -----------------------------------------------------------------------------

    def shutdown(self, workeroutput=None):
        """Says ``shutdown`` (once; first ``workeroutput``, the worker's
        ``config.workeroutput``, when given) and closes."""
        if self.finished:
            return
        self.finished = True
        try:
            if workeroutput is not None:
                message = {"type": "workeroutput", "output": _as_json(workeroutput)}
                if len(encode(message)) <= MESSAGE_LIMIT:
                    self.send(message)
                else:  # the controller's plugins then see a worker that returned nothing
                    sys.stderr.write("herd: config.workeroutput is too big for a frame; not sent\n")
            self.send({"type": "shutdown"})
        finally:
            self.close()

    def session_exit(self, reason):
        """The session ends early (``pytest.exit()``, Ctrl-C, maxfail): says why, then shutdown."""
        if self.finished or self.socket is None:
            return
        try:
            self.send({"type": "session_exit", "reason": reason})
        except Exception:
            pass
        self.shutdown()

    def internal_error(self, text):
        """The plugin itself failed: says so (best effort), then shutdown, and closes."""
        if self.finished or self.socket is None:
            return
        try:
            self.send({"type": "internal_error", "message": text})
            self.send({"type": "shutdown"})
        except Exception:
            pass
        self.finished = True
        self.close()

    def give_up(self, text):
        """Ends without another word (the socket closes at once) and raises ``text``."""
        self.finished = True
        self.close(linger=0)
        raise pytest.UsageError(text)

    def refused(self, text):
        """The coordinator sent ``error``: end without another word."""
        self.give_up(f"herd: the coordinator refused worker {self.identity}: {text}")

    # ---- receiving: one rule ----------------------------------------------------------------

    def receive_until(self, kinds, match=None, timeout_s=None):
        """Waits for a message of one of ``kinds`` (and, with ``match``, one it accepts) and
        returns it; None once the coordinator has said ``stop`` (at once if it already had).
        Raises ReplyTimeout after ``timeout_s`` seconds (None: no limit)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        # A worker asked to leave (SIGTERM) waits no longer: None, as after stop.
        while not self.stop_requested and not LEAVING.is_set():
            message = self._apply_rule(self._receive(deadline))
            if message is None:
                continue
            if message.get("type") in kinds and (match is None or match(message)):
                return message
            # Anything else (a stray welcome, an unknown type) is ignored.
        return None

    def poll_stop(self):
        """Non-blocking: applies the rule to everything that has arrived; has the coordinator
        said stop? (Raises when it refused us.)"""
        while True:
            message = self._receive_nowait()
            if message is None:
                return self.stop_requested
            self._apply_rule(message)

    def _apply_rule(self, message):
        """The one rule for ``stop`` and ``error`` wherever the worker waits (``release`` is
        answered as it is read); returns any other message."""
        kind = message.get("type")
        if kind == "stop":
            self.stop_requested = True
            return None
        if kind == "error":
            self.refused(message.get("message", "(no message)"))
        return message

    def answer_release(self, message):
        """The one steal path: a ``release`` is answered with ``released`` here, whichever
        thread read it. Returns whether ``message`` was a release."""
        if message.get("type") != "release":
            return False
        with self.io_lock:
            given = self.give_back(message.get("tests") or [])
            if self.socket is not None:
                self.socket.send(encode({"type": "released", "tests": given}))
        return True

    def _receive(self, deadline):
        """The next message that is not a release (from the inbox or the socket); raises
        ReplyTimeout at ``deadline`` (None: never)."""
        while True:
            if self.inbox:
                return self.inbox.popleft()
            if self.socket is None:
                raise HerdError("the connection to the coordinator is closed")
            if deadline is None:
                wait = POLL_SLICE_MS
            else:
                wait = max(0, min(POLL_SLICE_MS, int((deadline - time.monotonic()) * 1000)))
            with self.io_lock:
                frames = self.socket.recv_multipart() if self.poller.poll(wait) else None
            if frames is not None:
                message = self._decode(frames)
                if message is not None and not self.answer_release(message):
                    return message
            elif deadline is not None and time.monotonic() >= deadline:
                raise ReplyTimeout()
            elif LEAVING.is_set():
                return {}  # no message: the wait ends (see receive_until)

    def _receive_nowait(self):
        """A message that has arrived and is not a release, or None."""
        if self.inbox:
            return self.inbox.popleft()
        sock = self.socket
        if sock is None:
            return None
        # getsockopt(EVENTS) is far cheaper than poll(0), which builds a Poller on every call.
        while True:
            with self.io_lock:
                if not sock.getsockopt(self.zmq.EVENTS) & self.zmq.POLLIN:
                    return None
                frames = sock.recv_multipart()
            message = self._decode(frames)
            if message is not None and not self.answer_release(message):
                return message

    def _decode(self, frames, warn=True):
        try:
            return decode(frames)
        except ValueError:
            if warn:
                payload = frames[-1] if frames else b""
                self.message(f"herd worker {self.identity}: ignoring a malformed frame {payload[:200]!r}")
            return None


def _as_json(value):
    """``value`` as JSON can carry it: what JSON cannot say becomes its ``repr``."""
    return json.loads(json.dumps(value, default=repr))
