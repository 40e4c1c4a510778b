"""Tests of herd's pytest worker plugin: a real worker subprocess against a fake coordinator."""

from __future__ import annotations

import os
import signal
import time

import pytest

from conftest import wait_for

SUITE = {
    "test_a.py": """
        import os
        import pytest

        LOG = os.environ["HERD_TEST_FIXTURE_LOG"]

        @pytest.fixture(scope="module")
        def modfix():
            with open(LOG, "a") as f:
                f.write("setup\\n")
            yield
            with open(LOG, "a") as f:
                f.write("teardown\\n")

        def test_pass(modfix):
            pass

        def test_fail(modfix):
            x = 2
            assert x + 1 == 4, "math is broken"

        def test_skip(modfix):
            pytest.skip("not today")

        @pytest.mark.xfail(reason="known bug")
        def test_xfail(modfix):
            assert False

        @pytest.mark.xfail(reason="maybe fixed")
        def test_xpass(modfix):
            pass

        @pytest.fixture
        def bad_setup():
            raise RuntimeError("setup exploded")

        def test_setup_error(modfix, bad_setup):
            pass

        @pytest.fixture
        def bad_teardown():
            yield
            raise RuntimeError("teardown exploded")

        def test_teardown_error(modfix, bad_teardown):
            pass
    """,
    "test_b.py": """
        import pytest

        @pytest.mark.herd_group("db")
        def test_g1():
            pass

        @pytest.mark.herd_group("db")
        def test_g2(record_property):
            record_property("answer", 42)
            record_property("thing", object())

        def test_plain():
            print("hello from test_plain")
    """,
    "test_broken.py": """
        import nonexistent_module_for_herd_tests
    """,
}

A_TESTS = [
    "test_a.py::test_pass",
    "test_a.py::test_fail",
    "test_a.py::test_skip",
    "test_a.py::test_xfail",
    "test_a.py::test_xpass",
    "test_a.py::test_setup_error",
    "test_a.py::test_teardown_error",
]
B_TESTS = ["test_b.py::test_g1", "test_b.py::test_g2", "test_b.py::test_plain"]


def reports_by_test(messages):
    """test id -> {when: report} for ordinary (non-subtest) reports."""
    out = {}
    for m in messages:
        if m["type"] == "report" and "subtest" not in m:
            phases = out.setdefault(m["test"], {})
            assert m["when"] not in phases, f"two {m['when']} reports for {m['test']}"
            phases[m["when"]] = m
    return out


@pytest.fixture
def suite(write_suite, tmp_path):
    return write_suite(SUITE)


@pytest.fixture
def fixture_log(tmp_path):
    return tmp_path / "fixture.log"


# ---- handshake --------------------------------------------------------------------------------


def test_hello_carries_identity_token_and_incarnation(coordinator, spawn_worker, suite, fixture_log):
    worker = spawn_worker(
        suite,
        env={
            "HERD_WORKER_ID": "w7",
            "HERD_INCARNATION": "3",
            "HERD_TOKEN": "s3cret",
            "HERD_TEST_FIXTURE_LOG": str(fixture_log),
        },
    )
    identity, hello = coordinator.expect("hello")
    assert identity.startswith(b"w7.3.") and len(identity) == len(b"w7.3.") + 32, identity
    assert hello == {
        "type": "hello",
        "protocol": 1,
        "worker": "w7",
        "incarnation": 3,
        "token": "s3cret",
        "pid": worker.pid,
        "heartbeat": 1.0,
    }
    coordinator.send(identity, {"type": "welcome", "worker": "w7", "incarnation": 3})
    coordinator.expect("collection")
    messages = coordinator.serve(identity, [])
    assert [m["type"] for m in messages] == ["need_tests", "shutdown"]
    worker.wait()  # exits (status 1: the broken module counts as a failure)


def test_wrong_token_error_makes_the_worker_exit_non_zero(coordinator, spawn_worker, suite, fixture_log):
    worker = spawn_worker(suite, env={"HERD_TEST_FIXTURE_LOG": str(fixture_log)})
    identity, hello = coordinator.expect("hello")
    coordinator.send(identity, {"type": "error", "message": "wrong session token"})
    status = worker.wait()
    assert status != 0
    assert "wrong session token" in worker.stderr
    # Nothing more after a refusal: no collection, no shutdown.
    assert coordinator.socket.poll(300) == 0


