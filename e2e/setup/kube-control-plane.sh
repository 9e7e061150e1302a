#!/usr/bin/env bash
# Builds the Kubernetes control-plane binaries the end-to-end tests run (kube-apiserver,
# kube-controller-manager, kubectl, etcd) from their Go modules, and caches them outside the
# source tree, so that a second run only checks them.
#
#   bin=$(e2e/setup/kube-control-plane.sh | tail -1)
#
# Logs go to stderr; the last line of stdout is the directory holding the four binaries.
#
# Environment:
#   TERN_KUBE_CACHE    cache root (default ${XDG_CACHE_HOME:-$HOME/.cache}/tern/kubernetes-<version>);
#                      binaries land in $TERN_KUBE_CACHE/bin, build logs in .../logs, and the
#                      generated wrapper Go modules in .../modules
#   TERN_KUBE_VERSION  k8s.io/kubernetes release (default below)
#   TERN_ETCD_VERSION  go.etcd.io/etcd/server/v3 release (default v3.6.8, the one k8s.io/kubernetes
#                      v1.36.5 pins in its build/dependencies.yaml); cached in the same bin directory
#
# k8s.io/kubernetes cannot be built with `go install pkg@version`: its go.mod requires its
# staging modules (k8s.io/api, k8s.io/client-go, ...) at v0.0.0 and replaces them with
# directories of its own repository, and replace directives only count in the main module. So the
# script generates a small wrapper module that requires k8s.io/kubernetes and replaces every
# staging module with its published v0.<minor>.<patch> release. etcd's server module has replace
# directives too, so it goes through a wrapper module of its own.
#
# Cost on 2 cores with empty Go module and build caches: about 5.5 minutes in all (etcd 40 s,
# module resolution 17 s, kubectl 88 s, kube-apiserver 127 s, kube-controller-manager 50 s: the
# later builds reuse packages the earlier ones compiled), about 1 GiB of Go module cache, 3 GiB
# of Go build cache and 250 MiB of binaries. A run with everything cached takes well under 1 s.
# If building etcd fails, the script falls back to Debian's etcd-server package and says so.
set -euo pipefail

KUBE_VERSION="${TERN_KUBE_VERSION:-v1.36.5}"
# The etcd release k8s.io/kubernetes v1.36.5 pins in its build/dependencies.yaml.
ETCD_VERSION="${TERN_ETCD_VERSION:-v3.6.8}"
CACHE="${TERN_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tern/kubernetes-${KUBE_VERSION}}"
BIN="$CACHE/bin"
LOGS="$CACHE/logs"
MODULES="$CACHE/modules"

log() { printf 'kube-control-plane: %s\n' "$*" >&2; }
die() {
  log "$*"
  exit 1
}

# Fail with the tail of a log: fail_with_log WHAT LOGFILE
fail_with_log() {
  local what="$1" logfile="$2"
  log "$what FAILED; last lines of $logfile:"
  tail -n 25 "$logfile" | sed 's/^/    /' >&2
  exit 1
}

command -v go >/dev/null 2>&1 || die "go is not on PATH: a Go toolchain (>= the one k8s.io/kubernetes ${KUBE_VERSION} needs) is required"
# Never let the go command fetch a different toolchain: fail clearly instead.
export GOTOOLCHAIN=local
export CGO_ENABLED=0
# Keep the caller's GOFLAGS but make module-mode builds reproducible and path-free.
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-trimpath -buildvcs=false"

mkdir -p "$BIN" "$LOGS" "$MODULES"

# One run at a time per cache directory.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE/.lock"
  if ! flock -n 9; then
    log "waiting for another run holding $CACHE/.lock"
    flock 9
  fi
fi

minor="${KUBE_VERSION#v1.}"
STAGING_VERSION="v0.${minor}"     # v1.36.5 -> v0.36.5
kube_major=1
kube_minor="${minor%%.*}"

# ---- version checks -------------------------------------------------------------------------

# version_of NAME: what the cached binary says its version is (empty if it does not answer).
version_of() {
  local name="$1" out
  # The whole output, then its first line: `| head -1` could SIGPIPE the binary under pipefail.
  case "$name" in
    kubectl) out="$(timeout 20 "$BIN/kubectl" version --client 2>/dev/null)" || return 0 ;;
    *) out="$(timeout 20 "$BIN/$name" --version 2>/dev/null)" || return 0 ;;
  esac
  printf '%s' "${out%%$'\n'*}"
}

