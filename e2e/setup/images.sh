#!/usr/bin/env bash
# Builds the broker and operator images with podman, starts the broker image and connects to it.
#
#   e2e/setup/images.sh [--profile debug|release] [--keep]
#
# No container registry is needed: both Containerfiles are `FROM scratch`, and this script
# assembles each build context in <repo>/.cache/image-context/<name>/rootfs from the cargo
# binary (stripped), the shared libraries `ldd` lists and the dynamic loader, /etc/passwd and
# /etc/group with the non-root user 65532, the CA certificates and an empty /tmp.
#
# The check: both images build; the broker image runs (host network, ports picked free on this
# machine) as uid 65532, sends the NATS INFO line, answers PING, delivers a message to a
# subscriber and reports /healthz ok; the operator image runs `--version` and prints the CRDs.
# Containers are removed on exit (--keep leaves the broker running for a look).
#
# --profile release (the default, `make images`) builds release binaries (~2 minutes on two
# cores); `make test` passes debug to reuse the debug build it already has. Podman's settings
# come from <repo>/.cache/podman, written by install-test-deps.sh (`make deps`); set
# CONTAINERS_CONF and CONTAINERS_STORAGE_CONF to use others. Image tags: TERN_IMAGE_TAG (dev).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"

profile=release
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="${2:?--profile needs debug or release}"; shift 2 ;;
    --profile=*) profile="${1#--profile=}"; shift ;;
    --keep) keep=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "images: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$profile" in
  debug | release) ;;
  *) echo "images: --profile is debug or release, not $profile" >&2; exit 2 ;;
esac

log() { printf 'images: %s\n' "$*" >&2; }
fail() { log "FAILED: $*"; exit 1; }

export CONTAINERS_CONF="${CONTAINERS_CONF:-$repo/.cache/podman/containers.conf}"
export CONTAINERS_STORAGE_CONF="${CONTAINERS_STORAGE_CONF:-$repo/.cache/podman/storage.conf}"
command -v podman >/dev/null 2>&1 || fail "podman is missing (run e2e/setup/install-test-deps.sh)"
for file in "$CONTAINERS_CONF" "$CONTAINERS_STORAGE_CONF"; do
  [ -f "$file" ] || fail "$file is missing (run e2e/setup/install-test-deps.sh, which writes it)"
done

target_dir="${CARGO_TARGET_DIR:-$repo/target}"
tag="${TERN_IMAGE_TAG:-dev}"
broker_image="localhost/tern:$tag"
operator_image="localhost/tern-operator:$tag"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)"
revision="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
container="tern-images-check-$$"
started=$SECONDS

# Every podman call is bounded; a hung podman fails the check instead of the CI job.
pod() {
  local seconds="$1"
  shift
  timeout --kill-after=10 "$seconds" podman "$@"
}

