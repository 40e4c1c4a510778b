"""Runs plain pytest, pytest-xdist and herd on generated suites; prints wall times, ratios and,
per target of the issue, "target met" or "target MISSED". Figures, not assertions: the exit code
is 0 whatever the figures (it is 1 only when the benchmark itself cannot run).

Suites (`bench_pytest.py [SUITE ...]`, default all, in this order):
- trivial: 10,000 `pass` tests in 100 modules. Targets: herd <= 0.6 x xdist, herd < serial.
  herd runs again with `--collect-all` to measure collection paid once.
- skewed: 200 tests of 10 ms in one module and 6 tests of 1.5-3 s. herd runs twice with one
  duration history (`--history`); the second run's makespan (first `test_started` to last
  `test_finished` in `--events`) is compared with the lower bound max(total / workers, longest),
  total and longest as the tests really took in that run (each sleep plus pytest's own cost per
  test); the bound from the sleeps alone is printed too. Target: <= 1.02. xdist's `--dist load` and `--dist worksteal` are shown for contrast (their
  makespan from per-test timestamps written by the suite's conftest).
- provider: 6 providers x 60 tests of 10-30 ms in 3 modules; a session-scoped fixture
  parametrized over the providers "connects" (0.5 s, one line in a log) per provider per
  process. Targets: herd (`--providers`) connects each provider once; herd <= 0.8 x xdist.
- param: 60,000 tiny parametrized tests in 6 modules. Target: herd < serial; xdist shown.
- tiny: 60,000 `pass` tests in 300 modules: the CPU of every process of each run (getrusage of
  the waited-for children: herd, its workers and its controller) against plain pytest's serial
  CPU, and herd's own CPU per test. Targets: herd CPU <= 1.15 x serial CPU, herd wall <= 0.6 x
  serial wall.
- respawn: a conftest that sleeps 3 s at import (start-up cost), 400 tests of 50 ms and 8
  tests that kill their worker the first time they run (os._exit or SIGKILL; a marker file
  remembers), `--crash-retries 1`: herd with its fork server, herd `--no-fork` and xdist side
  by side. Each respawn's latency is the time from a worker's death to the first test of its
  next incarnation (herd's `--events`). Targets: median respawn latency <= 50 ms, wall <= 1.15
  x the lower bound (start-up once + test time / workers), wall <= 0.5 x xdist.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTEST = str(ROOT / ".venv/bin/pytest")
HERD = str(ROOT / "target/release/herd")
WORKERS = 2
COMMON = ["-p", "no:cacheprovider", "-q"]
SUITES = ["trivial", "skewed", "provider", "param", "tiny", "respawn"]

#: Every target line printed, for the summary at the end.
VERDICTS = []


# ---------------------------------------------------------------------------------------------
# Running things


class Run:
    """One timed command: wall time, exit code, pytest's last line, and herd's events if any."""

    def __init__(self, label, cmd, cwd, events=None, env=None):
        full_env = dict(os.environ, **(env or {}))
        before = children_cpu()
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, env=full_env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
        self.wall = time.perf_counter() - start
        # Every process of the run that was waited for (herd waits for its workers and its
        # controller): user + system CPU seconds.
        self.cpu = children_cpu() - before
        self.label = label
        self.code = proc.returncode
        lines = [l for l in proc.stdout.splitlines() if l.strip()]
        self.last = lines[-1].strip(" =") if lines else ""
        self.events = read_events(events) if events else []

    def show(self, extra=""):
        print(f"  {self.label:36} {self.wall:7.2f} s  exit {self.code}  {self.last}{extra}")


def pytest_cmd(*extra):
    return [PYTEST, *COMMON, *extra]


def xdist_cmd(*extra):
    return [PYTEST, *COMMON, "-n", str(WORKERS), *extra]


def herd_cmd(d, *herd_opts):
    return [HERD, "run", "-q", "-n", str(WORKERS), "--log-dir", str(d / ".logs"), *herd_opts,
            "--", PYTEST, *COMMON]


def read_events(path):
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def herd_makespan(events):
    """Last `test_finished` minus first `test_started`, in seconds (None without tests)."""
    started = [e["t"] for e in events if e["event"] == "test_started"]
    finished = [e["t"] for e in events if e["event"] == "test_finished"]
    if not started or not finished:
        return None
    return max(finished) - min(started)


def target(text, value, limit, strict=False):
    """Prints `text = value (target <= limit: ...)` and records the verdict."""
    met = value is not None and (value < limit if strict else value <= limit)
    shown = "n/a" if value is None else f"{value:.2f}"
    sign = "<" if strict else "<="
    verdict = "target met" if met else "target MISSED"
    line = f"{text} = {shown}  (target {sign} {limit:.2f}: {verdict})"
    print(f"  {line}")
    VERDICTS.append((line, met))


def target_text(text, met, detail):
    line = f"{text}: {detail}  ({'target met' if met else 'target MISSED'})"
    print(f"  {line}")
    VERDICTS.append((line, met))


# ---------------------------------------------------------------------------------------------
# Suites


def write_trivial(d: Path, tests=10_000, modules=100):
    per = tests // modules
    for m in range(modules):
        body = "".join(f"def test_{i}():\n    pass\n\n" for i in range(per))
        (d / f"test_m{m:03}.py").write_text(body)


def bench_trivial(d: Path):
    write_trivial(d)
    print(f"\ntrivial: 10,000 tests of `pass` in 100 modules, {WORKERS} workers")
    serial = Run("pytest (serial)", pytest_cmd(), d)
    serial.show(f"  CPU {serial.cpu:.2f} s")
    xdist = Run(f"pytest-xdist -n {WORKERS}", xdist_cmd(), d)
    xdist.show(f"  CPU {xdist.cpu:.2f} s")
    events = d / ".events-shared.jsonl"
    cpu_file = d / ".controller-cpu.json"
    herd = Run(f"herd -n {WORKERS}", herd_cmd(d, "--events", str(events)), d, events=events,
               env={"HERD_PYTEST_CONTROLLER_CPU": str(cpu_file)})
    herd.show(f"  CPU {herd.cpu:.2f} s")
    if cpu_file.exists():
        cpu = json.loads(cpu_file.read_text())
        per_test = cpu["cpu_seconds"] / max(1, cpu["tests"]) * 1e6
        print(f"  pytest controller: {cpu['cpu_seconds']:.2f} s CPU for {cpu['tests']} tests "
              f"({per_test:.0f} us per test, its start included)")
    bare = Run(f"herd -n {WORKERS} --no-controller", herd_cmd(d, "--no-controller"), d)
    bare.show(f"  CPU {bare.cpu:.2f} s")
    events_all = d / ".events-all.jsonl"
    whole = Run(f"herd -n {WORKERS} --collect-all", herd_cmd(d, "--collect-all", "--events",
                str(events_all)), d, events=events_all)
    whole.show(f"  CPU {whole.cpu:.2f} s")
    target("trivial: herd / xdist ", herd.wall / xdist.wall, 0.6)
    target("trivial: herd / serial", herd.wall / serial.wall, 1.0, strict=True)
    # Collection paid once: the reference is known when the `collected` event is written.
    shared, every = collected_at(herd.events), collected_at(whole.events)
    if shared and every:
        print(f"  collection: reference known after {shared:.2f} s with shared collection, "
              f"{every:.2f} s when every worker collects everything "
              f"(wall {herd.wall:.2f} s vs {whole.wall:.2f} s)")


def collected_at(events):
    """Seconds from the session's start to the reference collection (None if absent)."""
    return next((e["t"] for e in events if e["event"] == "collected"), None)


