#!/usr/bin/env bash
# Runs the test suite: installs what is needed, fetches the two default models
# into the cache (real-model tests use them), then every test of the
# workspace (report.html rendered in headless Chromium included). `--slow`
# also runs the slow real-model checks (#[ignore]d tests), the remote-policy
# tests among them against llama-server (scripts/llama-server.sh builds it).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-system.sh --tests
# The report test must not skip itself for want of a browser here.
export SAFFRON_REQUIRE_CHROMIUM=1
cargo build --locked -p saffron-cli
target/debug/saffron fetch

if [ "${1:-}" = "--slow" ]; then
  # The remote-policy tests run against a real llama-server (built once).
  SAFFRON_LLAMA_SERVER=$(bash scripts/llama-server.sh)
  export SAFFRON_LLAMA_SERVER
  cargo test --locked --workspace -- --include-ignored
else
  cargo test --locked --workspace
fi
