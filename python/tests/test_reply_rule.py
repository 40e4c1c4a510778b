"""The one rule for what the coordinator says while the worker waits: ``stop`` ends the wait and
starts nothing more, ``error`` ends the worker with the message, ``release`` is answered, anything
else is ignored; the same wherever the worker waits (``welcome``, ``tests``, ``file_accepted``)."""

from __future__ import annotations

import sys

import pytest

from conftest import PYTHON_DIR, wait_for

sys.path.insert(0, str(PYTHON_DIR))

from herd_pytest.channel import Channel, ReplyTimeout  # noqa: E402

BODY = "def test_1():\n    pass\n\ndef test_2():\n    pass\n"


def wait_for_welcome(coordinator):
    """Leaves the worker waiting for ``welcome``."""
    identity, _ = coordinator.expect("hello")
    return identity


def wait_for_tests(coordinator):
    """Leaves the worker waiting for ``tests`` (its first ``need_tests`` is unanswered)."""
    identity, _ = coordinator.handshake()
    coordinator.expect("collection")
    coordinator.expect("need_tests")
    return identity


def wait_for_file_accepted(coordinator):
    """Leaves a worker of shard 0 of 2 waiting for ``file_accepted``: it collected the file of
    a dealt test outside its shard."""
    identity, hello = coordinator.expect("hello")
    coordinator.send(
        identity,
        {
            "type": "welcome",
            "worker": hello["worker"],
            "incarnation": hello["incarnation"],
            "collect": {"kind": "shard", "index": 0, "count": 2},
        },
    )
    assert coordinator.expect("collection")[1]["files"] == ["test_w.py", "test_x.py"]
    coordinator.expect("need_tests")
    coordinator.send(identity, {"type": "tests", "tests": ["test_x.py::test_1"]})
    assert coordinator.expect("file_collection")[1]["file"] == "test_x.py"
    return identity


WAITS = {
    "welcome": wait_for_welcome,
    "tests": wait_for_tests,
    "file_accepted": wait_for_file_accepted,
}


@pytest.mark.parametrize("waiting_for", list(WAITS))
def test_stop_ends_any_wait_and_starts_nothing(coordinator, spawn_worker, write_suite, waiting_for):
    worker = spawn_worker(write_suite({"test_w.py": BODY, "test_x.py": BODY}))
    identity = WAITS[waiting_for](coordinator)
    coordinator.send(identity, {"type": "unexpected", "what": "is ignored"})
    coordinator.send(identity, {"type": "stop"})
    messages = [coordinator.recv_message()]
    while messages[-1]["type"] != "shutdown":
        messages.append(coordinator.recv_message())
    assert not [m for m in messages if m["type"] in ("test_started", "report", "need_tests")]
    assert worker.wait() == 0, worker.stderr


@pytest.mark.parametrize("waiting_for", list(WAITS))
def test_error_ends_any_wait_with_the_message(coordinator, spawn_worker, write_suite, waiting_for):
    worker = spawn_worker(write_suite({"test_w.py": BODY, "test_x.py": BODY}))
    identity = WAITS[waiting_for](coordinator)
    coordinator.send(identity, {"type": "error", "message": f"no thanks ({waiting_for})"})
    assert worker.wait() != 0
    assert f"refused worker w1.1: no thanks ({waiting_for})" in worker.stderr
    with pytest.raises(AssertionError, match="nothing received"):
        coordinator.recv(timeout=0.3)  # not another word, not even shutdown


