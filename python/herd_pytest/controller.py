"""herd's pytest controller (``-p herd_pytest.controller``; active only with
``HERD_PYTEST_CONTROLLER=1`` in the environment, which herd sets).

One pytest process, configured with the user's own arguments, that collects nothing and runs no
test: its test loop reads what herd says (JSON lines on its stdin, in order; see
``herd_core::controller``) and hands every report to pytest's own hooks, as pytest-xdist's
controller does with its workers' reports. So ``pytest_runtest_logreport``,
``pytest_collectreport``, ``pytest_warning_recorded``, ``pytest_sessionfinish`` and
``pytest_terminal_summary`` run once, here: ``--junitxml``, ``--report-log``, the cache, ``-r``,
``--tb``, ``--durations`` and plugins' summaries are pytest's, written once and complete.

Its terminal report is quiet until the end (herd prints the live per-test lines); then pytest's
summary goes to stdout, which herd relays. Its exit code is pytest's (a plugin's
``session.exitstatus`` included).

The worker side of the contract is :func:`leave_files_to_controller`: a worker whose reports go
to the controller writes none of the session's files itself.
"""

from __future__ import annotations

import atexit
import builtins
import json
import linecache
import os
import re
import time
import warnings

import pytest

from . import nodes
from .process import exit_fast_at_exit, skip_final_gc
from .quiet import QuietTerminal
from .reports import COMPACT

ENV_CONTROLLER = "HERD_PYTEST_CONTROLLER"
ENV_REPORTS = "HERD_PYTEST_REPORTS"
# For the benchmark (scripts/bench-pytest): a file the controller writes its CPU seconds and
# its number of tests to at the end.
ENV_CPU_FILE = "HERD_PYTEST_CONTROLLER_CPU"

# herd's lines arrive on stdin: its descriptor is kept before pytest's capturing can replace it.
_INPUT_FD = os.dup(0) if os.environ.get(ENV_CONTROLLER) == "1" else None
if _INPUT_FD is not None:
    atexit.register(nodes.write_if_missing)

_WARNING_LINE = re.compile(r"^(?P<file>.*?):(?P<line>\d+): (?P<category>[A-Za-z_][\w.]*): ")


def pytest_addhooks(pluginmanager):
    from . import hooks

    hooks.add_to(pluginmanager)


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config, parser, args):
    """The controller is the distributed session's controller: plugins that choose their part
    from xdist's options as they load (pytest-cov's distributed master) see ``distload`` set.
    Only the early namespace they read is touched, not ``config.option``."""
    if _INPUT_FD is not None:
        early_config.known_args_namespace.distload = True
    return (yield)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    if _INPUT_FD is None or config.pluginmanager.has_plugin("herd_controller"):
        return
    nodes.add_hookspecs(config.pluginmanager)  # xdist installed but not loaded here
    config.pluginmanager.register(Controller(config), "herd_controller")


def reports_go_to_controller():
    """Whether this worker's reports go to herd's pytest controller."""
    return os.environ.get(ENV_REPORTS) == "1"


def leave_files_to_controller(config):
    """On a worker whose reports go to the controller: the session's files (``--junitxml``,
    ``--report-log``, ``--html``, the cache's ``lastfailed``, ``nodeids`` and stepwise) are
    the controller's to write; the worker still reads the cache (``--lf`` selects with it)."""
    for dest in ("xmlpath", "report_log", "htmlpath"):
        if getattr(config.option, dest, None) is not None:
            setattr(config.option, dest, None)
    config.pluginmanager.register(_ReadOnlyCache(), "herd_read_only_cache")


