"""The compact serialized form of a plain passing phase (``herd_pytest.reports.SerializedForms``)
expands in the controller (``herd_pytest.controller.expand``) to exactly what pytest's own
serializer writes; anything that is not a plain pass is sent whole.

A real pytest run: a plugin serializes every report both ways, expands the compact ones as the
controller does, and writes what it found; the test compares.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from conftest import PYTHON_DIR

PLUGIN = textwrap.dedent(
    """
    import json, os
    import pytest
    from herd_pytest.reports import COMPACT, SerializedForms
    from herd_pytest.controller import _identity_of, compact_report, expand

    class Check:
        def __init__(self, config):
            self.config = config
            self.forms = SerializedForms(config)
            self.base = None
            self.made_base = None  # what the controller keeps: from the report it made
            self.found = []

        def pytest_runtest_logstart(self, nodeid):
            self.forms.new_test()

        def pytest_runtest_logreport(self, report):
            config = self.config
            whole = config.hook.pytest_report_to_serializable(config=config, report=report)
            sent = self.forms.form(report, config)
            if sent.get(COMPACT):
                got = expand(sent, self.base, report.nodeid)
                made = compact_report(sent, self.made_base, report.nodeid)
                again = config.hook.pytest_report_to_serializable(config=config, report=made)
                if json.dumps(again, sort_keys=True, default=str) != json.dumps(
                        whole, sort_keys=True, default=str):
                    got = {"made directly": again}
                if "keywords" in sent:
                    self.base = got
                    self.made_base = _identity_of(made)
            else:
                got = sent
                if sent.get("$report_type") == "TestReport":
                    self.base = self.made_base = sent
            same = json.dumps(got, sort_keys=True, default=str) == json.dumps(
                whole, sort_keys=True, default=str)
            self.found.append([report.nodeid, report.when, bool(sent.get(COMPACT)), same])

        def pytest_sessionfinish(self):
            with open(os.environ["FORMS_OUT"], "w") as f:
                json.dump(self.found, f)

    def pytest_configure(config):
        config.pluginmanager.register(Check(config), "forms-check")
    """
)

CONFTEST = textwrap.dedent(
    """
    import pytest

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(item, call):
        outcome = yield
        report = outcome.get_result()
        if item.name == "test_attribute" and report.when == "call":
            report.flag = "set by a plugin"
        if item.name == "test_object" and report.when == "setup":
            report.blob = {"not": "plain"}
    """
)

SUITE = textwrap.dedent(
    """
    import pytest

    def test_plain():
        pass

    def test_output():
        print("hello")

    def test_property(record_property):
        record_property("k", 1)

    def test_marked(request):
        request.applymarker(pytest.mark.slow)  # the call's keywords differ from the setup's

    def test_attribute():
        pass

    def test_object():
        pass

    def test_fails():
        assert False

    @pytest.mark.xfail(reason="known")
    def test_xpass():
        pass
    """
)


def test_compact_forms_expand_to_pytests_own(tmp_path):
    (tmp_path / "forms_plugin.py").write_text(PLUGIN)
    (tmp_path / "test_suite.py").write_text(SUITE)
    (tmp_path / "conftest.py").write_text(CONFTEST)
    out = tmp_path / "found.json"
    env = {
        "PYTHONPATH": f"{PYTHON_DIR}:{tmp_path}",
        "FORMS_OUT": str(out),
        "PATH": "/usr/bin:/bin",
    }
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "forms_plugin", "-p", "no:cacheprovider",
         "-p", "no:randomly", "test_suite.py"],
        cwd=tmp_path, env=env, check=False, capture_output=True,
    )
    found = {(test.split("::")[1], when): (compact, same) for test, when, compact, same in
             json.loads(out.read_text())}
    assert found, "the plugin ran"
    # Whatever was sent, the controller gets pytest's own form back.
    assert all(same for _, same in found.values()), found
    compact = {key for key, (c, _) in found.items() if c}
    # Every plain passing phase is compact (the first says the test's id, location and keywords).
    assert {("test_plain", "setup"), ("test_plain", "call"), ("test_plain", "teardown")} <= compact
    # Captured output, properties and failures are sent whole.
    assert ("test_output", "call") not in compact
    assert ("test_property", "call") not in compact
    assert ("test_fails", "call") not in compact
    assert ("test_xpass", "call") not in compact
    # A plugin's plain attribute travels compact; an object makes the form whole.
    assert ("test_attribute", "call") in compact
    assert ("test_object", "setup") not in compact
    # Keywords that changed in the call are said again, compact (and come back right: `same`).
    assert {("test_marked", "call"), ("test_marked", "teardown")} <= compact
    assert ("test_object", "call") in compact
