"""herd's pytest worker plugin (protocol v1, JSON over ZeroMQ).

Loaded in every worker with ``-p herd_pytest.plugin``. Without ``HERD_ENDPOINT`` in the
environment it is inert: it registers the ``herd_group(name)`` marker and provides the
``herd_appliance`` fixture, nothing else. Under herd it:

* says ``hello`` to the coordinator and waits for ``welcome`` (``HERD_CONNECT_TIMEOUT`` seconds),
* sends the ``collection`` (test ids in order, failed collectors, ``herd_group`` marks); when
  ``welcome`` gives a ``collect`` scope (a shard, or lazy) it walks every test file but imports
  only its shard's, and sends the walk's file list with it; a file whose tests are dealt to it
  later is collected then and reported with ``file_collection`` before any of them runs,
* takes over ``pytest_runtestloop``: asks for groups of tests with ``need_tests`` and runs each
  group in order through pytest's own ``pytest_runtest_protocol``; before the last test it holds
  it asks for the next group and waits, so the real ``nextitem`` is known and fixtures scoped to a
  module or class are torn down exactly when pytest would tear them down,
* answers ``release`` (work stealing) with ``released``: the requested tests it has not started
  are dropped from its queue, even while a test runs (a background thread, which also sends the
  heartbeats, reads the socket); when the next test is not the one the previous test was torn
  down for, the fixtures it does not share are torn down first,
* applies one rule wherever it waits for a reply (``welcome``, ``tests``, ``file_accepted``) and
  between tests: ``stop`` ends the wait and starts nothing more, ``error`` ends the worker with
  the coordinator's message, anything unexpected is ignored,
* streams ``test_started`` and one ``report`` per phase (and per subtest); with
  ``HERD_STATUS_FILE`` set it also writes the id of each test into that file as the test starts,
* answers SIGTERM by killing its own process group (test subprocesses included),
* ends with ``shutdown`` (preceded by ``session_exit`` after ``pytest.exit()`` or Ctrl-C).

The modules::

    plugin       the pytest hooks (thin), registering the worker
      |-- settings     HERD_* environment, read once
      |-- handshake    hello / welcome
      |-- collection   the collection message, sharded and lazy collection
      |-- loop         the test loop: need_tests, nextitem, teardown before a stolen test
      |-- reports      pytest reports -> report messages, rerun rounds
      |-- chaos        herd's --chaos faults
      |-- process      status file, SIGTERM, fast exit
      `-- channel      the socket, the io thread, queue/flush, the one reply rule, the steal
            `-- wire   encoding: UTF-8 JSON, safe text, reports cut to fit a frame

This package's ``__init__`` imports nothing (herd's preflight imports it to read the versions);
the modules need pytest, and pyzmq once a worker connects. The herd binary embeds every module
(``src/pytest.rs``) and puts the package on ``PYTHONPATH`` of its workers; the ``herd`` wheel
installs it into site-packages.
"""

__version__ = "0.1.0"

#: The protocol version this plugin speaks.
PROTOCOL_VERSION = 1