def test_no_welcome_times_out_instead_of_hanging(coordinator, spawn_worker, suite, fixture_log):
    worker = spawn_worker(
        suite, env={"HERD_CONNECT_TIMEOUT": "1", "HERD_TEST_FIXTURE_LOG": str(fixture_log)}
    )
    coordinator.expect("hello")  # ... and never answer
    started = time.monotonic()
    status = worker.wait(timeout=15)
    assert status != 0
    assert "welcome" in worker.stderr
    assert time.monotonic() - started < 10


# ---- collection -------------------------------------------------------------------------------


def test_collection_lists_tests_errors_and_groups(coordinator, spawn_worker, suite, fixture_log):
    worker = spawn_worker(suite, env={"HERD_TEST_FIXTURE_LOG": str(fixture_log)})
    identity, _ = coordinator.handshake()
    _, collection = coordinator.expect("collection")
    assert collection["tests"] == A_TESTS + B_TESTS
    assert [e["nodeid"] for e in collection["errors"]] == ["test_broken.py"]
    assert "nonexistent_module_for_herd_tests" in collection["errors"][0]["longrepr"]
    assert collection["herd_groups"] == {"test_b.py::test_g1": "db", "test_b.py::test_g2": "db"}
    # Collection errors do not end the worker: it keeps serving until told there is no work.
    messages = coordinator.serve(identity, [])
    assert messages[-1]["type"] == "shutdown"
    worker.wait()
    assert not fixture_log.exists()


# ---- running tests ----------------------------------------------------------------------------


def test_two_groups_report_every_phase(coordinator, spawn_worker, suite, fixture_log, tmp_path):
    status_file = tmp_path / "status"
    worker = spawn_worker(
        suite,
        env={"HERD_TEST_FIXTURE_LOG": str(fixture_log), "HERD_STATUS_FILE": str(status_file)},
    )
    identity, _ = coordinator.handshake()
    coordinator.expect("collection")
    messages = coordinator.serve(identity, [A_TESTS, B_TESTS])
    worker.wait()

    # Message order: need_tests, then per group the tests; the next need_tests goes out before
    # the last test of the group starts; shutdown is last.
    kinds = [m["type"] for m in messages]
    assert kinds[0] == "need_tests"
    assert kinds[-1] == "shutdown"
    assert kinds.count("shutdown") == 1
    assert kinds.count("need_tests") == 3
    started = [m["test"] for m in messages if m["type"] == "test_started"]
    assert started == A_TESTS + B_TESTS
    order = [
        ("need", None) if m["type"] == "need_tests" else ("start", m["test"])
        for m in messages
        if m["type"] in ("need_tests", "test_started")
    ]
    assert order == (
        [("need", None)]
        + [("start", t) for t in A_TESTS[:-1]]
        + [("need", None), ("start", A_TESTS[-1])]
        + [("start", t) for t in B_TESTS[:-1]]
        + [("need", None), ("start", B_TESTS[-1])]
    )

    # Every test: test_started, then setup/call/teardown (call absent when setup failed),
    # with the teardown report last.
    for test in A_TESTS + B_TESTS:
        own = [m for m in messages if m.get("test") == test]
        assert own[0]["type"] == "test_started"
        whens = [m["when"] for m in own[1:]]
        expected = ["setup", "teardown"] if test.endswith("setup_error") else ["setup", "call", "teardown"]
        assert whens == expected, (test, whens)
        for m in own[1:]:
            assert isinstance(m["duration"], float)
            if m["outcome"] == "passed" and "longrepr" not in m:
                # A plain passing phase says only what herd needs.
                assert set(m) <= {"type", "test", "when", "outcome", "duration", "category"}
                assert m.get("category", "") == ("passed" if m["when"] == "call" else "")
            else:
                assert m["location"][0] == test.split("::")[0]
                assert isinstance(m["sections"], list)
    compact = [m for m in messages if m.get("test") == "test_a.py::test_pass"][1:]
    assert all("longrepr" not in m for m in compact), "a plain pass is compact"

    reports = reports_by_test(messages)
    outcomes = {t: {w: r["outcome"] for w, r in phases.items()} for t, phases in reports.items()}
    ok = {"setup": "passed", "call": "passed", "teardown": "passed"}
    assert outcomes["test_a.py::test_pass"] == ok
    assert outcomes["test_a.py::test_fail"] == dict(ok, call="failed")
    assert outcomes["test_a.py::test_skip"] == dict(ok, call="skipped")
    assert outcomes["test_a.py::test_xfail"] == dict(ok, call="skipped")
    assert outcomes["test_a.py::test_xpass"] == ok
    assert outcomes["test_a.py::test_setup_error"] == {"setup": "failed", "teardown": "passed"}
    assert outcomes["test_a.py::test_teardown_error"] == dict(ok, teardown="failed")
    for test in B_TESTS:
        assert outcomes[test] == ok

    passed = reports["test_a.py::test_pass"]["call"]
    for key in ("longrepr", "message", "wasxfail"):
        assert passed.get(key) is None, key
    assert passed["category"] == "passed"
    assert "subtest" not in passed

    fail = reports["test_a.py::test_fail"]["call"]
    assert "assert x + 1 == 4" in fail["longrepr"]
    assert "math is broken" in fail["longrepr"]
    assert fail["message"] == "AssertionError: math is broken"
    assert fail["wasxfail"] is None
    assert fail["category"] == "failed"

    skip = reports["test_a.py::test_skip"]["call"]
    assert "not today" in skip["message"] and "not today" in skip["longrepr"]
    assert skip["category"] == "skipped"

    xfail = reports["test_a.py::test_xfail"]["call"]
    assert xfail["wasxfail"] == "known bug"
    assert xfail["category"] == "xfailed"

    xpass = reports["test_a.py::test_xpass"]["call"]
    assert xpass["wasxfail"] == "maybe fixed"
    assert xpass["category"] == "xpassed"

    setup_error = reports["test_a.py::test_setup_error"]["setup"]
    assert "setup exploded" in setup_error["longrepr"]
    assert "RuntimeError: setup exploded" in setup_error["message"]
    assert setup_error["category"] == "error"

    teardown_error = reports["test_a.py::test_teardown_error"]["teardown"]
    assert "teardown exploded" in teardown_error["longrepr"]
    assert "RuntimeError: teardown exploded" in teardown_error["message"]
    assert teardown_error["category"] == "error"

    g2 = reports["test_b.py::test_g2"]["call"]
    assert g2["user_properties"][0] == ["answer", 42]
    assert g2["user_properties"][1][0] == "thing"
    assert g2["user_properties"][1][1].startswith("<object object")

    plain = reports["test_b.py::test_plain"]["call"]
    assert ["Captured stdout call", "hello from test_plain\n"] in plain["sections"]

    # The first line names the last test started (later bytes are left over from longer ids).
    assert status_file.read_text().splitlines()[0] == B_TESTS[-1]

    # The module-scoped fixture was set up once for the whole group and torn down at its end.
    assert fixture_log.read_text() == "setup\nteardown\n"


