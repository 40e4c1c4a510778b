"""The pytest hooks of herd's worker plugin (load it with ``-p herd_pytest.plugin``).

Without ``HERD_ENDPOINT`` in the environment it is inert: it registers the ``herd_group(name)``
marker and provides the ``herd_appliance`` fixture (and xdist's ``worker_id`` and ``testrun_uid``
when xdist is not active), nothing else. Under herd it takes the worker side of xdist's contract
(``xdist_contract``) and registers a ``HerdWorker``, whose hooks are thin: each hands its work
to the module that owns it (see the package docstring for the map and the protocol).
"""

from __future__ import annotations

import os
import traceback
import warnings

import pytest

from . import nodes, xdist_contract, zygote
from .channel import Channel, HerdError
from .chaos import Chaos
from .collection import Collection, partial_scope
from .controller import leave_files_to_controller, reports_go_to_controller
from .handshake import greet
from .loop import Pending, RunLoop
from .process import StatusFile, exit_fast_at_exit, install_sigterm_handler, skip_final_gc
from .quiet import QuietTerminal
from .reports import Rounds, SerializedForms, as_text, report_message
from .settings import Settings, appliance, under_herd

_MARKER_HELP = (
    "herd_group(name): tests carrying the same group name run together, in order, on one herd "
    "worker"
)


# ---- inert part: always active ---------------------------------------------------------------


def pytest_addhooks(pluginmanager):
    # The harness hooks fire in the controller; a worker loads the same conftest files.
    from . import hooks

    hooks.add_to(pluginmanager)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """Under herd, before any ``pytest_configure``: ``config.workerinput`` and the rest of
    xdist's worker contract, as an xdist worker has them."""
    if under_herd() and xdist_contract.requested():
        if zygote.active():
            zygote.provisional_identity(config)  # each forked worker takes its own
        else:
            xdist_contract.become_worker(config, Settings().incarnation)


@pytest.hookimpl(tryfirst=True)  # before junitxml's and the report plugins' (see controller.py)
def pytest_configure(config):
    config.addinivalue_line("markers", _MARKER_HELP)
    xdist_contract.register_fixtures(config)
    nodes.add_hookspecs(config.pluginmanager)  # xdist's, where xdist is not loaded
    if not under_herd():
        return
    if config.pluginmanager.has_plugin("herd_worker"):
        return
    if reports_go_to_controller():
        leave_files_to_controller(config)
    worker = HerdWorker(config)
    config.pluginmanager.register(worker, "herd_worker")
    install_sigterm_handler()


@pytest.fixture(scope="session")
def herd_appliance():
    """The appliance this herd worker owns (``HERD_APPLIANCE``), or None."""
    return appliance()


# ---- the worker: active only under herd ------------------------------------------------------


