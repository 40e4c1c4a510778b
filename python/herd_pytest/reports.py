"""pytest's reports as protocol messages: one ``report`` per phase (and per subtest).

``Rounds`` follows tests that are run again (pytest-rerunfailures): the teardown that ends a
round to be run again is marked ``intermediate``, and the next round's start is not a new test.
"""

from __future__ import annotations

import json

import pytest

from .wire import MESSAGE_LIMIT, _cut_middle, jsonable


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


def report_message(report, config, forms=None):
    """The ``report`` message of one of pytest's test reports.

    A plain passing phase (see :func:`is_plain_pass`) says only what herd needs: its test,
    phase, outcome, duration (and ``category`` for the call). With ``forms`` (a
    :class:`SerializedForms`: the reports go to herd's pytest controller), the message carries
    pytest's serialized form too, compact when the test's earlier report already said the rest.
    """
    plain = is_plain_pass(report)
    if plain:
        msg = {
            "type": "report",
            "test": report.nodeid,
            "when": report.when,
            "outcome": "passed",
            "duration": float(report.duration or 0.0),
        }
        if report.when == "call":
            msg["category"] = "passed"
    else:
        msg = _full_message(report, config)
    if forms is not None:
        msg["pytest"] = forms.form(report, config, plain)
    return msg


def _full_message(report, config):
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
    return msg


#: What a plain test report holds (``TestReport.__dict__``); what a plugin adds (pytest-html's
#: ``extras``) travels in the serialized form, compact only when it is a plain value.
_PLAIN_FIELDS = frozenset(
    (
        "_id",
        "nodeid",
        "location",
        "keywords",
        "outcome",
        "longrepr",
        "when",
        "user_properties",
        "sections",
        "duration",
        "start",
        "stop",
    )
)


def is_plain_pass(report):
    """Whether ``report`` is a passing phase with nothing to tell herd but its duration: no
    failure or skip text, no captured output, no properties, no xfail."""
    return (
        type(report) is pytest.TestReport
        and report.outcome == "passed"
        and report.longrepr is None
        and not report.sections
        and not report.user_properties
        and not hasattr(report, "wasxfail")
    )


def _added_fields(report):
    """What plugins added to ``report`` (name -> value) when every value is a plain value
    (None, a bool, a number, a short string, an empty list or dict); None otherwise."""
    added = {}
    for key in report.__dict__.keys() - _PLAIN_FIELDS:
        value = report.__dict__[key]
        if value is None or isinstance(value, (bool, int, float)):
            added[key] = value
        elif isinstance(value, str) and len(value) < 256:
            added[key] = value
        elif isinstance(value, (list, dict)) and not value:
            added[key] = type(value)()
        else:
            return None
    return added


#: The marker of a compact serialized form: the fields below are this phase's; every other one
#: is the same as in the test's last full form in the same ``test`` line (see
#: ``herd_pytest.controller.expand``).
COMPACT = "$herd_compact"
_COMPACT_FIELDS = ("when", "outcome", "duration", "start", "stop")


class SerializedForms:
    """pytest's serialized form of each report, for herd's pytest controller.

    A plain passing phase is sent compact (``COMPACT``): the fields of its own, with the test's
    id, location and keywords only when they were not said yet for this test (its first
    report, or after they changed). Anything else is sent whole
    (``pytest_report_to_serializable``). pytest's own serializer is the only one that can be
    skipped: with a plugin's ``pytest_report_to_serializable``, every form is whole.
    """

    def __init__(self, config):
        self.hook = config.hook.pytest_report_to_serializable
        self.base = None  # (nodeid, keywords, location) of the test's last whole form
        self.only_pytest = None  # whether only pytest serializes (None: to be found out)

    def plugins_changed(self):
        """A plugin was registered (a conftest loaded late may bring a serializer)."""
        self.only_pytest = None

    def new_test(self):
        """A new test starts: its first report is sent whole."""
        self.base = None

    def form(self, report, config, plain=None):
        """The serialized form of ``report`` to send (``plain``: whether it is a plain pass,
        when the caller knows)."""
        if plain is None:
            plain = is_plain_pass(report)
        base = self.base
        if plain and self._only_pytest_serializes():
            added = _added_fields(report)
            if added is not None:
                form = {key: getattr(report, key, None) for key in _COMPACT_FIELDS}
                form.update(added)
                identity = (report.nodeid, report.keywords, report.location)
                if base is None or base != identity:
                    # The test's identity, said once (the controller keeps it as the base).
                    form["nodeid"] = report.nodeid
                    form["location"] = report.location
                    form["keywords"] = report.keywords
                    self.base = identity
                form[COMPACT] = True
                return form
        data = config.hook.pytest_report_to_serializable(config=config, report=report)
        if type(report) is pytest.TestReport:
            self.base = (report.nodeid, report.keywords, report.location)
        return _fitted_texts(data, _SERIALIZED_TEXT_LIMIT)

    def _only_pytest_serializes(self):
        """Whether pytest's serializers are the only ones."""
        if self.only_pytest is None:
            self.only_pytest = all(
                getattr(impl.plugin, "__name__", "") in _PYTEST_SERIALIZERS
                for impl in self.hook.get_hookimpls()
            )
        return self.only_pytest


#: Where pytest's own serializers live (a plain report's form is pytest's).
_PYTEST_SERIALIZERS = frozenset(("_pytest.reports", "_pytest.subtests"))

# The longest text of a serialized report: it travels beside herd's own fields (which the
# frame limit cuts on their own), so together they still fit in a frame.
_SERIALIZED_TEXT_LIMIT = MESSAGE_LIMIT // 16

#: The fields of a serialized report that hold no long text (they are not walked).
_SHORT_FIELDS = frozenset(
    ("nodeid", "location", "keywords", "outcome", "when", "duration", "start", "stop", "$report_type")
)


def _fitted_texts(data, limit):
    """``data`` (a serialized report) with every long text in it cut to ``limit`` characters;
    only the fields that may hold long text are walked."""
    if not isinstance(data, dict):
        return _fitted(data, limit)
    return {k: v if k in _SHORT_FIELDS else _fitted(v, limit) for k, v in data.items()}


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
