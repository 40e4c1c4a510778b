"""Unit tests of the worker side of xdist's contract (``herd_pytest.xdist_contract``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the directory of herd_pytest/

from herd_pytest import xdist_contract as xc  # noqa: E402

UID = "0123abcd" + "f" * 24


class FakeManager:
    def __init__(self, plugins):
        self.plugins = set(plugins)

    def hasplugin(self, name):
        return name in self.plugins


class FakeConfig:
    def __init__(self, plugins=(), options=None):
        self.pluginmanager = FakeManager(plugins)
        self.options = options or {}

    def getoption(self, name, default=None):
        return self.options.get(name, default)


def env(**more):
    base = {xc.ENV_WORKER: "w2", xc.ENV_WORKER_COUNT: "3", xc.ENV_TESTRUNUID: UID}
    base.update(more)
    return base


def test_mainargv_is_the_users_command_line_without_herds_flags():
    argv = ["/v/bin/pytest", "-p", "herd_pytest.plugin", "-p", "no:xdist", "-x", "tests"]
    assert xc.main_argv(argv) == ["/v/bin/pytest", "-x", "tests"]
    assert xc.main_argv(["pytest", "-q"]) == ["pytest", "-q"]


def test_workerinput_says_what_xdist_workers_are_told():
    got = xc.worker_input(FakeConfig(), env(), argv=["pytest", "-q"])
    assert got == {"workerid": "w2", "workercount": 3, "testrunuid": UID, "mainargv": ["pytest", "-q"]}


def test_a_controllers_additions_are_merged_in():
    extra = json.dumps({"cov_master_host": "h", "workercount": 4})
    got = xc.worker_input(FakeConfig(), env(HERD_WORKERINPUT=extra), argv=["pytest"])
    assert got["cov_master_host"] == "h" and got["workercount"] == 4


def test_every_worker_shuffles_with_one_seed():
    randomly = FakeConfig(plugins=["randomly"], options={"randomly_seed": "default"})
    assert xc.plugin_inputs(randomly, UID) == {"randomly_seed": 0x0123ABCD}
    given = FakeConfig(plugins=["randomly"], options={"randomly_seed": 42})
    assert xc.plugin_inputs(given, UID) == {"randomly_seed": 42}
    assert xc.plugin_inputs(FakeConfig(), UID) == {}


def test_the_contract_is_taken_only_when_the_coordinator_asks():
    assert xc.requested(env())
    assert not xc.requested({})