class _ReadOnlyCache:
    """Once the cache exists (the session starts): the worker reads it, never writes it."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session):
        cache = getattr(session.config, "cache", None)
        if cache is None:
            return
        try:
            cache.set = lambda key, value: None
        except Exception as exc:  # a cache of another make: it may write, as before
            warnings.warn(f"herd: the worker's cache may be written: {exc}")


class Controller:
    """The plugin object of the controller: no collection, a test loop that replays reports."""

    def __init__(self, config):
        self.config = config
        self.terminal = QuietTerminal(config)  # quiet until pytest's summary
        self.tests = 0
        self.session = None
        self.nodes = nodes.Nodes(config)
        self.hooks = None  # what the plugins implement (see _Hooks), once known
        self.plain_report = None  # the report being handed on, if its status may be remembered
        self.plain_status = {}  # phase name -> pytest's status of a plain passing phase

    # ---- the session, without tests of its own ----------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session):
        self.session = session
        self._quiet()

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection(self, session):
        # Every plugin's pytest_sessionstart has run, as when xdist's controller sets up nodes.
        self.nodes.set_up(main_argv())
        session.items = []
        return True

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session):
        finish = None
        with os.fdopen(_INPUT_FD, "rb") as stream:
            for raw in stream:
                message = json.loads(raw)
                if message.get("type") == "finish":
                    finish = message
                    break
                self._handle(session, message)
        try:
            self._end(session, finish)
        finally:
            # What plugins print as the test loop ends (pytest-cov's "Coverage failure") shows;
            # pytest's progress line does not (herd printed its own).
            reporter = self._terminal()
            reported = getattr(reporter, "_progress_nodeids_reported", None)
            if isinstance(reported, set):
                reported.clear()
            if reporter is not None:
                reporter.currentfspath = None  # its line is herd's, already ended
            self._loud()
        return True

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session):
        self._loud()  # before the terminal reporter prints pytest's summary
        # No test code ran here: pytest's search for exceptions raised in `__del__` by the
        # tests' garbage (a full collection over every report) has nothing to find.
        skip_final_gc(session.config)
        cpu_file = os.environ.get(ENV_CPU_FILE)
        if cpu_file:
            with open(cpu_file, "w") as f:
                json.dump({"cpu_seconds": time.process_time(), "tests": self.tests}, f)

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config):
        # pytest's report is written: the exit handlers run, then the process ends without
        # tearing down every report object (herd waits for the controller's exit).
        session = self.session
        if session is not None:
            exit_fast_at_exit(int(session.exitstatus))

    @pytest.hookimpl(tryfirst=True)
    def pytest_internalerror(self, excrepr, excinfo):
        self._loud()  # pytest's internal error is shown, not swallowed by the quiet terminal

    # ---- what herd says ---------------------------------------------------------------------

    def _handle(self, session, message):
        kind = message.get("type")
        if kind == "collected":
            session.testscollected = int(message.get("count") or 0)
            deselected = message.get("deselected") or []
            if deselected:
                # What pytest's -k/-m said on the workers, said here once for the session.
                self.config.hook.pytest_deselected(items=[Deselected(t) for t in deselected])
        elif kind == "test":
            self._test(message)
        elif kind == "collect_error":
            report = pytest.CollectReport(
                message["nodeid"], "failed", collect_error_repr(message.get("longrepr") or ""), []
            )
            self.config.hook.pytest_collectreport(report=report)
        elif kind == "warning":
            self._warning(message)
        elif kind == "configured":
            self.config.hook.pytest_herd_configured(
                config=self.config, workers=message.get("workers") or []
            )
        elif kind == "node_up":
            self.nodes.node_up(message.get("worker") or "", int(message.get("incarnation") or 2))
        elif kind == "node_down":
            self.nodes.node_down(
                message.get("worker") or "",
                int(message.get("incarnation") or 1),
                message.get("workeroutput"),
                message.get("error"),
            )
        elif kind == "worker_down":
            self.config.hook.pytest_herd_worker_down(
                config=self.config,
                worker=message.get("worker"),
                appliance=message.get("appliance"),
                reason=message.get("reason") or "",
            )

    def _test(self, message):
        hook = self.config.hook
        nodeid = message["test"]
        self.tests += 1
        reports, plain = self._reports(nodeid, message)
        if not reports:
            reports = herd_reports(nodeid, message.get("worker"), message.get("herd") or {})
            plain = False
        location = reports[0].location
        hooks = self._hooks()
        if hooks.start_and_finish_heard:
            hook.pytest_runtest_logstart(nodeid=nodeid, location=location)
        remember = plain and hooks.teststatus_is_pytests
        for report in reports:
            self.plain_report = report if remember else None
            hook.pytest_runtest_logreport(report=report)
        self.plain_report = None
        if hooks.start_and_finish_heard:
            hook.pytest_runtest_logfinish(nodeid=nodeid, location=location)

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report, config):
        """The status of a plain passing phase of a test whose every phase passed plainly,
        asked of pytest's own implementations once per phase name and remembered: they are the
        only ones (``_Hooks.teststatus_is_pytests``), and for such a report their answer
        depends on nothing else."""
        if report is not self.plain_report:
            return None
        status = self.plain_status.get(report.when)
        if status is None:
            self.plain_report = None  # this time the others answer
            status = config.hook.pytest_report_teststatus(report=report, config=config)
            self.plain_report = report
            if status is not None:
                self.plain_status[report.when] = status
        return status

    def pytest_plugin_registered(self, plugin):
        self.hooks = None  # a plugin may implement the hooks that matter below

    def _hooks(self):
        """What the registered plugins implement, worked out once per plugin registration."""
        if self.hooks is None:
            self.hooks = _Hooks(self.config)
        return self.hooks

    def _reports(self, nodeid, message):
        """The test's reports, from their serialized forms (compact ones expanded), and whether
        every one is a plain passing phase made directly (what plugins added, pytest-html's
        ``extras``, may be there: no status depends on it)."""
        unserialize = self.config.hook.pytest_report_from_serializable
        direct = self._hooks().only_pytest_unserializes
        plain = direct
        base = None
        reports = []
        for data in message.get("reports") or []:
            if data.get(COMPACT):
                said_identity = "keywords" in data
                if direct:
                    # A plain passing phase, made directly (what pytest's own hook would make).
                    report = compact_report(data, base, nodeid)
                    if said_identity:
                        base = _identity_of(report)
                    plain = plain and data.get("outcome", "passed") == "passed"
                    reports.append(report)
                    continue
                data = expand(data, base, nodeid)
                if said_identity:
                    base = data
            elif data.get("$report_type") == "TestReport":
                base = data
            plain = False
            data = with_tuples(data)
            if direct and data.get("$report_type") == "TestReport":
                # What pytest's own hook would do, without the hook call (most reports).
                report = pytest.TestReport._from_json(data)
            else:
                report = unserialize(config=self.config, data=data)
            if report is not None:
                reports.append(report)
        return reports, plain and bool(reports)

    def _warning(self, message):
        record = warning_record(message.get("text") or "")
        self.config.hook.pytest_warning_recorded.call_historic(
            kwargs=dict(
                warning_message=record,
                when=message.get("when") or "runtest",
                nodeid=message.get("test") or "",
                location=None,
            )
        )

    def _end(self, session, finish):
        """Ends the test loop as pytest's own does, with herd's end if pytest has none."""
        if finish is None:
            raise session.Interrupted("herd ended the session without saying how")
        session.testscollected = max(session.testscollected, int(finish.get("collected") or 0))
        end, reason = finish.get("end"), finish.get("reason")
        if end == "maxfail" and not session.shouldfail:
            session.shouldfail = f"stopping after {session.testsfailed} failures"
        if session.shouldfail:
            raise session.Failed(session.shouldfail)
        if end in ("interrupted", "aborted"):
            raise session.Interrupted(reason or end)
        if session.shouldstop:
            raise session.Interrupted(session.shouldstop)

    # ---- the terminal: quiet during the run, pytest's summary at the end --------------------

    def _terminal(self):
        return self.config.pluginmanager.get_plugin("terminalreporter")

    def _quiet(self):
        self.terminal.quiet()

    def _loud(self):
        self.terminal.loud()


def collect_error_repr(text):
    """A collection error's text as pytest keeps it (a ``CollectErrorRepr``: its short summary
    line is ``ERROR path``, with no message after it)."""
    try:
        from _pytest.reports import CollectErrorRepr
    except ImportError:  # another pytest: the text itself
        return text
    return CollectErrorRepr(text)


class Deselected:
    """A test the workers' pytest left out, as ``pytest_deselected`` hands it on: its id."""

    def __init__(self, nodeid):
        self.nodeid = nodeid
        self.name = nodeid.rpartition("::")[2]

    def __repr__(self):
        return f"<Deselected {self.nodeid}>"


