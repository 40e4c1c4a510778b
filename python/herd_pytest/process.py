"""The worker process itself: the status file, SIGTERM, and a fast exit.

* ``StatusFile``: with ``HERD_STATUS_FILE`` set, the id of each test is written into that file
  as the test starts, before any of its code runs; a plain write survives a sudden death where
  queued frames do not.
* ``install_sigterm_handler``: SIGTERM (herd died, or ended us) kills the worker's own process
  group, test subprocesses included. A worker that joined by itself (``herd worker --connect``
  sets ``HERD_LEAVE_ON_SIGTERM=1``) leaves cleanly instead: the first SIGTERM sets ``LEAVING``
  (the test loop gives back its unstarted tests, finishes the running one and says shutdown);
  one more, a second or more later, kills the group.
* ``exit_fast_at_exit``: at exit, every exit handler runs, then the process ends without
  tearing the interpreter down object by object.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time

from .settings import ENV_FAST_EXIT, ENV_STATUS_FILE
from .wire import safe_text


class StatusFile:
    """The file herd reads to learn which test a worker that died was running."""

    def __init__(self, path):
        self.fd = None
        if path:
            try:
                self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            except OSError as exc:
                sys.stderr.write(f"herd: cannot open {ENV_STATUS_FILE} {path!r}: {exc}\n")

    def write(self, nodeid):
        """Records that ``nodeid`` starts now; whether it is recorded (a file herd reads is
        open and took the write)."""
        fd = self.fd
        if fd is None:
            return False
        # herd reads the first line: no truncate needed (one syscall per test).
        try:
            os.pwrite(fd, safe_text(nodeid).encode() + b"\n", 0)
        except OSError:
            # A full disk: from now on herd learns the running test from test_started alone.
            self.close()
            return False
        return True

    def close(self):
        """Closes the file (it stays on disk: herd owns it)."""
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None


#: Set when the worker's host asked it to go (the first SIGTERM of a worker that leaves cleanly).
LEAVING = threading.Event()
#: Set in the environment of a worker that leaves cleanly on SIGTERM.
ENV_LEAVE_ON_SIGTERM = "HERD_LEAVE_ON_SIGTERM"
#: SIGTERMs this close to the first are the same request (the host and ``herd worker`` both
#: forward it).
_SAME_SIGTERM_S = 1.0
_first_sigterm = []


def install_sigterm_handler():
    """Makes SIGTERM take the whole process group down, or, for a worker that leaves cleanly,
    ask it to leave first (nothing when not the main thread)."""
    leave = os.environ.get(ENV_LEAVE_ON_SIGTERM) == "1"
    try:
        signal.signal(signal.SIGTERM, _on_sigterm_leave if leave else _on_sigterm)
    except ValueError:  # not the main thread (pytest embedded somewhere odd)
        pass


def _on_sigterm_leave(signum, frame):
    """The first SIGTERM asks the loop to leave; one more, a second or more later, kills."""
    now = time.monotonic()
    if not _first_sigterm:
        _first_sigterm.append(now)
        LEAVING.set()
        return
    if now - _first_sigterm[0] >= _SAME_SIGTERM_S:
        _on_sigterm(signum, frame)


def exit_fast_at_exit(status):
    """Arranges for the process to end with ``status`` right after the exit handlers, unless
    ``HERD_FAST_EXIT=0``."""
    if os.environ.get(ENV_FAST_EXIT) != "0":
        atexit.register(_fast_exit, status)


def skip_final_gc(config):
    """Skips pytest's full garbage collections at the end of the session (one in
    ``pytest_unconfigure``, one in its clean-up; each takes a quarter of a second or more in a
    process holding thousands of tests), where it looks for exceptions raised in ``__del__``
    (``PytestUnraisableExceptionWarning``). On a worker that has said ``shutdown``, such a
    warning has nowhere to go: herd takes no message after it. Nothing is skipped on a pytest
    without that setting."""
    try:
        from _pytest.unraisableexception import gc_collect_iterations_key
    except ImportError:
        return
    try:
        config.stash[gc_collect_iterations_key] = 0
    except Exception:
        pass


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
