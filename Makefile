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

.PHONY: all deps build test bench demo fuzz install clean

all: build

deps:
	scripts/deps.sh

build:
	$(CARGO) build --release --workspace

# Every TPM test runs against its own real swtpm (tests/harness); nothing is mocked and
# nothing may be skipped: an #[ignore]d test fails the target.
test: deps build
	@mkdir -p target
	env -u RUST_TEST_THREADS RUST_BACKTRACE=1 \
	    $(CARGO) test --release --workspace --no-fail-fast -- $(TEST_ARGS) 2>&1 | tee $(TEST_LOG)
	@if grep -E '^test result: .* [1-9][0-9]* ignored' $(TEST_LOG) >/dev/null; then \
	    echo "make test: some tests were ignored (skipped); nothing may skip:" >&2; \
	    grep -E '\.\.\. ignored' $(TEST_LOG) >&2 || true; \
	    exit 1; \
	fi
	@echo "make test: all tests passed, none skipped (log: $(TEST_LOG))"

bench:
	scripts/deps.sh
	$(CARGO) build --release --workspace
	target/release/tpmkey-bench

demo:
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

install: build
	@modules="$$(openssl version -m | sed -n 's/^MODULESDIR: "\(.*\)"/\1/p')"; \
	p11dir="$$(pkg-config --variable=p11_module_path p11-kit-1)"; \
	p11conf="$$(pkg-config --variable=p11_module_configs p11-kit-1)"; \
	test -n "$$modules" -a -n "$$p11dir" -a -n "$$p11conf" || { echo "make install: cannot find the OpenSSL or p11-kit module directories (make deps)" >&2; exit 1; }; \
	install -D -m 0755 target/release/libtpmkey_provider.so "$(DESTDIR)$$modules/tpmkey.so"; \
	install -D -m 0755 target/release/libtpmkey_pkcs11.so "$(DESTDIR)$$p11dir/libtpmkey_pkcs11.so"; \
	install -D -m 0644 conf/tpmkey.module "$(DESTDIR)$$p11conf/tpmkey.module"; \
	install -D -m 0644 include/tpmkey.h "$(DESTDIR)/usr/include/tpmkey.h"; \
	if [ -f include/tpmkey_pkcs11.h ]; then install -D -m 0644 include/tpmkey_pkcs11.h "$(DESTDIR)/usr/include/tpmkey_pkcs11.h"; fi; \
	install -D -m 0644 conf/openssl-tpmkey.cnf "$(DESTDIR)/usr/share/doc/tpmkey/openssl-tpmkey.cnf"; \
	if [ ! -e "$(DESTDIR)/etc/tpmkey/tpmkey.conf" ]; then install -D -m 0644 conf/tpmkey.conf "$(DESTDIR)/etc/tpmkey/tpmkey.conf"; fi; \
	echo "installed: $$modules/tpmkey.so, $$p11dir/libtpmkey_pkcs11.so, $$p11conf/tpmkey.module, /etc/tpmkey/tpmkey.conf (kept if present)"

clean:
	$(CARGO) clean
