#!/usr/bin/env bash
# Coordinator overhead benchmarks (print figures; assert nothing timed):
#   scripts/bench.sh [TESTS] [WORKERS] [--noop]   trivial exec tests (default 10,000 on 2 workers)
#   scripts/bench.sh scale [WORKERS] [TESTS]      no-op workers at scale (default 200 x 20,000;
#                                                 scripts/bench-scale: 200, 500 and 1,000)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bins --examples
if [ "${1:-}" = scale ]; then
    shift
    target/release/examples/bench_exec "${2:-20000}" "${1:-200}" --noop
else
    target/release/examples/bench_exec "${1:-10000}" "${2:-2}" "${@:3}"
fi
