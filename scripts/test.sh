#!/usr/bin/env bash
# Runs the whole test suite. Installs what the tests need first (idempotent),
# so a fresh machine needs nothing but this repository and a Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v kubectl >/dev/null || need_apt+=(kubectl)
command -v tmux >/dev/null || need_apt+=(tmux)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
command -v kubectl >/dev/null || { echo "kubectl is required by the end-to-end tests and could not be installed" >&2; exit 1; }
command -v tmux >/dev/null || { echo "tmux is required by the rkctl live view tests and could not be installed" >&2; exit 1; }
# The Python `kubernetes` client drives one end-to-end scenario.
if ! python3 -c "import kubernetes" >/dev/null 2>&1; then
  echo "installing: the Python kubernetes client"
  python3 -m pip install --quiet --disable-pip-version-check "kubernetes>=31"
fi
python3 -c "import kubernetes" || { echo "the Python kubernetes client could not be installed" >&2; exit 1; }
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi

# The end-to-end tests start the real server binary and drive the real kubectl.
cargo build --bins
cargo nextest run --workspace --no-fail-fast "$@"
