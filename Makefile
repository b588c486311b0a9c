# dualwrite — the two commands of the README.
#
#   make demo   install what is missing, start the services, build, and run
#               `dualwrite compare` (every strategy, one seed, one schedule),
#               drawing its picture in target/dualwrite-demo.html
#   make test   the same set-up plus the test broker, then the whole suite
#
# Both are idempotent and quiet when everything is already in place.

CARGO ?= cargo
TANSU_BIN ?= $(shell command -v tansu 2>/dev/null || echo $(HOME)/.cargo/bin/tansu)
export TANSU_BIN

.PHONY: demo test setup setup-tests build doctor clean-runs bench

# The demo also draws its picture; the last line says where it is.
DEMO_HTML := target/dualwrite-demo.html

demo: setup build
	@rm -f $(DEMO_HTML)
	@status=0; ./target/debug/dualwrite compare --html $(DEMO_HTML) || status=$$?; \
	if [ -f $(DEMO_HTML) ]; then \
	  echo; echo "The picture of this run: $(CURDIR)/$(DEMO_HTML) (open it in a browser)"; \
	fi; exit $$status

test: setup-tests
	# The integration tests mostly wait on the services; run them wide.
	# --workspace: the fault proxy's crate (crates/faultproxy) has tests of its own.
	RUST_TEST_THREADS=$${RUST_TEST_THREADS:-12} $(CARGO) test --workspace --lib --bins --tests --no-fail-fast
	# The containerised backend needs Docker to run; without it, build it at least.
	$(CARGO) build --features testcontainers --tests

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
