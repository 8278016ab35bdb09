# lrt-cds developer commands. The README's two commands are `make demo` and `make test`.
# Every target works on a fresh Debian machine with Rust (rustup); `make setup` installs
# anything else the current stage needs.

CARGO ?= cargo
LRT = $(CARGO) run -q -p lrt-server --bin lrt --

.PHONY: demo test setup lint unit rules bench timings

## Run the demo: evaluates the knowledge base's worked cases and shows where to look.
demo: setup
	$(LRT) demo

## Run every test: formatting, lints, unit/integration/CLI tests, rule-set check and cases.
test: setup lint unit rules

setup:
	@command -v $(CARGO) >/dev/null || { echo "cargo not found: install Rust with rustup first" >&2; exit 1; }
	@test -f ../shared/clinical/examples.json || [ -n "$$LRT_SHARED_DIR" ] || { echo "../shared (the project's shared folder) must sit beside this repository, or set LRT_SHARED_DIR" >&2; exit 1; }

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

unit:
	$(CARGO) test --workspace --locked

rules:
	$(LRT) rules check > /dev/null
	$(LRT) rules test > /dev/null

## Benchmarks (criterion): one evaluation of a 50-observation snapshot.
bench:
	$(CARGO) bench -p lrt-engine --bench evaluate

## Build-time report (target/cargo-timings/).
timings:
	$(CARGO) build --workspace --timings