def test_module_fixture_spans_groups_of_the_same_module(coordinator, spawn_worker, suite, fixture_log):
    # Two groups from one module back to back: the real nextitem keeps the module fixture alive.
    worker = spawn_worker(suite, env={"HERD_TEST_FIXTURE_LOG": str(fixture_log)})
    identity, _ = coordinator.handshake()
    coordinator.expect("collection")
    coordinator.serve(identity, [A_TESTS[:2], A_TESTS[2:3], ["test_b.py::test_g1"], A_TESTS[3:5]])
    worker.wait()
    assert fixture_log.read_text() == "setup\nteardown\nsetup\nteardown\n"


def test_stop_ends_the_worker_after_the_running_test(coordinator, spawn_worker, write_suite, tmp_path):
    suite = write_suite(
        {
            "test_slow.py": """
                import os, time

                def _mark(name):
                    with open(os.environ["HERD_TEST_FIXTURE_LOG"], "a") as f:
                        f.write(name + "\\n")

                def test_one():
                    _mark("one-start")
                    time.sleep(1.0)
                    _mark("one-end")

                def test_two():
                    _mark("two")

                def test_three():
                    _mark("three")
            """
        }
    )
    log = tmp_path / "marks.log"
    worker = spawn_worker(suite, env={"HERD_TEST_FIXTURE_LOG": str(log)})
    identity, _ = coordinator.handshake()
    _, collection = coordinator.expect("collection")
    coordinator.expect("need_tests")
    coordinator.send(identity, {"type": "tests", "tests": collection["tests"]})
    _, started = coordinator.expect("test_started")
    assert started["test"] == "test_slow.py::test_one"
    coordinator.send(identity, {"type": "stop"})
    messages = []
    while not messages or messages[-1]["type"] != "shutdown":
        messages.append(coordinator.recv_message())
    assert [(m["type"], m.get("when")) for m in messages] == [
        ("report", "setup"),
        ("report", "call"),
        ("report", "teardown"),
        ("shutdown", None),
    ]
    assert all(m["test"] == "test_slow.py::test_one" for m in messages[:-1])
    assert messages[1]["outcome"] == "passed"
    assert worker.wait() == 0, worker.stderr
    assert log.read_text() == "one-start\none-end\n"