# is_cached NAME WANT: the binary exists and reports version WANT.
is_cached() {
  local name="$1" want="$2" got
  [ -x "$BIN/$name" ] || return 1
  got="$(version_of "$name")"
  [[ "$got" == *"${want#v}"* ]]
}

# ---- wrapper modules -------------------------------------------------------------------------

KUBE_MOD="$MODULES/kubernetes"
ETCD_MOD="$MODULES/etcd"

# Writes and tidies the wrapper module around k8s.io/kubernetes (once per cache).
prepare_kube_module() {
  if [ "$(cat "$KUBE_MOD/.ready" 2>/dev/null)" = "$KUBE_VERSION" ]; then
    return 0
  fi
  local started logfile="$LOGS/kubernetes-module.log" gomod
  started=$SECONDS
  log "resolving k8s.io/kubernetes ${KUBE_VERSION} and its modules (log: $logfile)"
  rm -rf "$KUBE_MOD"
  mkdir -p "$KUBE_MOD"
  : >"$logfile"
  # The upstream go.mod: which staging modules it requires at v0.0.0, its go and godebug lines.
  if ! (cd "$KUBE_MOD" && go mod download -json "k8s.io/kubernetes@${KUBE_VERSION}") >"$KUBE_MOD/download.json" 2>>"$logfile"; then
    cat "$KUBE_MOD/download.json" >>"$logfile"
    fail_with_log "downloading k8s.io/kubernetes@${KUBE_VERSION}" "$logfile"
  fi
  gomod="$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' "$KUBE_MOD/download.json")"
  [ -f "$gomod" ] || fail_with_log "locating the go.mod of k8s.io/kubernetes@${KUBE_VERSION}" "$logfile"

  local go_line godebug staging
  go_line="$(grep -m1 -E '^go [0-9]' "$gomod")"
  godebug="$(grep -E '^godebug ' "$gomod" || true)"
  # Modules both required at v0.0.0 and replaced by a ./staging directory.
  staging="$(awk '
    /^replace[[:space:]]*\(/ { inrep = 1; next }
    inrep && /^\)/ { inrep = 0; next }
    /^require[[:space:]]*\(/ { inreq = 1; next }
    inreq && /^\)/ { inreq = 0; next }
    inrep && $2 == "=>" && $3 ~ /^\.\/staging\// { replaced[$1] = 1 }
    inreq && $2 == "v0.0.0" { required[$1] = 1 }
    END { for (m in required) if (m in replaced) print m }
  ' "$gomod" | sort)"
  [ -n "$staging" ] || fail_with_log "finding the staging modules in $gomod" "$logfile"

  {
    echo "// Generated by e2e/setup/kube-control-plane.sh: builds k8s.io/kubernetes ${KUBE_VERSION} commands."
    echo "module tern.invalid/kube-control-plane"
    echo
    echo "$go_line"
    [ -z "$godebug" ] || { echo; echo "$godebug"; }
    echo
    echo "require k8s.io/kubernetes ${KUBE_VERSION}"
    echo
    echo "tool ("
    echo "	k8s.io/kubernetes/cmd/kube-apiserver"
    echo "	k8s.io/kubernetes/cmd/kube-controller-manager"
    echo "	k8s.io/kubernetes/cmd/kubectl"
    echo ")"
    echo
    echo "replace ("
    local m
    for m in $staging; do
      printf '\t%s => %s %s\n' "$m" "$m" "$STAGING_VERSION"
    done
    echo ")"
  } >"$KUBE_MOD/go.mod"
  log "wrapper module: $(wc -l <<<"$staging") staging modules replaced with ${STAGING_VERSION}"
  if ! (cd "$KUBE_MOD" && go mod tidy) >>"$logfile" 2>&1; then
    fail_with_log "resolving the modules of k8s.io/kubernetes ${KUBE_VERSION} (go mod tidy in $KUBE_MOD)" "$logfile"
  fi
  echo "$KUBE_VERSION" >"$KUBE_MOD/.ready"
  log "k8s.io/kubernetes ${KUBE_VERSION} modules resolved in $((SECONDS - started))s"
}

