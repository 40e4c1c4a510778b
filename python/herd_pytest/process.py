"""The worker process itself: the status file, SIGTERM, and a fast exit.

* ``StatusFile``: with ``HERD_STATUS_FILE`` set, the id of each test is written into that file
  as the test starts, before any of its code runs; a plain write survives a sudden death where
  queued frames do not.
* ``install_sigterm_handler``: SIGTERM (herd died, or ended us) kills the worker's own process
  group, test subprocesses included.
* ``exit_fast_at_exit``: at exit, every exit handler runs, then the process ends without
  tearing the interpreter down object by object.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys

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
        """Records that ``nodeid`` starts now."""
        fd = self.fd
        if fd is not None:
            # herd reads the first line: no truncate needed (one syscall per test).
            try:
                os.pwrite(fd, safe_text(nodeid).encode() + b"\n", 0)
            except OSError:
                pass

    def close(self):
        """Closes the file (it stays on disk: herd owns it)."""
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None


def install_sigterm_handler():
    """Makes SIGTERM take the whole process group down (nothing when not the main thread)."""
    try:
        signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (pytest embedded somewhere odd)
        pass


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
