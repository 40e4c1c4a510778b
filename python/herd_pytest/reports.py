"""pytest's reports as protocol messages: one ``report`` per phase (and per subtest).

``Rounds`` follows tests that are run again (pytest-rerunfailures): the teardown that ends a
round to be run again is marked ``intermediate``, and the next round's start is not a new test.
"""

from __future__ import annotations

import json

import pytest

from .controller import reports_go_to_controller
from .wire import MESSAGE_LIMIT, _cut_middle, jsonable

# Whether each report carries pytest's serialized form, for herd's pytest controller.
_SERIALIZED = reports_go_to_controller()


class Rounds:
    """Which test start is a new test, and which teardown ends only a round of it."""

    def __init__(self):
        self.round_rerun = False  # the running test's current round is to be run again
        self.rerun_of = None  # the test whose round just ended with an intermediate teardown

    def starts_new_test(self, nodeid):
        """pytest starts ``nodeid``: False when it is another round of the test just run."""
        self.round_rerun = False
        if self.rerun_of == nodeid:
            # Another round of the same test (pytest-rerunfailures): it is still running.
            self.rerun_of = None
            return False
        self.rerun_of = None
        return True

    def note(self, report, message):
        """Follows the rounds through ``report``; marks ``message`` (its report message)
        ``intermediate`` when it is a teardown that does not end the test."""
        if report.when == "setup" and "subtest" not in message:
            self.round_rerun = False  # a new round starts
        if report.outcome not in ("passed", "failed", "skipped"):
            # A round that is run again (pytest-rerunfailures' "rerun"): the test goes on.
            self.round_rerun = True
        elif report.when == "teardown" and self.round_rerun:
            # A teardown that ends such a round does not end the test: the next round's start
            # is not a new test.
            message["intermediate"] = True
            self.round_rerun = False
            self.rerun_of = report.nodeid


def report_message(report, config):
    """The ``report`` message of one of pytest's test reports."""
    longrepr, message = longrepr_and_message(report)
    category = _plain_category(report)
    if category is None:
        try:
            status = config.hook.pytest_report_teststatus(report=report, config=config)
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
        "user_properties": [[str(k), jsonable(v)] for k, v in properties] if properties else [],
    }
    subtest = subtest_description(report)
    if subtest is not None:
        msg["subtest"] = subtest
    if _SERIALIZED:
        data = config.hook.pytest_report_to_serializable(config=config, report=report)
        msg["pytest"] = _fitted(data, _SERIALIZED_TEXT_LIMIT)
    return msg


# The longest text of a serialized report: it travels beside herd's own fields (which the
# frame limit cuts on their own), so together they still fit in a frame.
_SERIALIZED_TEXT_LIMIT = MESSAGE_LIMIT // 16


def _fitted(value, limit):
    """``value`` with every string longer than ``limit`` characters cut in the middle, with a
    note (captured output of tens of MiB must not make the report too big for a frame)."""
    if isinstance(value, str):
        return _cut_middle(value, limit)
    if isinstance(value, dict):
        return {k: _fitted(v, limit) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_fitted(v, limit) for v in value]
    return value


def as_text(message):
    """``message`` with whatever json cannot encode (a non-str location part, ...) as text."""
    return json.loads(json.dumps(message, default=repr))


def unknown_test_messages(nodeid, identity):
    """What a worker says about a dealt test it did not collect: it started, and its setup
    failed with a message saying so."""
    text = f"herd: worker {identity} did not collect {nodeid!r}"
    messages = [{"type": "test_started", "test": nodeid}]
    for when, outcome in (("setup", "failed"), ("teardown", "passed")):
        failed = outcome == "failed"
        messages.append(
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
    return messages


def subtest_description(report):
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


def longrepr_and_message(report):
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


def _plain_category(report):
    """pytest's summary category of a passing plain report, without a hook call (most reports);
    None when the hook must decide (failures, skips, xfail, subtests, other report types)."""
    if (
        type(report) is not pytest.TestReport
        or report.outcome != "passed"
        or hasattr(report, "wasxfail")
    ):
        return None
    return "passed" if report.when == "call" else ""