#: Per-test timestamps for runners without an event stream (xdist): each process appends
#: "start end" per test to $BENCH_STAMPS. The controller of xdist runs no test protocol.
STAMPS_CONFTEST = '''\
import os
import time

import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    start = time.time()
    try:
        return (yield)
    finally:
        path = os.environ.get("BENCH_STAMPS")
        if path:
            with open(path, "a") as f:
                f.write(f"{start} {time.time()}\\n")
'''

SLOW = [3.0, 2.5, 2.0, 2.0, 1.5, 1.5]
QUICK = (200, 0.01)


def write_skewed(d: Path):
    body = "import time\n\n"
    body += "".join(f"def test_quick_{i}():\n    time.sleep({QUICK[1]})\n\n" for i in range(QUICK[0]))
    (d / "test_quick.py").write_text(body)
    for i, secs in enumerate(SLOW):
        (d / f"test_slow_{i}.py").write_text(f"import time\n\ndef test_slow():\n    time.sleep({secs})\n")
    (d / "conftest.py").write_text(STAMPS_CONFTEST)


def stamps_makespan(path: Path):
    if not path.exists():
        return None
    spans = [tuple(map(float, l.split())) for l in path.read_text().splitlines() if l.strip()]
    if not spans:
        return None
    return max(e for _, e in spans) - min(s for s, _ in spans)


