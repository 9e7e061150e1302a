#!/usr/bin/env bash
# Makes sure everything the test suites need is on this machine. Idempotent: a present
# dependency is only reported. Each dependency is one `step_<name>` function listed in STEPS;
# to add one (Kubernetes control plane binaries, podman, helm, ...), write its function and
# append its name. Every step runs; the script fails at the end naming the steps that failed.
set -euo pipefail

log() { printf 'install-test-deps: %s\n' "$*" >&2; }

# apt_install PACKAGE...: installs Debian packages when running as root; runs `apt-get update`
# and tries once more when the first attempt fails (a fresh machine has no package lists).
apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    log "not root: cannot apt-get install $*"
    return 1
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    log "no apt-get: cannot install $*"
    return 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1; then
    return 0
  fi
  log "apt-get install $* failed; running apt-get update and retrying"
  apt-get update -qq || log "apt-get update failed"
  apt-get install -y --no-install-recommends "$@"
}

step_cargo() {
  if command -v cargo >/dev/null 2>&1; then
    log "cargo: $(cargo --version)"
    return 0
  fi
  log "cargo is missing: install a Rust toolchain (rustup, with rustfmt and clippy)"
  return 1
}

step_nats_server() {
  if [ -n "${NATS_SERVER_BIN:-}" ]; then
    if [ -x "$NATS_SERVER_BIN" ]; then
      log "nats-server: $("$NATS_SERVER_BIN" --version) (NATS_SERVER_BIN)"
      return 0
    fi
    log "NATS_SERVER_BIN=$NATS_SERVER_BIN is not an executable"
    return 1
  fi
  if ! command -v nats-server >/dev/null 2>&1; then
    log "nats-server is missing; installing the Debian package"
    apt_install nats-server || true
  fi
  if command -v nats-server >/dev/null 2>&1; then
    log "nats-server: $(nats-server --version)"
    return 0
  fi
  if [ -x /usr/sbin/nats-server ]; then
    log "nats-server is in /usr/sbin, which is not on PATH: add it or set NATS_SERVER_BIN"
  fi
  return 1
}

# The cluster tests also run the current nats-server release, built from its Go module into
# <repo>/.cache (ignored by git), where the e2e harness looks for it (NATS_SERVER_CURRENT_BIN
# overrides both).
NATS_SERVER_CURRENT_VERSION=v2.12.15
step_nats_server_current() {
  local repo directory binary
  repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  directory="$repo/.cache/nats-server-2.12"
  binary="$directory/nats-server"
  if [ -n "${NATS_SERVER_CURRENT_BIN:-}" ]; then
    binary="$NATS_SERVER_CURRENT_BIN"
    if [ -x "$binary" ]; then
      log "nats-server (current): $("$binary" --version) (NATS_SERVER_CURRENT_BIN)"
      return 0
    fi
    log "NATS_SERVER_CURRENT_BIN=$binary is not an executable"
    return 1
  fi
  if [ -x "$binary" ] && "$binary" --version 2>/dev/null | grep -qF "${NATS_SERVER_CURRENT_VERSION#v}"; then
    log "nats-server (current): $("$binary" --version)"
    return 0
  fi
  if ! command -v go >/dev/null 2>&1; then
    log "go is missing: cannot build nats-server $NATS_SERVER_CURRENT_VERSION into $directory" \
      "(install Go 1.25+, or set NATS_SERVER_CURRENT_BIN)"
    return 1
  fi
  log "building nats-server $NATS_SERVER_CURRENT_VERSION into $directory (go install)"
  mkdir -p "$directory"
  if GOBIN="$directory" go install "github.com/nats-io/nats-server/v2@$NATS_SERVER_CURRENT_VERSION" >&2 \
    && [ -x "$binary" ]; then
    log "nats-server (current): $("$binary" --version)"
    return 0
  fi
  log "cannot build nats-server $NATS_SERVER_CURRENT_VERSION (go install failed)"
  return 1
}

# The cluster partition test closes route sockets from outside with `ss -K` (iproute2).
step_iproute2() {
  if command -v ss >/dev/null 2>&1; then
    log "ss: present"
    return 0
  fi
  log "ss is missing; installing the Debian package iproute2"
  apt_install iproute2 || true
  command -v ss >/dev/null 2>&1
}

# The fuzz smoke run needs a nightly toolchain (sanitizers) and cargo-fuzz from crates.io.
step_cargo_fuzz() {
  if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    log "installing the nightly Rust toolchain for fuzzing"
    rustup toolchain install nightly --profile minimal >/dev/null 2>&1 || {
      log "cannot install the nightly toolchain: the fuzz smoke run needs it"
      return 1
    }
  fi
  if command -v cargo-fuzz >/dev/null 2>&1; then
    log "cargo-fuzz: $(cargo fuzz --version 2>/dev/null || echo present)"
    return 0
  fi
  log "installing cargo-fuzz from crates.io"
  if cargo install cargo-fuzz --locked >/dev/null 2>&1; then
    return 0
  fi
  log "cannot install cargo-fuzz (cargo install cargo-fuzz --locked failed)"
  return 1
}

