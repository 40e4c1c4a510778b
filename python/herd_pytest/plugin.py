"""herd's pytest worker plugin (protocol v1, JSON over ZeroMQ).

Loaded in every worker with ``-p herd_pytest.plugin``. Without ``HERD_ENDPOINT`` in the
environment it is inert: it registers the ``herd_group(name)`` marker and provides the
``herd_appliance`` fixture, nothing else. Under herd it:

* says ``hello`` to the coordinator and waits for ``welcome`` (``HERD_CONNECT_TIMEOUT`` seconds),
* sends the ``collection`` (test ids in order, failed collectors, ``herd_group`` marks); when
  ``welcome`` gives a ``collect`` scope (a shard, or lazy) it walks every test file but imports
  only its shard's, and sends the walk's file list with it; a file whose tests are dealt to it
  later is collected then and reported with ``file_collection`` before any of them runs,
* takes over ``pytest_runtestloop``: asks for groups of tests with ``need_tests`` and runs each
  group in order through pytest's own ``pytest_runtest_protocol``; before the last test it holds
  it asks for the next group and waits, so the real ``nextitem`` is known and fixtures scoped to a
  module or class are torn down exactly when pytest would tear them down,
* answers ``release`` (work stealing) with ``released``: the requested tests it has not started
  are dropped from its queue, even while a test runs (a background thread, which also sends the
  heartbeats, reads the socket); when the next test is not the one the previous test was torn
  down for, the fixtures it does not share are torn down first,
* streams ``test_started`` and one ``report`` per phase (and per subtest); with
  ``HERD_STATUS_FILE`` set it also writes the id of each test into that file as the test starts,
* answers SIGTERM by killing its own process group (test subprocesses included),
* ends with ``shutdown`` (preceded by ``session_exit`` after ``pytest.exit()`` or Ctrl-C).

The module must stay self-contained (only ``herd_pytest/__init__.py`` ships with it): the herd
binary embeds both files and puts them on ``PYTHONPATH`` of its workers.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import sys
import threading
import time
import traceback
import warnings
from collections import deque

import pytest

PROTOCOL_VERSION = 1

ENV_ENDPOINT = "HERD_ENDPOINT"
ENV_TOKEN = "HERD_TOKEN"
ENV_WORKER_ID = "HERD_WORKER_ID"
ENV_INCARNATION = "HERD_INCARNATION"
ENV_APPLIANCE = "HERD_APPLIANCE"
ENV_CONNECT_TIMEOUT = "HERD_CONNECT_TIMEOUT"
ENV_STATUS_FILE = "HERD_STATUS_FILE"
#: Set to ``0`` to let the worker's interpreter exit the slow, ordinary way.
ENV_FAST_EXIT = "HERD_FAST_EXIT"

#: How long closing the socket may wait for the last frames to leave (milliseconds).
LINGER_MS = 2000
#: Seconds between heartbeats (promised in ``hello``; herd takes a silent worker for hung).
HEARTBEAT_S = 1.0
#: How long a blocking wait sleeps in one poll, so signals are handled promptly (milliseconds).
POLL_SLICE_MS = 500
#: How often the background thread looks for a ``release`` while a test runs (seconds).
IO_TICK_S = 0.05
#: The largest frame the coordinator accepts (protocol ``MAX_FRAME_BYTES``); a larger one is
#: dropped by the socket. A message is kept below it with room to spare.
MAX_FRAME_BYTES = 16 * 1024 * 1024
MESSAGE_LIMIT = MAX_FRAME_BYTES - 64 * 1024

_MARKER_HELP = (
    "herd_group(name): tests carrying the same group name run together, in order, on one herd "
    "worker"
)


# --------------------------------------------------------------------------------------------
# Inert part: always active.
# --------------------------------------------------------------------------------------------


def pytest_configure(config):
    config.addinivalue_line("markers", _MARKER_HELP)
    if not os.environ.get(ENV_ENDPOINT):
        return
    if config.pluginmanager.has_plugin("herd_worker"):
        return
    worker = HerdWorker(config)
    config.pluginmanager.register(worker, "herd_worker")
    worker.install_signal_handler()


@pytest.fixture(scope="session")
def herd_appliance():
    """The appliance this herd worker owns (``HERD_APPLIANCE``), or None."""
    return os.environ.get(ENV_APPLIANCE) or None


# --------------------------------------------------------------------------------------------
# Helpers.
# --------------------------------------------------------------------------------------------


class HerdError(Exception):
    """The coordinator refused us or went away; the worker must end."""


def _jsonable(value):
    """``value`` if json can encode it, else its repr()."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def _safe_text(text):
    """``text`` with what UTF-8 cannot carry (lone surrogates, as ``surrogateescape`` makes for
    bytes that are not UTF-8) written as visible escapes: ``\\udcff``."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        # Valid pairs join up; what is left alone is shown as its escape.
        joined = text.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass")
        return joined.encode("utf-8", "backslashreplace").decode("utf-8")


def _safe(value):
    """``value`` with every string in it made safe for the wire (see ``_safe_text``)."""
    if isinstance(value, str):
        return _safe_text(value)
    if isinstance(value, dict):
        return {_safe(k): _safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_safe(v) for v in value]
    return value


def _human_bytes(n):
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / (1024 * 1024):.1f} MiB"


def _cut_middle(text, limit):
    """``text`` cut to about ``limit`` characters: its first quarter and last three quarters,
    with a note between them saying how much was cut (as the coordinator's ``cut_middle``)."""
    if len(text) <= limit:
        return text
    head, tail = text[: limit // 4], text[len(text) - (limit - limit // 4) :]
    size = len(text.encode("utf-8", "backslashreplace"))
    cut = len(text) - len(head) - len(tail)
    return (
        f"{head}\n[herd: {cut} characters cut here so the report fits in a frame (limit "
        f"{_human_bytes(MAX_FRAME_BYTES)}); the output was {_human_bytes(size)} in all, of which "
        f"the first {len(head)} and the last {len(tail)} characters are kept]\n{tail}"
    )


def _shrink_report(message, size):
    """Cuts a report's largest texts (failure text, captured output) until it fits below
    ``MESSAGE_LIMIT`` bytes; head and tail of each are kept, with a note saying what was cut."""
    for _ in range(8):
        fields = [("longrepr", None), ("message", None)]
        fields += [("sections", i) for i in range(len(message.get("sections") or []))]

        def text_of(field):
            key, i = field
            return message.get(key) if i is None else message[key][i][1]

        field = max(fields, key=lambda f: len(text_of(f) or ""))
        text = text_of(field) or ""
        if not text:
            break
        over = size - MESSAGE_LIMIT
        # Characters may take several bytes (and escapes): aim low.
        ratio = len(text) / max(1, len(text.encode("utf-8", "backslashreplace")))
        keep = max(4096, int((len(text) - over * ratio) * 0.9))
        cut = _cut_middle(text, keep)
        key, i = field
        if i is None:
            message[key] = cut
        else:
            message[key][i] = [message[key][i][0], cut]
        data = json.dumps(message, ensure_ascii=False).encode("utf-8")
        size = len(data)
        if size <= MESSAGE_LIMIT:
            return data
    return json.dumps(message, ensure_ascii=False).encode("utf-8")


def _encode(message):
    """One message as the bytes of a frame: UTF-8 JSON, its text made safe for the wire, a
    report too big for a frame cut to fit (never dropped, never turned into a crash)."""
    try:
        data = json.dumps(message, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        message = _safe(message)
        data = json.dumps(message, ensure_ascii=False).encode("utf-8")
    if len(data) > MESSAGE_LIMIT and message.get("type") == "report":
        data = _shrink_report(message, len(data))
    return data


def _subtest_description(report):
    """The description of a subtest report, or None for an ordinary report."""
    context = getattr(report, "context", None)
    if context is None or not hasattr(context, "kwargs"):
        return None
    describe = getattr(report, "_sub_test_description", None)
    if describe is not None:
        try:
            return str(describe())
        except Exception:
            pass
    parts = []
    msg = getattr(context, "msg", None)
    if msg is not None:
        parts.append(f"[{msg}]")
    kwargs = getattr(context, "kwargs", None) or {}
    if kwargs:
        parts.append("(" + ", ".join(f"{k}={v}" for k, v in kwargs.items()) + ")")
    return " ".join(parts) or "(<subtest>)"


def _parse_faults(spec, identity):
    """herd's fault requests for this spawn: ``IDENTITY:ACTION=VALUE`` items separated by ``;``."""
    faults = {}
    for item in spec.split(";"):
        who, _, action = item.strip().partition(":")
        if who == identity and action:
            name, _, value = action.partition("=")
            faults[name] = value
    return faults


def _plain_category(report):
    """pytest's summary category of a passing plain report, without a hook call (most reports);
    None when the hook must decide (failures, skips, xfail, subtests, other report types)."""
    if type(report) is not pytest.TestReport or report.outcome != "passed" or hasattr(report, "wasxfail"):
        return None
    return "passed" if report.when == "call" else ""


def _longrepr_and_message(report):
    """The long text and the one-line message of a report (None, None when it passed cleanly)."""
    longrepr = report.longrepr
    if longrepr is None:
        return None, None
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        # A skip: (path, lineno, reason).
        reason = str(longrepr[2])
        return reason, reason
    try:
        text = str(longrepr)
    except Exception as exc:  # a broken repr must not kill the worker
        text = f"<herd: could not render the report: {exc!r}>"
    message = None
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        message = getattr(crash, "message", None)
    if message is None:
        message = next((line.strip() for line in text.splitlines() if line.strip()), None)
    elif "\n" in message:
        # One line, like pytest's short test summary (assertion rewriting adds an explanation).
        message = message[: message.index("\n")]
    return text, message


def _fingerprint():
    """``{"fingerprint": ...}`` for ``hello``: herd's version (``HERD_VERSION``, set by herd) and
    the output of ``HERD_FINGERPRINT_CMD``, run on this host; empty when the version is unknown."""
    version = os.environ.get("HERD_VERSION")
    if not version:
        return {}
    cmd = os.environ.get("HERD_FINGERPRINT_CMD", "").strip()
    if not cmd:
        return {"fingerprint": f"herd {version}"}
    import subprocess

    done = subprocess.run(cmd, shell=True, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if done.returncode != 0:
        raise pytest.UsageError(f"herd: the fingerprint command `{cmd}` failed: {done.stderr.strip()}")
    return {"fingerprint": f"herd {version} | {done.stdout.strip()}"}


# --------------------------------------------------------------------------------------------
# The worker: active only under herd.
# --------------------------------------------------------------------------------------------


class HerdWorker:
    def __init__(self, config):
        self.config = config
        self.endpoint = os.environ[ENV_ENDPOINT]
        self.token = os.environ.get(ENV_TOKEN, "")
        self.worker_id = os.environ.get(ENV_WORKER_ID, "w0")
        try:
            self.incarnation = int(os.environ.get(ENV_INCARNATION) or 1)
        except ValueError:
            raise pytest.UsageError(
                f"herd: {ENV_INCARNATION} must be an integer, not {os.environ[ENV_INCARNATION]!r}"
            )
        try:
            self.connect_timeout = float(os.environ.get(ENV_CONNECT_TIMEOUT) or 30)
        except ValueError:
            raise pytest.UsageError(
                f"herd: {ENV_CONNECT_TIMEOUT} must be a number of seconds, "
                f"not {os.environ[ENV_CONNECT_TIMEOUT]!r}"
            )
        self.identity = f"{self.worker_id}.{self.incarnation}"
        # Fault injection (herd's --chaos): what this spawn is asked to do to itself.
        self.faults = _parse_faults(os.environ.get("HERD_WORKER_FAULT", ""), self.identity)
        self.started_tests = 0
        self.finished_tests = 0
        # HERD_STATUS_FILE (optional): the id of the test being started, written before any of
        # its code runs; a plain write survives a sudden death where queued frames do not.
        self.status_fd = None
        status_path = os.environ.get(ENV_STATUS_FILE)
        if status_path:
            try:
                self.status_fd = os.open(status_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            except OSError as exc:
                sys.stderr.write(f"herd: cannot open {ENV_STATUS_FILE} {status_path!r}: {exc}\n")
        self.context = None
        self.socket = None
        self.poller = None
        self.collect_errors = []
        self.queued = []  # encoded reports not sent yet
        self.queued_bytes = 0  # their size, so a batch never outgrows a frame
        self.round_rerun = False  # the running test's current round is to be run again
        self.rerun_of = None  # the test whose round just ended with an intermediate teardown
        self.pending = deque()  # items dealt to this worker and not started, in order
        self.pending_lock = threading.Lock()
        self.inbox = deque()  # messages the background thread read for the main thread
        self.session = None
        self.scope = None  # the `collect` scope of welcome: None (everything), shard or lazy
        self.files = []  # every test file of the walk, in order (when the scope is partial)
        self.deferred = {}  # file node id -> its collector, not collected yet
        self.allowed = set()  # deferred files being collected now
        self.stop_requested = False
        self.finished = False  # shutdown sent (or the coordinator refused us)

    # ---- signals ------------------------------------------------------------------------------

    def install_signal_handler(self):
        try:
            signal.signal(signal.SIGTERM, _on_sigterm)
        except ValueError:  # not the main thread (pytest embedded somewhere odd)
            pass

    # ---- socket -------------------------------------------------------------------------------

    def connect(self):
        import zmq

        self.zmq = zmq
        self.context = zmq.Context()
        sock = self.context.socket(zmq.DEALER)
        # The identity: this spawn's name and a random nonce, so nobody can take it first.
        sock.setsockopt(zmq.IDENTITY, f"{self.identity}.{os.urandom(16).hex()}".encode())
        sock.setsockopt(zmq.LINGER, LINGER_MS)
        sock.setsockopt(zmq.SNDHWM, 100000)
        sock.setsockopt(zmq.RCVHWM, 100000)
        sock.connect(self.endpoint)
        self.socket = sock
        self.poller = zmq.Poller()
        self.poller.register(sock, zmq.POLLIN)
        # The socket is shared with the heartbeat thread: every use takes this lock.
        self.io_lock = threading.RLock()
        self.heartbeat_stop = threading.Event()

    def start_heartbeat(self):
        """Starts the background thread: ``heartbeat`` every HEARTBEAT_S, even while a test runs,
        and ``release`` requests answered at once (other messages are left for the main thread)."""

        def run():
            last_beat = time.monotonic()
            while not self.heartbeat_stop.wait(IO_TICK_S):
                with self.io_lock:
                    sock = self.socket
                    if sock is None:
                        return
                    try:
                        if time.monotonic() - last_beat >= HEARTBEAT_S:
                            sock.send(b'{"type":"heartbeat"}')
                            last_beat = time.monotonic()
                        while sock.getsockopt(self.zmq.EVENTS) & self.zmq.POLLIN:
                            message = self._decode(sock.recv_multipart(), warn=False)
                            if message is None:
                                continue
                            if message.get("type") == "release":
                                self._release(message.get("tests") or [])
                            else:
                                self.inbox.append(message)
                    except Exception:
                        return

        threading.Thread(target=run, name="herd-io", daemon=True).start()

    def _release(self, ids):
        """Work stealing: drops the requested tests that have not started from the queue and
        says which (the caller holds the io lock)."""
        wanted = set(ids)
        with self.pending_lock:
            given = [_safe_text(item.nodeid) for item in self.pending if _safe_text(item.nodeid) in wanted]
            if given:
                self.pending = deque(
                    item for item in self.pending if _safe_text(item.nodeid) not in wanted
                )
        self.socket.send(_encode({"type": "released", "tests": given}))

    def close(self, linger=None):
        stop = getattr(self, "heartbeat_stop", None)
        if stop is not None:
            stop.set()
        with getattr(self, "io_lock", None) or threading.RLock():
            self._close(linger)

    def _close(self, linger=None):
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

    def send(self, message):
        """Sends one message now (after any queued reports, so the order is kept)."""
        sock = self.socket
        if sock is not None:
            with self.io_lock:
                if self.queued:
                    self.flush()
                sock.send(_encode(message))

    def queue(self, message):
        """Encodes a message now and sends it with the next flush (or the next send); a batch
        that would outgrow a frame is sent first."""
        data = _encode(message)
        if self.queued and self.queued_bytes + len(data) > MESSAGE_LIMIT:
            self.flush()
        self.queued.append(data)
        self.queued_bytes += len(data) + 1

    def flush(self):
        # Queued messages go out as one frame holding a JSON array (protocol v1 batches): one
        # send, one wake-up of each ZeroMQ I/O thread and of the coordinator, instead of one per
        # message, which is most of the cost of a message on a busy machine.
        sock = self.socket
        queued, self.queued = self.queued, []
        self.queued_bytes = 0
        if sock is not None and queued:
            with self.io_lock:
                sock.send(queued[0] if len(queued) == 1 else b"[" + b",".join(queued) + b"]")

    def _decode(self, frames, warn=True):
        # Tolerate a REQ-style empty delimiter frame; the payload is the last frame.
        payload = frames[-1] if frames else b""
        try:
            message = json.loads(payload)
        except ValueError:
            if warn:
                self.message(f"herd worker {self.identity}: ignoring a malformed frame {payload[:200]!r}")
            return None
        if not isinstance(message, dict):
            return None
        return message

    def receive(self, timeout_ms):
        """The next message from the coordinator, or None after ``timeout_ms`` (None: forever)."""
        deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000.0
        while True:
            message = self._next_message()
            if message is not None:
                return message
            if self.socket is None:
                raise HerdError("the connection to the coordinator is closed")
            if deadline is None:
                wait = POLL_SLICE_MS
            else:
                wait = max(0, min(POLL_SLICE_MS, int((deadline - time.monotonic()) * 1000)))
            with self.io_lock:
                frames = self.socket.recv_multipart() if self.poller.poll(wait) else None
            if frames is not None:
                message = self._handle_release(self._decode(frames))
                if message is not None:
                    return message
            elif deadline is not None and time.monotonic() >= deadline:
                return None

    def _next_message(self):
        """A message the background thread already read, if any."""
        try:
            return self.inbox.popleft()
        except IndexError:
            return None

    def _handle_release(self, message):
        """Answers a ``release`` here; returns any other message."""
        if message is not None and message.get("type") == "release":
            with self.io_lock:
                if self.queued:
                    self.flush()
                self._release(message.get("tests") or [])
            return None
        return message

    def receive_nowait(self):
        message = self._next_message()
        if message is not None:
            return message
        sock = self.socket
        if sock is None:
            return None
        # getsockopt(EVENTS) is far cheaper than poll(0), which builds a Poller on every call.
        while True:
            with self.io_lock:
                if not sock.getsockopt(self.zmq.EVENTS) & self.zmq.POLLIN:
                    return None
                frames = sock.recv_multipart()
            message = self._handle_release(self._decode(frames))
            if message is not None:
                return message

    def message(self, text):
        self.send({"type": "message", "text": text})

    def refused(self, text):
        """The coordinator sent ``error``: end without another word."""
        self.finished = True
        self.close(linger=0)
        raise pytest.UsageError(f"herd: the coordinator refused worker {self.identity}: {text}")

    # ---- handshake ----------------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session):
        self.session = session
        self.connect()
        self.send(
            {
                "type": "hello",
                "protocol": PROTOCOL_VERSION,
                "worker": self.worker_id,
                "incarnation": self.incarnation,
                "token": self.token,
                "pid": os.getpid(),
                "heartbeat": HEARTBEAT_S,
                **_fingerprint(),
            }
        )
        deadline = time.monotonic() + self.connect_timeout
        while True:
            left = deadline - time.monotonic()
            reply = self.receive(max(0, int(left * 1000))) if left > 0 else None
            if reply is None:
                self.finished = True
                self.close(linger=0)
                raise pytest.UsageError(
                    f"herd: worker {self.identity} got no welcome from the coordinator at "
                    f"{self.endpoint} within {self.connect_timeout:g}s"
                )
            kind = reply.get("type")
            if kind == "welcome":
                self.scope = self._partial_scope(reply.get("collect"))
                self.start_heartbeat()
                return
            if kind == "error":
                self.refused(reply.get("message", "(no message)"))
            if kind == "stop":
                self.stop_requested = True
                return
            # Anything else before welcome is unexpected; ignore it and keep waiting.

    # ---- collection ---------------------------------------------------------------------------

    def _partial_scope(self, scope):
        """The scope to honour: None (collect everything) for no scope, ``all``, an unknown kind,
        or arguments naming tests inside files (``path::name``), which pytest can only match by
        collecting those files."""
        if not isinstance(scope, dict) or scope.get("kind") not in ("shard", "lazy"):
            return None
        if any("::" in str(arg) for arg in self.config.args):
            return None
        return scope

    def _in_scope(self, position):
        scope = self.scope
        if scope.get("kind") != "shard":
            return False
        count = max(int(scope.get("count") or 1), 1)
        return position % count == int(scope.get("index") or 0)

    @pytest.hookimpl(tryfirst=True)
    def pytest_make_collect_report(self, collector):
        """Partial collection: a test file outside this worker's scope is listed, not imported."""
        if self.scope is None or not isinstance(collector, pytest.File):
            return None
        nodeid = collector.nodeid
        if nodeid in self.allowed:
            return None
        position = len(self.files)
        self.files.append(nodeid)
        if self._in_scope(position):
            return None
        self.deferred[_safe_text(nodeid)] = collector
        return pytest.CollectReport(nodeid, "passed", None, [])

    def _collect_file(self, nodeid, by_id):
        """Collects a deferred file now, as pytest would have, and reports it."""
        collector = self.deferred.pop(nodeid)
        self.allowed.add(collector.nodeid)
        session = self.session
        errors_before = len(self.collect_errors)
        items = list(session.genitems(collector))
        session.config.hook.pytest_collection_modifyitems(
            session=session, config=session.config, items=items
        )
        for item in items:
            by_id[_safe_text(item.nodeid)] = item
        self.send(
            {
                "type": "file_collection",
                "file": nodeid,
                "tests": [item.nodeid for item in items],
                "errors": self.collect_errors[errors_before:],
            }
        )
        # None of its tests runs before the coordinator has checked the file (a worker whose
        # file differs from the reference is stopped while it waits here).
        while True:
            reply = self.receive(None)
            kind = reply.get("type")
            if kind == "file_accepted" and reply.get("file") == _safe_text(nodeid):
                return
            if kind == "stop":
                self.stop_requested = True
                return
            if kind == "error":
                self.refused(reply.get("message", "(no message)"))

    def pytest_collectreport(self, report):
        if report.failed:
            try:
                text = str(report.longrepr)
            except Exception as exc:
                text = f"<herd: could not render the collection error: {exc!r}>"
            self.collect_errors.append({"nodeid": report.nodeid, "longrepr": text})

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session):
        groups = {}
        for item in session.items:
            mark = item.get_closest_marker("herd_group")
            if mark is None:
                continue
            name = mark.args[0] if mark.args else mark.kwargs.get("name")
            if name is not None:
                groups[item.nodeid] = str(name)
        message = {
            "type": "collection",
            "tests": [item.nodeid for item in session.items]
            + ([self.faults["extra-test"]] if "extra-test" in self.faults else []),
            "errors": self.collect_errors,
            "herd_groups": groups,
        }
        if self.scope is not None:
            message["files"] = self.files
            message["scope"] = self.scope
        self.send(message)

    # ---- the test loop ------------------------------------------------------------------------

    def _need_tests(self):
        """Asks for the next group and waits: a list of test ids, empty when work is over."""
        if self.stop_requested:
            return []
        self.send({"type": "need_tests"})
        while True:
            reply = self.receive(None)
            kind = reply.get("type")
            if kind == "tests":
                return list(reply.get("tests") or [])
            if kind == "stop":
                self.stop_requested = True
                return []
            if kind == "error":
                self.refused(reply.get("message", "(no message)"))
            # Anything else (a stray welcome, an unknown type) is ignored.

    def _check_stop(self):
        """Non-blocking: has the coordinator said stop (or refused us)?"""
        while True:
            message = self.receive_nowait()
            if message is None:
                return self.stop_requested
            kind = message.get("type")
            if kind == "stop":
                self.stop_requested = True
            elif kind == "error":
                self.refused(message.get("message", "(no message)"))

    def _resolve(self, ids, by_id):
        for nodeid in ids:
            item = by_id.get(nodeid)
            if item is None and self.deferred:
                file = nodeid.split("::", 1)[0]
                if file in self.deferred:
                    self._collect_file(file, by_id)
                    item = by_id.get(nodeid)
            if item is None:
                self._report_unknown(nodeid)
            else:
                with self.pending_lock:
                    self.pending.append(item)

    def _teardown_for(self, session, item):
        try:
            session._setupstate.teardown_exact(item)
        except Exception:
            self.message(
                f"herd worker {self.identity}: a fixture teardown before {item.nodeid} failed:\n"
                + traceback.format_exc()
            )

    def _report_unknown(self, nodeid):
        text = f"herd: worker {self.identity} did not collect {nodeid!r}"
        self.send({"type": "test_started", "test": nodeid})
        for when, outcome in (("setup", "failed"), ("teardown", "passed")):
            failed = outcome == "failed"
            self.send(
                {
                    "type": "report",
                    "test": nodeid,
                    "when": when,
                    "outcome": outcome,
                    "duration": 0.0,
                    "longrepr": text if failed else None,
                    "message": text if failed else None,
                    "sections": [],
                    "wasxfail": None,
                    "category": "error" if failed else "",
                    "location": None,
                    "user_properties": [],
                }
            )

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session):
        try:
            self._loop(session)
        except (KeyboardInterrupt, pytest.exit.Exception, HerdError, pytest.UsageError):
            raise  # session_exit / shutdown are sent by pytest_keyboard_interrupt, or not at all
        except session.Failed:
            raise
        except BaseException:
            if not self.finished and self.socket is not None:
                try:
                    self.send({"type": "internal_error", "message": traceback.format_exc()})
                    self.send({"type": "shutdown"})
                except Exception:
                    pass
                self.finished = True
                self.close()
            raise
        self.shutdown()
        return True

    def _loop(self, session):
        config = session.config
        if config.option.collectonly:
            return
        # Keyed as the coordinator names them: ids are sent made safe for the wire.
        by_id = {_safe_text(item.nodeid): item for item in session.items}
        more = not self.stop_requested
        promised = None  # the nextitem the last test was torn down for
        while True:
            if self._check_stop():
                break
            if not self.pending:
                if not more:
                    break
                ids = self._need_tests()
                more = bool(ids)
                self._resolve(ids, by_id)
                continue
            with self.pending_lock:
                item = self.pending.popleft()
            while not self.pending and more:
                ids = self._need_tests()
                more = bool(ids)
                self._resolve(ids, by_id)
            if self.stop_requested:
                # The stop came while we waited: this test has not started, so it never runs.
                break
            if promised is not None and promised is not item:
                # The test the previous one was torn down for was given back (work stealing):
                # tear down what this one does not share, as pytest would have.
                self._teardown_for(session, item)
            with self.pending_lock:
                nextitem = self.pending[0] if self.pending else None
            item.ihook.pytest_runtest_protocol(item=item, nextitem=nextitem)
            promised = nextitem
            if session.shouldfail or session.shouldstop:
                reason = str(session.shouldfail or session.shouldstop)
                if session.shouldfail:
                    self.session_exit(reason)
                    raise session.Failed(session.shouldfail)
                raise session.Interrupted(session.shouldstop)  # -> pytest_keyboard_interrupt

    def shutdown(self):
        if self.finished:
            return
        self.finished = True
        try:
            self.send({"type": "shutdown"})
        finally:
            self.close()

    def session_exit(self, reason):
        if self.finished or self.socket is None:
            return
        try:
            self.send({"type": "session_exit", "reason": reason})
        except Exception:
            pass
        self.shutdown()

    def pytest_keyboard_interrupt(self, excinfo):
        value = excinfo.value
        if isinstance(value, pytest.exit.Exception):
            reason = str(getattr(value, "msg", value))
        else:
            reason = str(value) or type(value).__name__
            if reason != type(value).__name__ and not isinstance(value, pytest.Session.Interrupted):
                reason = f"{type(value).__name__}: {reason}"
        self.session_exit(reason)

    def pytest_sessionfinish(self, session, exitstatus):
        self.exitstatus = int(exitstatus)

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config):
        # Last resort: never leave the coordinator without a shutdown (e.g. a failed collection
        # under --collect-only or an exit before the test loop).
        if not self.finished and self.socket is not None:
            self.shutdown()
        self.close()
        if self.status_fd is not None:
            try:
                os.close(self.status_fd)
            except OSError:
                pass
            self.status_fd = None
        if getattr(self, "exitstatus", None) is not None and os.environ.get(ENV_FAST_EXIT) != "0":
            atexit.register(_fast_exit, self.exitstatus)

    # ---- reports ------------------------------------------------------------------------------

    def pytest_warning_recorded(self, warning_message, when, nodeid, location):
        """Forwards each warning so herd counts and lists them as pytest's summary does."""
        if self.socket is None:
            return
        w = warning_message
        text = warnings.formatwarning(str(w.message), w.category, w.filename, w.lineno, w.line)
        message = {"type": "warning", "text": text.rstrip(), "when": when}
        if nodeid:
            message["test"] = nodeid
        self.queue(message)

    def pytest_runtest_logstart(self, nodeid, location):
        fd = self.status_fd
        if fd is not None:
            # herd reads the first line: no truncate needed (one syscall per test).
            try:
                os.pwrite(fd, _safe_text(nodeid).encode() + b"\n", 0)
            except OSError:
                pass
        self.round_rerun = False
        if self.rerun_of == nodeid:
            # Another round of the same test (pytest-rerunfailures): it is still running.
            self.rerun_of = None
            self.flush()
            return
        self.rerun_of = None
        # The previous test's reports (queued at its teardown) go out in the same frame.
        self.queue({"type": "test_started", "test": nodeid})
        self.flush()
        if self.faults.get("exit0-after") == str(self.started_tests):
            # Chaos: vanish mid-test with exit code 0 and no shutdown (after the frame leaves).
            self.close()
            os._exit(0)
        self.started_tests += 1

    def pytest_runtest_logfinish(self, nodeid, location):
        self.finished_tests += 1
        if self.faults.get("garbage-after") == str(self.finished_tests) and self.socket is not None:
            self.flush()
            with self.io_lock:
                self.socket.send(b"{this is not json")  # chaos: a malformed frame

    def pytest_runtest_logreport(self, report):
        if self.socket is None:
            return
        longrepr, message = _longrepr_and_message(report)
        category = _plain_category(report)
        if category is None:
            try:
                status = self.config.hook.pytest_report_teststatus(report=report, config=self.config)
                category = (status[0] or "") if status else ""
            except Exception:
                category = ""
        properties = report.user_properties
        msg = {
            "type": "report",
            "test": report.nodeid,
            "when": report.when,
            "outcome": report.outcome,
            "duration": float(report.duration or 0.0),
            "longrepr": longrepr,
            "message": message,
            "sections": [[str(title), str(text)] for title, text in report.sections],
            "wasxfail": getattr(report, "wasxfail", None),
            "category": category if isinstance(category, str) else str(category),
            "location": list(report.location) if report.location else None,
            "user_properties": [[str(k), _jsonable(v)] for k, v in properties]
            if properties
            else [],
        }
        subtest = _subtest_description(report)
        if subtest is not None:
            msg["subtest"] = subtest
        if report.when == "setup" and subtest is None:
            self.round_rerun = False  # a new round starts
        if report.outcome not in ("passed", "failed", "skipped"):
            # A round that is run again (pytest-rerunfailures' "rerun"): the test goes on.
            self.round_rerun = True
        elif report.when == "teardown" and self.round_rerun:
            # A teardown that ends such a round does not end the test: the next round's start
            # is not a new test.
            msg["intermediate"] = True
            self.round_rerun = False
            self.rerun_of = report.nodeid
        try:
            self.queue(msg)
        except (TypeError, ValueError):
            # Something odd slipped in (a non-str location part, ...): make it text.
            self.queue(json.loads(json.dumps(msg, default=repr)))
        # A test's passing reports go out with the next message (the next test's start, or the
        # request for more work): one frame per test. Anything that did not pass goes out at
        # once, so it survives a worker that dies later in the test.
        if report.outcome != "passed":
            self.flush()


def _fast_exit(status):
    """Registered last, so run first at exit: runs every other exit handler (logging, coverage
    data, finalizers), then ends the process without tearing the interpreter down object by
    object, which for a large session takes as long as a thousand tests (herd waits for it)."""
    try:
        atexit.unregister(_fast_exit)
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(status)


def _on_sigterm(signum, frame):
    """herd died (or ended us): take the whole process group down, test subprocesses included."""
    try:
        if os.getpgrp() == os.getpid():
            os.killpg(os.getpgrp(), signal.SIGKILL)
        else:
            # Not a group leader: the group is not ours to kill.
            os.kill(os.getpid(), signal.SIGKILL)
    finally:
        os._exit(128 + signal.SIGTERM)