def bench_skewed(d: Path):
    write_skewed(d)
    total = QUICK[0] * QUICK[1] + sum(SLOW)
    bound = max(total / WORKERS, max(SLOW))
    print(f"\nskewed: {QUICK[0]} tests of {QUICK[1] * 1000:.0f} ms in one module, {len(SLOW)} of "
          f"{min(SLOW)}-{max(SLOW)} s, {WORKERS} workers")
    print(f"  lower bound max(total/{WORKERS}, longest) = max({total:.2f}/{WORKERS}, {max(SLOW):.2f})"
          f" = {bound:.2f} s")
    serial = Run("pytest (serial)", pytest_cmd(), d)
    serial.show()
    xdist = {}
    for mode in ["load", "worksteal"]:
        stamps = d / f".stamps-{mode}"
        r = Run(f"pytest-xdist -n {WORKERS} --dist {mode}", xdist_cmd("--dist", mode), d,
                env={"BENCH_STAMPS": str(stamps)})
        span = stamps_makespan(stamps)
        xdist[mode] = (r, span)
        r.show(f"  makespan {span:.2f} s" if span is not None else "  makespan n/a")
    history = d / ".herd-history.json"
    herd = []
    for i in (1, 2):
        events = d / f".events-{i}.jsonl"
        note = "no history yet" if i == 1 else "history of run 1"
        r = Run(f"herd -n {WORKERS} run {i} ({note})",
                herd_cmd(d, "--history", str(history), "--events", str(events)), d, events=events)
        span = herd_makespan(r.events)
        herd.append((r, span))
        r.show(f"  makespan {span:.2f} s" if span is not None else "  makespan n/a")
    best_mode, (best, best_span) = min(
        xdist.items(), key=lambda kv: kv[1][1] if kv[1][1] is not None else kv[1][0].wall)
    second, span = herd[1]
    # The lower bound from the durations the tests really took in run 2 (each sleep plus
    # pytest's own cost per test, which no scheduler avoids); the nominal bound counts sleeps only.
    durations = [e.get("duration") or 0.0 for e in second.events if e["event"] == "test_finished"]
    measured = max(sum(durations) / WORKERS, max(durations)) if durations else None
    if measured:
        print(f"  lower bound from run 2's measured durations: max({sum(durations):.2f}/{WORKERS}, "
              f"{max(durations):.2f}) = {measured:.2f} s")
    target("skewed: herd run 2 makespan / bound", span / measured if span and measured else None,
           1.02)
    if span:
        print(f"  (makespan / nominal bound of {bound:.2f} s = {span / bound:.2f})")
    print(f"  herd run 2 wall / bound = {second.wall / bound:.2f}")
    if herd[0][1]:
        print(f"  herd run 1 makespan / bound = {herd[0][1] / bound:.2f}, "
              f"wall / bound = {herd[0][0].wall / bound:.2f}")
    if best_span is not None:
        print(f"  xdist best (--dist {best_mode}): makespan / bound = {best_span / bound:.2f}, "
              f"wall / bound = {best.wall / bound:.2f}")
    print(f"  herd run 2 / xdist --dist {best_mode}: makespan "
          + (f"{span / best_span:.2f}" if span and best_span else "n/a")
          + f", wall {second.wall / best.wall:.2f}")


