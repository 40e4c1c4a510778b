#!/usr/bin/env bash
# Coordinator overhead benchmark: 10,000 trivial exec tests (prints figures; asserts nothing timed).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bins --examples
target/release/examples/bench_exec "${1:-10000}" "${2:-2}"