# The Python suite (e2e/python) needs nats-py, websockets (a WebSocket client with its own
# permessage-deflate) and pytest from PyPI.
step_nats_py() {
  if python3 -c 'import importlib.metadata as m, pytest, yaml; assert m.version("nats-py") == "2.16.0"; assert m.version("websockets") == "15.0.1"' >/dev/null 2>&1; then
    log "nats-py: 2.16.0, websockets: 15.0.1"
    return 0
  fi
  log "installing nats-py 2.16.0, websockets 15.0.1, pytest and PyYAML (chart check) from PyPI"
  if python3 -m pip install --quiet --disable-pip-version-check 'nats-py==2.16.0' 'websockets==15.0.1' pytest pyyaml >/dev/null 2>&1; then
    return 0
  fi
  log "cannot install the Python test clients (python3 -m pip install nats-py==2.16.0 websockets==15.0.1 pytest pyyaml failed)"
  return 1
}

# The image check (e2e/setup/images.sh) builds the broker and operator images with podman and
# runs them. This machine's podman works with runc, cgroupfs, the file events logger, no default
# ulimits and vfs storage; those settings go into <repo>/.cache/podman, which images.sh points
# CONTAINERS_CONF and CONTAINERS_STORAGE_CONF at (nothing under /etc changes). The storage lives
# in <repo>/.cache/containers, away from any other podman storage on the machine.
step_podman() {
  local repo directory
  repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  directory="$repo/.cache/podman"
  if ! command -v podman >/dev/null 2>&1 || ! command -v runc >/dev/null 2>&1; then
    log "podman or runc is missing; installing the Debian packages podman and runc"
    apt_install podman runc || true
  fi
  if ! command -v podman >/dev/null 2>&1 || ! command -v runc >/dev/null 2>&1; then
    log "cannot install podman and runc: the image check needs them"
    return 1
  fi
  mkdir -p "$directory" "$repo/.cache/containers"
  cat >"$directory/containers.conf" <<CONF
# Written by e2e/setup/install-test-deps.sh for e2e/setup/images.sh (CONTAINERS_CONF).
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
  cat >"$directory/storage.conf" <<CONF
# Written by e2e/setup/install-test-deps.sh for e2e/setup/images.sh (CONTAINERS_STORAGE_CONF).
[storage]
driver = "vfs"
graphroot = "$repo/.cache/containers/storage"
runroot = "$repo/.cache/containers/run"
CONF
  log "podman: $(podman --version | sed 's/^podman version //') with runc $(runc --version | sed -n 's/^runc version //p')" \
    "(config in $directory)"
}

# `make chart` lints and renders charts/tern-operator with helm, built from its Go module into
# <repo>/.cache/helm (HELM=... overrides it for make).
HELM_VERSION=v3.21.4
step_helm() {
  local repo directory binary
  repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  directory="$repo/.cache/helm"
  binary="$directory/helm"
  if ! command -v go >/dev/null 2>&1; then
    if [ -x "$binary" ]; then
      log "helm: $("$binary" version --short) (go is missing: cannot check it is $HELM_VERSION)"
      return 0
    fi
    log "go is missing: cannot build helm $HELM_VERSION into $directory (install Go 1.25+)"
    return 1
  fi
  # A `go install`ed helm reports only its minor version; its module version is exact.
  if [ -x "$binary" ] && go version -m "$binary" 2>/dev/null \
    | awk '$1 == "mod" && $2 == "helm.sh/helm/v3" { print $3 }' | grep -qxF "$HELM_VERSION"; then
    log "helm: $HELM_VERSION ($binary)"
    return 0
  fi
  log "building helm $HELM_VERSION into $directory (go install)"
  mkdir -p "$directory"
  if GOBIN="$directory" go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2 && [ -x "$binary" ]; then
    log "helm: $HELM_VERSION ($binary)"
    return 0
  fi
  log "cannot build helm $HELM_VERSION (go install failed)"
  return 1
}

# The Kubernetes control plane for the operator's end-to-end tier (e2e/tests/kubernetes.rs):
# kube-apiserver, kube-controller-manager, kubectl and etcd built from their Go modules into a
# cache outside the tree (kube-control-plane.sh says where and how long it took), plus
# util-linux's unshare and nsenter, with which the kubelet stand-in runs pods.
step_kubernetes() {
  local here
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  if ! command -v unshare >/dev/null 2>&1 || ! command -v nsenter >/dev/null 2>&1; then
    apt_install util-linux || { log "cannot install util-linux (unshare, nsenter)"; return 1; }
  fi
  bash "$here/kube-control-plane.sh" >/dev/null
}

STEPS=(cargo nats_server nats_server_current cargo_fuzz nats_py iproute2 podman helm kubernetes)

failed=()
for step in "${STEPS[@]}"; do
  if ! "step_${step}"; then
    failed+=("${step}")
  fi
done

if [ "${#failed[@]}" -ne 0 ]; then
  log "could not install: ${failed[*]}"
  exit 1
fi
log "all test dependencies are present"