PROVIDERS = ["rhv", "vsphere", "ec2", "azure", "gce", "openstack"]
CONNECT_S = 0.5

PROVIDER_CONFTEST = f'''\
import os
import time
from pathlib import Path

import pytest

PROVIDERS = {PROVIDERS!r}
LOG = Path(__file__).parent / "connections.log"


@pytest.fixture(scope="session", params=PROVIDERS)
def provider(request):
    """An expensive connection to one provider, held by this process while its tests run."""
    time.sleep({CONNECT_S})
    with open(LOG, "a") as f:
        f.write(f"{{request.param}} {{os.getpid()}}\\n")
    yield request.param
'''


def write_provider(d: Path):
    """3 modules x 2 functions x 10 cases, each parametrized over the 6 providers: 60 tests per
    provider, 360 in all, each 10-30 ms (fixed per id)."""
    (d / "conftest.py").write_text(PROVIDER_CONFTEST)
    total = 0.0
    for m, module in enumerate(["vms", "networks", "storage"]):
        body = "import time\n\nimport pytest\n\n"
        for f, func in enumerate(["create", "delete"]):
            body += (f"@pytest.mark.parametrize('case', range(10))\n"
                     f"def test_{func}(provider, case):\n"
                     f"    time.sleep(0.010 + ((case * 7 + {m * 3 + f} * 5 + len(provider)) % 21) / 1000)\n\n")
        (d / f"test_{module}.py").write_text(body)
    for p in PROVIDERS:
        for m in range(3):
            for f in range(2):
                for case in range(10):
                    total += 0.010 + ((case * 7 + (m * 3 + f) * 5 + len(p)) % 21) / 1000
    return total


def connections(d: Path):
    log = d / "connections.log"
    lines = log.read_text().split() if log.exists() else []
    counts = Counter(lines[0::2])
    processes = len(set(lines[1::2]))
    log.unlink(missing_ok=True)
    return counts, processes


def show_connections(label, counts, processes):
    per = ", ".join(f"{p} {counts.get(p, 0)}" for p in PROVIDERS)
    print(f"    {label:34} {sum(counts.values()):3} connections in {processes} processes: {per}")


def bench_provider(d: Path):
    test_time = write_provider(d)
    print(f"\nprovider: {len(PROVIDERS)} providers x 60 tests of 10-30 ms in 3 modules "
          f"(tests {test_time:.1f} s in all), connecting costs {CONNECT_S} s per provider per "
          f"process, {WORKERS} workers")
    connections(d)
    results = {}
    runs = [
        ("serial", "pytest (serial)", pytest_cmd()),
        ("xdist", f"pytest-xdist -n {WORKERS}", xdist_cmd()),
        ("herd", f"herd -n {WORKERS} --providers", herd_cmd(d, "--providers", ",".join(PROVIDERS))),
    ]
    for key, label, cmd in runs:
        r = Run(label, cmd, d)
        r.show()
        results[key] = (r, *connections(d))
    print("  connections per provider:")
    for key, label, _ in runs:
        show_connections(label, results[key][1], results[key][2])
    herd, herd_counts, _ = results["herd"]
    xdist, xdist_counts, _ = results["xdist"]
    once = all(herd_counts.get(p, 0) == 1 for p in PROVIDERS) and len(herd_counts) == len(PROVIDERS)
    target_text("provider: herd connects each provider once", once,
                f"{sum(herd_counts.values())} connections for {len(PROVIDERS)} providers "
                f"(xdist {sum(xdist_counts.values())})")
    target("provider: herd / xdist ", herd.wall / xdist.wall, 0.8)
    print(f"  herd / serial = {herd.wall / results['serial'][0].wall:.2f}")


