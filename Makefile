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
FUZZ_TARGET ?= keyfile
FUZZ_SECONDS ?= 60

.PHONY: all deps rust-version build test bench demo fuzz manpage install uninstall deb clean

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

demo: rust-version
	scripts/demo.sh

fuzz:
	@if ! rustup toolchain list | grep -q '^nightly'; then \
	    echo "make fuzz: cargo-fuzz needs a nightly toolchain; install it with 'rustup toolchain install nightly'" >&2; \
	    exit 1; \
	fi
	@if ! $(CARGO) fuzz --version >/dev/null 2>&1; then \
	    $(CARGO) install cargo-fuzz; \
	fi
	@if [ ! -d core/fuzz ]; then \
	    echo "make fuzz: core/fuzz does not exist yet (fuzz targets come with the key file parser)" >&2; \
	    exit 1; \
	fi
	cd core/fuzz && $(CARGO) +nightly fuzz run $(FUZZ_TARGET) -- -max_total_time=$(FUZZ_SECONDS)

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