def test_stop_while_waiting_for_tests_starts_nothing_more(coordinator, spawn_worker, write_suite, tmp_path):
    suite = write_suite({"test_x.py": "def test_1():\n    pass\ndef test_2():\n    pass\n"})
    worker = spawn_worker(suite)
    identity, _ = coordinator.handshake()
    coordinator.expect("collection")
    coordinator.expect("need_tests")
    coordinator.send(identity, {"type": "tests", "tests": ["test_x.py::test_1", "test_x.py::test_2"]})
    coordinator.expect("test_started")
    for when in ("setup", "call", "teardown"):
        assert coordinator.expect("report")[1]["when"] == when
    coordinator.expect("need_tests")  # before test_2, the last one held
    coordinator.send(identity, {"type": "stop"})
    assert coordinator.recv_message()["type"] == "shutdown"
    assert worker.wait() == 0, worker.stderr


def test_coordinator_error_mid_session_exits_with_the_message(coordinator, spawn_worker, write_suite):
    suite = write_suite({"test_x.py": "def test_1():\n    pass\n"})
    worker = spawn_worker(suite)
    identity, _ = coordinator.handshake()
    coordinator.expect("collection")
    coordinator.expect("need_tests")
    coordinator.send(identity, {"type": "error", "message": "collection differs from the reference"})
    assert worker.wait() != 0
    assert "collection differs from the reference" in worker.stderr


def test_pytest_exit_sends_session_exit_then_shutdown(coordinator, spawn_worker, write_suite):
    suite = write_suite(
        {
            "test_exit.py": """
                import pytest

                def test_bye():
                    pytest.exit("enough for today")

                def test_never():
                    pass
            """
        }
    )
    worker = spawn_worker(suite)
    identity, _ = coordinator.handshake()
    _, collection = coordinator.expect("collection")
    messages = coordinator.serve(identity, [collection["tests"]])
    worker.wait()
    kinds = [m["type"] for m in messages]
    assert kinds[-2:] == ["session_exit", "shutdown"]
    assert messages[-2]["reason"] == "enough for today"
    assert [m["test"] for m in messages if m["type"] == "test_started"] == ["test_exit.py::test_bye"]


def test_subtests_are_reported_with_a_subtest_field(coordinator, spawn_worker, write_suite):
    suite = write_suite(
        {
            "test_sub.py": """
                def test_with_subtests(subtests):
                    for i in range(3):
                        with subtests.test(msg="case", i=i):
                            assert i != 1

                def test_after():
                    pass
            """
        }
    )
    worker = spawn_worker(suite)
    identity, _ = coordinator.handshake()
    _, collection = coordinator.expect("collection")
    messages = coordinator.serve(identity, [collection["tests"]])
    worker.wait()
    own = [m for m in messages if m.get("test") == "test_sub.py::test_with_subtests"]
    subs = [m for m in own if "subtest" in m]
    assert len(subs) == 3
    assert [m["outcome"] for m in subs] == ["passed", "failed", "passed"]
    assert all(m["when"] == "call" for m in subs)
    assert "i=1" in subs[1]["subtest"] and "case" in subs[1]["subtest"]
    assert "assert 1 != 1" in subs[1]["longrepr"]
    plain = [m["when"] for m in own if m["type"] == "report" and "subtest" not in m]
    assert plain == ["setup", "call", "teardown"]
    assert own[-1]["when"] == "teardown" and "subtest" not in own[-1]
    assert reports_by_test(messages)["test_sub.py::test_after"]["call"]["outcome"] == "passed"


