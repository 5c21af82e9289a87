# tpmkey: build, test and tooling entry points (GNU make).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

# rustup installs cargo here; these machines have it in /root/.cargo/bin.
export PATH := $(HOME)/.cargo/bin:/root/.cargo/bin:$(PATH):/usr/local/sbin:/usr/sbin:/sbin

CARGO ?= cargo
# Extra arguments for the test binaries, e.g. `make test TEST_ARGS=--nocapture`.
TEST_ARGS ?=
TEST_LOG := target/test.log
FUZZ_SECONDS ?= 60

.PHONY: all deps rust-version build test bench demo fuzz fault-soak manpage install uninstall deb clean

all: build

deps:
	scripts/deps.sh test

# The workspace needs Rust $(RUST_MIN) (Cargo.toml rust-version); Debian 12's own cargo is 1.63.
RUST_MIN := 1.85
rust-version:
	@v="$$($(CARGO) --version 2>/dev/null | sed -n 's/^cargo \([0-9]*\.[0-9]*\)\..*/\1/p' || true)"; \
	if [ -z "$$v" ]; then \
	    echo "make: cargo not found; tpmkey needs Rust $(RUST_MIN) or newer: install it with rustup (https://rustup.rs)" >&2; \
	    exit 1; \
	fi; \
	if [ "$$(printf '%s\n%s\n' "$(RUST_MIN)" "$$v" | sort -V | head -1)" != "$(RUST_MIN)" ]; then \
	    echo "make: cargo $$v is too old; tpmkey needs Rust $(RUST_MIN) or newer (rustup update, or https://rustup.rs)" >&2; \
	    exit 1; \
	fi

build: rust-version
	$(CARGO) build --release --workspace

# Every TPM test runs against its own real swtpm (tests/harness); nothing is mocked and
# nothing may be skipped: an #[ignore]d test fails the target.
test: deps build
	@mkdir -p target
	@rm -f target/package-test/summary.txt
	env -u RUST_TEST_THREADS RUST_BACKTRACE=1 \
	    $(CARGO) test --release --workspace --no-fail-fast -- $(TEST_ARGS) 2>&1 | tee $(TEST_LOG)
	@if grep -E '^test result: .* [1-9][0-9]* ignored' $(TEST_LOG) >/dev/null; then \
	    echo "make test: some tests were ignored (skipped); nothing may skip:" >&2; \
	    grep -E '\.\.\. ignored' $(TEST_LOG) >&2 || true; \
	    exit 1; \
	fi
	@if [ -f target/package-test/summary.txt ]; then cat target/package-test/summary.txt; fi
	@echo "make test: all tests passed, none skipped (log: $(TEST_LOG))"

bench: rust-version
	scripts/deps.sh test
	$(CARGO) build --release --workspace
	target/release/tpmkey-bench

# nginx under seeded random TPM faults (1% of commands) for 10,000 handshakes instead of
# the 1,000 of `make test`.
fault-soak: rust-version
	TPMKEY_FAULT_HANDSHAKES=10000 $(CARGO) test --release -p tpmkey-interop-tests --test nginx \
	    nginx_under_seeded_random_tpm_faults -- --nocapture

demo: rust-version
	scripts/demo.sh

# Every cargo-fuzz target of core/fuzz, pkcs11/fuzz and provider/fuzz (their [[bin]]s) for
# FUZZ_SECONDS each, starting from the committed seeds (CRATE/fuzz/seeds/TARGET, read only);
# what a run finds grows CRATE/fuzz/corpus/TARGET (not committed). FUZZ_TARGET=name runs
# one target only. The PKCS#11 and provider targets start their own swtpm.
# `make test` runs every target once over its seeds, on stable (core/tests/fuzz_seeds.rs).
FUZZ_CRATES = core pkcs11 provider
fuzz:
	@if ! rustup toolchain list | grep -q '^nightly'; then \
	    echo "make fuzz: cargo-fuzz needs a nightly toolchain; install it with 'rustup toolchain install nightly'" >&2; \
	    exit 1; \
	fi
	@if ! $(CARGO) fuzz --version >/dev/null 2>&1; then \
	    $(CARGO) install cargo-fuzz; \
	fi
	@mkdir -p target
	@rm -f target/fuzz-stats.txt
	@set -e; for c in $(FUZZ_CRATES); do \
	    targets="$(if $(filter command line,$(origin FUZZ_TARGET)),$(FUZZ_TARGET),$$(sed -n 's/^name = "\(.*\)"/\1/p' $$c/fuzz/Cargo.toml | grep -v '^tpmkey.*-fuzz$$'))"; \
	    for t in $$targets; do \
	        grep -q "^name = \"$$t\"" $$c/fuzz/Cargo.toml || continue; \
	        mkdir -p $$c/fuzz/corpus/$$t $$c/fuzz/seeds/$$t; \
	        (cd $$c/fuzz && $(CARGO) +nightly fuzz run $$t corpus/$$t seeds/$$t -- -max_total_time=$(FUZZ_SECONDS) \
	            -print_final_stats=1 2>&1 | tee ../../target/fuzz-$$t.log); \
	        echo "$$c/$$t: $$(grep -o 'stat::number_of_executed_units: *[0-9]*' target/fuzz-$$t.log | grep -o '[0-9]*$$') executions, corpus $$(ls $$c/fuzz/corpus/$$t | wc -l) files" >> target/fuzz-stats.txt; \
	    done; \
	done
	@cat target/fuzz-stats.txt

# install, uninstall and deb install exactly the files packaging/manifest lists (stripped
# libraries; deb also builds tpmkey-dbgsym with their debug symbols).
PACKAGE_CRATES := -p tpmkey-provider -p tpmkey-pkcs11 -p tpmkey-cli

# tpmkey(1) is generated from the command line's definition, so it cannot drift from it.
manpage:
	mkdir -p target/man
	target/release/tpmkey manpage >target/man/tpmkey.1.tmp
	mv target/man/tpmkey.1.tmp target/man/tpmkey.1

install: rust-version
	$(CARGO) build --release $(PACKAGE_CRATES)
	$(MAKE) --no-print-directory manpage
	packaging/install-files.sh install "$(DESTDIR)"

uninstall:
	packaging/install-files.sh uninstall "$(DESTDIR)"

deb: rust-version
	$(CARGO) build --release $(PACKAGE_CRATES)
	$(MAKE) --no-print-directory manpage
	packaging/build-deb.sh target/package

clean:
	$(CARGO) clean
