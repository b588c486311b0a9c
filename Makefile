# dualwrite — the two commands of the README.
#
#   make demo   install what is missing, start the services, build, and run
#               `dualwrite compare` (every strategy, one seed, one schedule),
#               drawing its picture in target/dualwrite-demo.html
#   make test   the same set-up plus the test broker, then the whole suite
#   make bench  the performance figures of issue 13, as ratios (release builds)
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
	# The benchmark's smoke test: every part of `make bench`, tiny, no timing asserted.
	$(CARGO) test --bench perf
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

# Issue 13's figures, as ratios measured in one run (benches/perf/main.rs
# says what each is), then the fault proxy's own benchmark. Release builds;
# about six minutes. Run it on a quiet machine: the figures are the machine's.
bench: setup
	$(CARGO) bench --bench perf
	# socat, when installed, is the machine's reference for any user-space proxy.
	$(CARGO) bench -p faultproxy --bench throughput -- $$(command -v socat >/dev/null && echo --socat)