class _Hooks:
    """What the controller's plugins implement, for its shortcuts.

    * ``start_and_finish_heard``: a plugin follows test starts and ends
      (``pytest_runtest_logstart``/``logfinish``), not only the quiet terminal (it would write
      progress nobody sees) and the logging plugin (live logs of tests; none run here).
    * ``only_pytest_unserializes``: pytest's own ``pytest_report_from_serializable`` is the
      only one, so a test report may be made directly.
    * ``teststatus_is_pytests``: only pytest's own modules (and this controller) implement
      ``pytest_report_teststatus``, so a plain passing phase's status may be remembered.
    """

    def __init__(self, config):
        pm, hook = config.pluginmanager, config.hook
        quiet = {id(pm.get_plugin(name)) for name in ("terminalreporter", "logging-plugin")}
        self.start_and_finish_heard = any(
            id(impl.plugin) not in quiet
            for caller in (hook.pytest_runtest_logstart, hook.pytest_runtest_logfinish)
            for impl in caller.get_hookimpls()
        )
        self.only_pytest_unserializes = all(
            getattr(impl.plugin, "__name__", "") in _PYTEST_UNSERIALIZERS
            for impl in hook.pytest_report_from_serializable.get_hookimpls()
        )
        controller = pm.get_plugin("herd_controller")
        self.teststatus_is_pytests = all(
            impl.plugin is controller or getattr(impl.plugin, "__name__", "") in _PYTEST_STATUSES
            for impl in hook.pytest_report_teststatus.get_hookimpls()
        )