def test_sigterm_kills_the_whole_process_group(coordinator, spawn_worker, write_suite, tmp_path):
    pidfile = tmp_path / "child.pid"
    suite = write_suite(
        {
            "test_child.py": f"""
                import subprocess, time

                def test_spawns_a_child():
                    child = subprocess.Popen(["sleep", "60"])
                    with open({str(pidfile)!r}, "w") as f:
                        f.write(str(child.pid))
                    time.sleep(60)
            """
        }
    )
    status_file = tmp_path / "status"
    worker = spawn_worker(suite, env={"HERD_STATUS_FILE": str(status_file)})
    identity, _ = coordinator.handshake()
    _, collection = coordinator.expect("collection")
    coordinator.expect("need_tests")
    coordinator.send(identity, {"type": "tests", "tests": collection["tests"]})
    coordinator.expect("need_tests")  # the only test is the last one held
    coordinator.send(identity, {"type": "tests", "tests": []})
    assert wait_for(lambda: pidfile.exists() and pidfile.read_text().strip())
    child = int(pidfile.read_text())
    # HERD_STATUS_FILE names the test being run, so herd can blame a crash on it.
    assert status_file.read_text().splitlines()[0] == "test_child.py::test_spawns_a_child"
    os.kill(worker.pid, signal.SIGTERM)
    assert worker.wait(timeout=10) == -signal.SIGKILL

    def child_gone():
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return True
        # A zombie waiting for init to reap it counts as gone.
        try:
            with open(f"/proc/{child}/stat") as f:
                return f.read().split(") ")[1].startswith("Z")
        except OSError:
            return True
        return False

    assert wait_for(child_gone, timeout=5)


def test_unknown_test_id_is_reported_as_an_error(coordinator, spawn_worker, write_suite):
    suite = write_suite({"test_x.py": "def test_1():\n    pass\n"})
    worker = spawn_worker(suite)
    identity, _ = coordinator.handshake()
    coordinator.expect("collection")
    messages = coordinator.serve(identity, [["test_x.py::test_nope", "test_x.py::test_1"]])
    worker.wait()
    reports = reports_by_test(messages)
    assert reports["test_x.py::test_nope"]["setup"]["outcome"] == "failed"
    assert reports["test_x.py::test_nope"]["teardown"]["outcome"] == "passed"
    assert reports["test_x.py::test_1"]["call"]["outcome"] == "passed"
    assert messages[-1]["type"] == "shutdown"


# ---- without herd -----------------------------------------------------------------------------


INERT_SUITE = {
    "test_inert.py": """
        import os
        import pytest

        @pytest.mark.herd_group("g")
        def test_appliance(herd_appliance):
            assert herd_appliance == os.environ.get("EXPECTED_APPLIANCE")

        def test_plain():
            pass
    """
}


def test_inert_without_herd_endpoint(spawn_worker, write_suite):
    suite = write_suite(INERT_SUITE)
    worker = spawn_worker(suite, herd=False, args=["--strict-markers"])
    assert worker.wait() == 0, worker.stdout + worker.stderr
    assert "2 passed" in worker.stdout


def test_inert_appliance_fixture_reads_the_environment(spawn_worker, write_suite):
    suite = write_suite(INERT_SUITE)
    worker = spawn_worker(
        suite,
        herd=False,
        args=["--strict-markers"],
        env={"HERD_APPLIANCE": "appliance-7", "EXPECTED_APPLIANCE": "appliance-7"},
    )
    assert worker.wait() == 0, worker.stdout + worker.stderr
    assert "2 passed" in worker.stdout


def test_appliance_fixture_under_herd(coordinator, spawn_worker, write_suite):
    suite = write_suite(INERT_SUITE)
    worker = spawn_worker(
        suite, env={"HERD_APPLIANCE": "app-1", "EXPECTED_APPLIANCE": "app-1"}
    )
    identity, _ = coordinator.handshake()
    _, collection = coordinator.expect("collection")
    assert collection["herd_groups"] == {"test_inert.py::test_appliance": "g"}
    assert "errors" in collection and collection["errors"] == []
    messages = coordinator.serve(identity, [collection["tests"]])
    assert worker.wait() == 0, worker.stderr
    reports = reports_by_test(messages)
    assert all(phases["call"]["outcome"] == "passed" for phases in reports.values())


