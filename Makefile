# dualwrite — the two commands of the README.
#
#   make demo   install what is missing, start the services, build, and run
#               `dualwrite compare` (every strategy, one seed, one schedule)
#   make test   the same set-up plus the test broker, then the whole suite
#
# Both are idempotent and quiet when everything is already in place.

CARGO ?= cargo
TANSU_BIN ?= $(shell command -v tansu 2>/dev/null || echo $(HOME)/.cargo/bin/tansu)
export TANSU_BIN

.PHONY: demo test setup setup-tests build doctor clean-runs bench

demo: setup build
	./target/debug/dualwrite compare

test: setup-tests
	# The integration tests mostly wait on the services; run them wide.
	# --workspace: the fault proxy's crate (crates/faultproxy) has tests of its own.
	RUST_TEST_THREADS=$${RUST_TEST_THREADS:-12} $(CARGO) test --workspace --lib --bins --tests --no-fail-fast

setup:
	@scripts/setup.sh

setup-tests:
	@scripts/setup.sh --tests

build:
	$(CARGO) build --bin dualwrite

doctor: build
	./target/debug/dualwrite doctor

# Drop schemas and replication slots left behind by interrupted runs.
clean-runs: build
	./target/debug/dualwrite doctor --drop-stale

bench: setup
	$(CARGO) bench
