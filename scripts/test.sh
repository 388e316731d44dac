#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs the real servers the tests start
# (scripts/setup.sh), checks formatting and lints, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked --no-fail-fast