#: Where pytest's own unserializers live: with no other, a test report is made directly.
_PYTEST_UNSERIALIZERS = frozenset(("_pytest.reports", "_pytest.subtests"))
#: The plugins that say a report's status whose answer for a plain passing phase (of a test with
#: no subtests: none failed) depends on the phase name alone: pytest's own, and
#: pytest-rerunfailures (it speaks only of "rerun" outcomes).
_PYTEST_STATUSES = frozenset(
    ("_pytest.runner", "_pytest.skipping", "_pytest.subtests", "_pytest.terminal",
     "pytest_rerunfailures")
)


def expand(compact, base, nodeid):
    """The whole serialized form of a compact one (see ``herd_pytest.reports.COMPACT``): the
    test's id, location and keywords from its last whole form ``base``, the rest from the
    compact form; a plain passing phase has no text, output or properties. Without a base
    (never from herd's worker), the location is made from the test id."""
    if base is None:
        base = identity_from_id(nodeid)
    data = {
        "$report_type": "TestReport",
        "nodeid": base.get("nodeid", nodeid),
        "location": base.get("location"),
        "keywords": dict(base.get("keywords") or {}),
        "longrepr": None,
        "sections": [],
        "user_properties": [],
    }
    data.update({k: v for k, v in compact.items() if k != COMPACT})
    return data


def main_argv(argv=None):
    """The user's pytest command line, without the ``-p herd_pytest.controller`` herd added."""
    import sys

    argv = list(sys.argv if argv is None else argv)
    for at in range(len(argv) - 1):
        if argv[at : at + 2] == ["-p", "herd_pytest.controller"]:
            return argv[:at] + argv[at + 2 :]
    return argv


#: The fields of a compact form that are not a plugin's attribute.
_COMPACT_OWN = frozenset(
    (COMPACT, "nodeid", "location", "keywords", "when", "outcome", "duration", "start", "stop")
)


def identity_from_id(nodeid):
    """A test's id, location and keywords as far as its id tells them (a report herd decided,
    or a compact form without a base, which herd's worker never sends)."""
    path, _, name = nodeid.partition("::")
    return {"nodeid": nodeid, "keywords": {}, "location": (path, None, name or path)}


def _identity_of(report):
    """A test's id, location and keywords as a base for its later compact forms (with pytest's
    parsed id, when it keeps one, so the test's later reports share it)."""
    identity = {"nodeid": report.nodeid, "location": report.location, "keywords": report.keywords}
    parsed = report.__dict__.get("_id")
    if parsed is not None:
        identity["_id"] = parsed
    return identity


def compact_report(compact, base, nodeid):
    """The ``TestReport`` a compact form stands for (see :func:`expand`), made directly."""
    if "keywords" in compact:
        base = compact
    elif base is None:
        base = identity_from_id(nodeid)
    location = base.get("location")
    location = tuple(location) if location is not None else None
    if _DIRECT and base.get("_id") is not None:
        # Most reports come this way: the test's id parsed once for its three reports.
        return _made_directly(compact, base, location)
    get = compact.get
    return pytest.TestReport(
        base.get("nodeid", nodeid), location, dict(base.get("keywords") or {}),
        get("outcome", "passed"), None, get("when"), [], get("duration", 0.0),
        get("start", 0.0), get("stop", 0.0), [], **_extra_fields(compact),
    )


