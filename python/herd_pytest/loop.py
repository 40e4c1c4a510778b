"""The test loop that replaces pytest's: tests come from the coordinator, in groups.

It asks for a group with ``need_tests`` and runs each test through pytest's own
``pytest_runtest_protocol``. Before the last test it holds it asks for the next group and waits,
so the real ``nextitem`` is known and fixtures scoped to a module or class are torn down exactly
when pytest would tear them down. A test given back (``release``) while the previous one ran
may have been the ``nextitem`` that test was torn down for: then the fixtures the next test does
not share are torn down first, as pytest would have.
"""

from __future__ import annotations

import threading
import traceback
from collections import deque

from .process import LEAVING
from .reports import unknown_test_messages
from .wire import safe_text


class Pending:
    """The tests dealt to this worker and not started, in order; the io thread takes some back
    (work stealing) while a test runs, so every change takes the lock."""

    def __init__(self):
        self.items = deque()
        self.lock = threading.Lock()

    def __bool__(self):
        return bool(self.items)

    def append(self, item):
        """Adds a dealt test at the end."""
        with self.lock:
            self.items.append(item)

    def pop_next(self):
        """Takes the next test to run."""
        with self.lock:
            return self.items.popleft()

    def put_back_first(self, item):
        """Puts a test taken but not started back at the front."""
        with self.lock:
            self.items.appendleft(item)

    def ids(self):
        """The ids of the tests held, in order."""
        with self.lock:
            return [safe_text(item.nodeid) for item in self.items]

    def peek(self):
        """The test after the one running (pytest's ``nextitem``), or None."""
        with self.lock:
            return self.items[0] if self.items else None

    def give_back(self, ids):
        """Work stealing: drops the requested tests that have not started; returns their ids."""
        wanted = set(ids)
        with self.lock:
            kept, given = deque(), []
            for item in self.items:
                nodeid = safe_text(item.nodeid)
                if nodeid in wanted:
                    given.append(nodeid)
                else:
                    kept.append(item)
            self.items = kept
        return given


class RunLoop:
    """Runs the tests the coordinator deals, until it has no more or says stop."""

    def __init__(self, channel, collection, pending, identity):
        self.channel = channel
        self.collection = collection
        self.pending = pending
        self.identity = identity
        self.more = True  # the coordinator may have more tests for us

    def run(self, session):
        """The loop; returns when work is over (or stop came); raises ``session.Failed`` /
        ``session.Interrupted`` when pytest's maxfail or ``-x`` ends the session."""
        if session.config.option.collectonly:
            return
        self.collection.index(session.items)
        self.more = not self.channel.stop_requested
        promised = None  # the nextitem the last test was torn down for
        while not self.channel.poll_stop():
            if LEAVING.is_set():
                self._leave()
                break
            if not self.pending:
                if not self.more:
                    break
                self._fetch()
                continue
            item = self.pending.pop_next()
            while not self.pending and self.more and not LEAVING.is_set():
                self._fetch()
            if LEAVING.is_set():
                self.pending.put_back_first(item)
                self._leave()
                break
            if self.channel.stop_requested:
                # The stop came while we waited: this test has not started, so it never runs.
                break
            if promised is not None and promised is not item:
                # The test the previous one was torn down for was given back (work stealing).
                self._teardown_for(session, item)
            nextitem = self.pending.peek()
            item.ihook.pytest_runtest_protocol(item=item, nextitem=nextitem)
            promised = nextitem
            self._end_if_pytest_says_so(session)

    def _leave(self):
        """The worker's host asked it to go: its unstarted tests go back (``leaving``), it
        starts no other, and the session ends with ``shutdown`` as after ``stop``."""
        given = self.pending.give_back(self.pending.ids())
        self.channel.send({"type": "leaving", "tests": given})
        self.channel.stop_requested = True

    def _fetch(self):
        """Asks for the next group and queues its tests; an empty group means work is over."""
        ids = self._need_tests()
        self.more = bool(ids)
        for nodeid in ids:
            if self.channel.stop_requested:
                return  # none of them would run
            item = self.collection.find(nodeid)
            if item is None:
                for message in unknown_test_messages(nodeid, self.identity):
                    self.channel.send(message)
            else:
                self.pending.append(item)

    def _need_tests(self):
        """Asks for the next group and waits: a list of test ids, empty when work is over."""
        if self.channel.stop_requested:
            return []
        self.channel.send({"type": "need_tests"})
        reply = self.channel.receive_until({"tests"})
        return [] if reply is None else list(reply.get("tests") or [])

    def _teardown_for(self, session, item):
        """Tears down what ``item`` does not share with the test torn down before."""
        try:
            session._setupstate.teardown_exact(item)
        except Exception:
            self.channel.message(
                f"herd worker {self.identity}: a fixture teardown before {item.nodeid} failed:\n"
                + traceback.format_exc()
            )

    def _end_if_pytest_says_so(self, session):
        """pytest's maxfail (``session.Failed``) or ``-x`` and friends (``Interrupted``)."""
        if session.shouldfail or session.shouldstop:
            reason = str(session.shouldfail or session.shouldstop)
            if session.shouldfail:
                self.channel.session_exit(reason)
                raise session.Failed(session.shouldfail)
            raise session.Interrupted(session.shouldstop)  # -> pytest_keyboard_interrupt