class HerdWorker:
    """The plugin object registered under herd: pytest's hooks, each handed on."""

    def __init__(self, config):
        self.config = config
        self.settings = Settings()
        self.identity = self.settings.identity
        self.chaos = Chaos(self.settings.faults)
        self.status_file = StatusFile(self.settings.status_path)
        self.pending = Pending()
        self.channel = Channel(self.settings.endpoint, self.identity, self.pending.give_back)
        self.collection = Collection(self.channel)
        self.loop = RunLoop(self.channel, self.collection, self.pending, self.identity)
        self.rounds = Rounds()
        # pytest's serialized form of each report, when the reports go to herd's controller.
        self.forms = SerializedForms(config) if reports_go_to_controller() else None
        self.exitstatus = None
        self.loop_done = False
        self.terminal = QuietTerminal(config)

    # ---- handshake and collection -----------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_internalerror(self, excrepr, excinfo):
        self.terminal.loud()  # pytest's internal error reaches the worker's log

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session):
        self.collection.session = session
        # pytest's per-worker terminal report goes nowhere (see ``quiet``): with capturing
        # off (``-s``) herd shows the worker's output live, where only the tests' own output
        # belongs, and a progress character per test would cost a write and a wake-up of herd.
        self.terminal.quiet()
        if zygote.active():
            return  # each forked worker says hello (see _fork_off)
        welcome = greet(self.channel, self.settings)
        if welcome is not None:
            self._say_seed()
            self.collection.scope = partial_scope(welcome.get("collect"), self.config.args)
            self.channel.start_io_thread()

    def _say_seed(self):
        """The session's pytest-randomly seed, said once: by the first spawn of ``w1``."""
        notice = xdist_contract.seed_notice(self.config)
        if notice and self.identity == "w1.1":
            self.channel.message(notice)

    @pytest.hookimpl(tryfirst=True)
    def pytest_make_collect_report(self, collector):
        """Partial collection: a test file outside this worker's scope is listed, not imported."""
        return self.collection.make_collect_report(collector)

    def pytest_collectreport(self, report):
        self.collection.record_report(report)

    def pytest_deselected(self, items):
        self.collection.record_deselected(items)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session):
        if not zygote.active():
            self.collection.send(session.items, self.chaos.extra_tests())

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection(self, session):
        """The fork server serves forks here, as the collection is about to start: it returns
        only in a forked worker, which takes its identity, says hello and collects what its
        welcome asks (a shard of the files, or only the files of tests dealt to it)."""
        if not zygote.active():
            return None
        env, fds = zygote.serve(os.environ.pop(zygote.ENV_ZYGOTE_SOCKET))
        zygote.become_worker(self.config, env, fds)
        self.__init__(self.config)  # this worker's settings, status file, faults, socket
        zygote.take_identity(self.config, self.settings.incarnation)
        self.pytest_sessionstart(session)
        return None  # pytest collects, in this worker

    # ---- the test loop and the end ----------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session):
        try:
            self.loop.run(session)
        except (KeyboardInterrupt, pytest.exit.Exception, HerdError, pytest.UsageError):
            raise  # session_exit / shutdown are sent by pytest_keyboard_interrupt, or not at all
        except session.Failed:
            raise
        except BaseException:
            self.channel.internal_error(traceback.format_exc())
            raise
        # shutdown goes out at the end of pytest_sessionfinish, with config.workeroutput.
        self.loop_done = True
        return True

    def pytest_keyboard_interrupt(self, excinfo):
        value = excinfo.value
        if isinstance(value, pytest.exit.Exception):
            reason = str(getattr(value, "msg", value))
        else:
            reason = str(value) or type(value).__name__
            if reason != type(value).__name__ and not isinstance(value, pytest.Session.Interrupted):
                reason = f"{type(value).__name__}: {reason}"
        self.channel.session_exit(reason)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_sessionfinish(self, session, exitstatus):
        """After every plugin's ``pytest_sessionfinish`` (and pytest-cov's end of the test
        loop): ``shutdown``, with ``config.workeroutput``, as an xdist worker sends it."""
        self.exitstatus = int(exitstatus)
        skip_final_gc(session.config)
        try:
            return (yield)
        finally:
            if self.loop_done:
                self.channel.shutdown(self._workeroutput(session))

    def _workeroutput(self, session):
        output = getattr(self.config, "workeroutput", None)
        if output is None:
            return None
        output.setdefault("exitstatus", self.exitstatus)
        output.setdefault("shouldfail", session.shouldfail)
        output.setdefault("shouldstop", session.shouldstop)
        output.setdefault("testscollected", session.testscollected)
        return output

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config):
        # Last resort: never leave the coordinator without a shutdown (e.g. a failed collection
        # under --collect-only or an exit before the test loop).
        if not self.channel.finished and self.channel.socket is not None:
            self.channel.shutdown()
        self.channel.close()
        self.status_file.close()
        if self.exitstatus is not None:
            exit_fast_at_exit(self.exitstatus)

    # ---- reports ----------------------------------------------------------------------------

    def pytest_plugin_registered(self, plugin):
        if self.forms is not None:
            self.forms.plugins_changed()

    def pytest_warning_recorded(self, warning_message, when, nodeid, location):
        """Forwards each warning so herd counts and lists them as pytest's summary does."""
        if self.channel.socket is None:
            return
        w = warning_message
        text = warnings.formatwarning(str(w.message), w.category, w.filename, w.lineno, w.line)
        message = {"type": "warning", "text": text.rstrip(), "when": when}
        if nodeid:
            message["test"] = nodeid
        self.channel.queue(message)

    def pytest_runtest_logstart(self, nodeid, location):
        recorded = self.status_file.write(nodeid)
        if not self.rounds.starts_new_test(nodeid):
            self.channel.flush()
            return
        if self.forms is not None:
            self.forms.new_test()
        self.channel.queue({"type": "test_started", "test": nodeid})
        if recorded:
            # With the previous tests' reports, once the batch is due (see ``channel``): the
            # status file already says which test runs, should the worker die.
            self.channel.flush_if_due()
        else:
            # No status file herd can read (a worker on another host, a full disk): herd
            # learns which test runs from this message alone, so it leaves now.
            self.channel.flush()
        self.chaos.test_started(self.channel)

    def pytest_runtest_logfinish(self, nodeid, location):
        self.chaos.test_finished(self.channel)

    def pytest_runtest_logreport(self, report):
        if self.channel.socket is None:
            return
        message = report_message(report, self.config, self.forms)
        self.rounds.note(report, message)
        try:
            self.channel.queue(message)
        except (TypeError, ValueError):
            # Something odd slipped in (a non-str location part, ...): make it text.
            self.channel.queue(as_text(message))
        # A test's passing reports go out with the next batch (see ``channel``): a few frames a
        # second. Anything that did not pass goes out at once, so it survives a worker that
        # dies later in the test.
        if report.outcome != "passed":
            self.channel.flush()
