"""Runs plain pytest, pytest-xdist and herd on generated suites and prints wall times.

Suites:
- trivial: 10,000 `pass` tests in 100 modules;
- skewed: 200 tests of 10 ms and 6 tests of 1.5-3 s; herd's makespan is compared with the lower
  bound max(total / workers, longest).
"""
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTEST = str(ROOT / ".venv/bin/pytest")
HERD = str(ROOT / "target/release/herd")
WORKERS = 2


def timed(cmd, cwd):
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - start
    last = [l for l in proc.stdout.splitlines() if l.strip()][-1:] or [""]
    return wall, proc.returncode, last[0].strip(" =")


def trivial(d: Path, tests=10_000, modules=100):
    per = tests // modules
    for m in range(modules):
        body = "".join(f"def test_{i}():\n    pass\n\n" for i in range(per))
        (d / f"test_m{m:03}.py").write_text(body)


def skewed(d: Path):
    body = "import time\n\n"
    body += "".join(f"def test_quick_{i}():\n    time.sleep(0.01)\n\n" for i in range(200))
    (d / "test_quick.py").write_text(body)
    for i, secs in enumerate([3.0, 2.5, 2.0, 2.0, 1.5, 1.5]):
        (d / f"test_slow_{i}.py").write_text(f"import time\n\ndef test_slow():\n    time.sleep({secs})\n")
    total = 200 * 0.01 + 12.5
    return max(total / WORKERS, 3.0)


def compare(name, d, bound=None):
    common = ["-p", "no:cacheprovider", "-q"]
    runs = {
        "pytest (serial)": [PYTEST, *common],
        f"pytest-xdist -n {WORKERS}": [PYTEST, *common, "-n", str(WORKERS)],
        f"herd -n {WORKERS}": [HERD, "run", "-q", "-n", str(WORKERS), "--log-dir", str(d / ".logs"), "--", PYTEST, *common],
    }
    print(f"\n{name}")
    walls = {}
    for label, cmd in runs.items():
        wall, code, last = timed(cmd, d)
        walls[label] = wall
        print(f"  {label:22} {wall:7.2f} s  exit {code}  {last}")
    herd = walls[f"herd -n {WORKERS}"]
    xdist = walls[f"pytest-xdist -n {WORKERS}"]
    serial = walls["pytest (serial)"]
    print(f"  herd / xdist = {herd / xdist:.2f}   herd / serial = {herd / serial:.2f}")
    if bound:
        print(f"  lower bound max(total/{WORKERS}, longest) = {bound:.2f} s; herd / bound = {herd / bound:.2f}")


def main():
    print(f"{os.cpu_count()} CPUs; pytest {subprocess.run([PYTEST, '--version'], capture_output=True, text=True).stdout.strip()}")
    with tempfile.TemporaryDirectory() as t:
        d = Path(t)
        trivial(d, int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
        compare("10,000 trivial tests", d)
    with tempfile.TemporaryDirectory() as t:
        d = Path(t)
        compare("skewed durations", d, skewed(d))


if __name__ == "__main__":
    main()