cleanup() {
  if [ "$keep" -eq 0 ]; then
    pod 30 rm --force --time 2 --ignore "$container" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

broker_logs() {
  log "podman logs $container:"
  pod 20 logs "$container" 2>&1 | tail -n 40 | sed 's/^/    /' >&2 || true
}

# 1. The binaries.
if [ "$profile" = release ]; then cargo_profile=(--release); else cargo_profile=(); fi
log "building tern and tern-operator ($profile)"
# One package per call, as `make test` builds tern, so the features match and nothing rebuilds.
"${CARGO:-cargo}" build "${cargo_profile[@]}" -p tern-broker --bin tern || fail "cargo build ($profile) of tern failed"
"${CARGO:-cargo}" build "${cargo_profile[@]}" -p tern-operator --bin tern-operator \
  || fail "cargo build ($profile) of tern-operator failed"

# 2. The build contexts: a minimal root file system per image.
# assemble NAME BINARY: .cache/image-context/NAME/rootfs with BINARY in /usr/local/bin.
assemble() {
  local name="$1" binary="$2" context rootfs library
  context="$repo/.cache/image-context/$name"
  rootfs="$context/rootfs"
  [ -x "$binary" ] || fail "$binary is missing"
  rm -rf "$context"
  mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc/ssl/certs" "$rootfs/tmp"
  chmod 1777 "$rootfs/tmp"
  strip -o "$rootfs/usr/local/bin/$(basename "$binary")" "$binary" 2>/dev/null \
    || cp "$binary" "$rootfs/usr/local/bin/"
  # The libraries the binary links and the loader, each at the path ldd names (vdso has none).
  while read -r library; do
    mkdir -p "$rootfs$(dirname "$library")"
    cp -L "$library" "$rootfs$library"
  done < <(ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
  [ -n "$(find "$rootfs" -name 'ld-linux*' -print -quit)" ] || fail "no dynamic loader in ldd $binary"
  cat >"$rootfs/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nonroot:x:65532:65532:nonroot:/tmp:/sbin/nologin
EOF
  cat >"$rootfs/etc/group" <<'EOF'
root:x:0:
nonroot:x:65532:
EOF
  if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    cp -L /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
  else
    log "warning: no /etc/ssl/certs/ca-certificates.crt on this machine; $name has no CA certificates"
  fi
}
assemble broker "$target_dir/$profile/tern"
assemble operator "$target_dir/$profile/tern-operator"

# 3. The images. A rebuild leaves the previous image untagged: remove it (vfs copies every layer).
build() {
  local name="$1" image="$2" previous current
  previous="$(pod 30 image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)"
  log "podman build $image from $name/Containerfile"
  pod 300 build --quiet --layers=false --file "$name/Containerfile" --tag "$image" \
    --build-arg VERSION="$version" --build-arg REVISION="$revision" \
    "$repo/.cache/image-context/$name" >/dev/null || fail "podman build of $image failed"
  current="$(pod 30 image inspect --format '{{.Id}}' "$image")"
  if [ -n "$previous" ] && [ "$previous" != "$current" ]; then
    pod 60 rmi "$previous" >/dev/null 2>&1 || true
  fi
  [ "$(pod 30 image inspect --format '{{.Config.User}}' "$image")" = "65532:65532" ] \
    || fail "$image does not run as 65532:65532"
}
build broker "$broker_image"
build operator "$operator_image"

# 4. The broker image runs and serves clients.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
client_port="$(free_port)"
http_port="$(free_port)"
while [ "$http_port" = "$client_port" ]; do http_port="$(free_port)"; done
log "podman run $broker_image on 127.0.0.1:$client_port (monitoring $http_port)"
pod 60 run --detach --name "$container" --network host "$broker_image" \
  -a 127.0.0.1 -p "$client_port" -m "$http_port" >/dev/null \
  || fail "podman run of $broker_image failed"

# The broker process (seen from the host) runs as uid 65532.
pid="$(pod 30 inspect --format '{{.State.Pid}}' "$container")"
if [ -n "$pid" ] && [ "$pid" != 0 ] && [ -r "/proc/$pid/status" ]; then
  uid="$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")"
  [ "$uid" = 65532 ] || { broker_logs; fail "the broker runs as uid $uid, not 65532"; }
else
  broker_logs
  fail "the broker container is not running (state: $(pod 30 inspect --format '{{.State.Status}}' "$container" 2>&1))"
fi

# INFO, CONNECT, PING/PONG, a message to a subscriber, then /healthz; retried for 30 seconds
# while the broker starts.
if ! python3 - "$client_port" "$http_port" <<'EOF'; then
import json, socket, sys, time, urllib.request

client_port, http_port = int(sys.argv[1]), int(sys.argv[2])
deadline = time.monotonic() + 30
error = None
while time.monotonic() < deadline:
    try:
        with socket.create_connection(("127.0.0.1", client_port), timeout=5) as sock:
            reader = sock.makefile("rb")
            line = reader.readline().decode()
            assert line.startswith("INFO "), f"expected INFO, got {line!r}"
            info = json.loads(line[5:])
            sock.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nSUB images.check 1\r\n'
                         b"PUB images.check 5\r\nhello\r\nPING\r\n")
            got = []
            while True:
                line = reader.readline().decode()
                assert line, f"connection closed after {got!r}"
                got.append(line.strip())
                if line.startswith("PONG"):
                    break
            assert "MSG images.check 1 5" in got and "hello" in got, f"no message back: {got!r}"
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=5) as response:
            health = json.loads(response.read())
            assert response.status == 200 and health.get("status") == "ok", f"/healthz: {health!r}"
        print(f"images: broker {info.get('server_id', '?')[:12]}... version {info.get('version')}: "
              f"INFO, PING/PONG, pub/sub and /healthz ok", file=sys.stderr)
        sys.exit(0)
    except (OSError, AssertionError, ValueError) as exc:
        error = exc
        time.sleep(0.3)
print(f"images: the broker image did not serve within 30s: {error}", file=sys.stderr)
sys.exit(1)
EOF
  broker_logs
  fail "cannot connect to the broker image"
fi

# 5. The operator image runs: its version, and the CRDs it prints.
output="$(pod 60 run --rm --network none "$operator_image" --version 2>&1)" \
  || fail "podman run $operator_image --version failed: $output"
log "operator: $output"
output="$(pod 60 run --rm --network none "$operator_image" crd 2>&1)" \
  || fail "podman run $operator_image crd failed: $(printf '%s' "$output" | tail -n 20)"
crds="$(printf '%s\n' "$output" | grep -c '^kind: CustomResourceDefinition' || true)"
[ "$crds" -ge 1 ] || fail "podman run $operator_image crd printed no CustomResourceDefinition: $(printf '%s' "$output" | head -n 20)"
log "operator: crd printed $crds CustomResourceDefinitions"

# 6. Sizes.
for image in "$broker_image" "$operator_image"; do
  size="$(pod 30 image inspect --format '{{.Size}}' "$image")"
  log "$(printf '%-28s %6.1f MB (%s binaries)' "$image" "$(echo "$size" | awk '{ print $1 / 1000000 }')" "$profile")"
done
if [ "$keep" -eq 1 ]; then
  log "broker container $container left running on 127.0.0.1:$client_port (podman rm -f $container)"
fi
log "ok in $((SECONDS - started))s"