def test_heartbeats_keep_coming_while_a_test_runs(coordinator, write_suite, spawn_worker):
    """The hello promises heartbeats; they arrive even while a long test holds the worker."""
    suite = write_suite({"test_slow.py": "import time\n\ndef test_slow():\n    time.sleep(2.5)\n"})
    worker = spawn_worker(suite)
    identity, hello = coordinator.handshake()
    assert hello["heartbeat"] == 1.0
    _, collection = coordinator.expect("collection")
    coordinator.expect("need_tests")
    coordinator.send(identity, {"type": "tests", "tests": collection["tests"]})
    coordinator.expect("need_tests")
    coordinator.send(identity, {"type": "tests", "tests": []})
    coordinator.expect("test_started")
    coordinator.expect("report")  # setup ... the call takes 2.5 s
    while coordinator.recv_message()["type"] != "shutdown":
        pass
    assert coordinator.heartbeats >= 2
    worker.wait(timeout=10)


def test_hello_carries_the_fingerprint_computed_here(coordinator, spawn_worker, suite, fixture_log):
    worker = spawn_worker(
        suite,
        env={
            "HERD_VERSION": "9.9.9",
            "HERD_FINGERPRINT_CMD": "echo rev-abc",
            "HERD_TEST_FIXTURE_LOG": str(fixture_log),
        },
    )
    identity, hello = coordinator.expect("hello")
    assert hello["fingerprint"] == "herd 9.9.9 | rev-abc"
    coordinator.send(identity, {"type": "error", "message": "fingerprint mismatch"})
    assert worker.wait() != 0


def _tiny_then_long_suite(write_suite):
    tiny = "".join(f"def test_{i}():\n    pass\n\n" for i in range(400))
    return write_suite(
        {
            "test_a_tiny.py": tiny,
            "test_b_then.py": """
                import time

                def test_fails():
                    assert False

                def test_long():
                    time.sleep(3)
            """,
        }
    )


def _run_tiny_then_long(coordinator, worker):
    """Deals the suite and reads until test_long's start: the messages seen, how many frames
    brought them, and whether the worker still ran when test_long's start came."""
    identity, _ = coordinator.handshake()
    _, collection = coordinator.expect("collection")
    coordinator.expect("need_tests")
    assert len(collection["tests"]) == 402, collection
    frames_before = coordinator.frames
    coordinator.send(identity, {"type": "tests", "tests": collection["tests"]})
    seen = []
    while ("test_b_then.py::test_long", None) not in seen:
        message = coordinator.recv_message(timeout=10)
        if message["type"] == "need_tests":  # nothing more to run
            coordinator.send(identity, {"type": "tests", "tests": []})
            continue
        assert message["type"] in ("test_started", "report"), message
        seen.append((message["test"], message.get("when")))
    still_running = worker.popen.poll() is None
    frames = coordinator.frames - frames_before
    messages = coordinator.serve(identity, [])  # until its shutdown
    assert ("test_b_then.py::test_long", "call") in [(m.get("test"), m.get("when")) for m in messages]
    assert worker.wait() == 1, worker.stderr  # test_fails failed
    return seen, frames, still_running


def test_passing_tests_share_frames_and_a_long_tests_start_is_said_while_it_runs(
    coordinator, spawn_worker, write_suite, tmp_path
):
    suite = _tiny_then_long_suite(write_suite)
    worker = spawn_worker(suite, env={"HERD_STATUS_FILE": str(tmp_path / "w1.status")})
    seen, frames, still_running = _run_tiny_then_long(coordinator, worker)
    # Every one of the 400 tiny tests started and passed its three phases, in order ...
    tiny_ids = [f"test_a_tiny.py::test_{i}" for i in range(400)]
    assert [t for t, when in seen if when is None][:400] == tiny_ids
    assert [t for t, when in seen if when == "call"][:400] == tiny_ids
    # ... in a few frames, not one per test (the status file says which test runs).
    assert frames < 100, frames
    # The failure came, and the long test's start was said while it ran (by the background
    # thread: nothing else is sent until the test ends).
    assert ("test_b_then.py::test_fails", "call") in seen
    assert still_running, "test_long's start came only as the worker ended"
    assert (tmp_path / "w1.status").read_text().startswith("test_b_then.py::test_long\n")


def test_without_a_status_file_each_tests_start_goes_out_as_it_starts(
    coordinator, spawn_worker, write_suite
):
    # A worker whose status file herd cannot read (another host): herd learns the running
    # test from test_started alone, so no start waits for a batch.
    suite = _tiny_then_long_suite(write_suite)
    worker = spawn_worker(suite, env={"HERD_STATUS_FILE": ""})
    seen, frames, still_running = _run_tiny_then_long(coordinator, worker)
    assert len([t for t, when in seen if when is None]) == 402
    assert frames >= 402, frames
    assert still_running