PARAM_MODULES = 6


def write_param(d: Path):
    """6 modules of 10,000 tests: one function over range(5000) and one over 50 x 100 pairs."""
    for m in range(PARAM_MODULES):
        (d / f"test_p{m}.py").write_text(
            "import pytest\n\n"
            "@pytest.mark.parametrize('n', range(5000))\n"
            "def test_square(n):\n"
            "    assert n * n >= 0\n\n"
            "@pytest.mark.parametrize('a', range(50))\n"
            "@pytest.mark.parametrize('b', range(100))\n"
            "def test_pair(a, b):\n"
            "    assert a + b == b + a\n"
        )
    return PARAM_MODULES * 10_000


def bench_param(d: Path):
    n = write_param(d)
    print(f"\nparam: {n:,} tiny parametrized tests in {PARAM_MODULES} modules, {WORKERS} workers")
    serial = Run("pytest (serial)", pytest_cmd(), d)
    serial.show()
    xdist = Run(f"pytest-xdist -n {WORKERS}", xdist_cmd(), d)
    xdist.show()
    herd = Run(f"herd -n {WORKERS}", herd_cmd(d), d)
    herd.show()
    target("param: herd / serial", herd.wall / serial.wall, 1.0, strict=True)
    print(f"  herd / xdist = {herd.wall / xdist.wall:.2f}")


def children_cpu():
    """User + system CPU seconds of every waited-for child process so far (getrusage)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bench_tiny(d: Path, tests=60_000, modules=300):
    write_trivial(d, tests, modules)
    print(f"\ntiny: {tests:,} tests of `pass` in {modules} modules, {WORKERS} workers "
          "(CPU: user + system of every process, from getrusage of the waited-for children)")
    serial = Run("pytest (serial)", pytest_cmd(), d)
    serial.show(f"  CPU {serial.cpu:.2f} s")
    herd = Run(f"herd -n {WORKERS}", herd_cmd(d), d)
    herd.show(f"  CPU {herd.cpu:.2f} s")
    bare = Run(f"herd -n {WORKERS} --no-controller", herd_cmd(d, "--no-controller"), d)
    bare.show(f"  CPU {bare.cpu:.2f} s")
    per_test = (herd.cpu - serial.cpu) / tests * 1e6
    print(f"  herd's own cost: {per_test:.0f} us of CPU per test over plain pytest "
          f"({(bare.cpu - serial.cpu) / tests * 1e6:.0f} us without the controller)")
    target("tiny: herd CPU / serial CPU", herd.cpu / serial.cpu, 1.15)
    target("tiny: herd wall / serial wall", herd.wall / serial.wall, 0.6)


RESPAWN_STARTUP = 3.0
RESPAWN_TESTS = (400, 0.05)
RESPAWN_KILLERS = 8

RESPAWN_CONFTEST = f"""\
import time

time.sleep({RESPAWN_STARTUP})  # the suite's start-up cost: imports, plugins, connections
"""

KILLER = """\
import os
import signal


def test_kill_{k}():
    marker = os.path.join(os.environ["BENCH_MARKS"], "{k}")
    if not os.path.exists(marker):
        open(marker, "w").close()
        {how}
