#!/usr/bin/env bash
# Runs the whole test suite. Installs what the tests need first (idempotent),
# so a fresh machine needs nothing but this repository and a Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v kubectl >/dev/null || need_apt+=(kubectl)
# The node agent's tests run real containers: containerd, runc and the CNI
# plugins; a registry and the tools that build its images from busybox;
# protoc builds the CRI bindings; CronJob time zones come from tzdata.
for pair in containerd:containerd runc:runc /usr/lib/cni/bridge:containernetworking-plugins \
  docker-registry:docker-registry umoci:umoci skopeo:skopeo /bin/busybox:busybox-static \
  nft:nftables iptables:iptables protoc:protobuf-compiler curl:curl ip:iproute2 unshare:util-linux script:bsdutils \
  /usr/share/zoneinfo/Asia/Kolkata:tzdata; do
  bin=${pair%%:*} pkg=${pair#*:}
  if [ "${bin#/}" != "$bin" ]; then [ -e "$bin" ] || need_apt+=("$pkg"); else command -v "$bin" >/dev/null || need_apt+=("$pkg"); fi
done
command -v tmux >/dev/null || need_apt+=(tmux)
# rkctl's completion tests press Tab in a real zsh and fish.
command -v zsh >/dev/null || need_apt+=(zsh)
command -v fish >/dev/null || need_apt+=(fish)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
command -v kubectl >/dev/null || { echo "kubectl is required by the end-to-end tests and could not be installed" >&2; exit 1; }
command -v tmux >/dev/null || { echo "tmux is required by the rkctl live view tests and could not be installed" >&2; exit 1; }
for sh in zsh fish; do command -v $sh >/dev/null || { echo "$sh is required by the rkctl completion tests and could not be installed" >&2; exit 1; }; done
# Debian's docker-registry service listens on every address; the tests run
# their own registries on 127.0.0.1 inside their own network namespaces.
if command -v systemctl >/dev/null && systemctl is-enabled docker-registry >/dev/null 2>&1; then
  systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi
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
