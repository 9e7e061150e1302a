# Tern's entry points for developers and CI (.ci/run runs `make test`).

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
# Debian installs nats-server into /usr/sbin, which a non-login PATH may lack.
export PATH := $(PATH):/usr/local/sbin:/usr/sbin:/sbin

.PHONY: run build deps test e2e e2e-broker bench fuzz-smoke chart images

## run: the broker in release mode with its built-in defaults: clients on 4222, monitoring on 8222
## (other flags: ARGS="-c my.conf ...")
run:
	$(CARGO) run --release -p tern-broker --bin tern -- $(or $(ARGS),-m 8222)

## build: every crate of the workspace (debug)
build:
	$(CARGO) build --workspace

## deps: install what the tests need (nats-server, ...)
deps:
	bash e2e/setup/install-test-deps.sh

## test: deps, format, lints, the broker binary, every test; runs all steps, then a summary
test:
	@failed=(); passed=(); \
	test_log="$$(mktemp)"; trap 'rm -f "$$test_log"' EXIT; \
	step() { \
	  local name="$$1"; shift; \
	  echo "==> $$name: $$*"; \
	  if "$$@"; then passed+=("$$name"); else failed+=("$$name"); echo "==> $$name FAILED"; fi; \
	}; \
	run_tests() { $(CARGO) test --workspace --no-fail-fast 2>&1 | tee "$$test_log"; }; \
	step deps bash e2e/setup/install-test-deps.sh; \
	step fmt $(CARGO) fmt --all -- --check; \
	step clippy $(CARGO) clippy --workspace --all-targets -- -D warnings; \
	step build-tern $(CARGO) build -p tern-broker --bin tern -p tern-operator --bin tern-operator; \
	step tests run_tests; \
	step python-clients python3 -m pytest e2e/python -q -p no:cacheprovider; \
	step chart $(MAKE) --no-print-directory chart; \
	step images $(MAKE) --no-print-directory images IMAGE_PROFILE=debug; \
	if [ -f broker/fuzz/Cargo.toml ]; then step fuzz-smoke $(MAKE) --no-print-directory fuzz-smoke; fi; \
	echo; echo "make test summary"; \
	for name in "$${passed[@]}"; do echo "  ok      $$name"; done; \
	for name in "$${failed[@]}"; do echo "  FAILED  $$name"; done; \
	awk '/^test result:/ { for (i = 1; i <= NF; i++) { \
	    if ($$(i + 1) ~ /^passed/) p += $$i; \
	    if ($$(i + 1) ~ /^failed/) f += $$i; \
	    if ($$(i + 1) ~ /^ignored/) s += $$i } } \
	  END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$$test_log"; \
	[ "$${#failed[@]}" -eq 0 ]

IMAGE_PROFILE ?= release

## images: the broker and operator images (FROM scratch) built with podman, the broker image started
## and connected to (IMAGE_PROFILE=debug reuses the debug build; `make test` does; podman from `make deps`)
images:
	CARGO="$(CARGO)" bash e2e/setup/images.sh --profile $(IMAGE_PROFILE)

CHART := charts/tern-operator
# helm built by `make deps` (e2e/setup/install-test-deps.sh) into .cache/helm, else from PATH.
HELM ?= $(if $(wildcard .cache/helm/helm),.cache/helm/helm,helm)

## chart: the Helm chart: its CRD copies match crds/, helm lint, helm template (default values and
## $(CHART)/ci/options-values.yaml) checked by charts/check_rendered.py (RBAC, Deployment, CRDs)
chart:
	@command -v $(HELM) >/dev/null 2>&1 || { echo "chart: helm not found ($(HELM)): run make deps" >&2; exit 1; }
	@diff -q -r -x README.md crds $(CHART)/files/crds >/dev/null || { \
	  diff -q -r -x README.md crds $(CHART)/files/crds >&2 || true; \
	  echo "chart: $(CHART)/files/crds/ is stale: it must equal crds/; run: rm $(CHART)/files/crds/*.yaml \&\& cp crds/*.tern.dev.yaml $(CHART)/files/crds/" >&2; \
	  exit 1; }
	$(HELM) lint --strict $(CHART)
	$(HELM) lint --strict $(CHART) -f $(CHART)/ci/options-values.yaml
	$(HELM) template tern-operator $(CHART) -n tern-system \
	  | python3 charts/check_rendered.py $(CHART) tern-system
	$(HELM) template tern-operator $(CHART) -n tern-system -f $(CHART)/ci/options-values.yaml \
	  | python3 charts/check_rendered.py $(CHART) tern-system $(CHART)/ci/options-values.yaml

## e2e: only the Kubernetes tier: the operator against etcd, kube-apiserver and
## kube-controller-manager built from their Go modules, with a kubelet stand-in running the pods
e2e: deps
	$(CARGO) build -p tern-broker --bin tern -p tern-operator --bin tern-operator
	$(CARGO) test -p tern-e2e --test kubernetes -- --nocapture

## e2e-broker: the black-box broker suites against Tern and nats-server, and the nats-py suite
e2e-broker: deps
	$(CARGO) build -p tern-broker --bin tern
	$(CARGO) test -p tern-e2e --no-fail-fast
	python3 -m pytest e2e/python -q -p no:cacheprovider

## bench: Tern and nats-server side by side, release builds (options: BENCH_ARGS="--quick", ...)
bench: deps
	$(CARGO) build --release -p tern-broker -p tern-bench
	$(TARGET_DIR)/release/tern-bench --tern $(TARGET_DIR)/release/tern --nats-server $$(command -v nats-server) $(BENCH_ARGS)

FUZZ_SECONDS ?= 15
FUZZ_TARGETS := client_parser config_parser connect_json authenticate

## fuzz-smoke: a short run of each fuzz target (nightly toolchain and cargo-fuzz; FUZZ_SECONDS each)
fuzz-smoke:
	cd broker && for target in $(FUZZ_TARGETS); do \
	  echo "fuzz-smoke: $$target for $(FUZZ_SECONDS)s"; \
	  $(CARGO) +nightly fuzz run $$target -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 2>&1 | tail -n 3; \
	  test "$${PIPESTATUS[0]}" -eq 0; \
	done