"""


def write_respawn(d: Path):
    (d / "conftest.py").write_text(RESPAWN_CONFTEST)
    n, secs = RESPAWN_TESTS
    modules = 8
    for m in range(modules):
        body = "import time\n\n" + "".join(
            f"def test_work_{i}():\n    time.sleep({secs})\n\n" for i in range(n // modules))
        (d / f"test_work_{m}.py").write_text(body)
    for k in range(RESPAWN_KILLERS):
        how = "os._exit(1)" if k % 2 else "os.kill(os.getpid(), signal.SIGKILL)"
        (d / f"test_kill_{k}.py").write_text(KILLER.format(k=k, how=how))


def respawn_latencies(events):
    """For each worker death (not a clean exit): seconds to the first test of the worker's next
    incarnation."""
    latencies = []
    for i, e in enumerate(events):
        if e["event"] != "worker_exited" or e.get("clean"):
            continue
        later = events[i + 1:]
        respawned = next((j for j, x in enumerate(later) if x["event"] == "worker_spawned"
                          and x["worker"] == e["worker"]), None)
        if respawned is None:
            continue
        first = next((x for x in later[respawned:] if x["event"] == "test_started"
                      and x["worker"] == e["worker"]), None)
        if first is not None:
            latencies.append(first["t"] - e["t"])
    return latencies


def median(values):
    values = sorted(values)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def bench_respawn(d: Path):
    write_respawn(d)
    n, secs = RESPAWN_TESTS
    print(f"\nrespawn: a {RESPAWN_STARTUP:g} s start-up, {n} tests of {secs * 1000:.0f} ms and "
          f"{RESPAWN_KILLERS} tests that kill their worker once, --crash-retries 1, "
          f"{WORKERS} workers")
    marks = d / ".marks"

    def fresh_marks():
        if marks.exists():
            for f in marks.iterdir():
                f.unlink()
        marks.mkdir(exist_ok=True)
        return {"BENCH_MARKS": str(marks)}

    runs = {}
    for label, opts in (("herd (fork server)", []), ("herd --no-fork", ["--no-fork"])):
        events = d / f".events-{len(runs)}.jsonl"
        run = Run(label, herd_cmd(d, "--crash-retries", "1", "--events", str(events), *opts), d,
                  events=events, env=fresh_marks())
        lat = respawn_latencies(run.events)
        shown = ", ".join(f"{x * 1000:.0f}" for x in lat)
        run.show(f"\n  {'':36} respawns: {len(lat)}, latency ms: {shown or 'n/a'}")
        runs[label] = (run, lat)
    xdist = Run(f"pytest-xdist -n {WORKERS}", xdist_cmd(), d, env=fresh_marks())
    xdist.show()
    bound = RESPAWN_STARTUP + n * secs / WORKERS
    print(f"  lower bound (start-up once + test time / {WORKERS}) = {bound:.2f} s")
    fork, lat = runs["herd (fork server)"]
    plain_lat = runs["herd --no-fork"][1]
    if plain_lat:
        print(f"  --no-fork: median respawn latency {median(plain_lat) * 1000:.0f} ms")
    med = median(lat)
    target("respawn: median respawn latency (ms)", None if med is None else med * 1000, 50.0)
    target("respawn: herd wall / lower bound", fork.wall / bound, 1.15)
    target("respawn: herd / xdist", fork.wall / xdist.wall, 0.5)


def loadavg():
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


BENCHES = {"trivial": bench_trivial, "skewed": bench_skewed, "provider": bench_provider,
           "param": bench_param, "tiny": bench_tiny, "respawn": bench_respawn}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("suites", nargs="*", metavar="SUITE",
                        help=f"suites to run ({', '.join(SUITES)}; default all)")
    suites = parser.parse_args().suites or SUITES
    unknown = [s for s in suites if s not in SUITES]
    if unknown:
        parser.error(f"unknown suite {', '.join(unknown)} (known: {', '.join(SUITES)})")
    version = subprocess.run([PYTEST, "--version"], capture_output=True, text=True).stdout.strip()
    herd_version = subprocess.run([HERD, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"{os.cpu_count()} CPUs; {version}; {herd_version}; suites: {' '.join(suites)}")
    print(f"load average before: {loadavg()} (figures are noisy on a busy machine)")
    start = time.perf_counter()
    for name in SUITES:
        if name in suites:
            with tempfile.TemporaryDirectory(prefix=f"herd-bench-{name}-") as t:
                BENCHES[name](Path(t))
    print(f"\ntargets ({time.perf_counter() - start:.0f} s in all; load average after: {loadavg()}):")
    for line, met in VERDICTS:
        print(f"  {line}")
    met = sum(met for _, met in VERDICTS)
    print(f"  {met} of {len(VERDICTS)} targets met")


if __name__ == "__main__":
    main()
