"""pytest's terminal report, silenced while nobody should see it.

A worker's terminal report (its header, a progress character per test, its summary) is not the
session's: herd prints the live per-test lines and the controller (or herd) the summary. Left on,
it costs every test a write to the worker's output pipe, a wake-up of herd to read it and a line
in the worker's log. The controller's is silent until the end, when pytest's summary is the
session's. Silenced, the reporter writes to a sink that drops everything and works out no
progress; an internal error makes it loud again, so pytest's message is seen.
"""

from __future__ import annotations

import warnings


class _Nowhere:
    """A text file that drops what is written to it, with no system call."""

    encoding = "utf-8"

    def write(self, text):
        return len(text)

    def flush(self):
        pass

    def isatty(self):
        return False


class QuietTerminal:
    """Silences pytest's terminal reporter (``quiet``) and gives it back its writer (``loud``)."""

    def __init__(self, config):
        self.config = config
        self.writer = None  # the reporter's own writer, while it is quiet
        self.progress = None  # the reporter's progress setting, while it is quiet

    def _reporter(self):
        return self.config.pluginmanager.get_plugin("terminalreporter")

    def quiet(self):
        """From now on the reporter writes nowhere and works out no progress."""
        reporter = self._reporter()
        if reporter is None or self.writer is not None:
            return
        try:
            from _pytest.config import create_terminal_writer

            silent = create_terminal_writer(self.config, _Nowhere())
        except Exception as exc:  # a pytest without these internals: its report stays
            warnings.warn(f"herd: cannot quiet pytest's terminal report: {exc}")
            return
        self.writer, reporter._tw = reporter._tw, silent
        self.progress = getattr(reporter, "_show_progress_info", None)
        if self.progress is not None:
            reporter._show_progress_info = False

    def loud(self):
        """The reporter writes to its own writer again."""
        reporter = self._reporter()
        if reporter is None or self.writer is None:
            return
        reporter._tw, self.writer = self.writer, None
        if self.progress is not None:
            reporter._show_progress_info = self.progress