prepare_etcd_module() {
  local version="$1"
  if [ "$(cat "$ETCD_MOD/.ready" 2>/dev/null)" = "$version" ]; then
    return 0
  fi
  local started logfile="$LOGS/etcd-module.log"
  started=$SECONDS
  log "resolving go.etcd.io/etcd/server/v3 ${version} (log: $logfile)"
  rm -rf "$ETCD_MOD"
  mkdir -p "$ETCD_MOD"
  {
    echo "// Generated by e2e/setup/kube-control-plane.sh: builds etcd ${version}."
    echo "module tern.invalid/etcd"
    echo
    echo "go 1.24.0"
    echo
    echo "require go.etcd.io/etcd/server/v3 ${version}"
    echo
    echo "tool go.etcd.io/etcd/server/v3"
  } >"$ETCD_MOD/go.mod"
  if ! (cd "$ETCD_MOD" && go mod tidy) >"$logfile" 2>&1; then
    fail_with_log "resolving the modules of etcd ${version} (go mod tidy in $ETCD_MOD)" "$logfile"
  fi
  echo "$version" >"$ETCD_MOD/.ready"
  log "etcd ${version} modules resolved in $((SECONDS - started))s"
}

# ---- builds ----------------------------------------------------------------------------------

kube_ldflags() {
  local flags="-s -w" key value pkg
  local build_date
  build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    for key in gitVersion gitMajor gitMinor buildDate gitTreeState; do
      case "$key" in
        gitVersion) value="$KUBE_VERSION" ;;
        gitMajor) value="$kube_major" ;;
        gitMinor) value="$kube_minor" ;;
        buildDate) value="$build_date" ;;
        gitTreeState) value="clean" ;;
      esac
      flags+=" -X $pkg.$key=$value"
    done
  done
  printf '%s' "$flags"
}

# go_build NAME VERSION MODULE_DIR PACKAGE [go build flags...]
go_build() {
  local name="$1" version="$2" dir="$3" pkg="$4"
  shift 4
  local logfile="$LOGS/$name.log" started tmp="$BIN/.$name.tmp"
  started=$SECONDS
  log "$name $version: building $pkg (log: $logfile)"
  if ! (cd "$dir" && go build "$@" -o "$tmp" "$pkg") >"$logfile" 2>&1; then
    rm -f "$tmp"
    fail_with_log "$name $version: go build $pkg" "$logfile"
  fi
  mv -f "$tmp" "$BIN/$name"
  if ! is_cached "$name" "$version"; then
    echo "version check printed: $(version_of "$name")" >>"$logfile"
    fail_with_log "$name $version: the built binary does not report version $version" "$logfile"
  fi
  log "$name $version: built in $((SECONDS - started))s"
}

build_kube() {
  local name="$1"
  if is_cached "$name" "$KUBE_VERSION"; then
    log "$name $KUBE_VERSION: cached"
    return 0
  fi
  prepare_kube_module
  go_build "$name" "$KUBE_VERSION" "$KUBE_MOD" "k8s.io/kubernetes/cmd/$name" \
    -tags=selinux,notest,grpcnotrace -ldflags="$(kube_ldflags)"
}

# Debian's etcd-server, used only when building etcd failed.
etcd_from_debian() {
  log "etcd: falling back to Debian's etcd-server package (the Go build failed)"
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    log "etcd: cannot apt-get install etcd-server (not root or no apt-get)"
    return 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends etcd-server >&2 ||
    { apt-get update -qq >&2 && apt-get install -y --no-install-recommends etcd-server >&2; } || return 1
  ln -sf "$(command -v etcd || echo /usr/bin/etcd)" "$BIN/etcd"
  log "etcd: using Debian's $(version_of etcd) (NOT the pinned release)"
}

build_etcd() {
  if is_cached etcd "$ETCD_VERSION" && [ ! -L "$BIN/etcd" ]; then
    log "etcd $ETCD_VERSION: cached"
    return 0
  fi
  if (prepare_etcd_module "$ETCD_VERSION" && go_build etcd "$ETCD_VERSION" "$ETCD_MOD" go.etcd.io/etcd/server/v3); then
    return 0
  fi
  etcd_from_debian || die "etcd: neither the Go build of etcd $ETCD_VERSION nor Debian's etcd-server worked"
}

total_started=$SECONDS
build_etcd
build_kube kubectl
build_kube kube-apiserver
build_kube kube-controller-manager
log "done in $((SECONDS - total_started))s; $(du -sh "$BIN" 2>/dev/null | cut -f1) in $BIN"
echo "$BIN"
