"""Collection under herd: the ``collection`` message, and sharded or lazy collection.

When ``welcome`` gives a ``collect`` scope (``{"kind": "shard", "index": i, "count": n}`` or
``{"kind": "lazy"}``), the worker walks every test file but imports only its shard's (lazy: none)
and sends the walk's file list with its collection. A file whose tests are dealt to it later is
collected then and reported with ``file_collection``; none of its tests runs before the
coordinator answers ``file_accepted`` (a worker whose file differs from the reference is stopped
while it waits).
"""

from __future__ import annotations

import pytest

from .wire import safe_text


def partial_scope(scope, args):
    """The scope to honour: None (collect everything) for no scope, ``all``, an unknown kind,
    or arguments naming tests inside files (``path::name``), which pytest can only match by
    collecting those files."""
    if not isinstance(scope, dict) or scope.get("kind") not in ("shard", "lazy"):
        return None
    if any("::" in str(arg) for arg in args):
        return None
    return scope


def herd_groups(items):
    """test id -> its ``herd_group`` name, for the tests that carry the mark."""
    groups = {}
    for item in items:
        mark = item.get_closest_marker("herd_group")
        if mark is None:
            continue
        name = mark.args[0] if mark.args else mark.kwargs.get("name")
        if name is not None:
            groups[item.nodeid] = str(name)
    return groups


class Collection:
    """What this worker collected, what it deferred, and how to find a test by its id."""

    def __init__(self, channel):
        self.channel = channel
        self.session = None
        self.scope = None  # the `collect` scope of welcome: None (everything), shard or lazy
        self.files = []  # every test file of the walk, in order (when the scope is partial)
        self.deferred = {}  # file node id -> its collector, not collected yet
        self.allowed = set()  # deferred files being collected now
        self.errors = []  # failed collectors: {"nodeid", "longrepr"}
        self.by_id = {}  # test id as the coordinator names it (made safe) -> item
        self.deselected = []  # ids of the tests pytest left out (-k, -m, --deselect)
        self.sent = False  # whether the collection message went out

    def make_collect_report(self, collector):
        """Partial collection: a test file outside this worker's scope is listed, not imported
        (a report to use instead of collecting it, or None to collect it as usual)."""
        if self.scope is None or not isinstance(collector, pytest.File):
            return None
        nodeid = collector.nodeid
        if nodeid in self.allowed:
            return None
        position = len(self.files)
        self.files.append(nodeid)
        if self._in_scope(position):
            return None
        self.deferred[safe_text(nodeid)] = collector
        return pytest.CollectReport(nodeid, "passed", None, [])

    def _in_scope(self, position):
        scope = self.scope
        if scope.get("kind") != "shard":
            return False
        count = max(int(scope.get("count") or 1), 1)
        return position % count == int(scope.get("index") or 0)

    def record_report(self, report):
        """Keeps a failed collector's error for the collection message."""
        if report.failed:
            try:
                text = str(report.longrepr)
            except Exception as exc:
                text = f"<herd: could not render the collection error: {exc!r}>"
            self.errors.append({"nodeid": report.nodeid, "longrepr": text})

    def record_deselected(self, items):
        """Keeps the ids of tests pytest left out, for the collection message (a file
        collected later was counted by the worker whose shard it is)."""
        if not self.sent:
            self.deselected.extend(safe_text(item.nodeid) for item in items)

    def send(self, items, extra_tests=()):
        """Sends the ``collection``: test ids in order (then ``extra_tests``), failed
        collectors, ``herd_group`` marks, and with a partial scope the walk's files."""
        message = {
            "type": "collection",
            "tests": [item.nodeid for item in items] + list(extra_tests),
            "errors": self.errors,
            "herd_groups": herd_groups(items),
        }
        if self.scope is not None:
            message["files"] = self.files
            message["scope"] = self.scope
        if self.deselected:
            message["deselected"] = self.deselected
        self.sent = True
        self.channel.send(message)

    def index(self, items):
        """Makes ``items`` findable by the ids the coordinator deals."""
        # Keyed as the coordinator names them: ids are sent made safe for the wire.
        self.by_id = {safe_text(item.nodeid): item for item in items}

    def find(self, nodeid):
        """The item of a dealt test id, collecting its file now if it was deferred; None when
        this worker has no such test."""
        item = self.by_id.get(nodeid)
        if item is None and self.deferred:
            file = nodeid.split("::", 1)[0]
            if file in self.deferred:
                self._collect_file(file)
                item = self.by_id.get(nodeid)
        return item

    def _collect_file(self, nodeid):
        """Collects a deferred file now, as pytest would have, reports it, and waits until the
        coordinator accepts it (or says stop)."""
        collector = self.deferred.pop(nodeid)
        self.allowed.add(collector.nodeid)
        session = self.session
        errors_before = len(self.errors)
        items = list(session.genitems(collector))
        session.config.hook.pytest_collection_modifyitems(
            session=session, config=session.config, items=items
        )
        for item in items:
            self.by_id[safe_text(item.nodeid)] = item
        self.channel.send(
            {
                "type": "file_collection",
                "file": nodeid,
                "tests": [item.nodeid for item in items],
                "errors": self.errors[errors_before:],
            }
        )
        # None of its tests runs before the coordinator has checked the file (a worker whose
        # file differs from the reference is stopped while it waits here).
        wanted = safe_text(nodeid)
        self.channel.receive_until({"file_accepted"}, match=lambda m: m.get("file") == wanted)