def test_release_while_waiting_for_file_accepted_is_answered(coordinator, spawn_worker, write_suite):
    worker = spawn_worker(write_suite({"test_a.py": BODY, "test_b.py": BODY}))
    identity, hello = coordinator.expect("hello")
    shard = {"kind": "shard", "index": 0, "count": 2}  # test_a.py is collected, test_b.py later
    coordinator.send(identity, {"type": "welcome", "worker": "w1", "incarnation": 1, "collect": shard})
    coordinator.expect("collection")
    coordinator.expect("need_tests")
    dealt = ["test_a.py::test_1", "test_a.py::test_2", "test_b.py::test_1"]
    coordinator.send(identity, {"type": "tests", "tests": dealt})
    assert coordinator.expect("file_collection")[1]["file"] == "test_b.py"
    # Held and not started: given back while the worker waits for test_b.py to be accepted.
    coordinator.send(identity, {"type": "release", "tests": ["test_a.py::test_2"]})
    assert coordinator.expect("released")[1]["tests"] == ["test_a.py::test_2"]
    coordinator.send(identity, {"type": "file_accepted", "file": "test_b.py"})
    messages = coordinator.serve(identity, [])
    started = [m["test"] for m in messages if m["type"] == "test_started"]
    assert started == ["test_a.py::test_1", "test_b.py::test_1"]
    assert worker.wait() == 0, worker.stderr


# ---- the rule in one Channel, in this process ---------------------------------------------------


@pytest.fixture
def channel(coordinator):
    """A Channel connected to the fake coordinator, holding ``t1`` and ``t2``; yields
    (channel, identity the coordinator answers to)."""
    held = ["t1", "t2"]

    def give_back(ids):
        given = [t for t in held if t in ids]
        held[:] = [t for t in held if t not in ids]
        return given

    chan = Channel(coordinator.endpoint, "w9.1", give_back)
    chan.connect("w9.1.nonce")
    chan.send({"type": "hello"})
    identity, _ = coordinator.expect("hello")
    yield chan, identity
    chan.close(linger=0)


def test_a_wait_answers_release_ignores_strays_and_returns_what_it_waits_for(channel, coordinator):
    chan, identity = channel
    coordinator.send(identity, {"type": "welcome"})  # a stray: not what is awaited
    coordinator.send(identity, {"type": "release", "tests": ["t2", "nope"]})
    coordinator.send(identity, {"type": "tests", "tests": ["t3"]})
    assert chan.receive_until({"tests"}, timeout_s=5) == {"type": "tests", "tests": ["t3"]}
    assert coordinator.expect("released")[1] == {"type": "released", "tests": ["t2"]}
    assert not chan.stop_requested


def test_a_wait_ignores_a_reply_it_does_not_match(channel, coordinator):
    chan, identity = channel
    coordinator.send(identity, {"type": "file_accepted", "file": "other.py"})
    coordinator.send(identity, {"type": "file_accepted", "file": "mine.py"})
    reply = chan.receive_until({"file_accepted"}, match=lambda m: m["file"] == "mine.py", timeout_s=5)
    assert reply["file"] == "mine.py"


def test_stop_ends_this_wait_and_every_later_one(channel, coordinator):
    chan, identity = channel
    coordinator.send(identity, {"type": "stop"})
    assert chan.receive_until({"tests"}, timeout_s=5) is None
    assert chan.stop_requested
    coordinator.send(identity, {"type": "tests", "tests": ["t3"]})
    assert chan.receive_until({"tests"}, timeout_s=5) is None  # at once: stopped is stopped


def test_poll_stop_applies_the_same_rule_without_waiting(channel, coordinator):
    chan, identity = channel
    assert chan.poll_stop() is False
    coordinator.send(identity, {"type": "release", "tests": ["t1"]})
    coordinator.send(identity, {"type": "stop"})
    assert wait_for(chan.poll_stop)
    assert coordinator.expect("released")[1]["tests"] == ["t1"]


def test_error_ends_a_wait_with_the_coordinators_message(channel, coordinator):
    chan, identity = channel
    coordinator.send(identity, {"type": "error", "message": "wrong token"})
    with pytest.raises(pytest.UsageError, match="refused worker w9.1: wrong token"):
        chan.receive_until({"tests"}, timeout_s=5)
    assert chan.finished and chan.socket is None


def test_a_wait_times_out(channel):
    chan, _ = channel
    with pytest.raises(ReplyTimeout):
        chan.receive_until({"welcome"}, timeout_s=0.2)