def test_release_during_a_test_gives_back_unstarted_tests(coordinator, spawn_worker, write_suite, tmp_path):
    suite = write_suite(
        {
            "test_r.py": """
                import os, time

                def _mark(name):
                    with open(os.environ["HERD_TEST_FIXTURE_LOG"], "a") as f:
                        f.write(name + "\\n")

                def test_slow():
                    time.sleep(1.0)
                    _mark("slow")

                def test_a():
                    _mark("a")

                def test_b():
                    _mark("b")

                def test_c():
                    _mark("c")
            """
        }
    )
    log = tmp_path / "marks.log"
    worker = spawn_worker(suite, env={"HERD_TEST_FIXTURE_LOG": str(log)})
    identity, _ = coordinator.handshake()
    _, collection = coordinator.expect("collection")
    coordinator.expect("need_tests")
    coordinator.send(identity, {"type": "tests", "tests": collection["tests"]})
    _, started = coordinator.expect("test_started")
    assert started["test"] == "test_r.py::test_slow"
    # Asked while test_slow runs: answered at once (from the worker's background thread), and a
    # test it does not hold is not given back. Only test_slow's passed setup (its batch, sent by
    # the background thread too) may come first.
    coordinator.send(identity, {"type": "release", "tests": ["test_r.py::test_b", "test_r.py::test_c", "test_r.py::nope"]})
    _, released = coordinator.recv(timeout=0.9)
    if released["type"] == "report":
        assert (released["test"], released["when"]) == ("test_r.py::test_slow", "setup"), released
        released = coordinator.expect("released", timeout=0.9)[1]
    assert released["type"] == "released", released
    assert released["tests"] == ["test_r.py::test_b", "test_r.py::test_c"]
    messages = coordinator.serve(identity, [])
    started = [m["test"] for m in messages if m["type"] == "test_started"]
    assert started == ["test_r.py::test_a"]
    assert worker.wait() == 0, worker.stderr
    assert log.read_text() == "slow\na\n"


def test_a_shard_collects_only_its_files_and_the_rest_on_demand(coordinator, spawn_worker, write_suite, tmp_path):
    imports = tmp_path / "imports.log"
    body = 'import os\nwith open(os.environ["HERD_TEST_FIXTURE_LOG"], "a") as f:\n    f.write(__name__ + "\\n")\n\ndef test_1():\n    pass\n\ndef test_2():\n    pass\n'
    suite = write_suite({"test_a.py": body, "test_b.py": body, "test_c.py": body})
    worker = spawn_worker(suite, env={"HERD_TEST_FIXTURE_LOG": str(imports)})
    identity, hello = coordinator.expect("hello")
    coordinator.send(
        identity,
        {
            "type": "welcome",
            "worker": hello["worker"],
            "incarnation": hello["incarnation"],
            "collect": {"kind": "shard", "index": 1, "count": 2},
        },
    )
    _, collection = coordinator.expect("collection")
    # The walk lists every file; shard 1 of 2 imports only the second.
    assert collection["files"] == ["test_a.py", "test_b.py", "test_c.py"]
    assert collection["scope"] == {"kind": "shard", "index": 1, "count": 2}
    assert collection["tests"] == ["test_b.py::test_1", "test_b.py::test_2"]
    assert imports.read_text().split() == ["test_b"]
    coordinator.expect("need_tests")
    coordinator.send(identity, {"type": "tests", "tests": ["test_c.py::test_1"]})
    # A file it has not collected is collected and reported before any of its tests starts...
    _, late = coordinator.expect("file_collection")
    assert late["file"] == "test_c.py"
    assert late["tests"] == ["test_c.py::test_1", "test_c.py::test_2"]
    with pytest.raises(AssertionError, match="nothing received"):
        coordinator.recv(timeout=0.3)  # nothing runs before the file is accepted
    coordinator.send(identity, {"type": "file_accepted", "file": "test_c.py"})
    messages = coordinator.serve(identity, [])
    assert [m["test"] for m in messages if m["type"] == "test_started"] == ["test_c.py::test_1"]
    assert worker.wait() == 0, worker.stderr
    assert imports.read_text().split() == ["test_b", "test_c"]
