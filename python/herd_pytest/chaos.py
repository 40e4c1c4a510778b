"""Fault injection (herd's ``--chaos``): what this spawn was asked to do to itself.

* ``extra-test=ID``: the collection lists a test that does not exist,
* ``exit0-after=N``: vanish with exit code 0 and no shutdown as test N+1 starts,
* ``garbage-after=N``: send a malformed frame after N tests finished.
"""

from __future__ import annotations

import os


class Chaos:
    """Carries out this spawn's faults (``Settings.faults``) at the moments they name."""

    def __init__(self, faults):
        self.faults = faults
        self.started_tests = 0
        self.finished_tests = 0

    def extra_tests(self):
        """Test ids the collection lists on top of the real ones."""
        return [self.faults["extra-test"]] if "extra-test" in self.faults else []

    def test_started(self, channel):
        """A test has started (its ``test_started`` has left)."""
        if self.faults.get("exit0-after") == str(self.started_tests):
            # Vanish mid-test with exit code 0 and no shutdown (after the frame leaves).
            channel.close()
            os._exit(0)
        self.started_tests += 1

    def test_finished(self, channel):
        """A test has finished."""
        self.finished_tests += 1
        if self.faults.get("garbage-after") == str(self.finished_tests) and channel.socket is not None:
            channel.send_raw(b"{this is not json")