def _made_directly(compact, base, location):
    """The report with the attributes pytest's constructor would store, set without it (see
    ``_DIRECT``), ``base`` holding the test's parsed id (``_id``)."""
    get = compact.get
    report = _new_report(pytest.TestReport)
    report.__dict__ = {
        "_id": base["_id"],
        "location": location,
        "keywords": dict(base.get("keywords") or {}),
        "outcome": get("outcome", "passed"),
        "longrepr": None,
        "when": get("when"),
        "user_properties": [],
        "sections": [],
        "duration": get("duration", 0.0),
        "start": get("start", 0.0),
        "stop": get("stop", 0.0),
    }
    if not _COMPACT_OWN.issuperset(compact):
        report.__dict__.update(_extra_fields(compact))
    return report


def _extra_fields(compact):
    """What plugins added to a compact form's report (pytest-html's ``extras``)."""
    return {k: v for k, v in compact.items() if k not in _COMPACT_OWN}


_new_report = object.__new__


def _constructor_only_stores():
    """Whether this pytest's ``TestReport`` constructor only stores its arguments: a sample made
    by it and by :func:`_made_directly` hold the same attributes. Else every report is made by
    the constructor."""
    try:
        made = pytest.TestReport(
            "a.py::t", ("a.py", 0, "t"), {"t": 1}, "passed", None, "call", [], 0.5, 1.0, 1.5, []
        )
        compact = {"when": "call", "outcome": "passed", "duration": 0.5, "start": 1.0, "stop": 1.5}
        base = {"_id": made.__dict__.get("_id"), "keywords": {"t": 1}}
        return vars(_made_directly(compact, base, ("a.py", 0, "t"))) == vars(made)
    except Exception:
        return False


#: Whether plain reports may be made without pytest's constructor (see _made_directly).
_DIRECT = _constructor_only_stores()


def with_tuples(data):
    """``data`` with the tuples JSON made lists given back: a skip's ``longrepr`` (path, line,
    reason) and the ``location``, as pytest's plugins expect them."""
    for key in ("longrepr", "location"):
        if isinstance(data.get(key), list):
            data[key] = tuple(data[key])
    return data


def herd_reports(nodeid, worker, herd):
    """The reports of a test that came without pytest's own (a worker that does not send them,
    or a test herd decided: it crashed its worker, or timed out), from herd's verdict. A crash or
    a timeout is a failed call saying so, as xdist reports a crashed worker's test."""
    location = identity_from_id(nodeid)["location"]
    path = location[0]
    outcome = herd.get("outcome") or "crashed"
    why = herd.get("message") or ""
    text = herd.get("details") or why
    if outcome in ("crashed", "timed_out"):
        word = herd.get("word") or outcome.upper()
        text = f"herd: {word} on worker {worker}: {why or word.lower()}" + (
            "\n" + herd["details"] if herd.get("details") else ""
        )
    when, phase_outcome, extra = {
        "passed": ("call", "passed", {}),
        "xpassed": ("call", "passed", {"wasxfail": why}),
        "skipped": ("call", "skipped", {}),
        "xfailed": ("call", "skipped", {"wasxfail": why}),
        "error": ("setup", "failed", {}),
    }.get(outcome, ("call", "failed", {}))
    longrepr = None
    if phase_outcome == "skipped" and not extra:
        longrepr = (path, None, why or "skipped")
    elif phase_outcome == "failed":
        longrepr = text
    common = dict(nodeid=nodeid, location=location, keywords={}, duration=0.0)
    main = pytest.TestReport(
        outcome=phase_outcome, longrepr=longrepr, when=when, **common, **extra
    )
    teardown = pytest.TestReport(outcome="passed", longrepr=None, when="teardown", **common)
    return [main, teardown]


def warning_record(text):
    """A ``warnings.WarningMessage`` giving back ``text`` (``path:line: Category: message``
    and its source line, as the worker formatted it) when pytest formats it again."""
    first, _, _ = text.partition("\n")
    match = _WARNING_LINE.match(first)
    if match is None:
        return warnings.WarningMessage(UserWarning(text), UserWarning, "", 0)
    filename, lineno = match["file"], int(match["line"])
    body = text[match.end() :]
    source = linecache.getline(filename, lineno).strip()
    if source and body.endswith("\n  " + source):
        body = body[: -len("\n  " + source)]
    category = _category(match["category"])
    return warnings.WarningMessage(category(body), category, filename, lineno)


def _category(name):
    """The warning class called ``name``: a builtin or pytest's, else one made with that name."""
    short = name.rsplit(".", 1)[-1]
    for namespace in (builtins, pytest):
        found = getattr(namespace, short, None)
        if isinstance(found, type) and issubclass(found, Warning):
            return found
    return type(short, (UserWarning,), {})
