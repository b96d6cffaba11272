# Thin wrapper: dependencies, build, run, test. The build itself is CMake.
# Every build here is warning-free with -Werror (-DROLLBACKD_WERROR=ON); a
# plain `cmake -S . -B b && cmake --build b` (a packager's) does not use it.
BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CONFIG     ?=
CMAKE_OPTS ?= -DROLLBACKD_WERROR=ON
# no "Entering directory" lines from the makefiles cmake --build runs
MAKEFLAGS  += --no-print-directory

.PHONY: all deps build build-daemon build-asan build-tsan run test test-release test-asan \
	test-tsan test-clang test-all test-compile test-format fuzz bench clean

all: build

deps:
	@./deploy/install-deps.sh

# $(call configure,DIR,CC,BUILD_TYPE[,more cmake options]); CC counts when DIR is new
, := ,
configure = CC=$(2) cmake -S . -B $(1) -DCMAKE_BUILD_TYPE=$(3) $(CMAKE_OPTS) $(4) >/dev/null

build: deps
	@$(call configure,$(BUILD),gcc,RelWithDebInfo)
	@cmake --build $(BUILD) -j$(JOBS)

# Only the daemon, for `make run`.
build-daemon: deps
	@$(call configure,$(BUILD),gcc,RelWithDebInfo)
	@cmake --build $(BUILD) -j$(JOBS) --target rollbackd

build-asan: deps
	@$(call configure,$(ASAN_BUILD),gcc,Debug,-DSANITIZE=address$(,)undefined)
	@cmake --build $(ASAN_BUILD) -j$(JOBS)

# ThreadSanitizer: the daemon only (the TSan step runs the integration suite).
build-tsan: deps
	@$(call configure,$(TSAN_BUILD),clang,RelWithDebInfo,-DSANITIZE=thread)
	@cmake --build $(TSAN_BUILD) -j$(JOBS) --target rollbackd

FIRST_ALERT := tests/data/am_first_alert.json

# Starts rollbackd on its built-in defaults (or CONFIG=path/to/rollbackd.json).
run: build-daemon
	@echo "rollbackd: listening on 127.0.0.1:9097 (built-in defaults: rules from ./rules, dry-run on,"
	@echo "  no secret configured, so unauthenticated webhooks are accepted from loopback only)"
	@echo "  journal: ./var/journal.jsonl"
	@echo "  first alert (RollbackServiceDown for checkout; README.md \"First alert\"), from another terminal:"
	@echo "    curl -sS -H 'Content-Type: application/json' --data-binary @$(FIRST_ALERT) http://127.0.0.1:9097/v1/alerts"
	@echo "    curl -sS http://127.0.0.1:9097/v1/incidents"
	@echo "    ./$(BUILD)/rollbackd test-rules --rules rules --alerts $(FIRST_ALERT)"
	@echo "    ./$(BUILD)/rollbackd audit show --journal var/journal.jsonl"
	@echo "  signed (rollbackd sign + curl), once auth.hmac is configured with the key in hmac.key:"
	@echo "    sig=\$$(./$(BUILD)/rollbackd sign --secret-file hmac.key < $(FIRST_ALERT))"
	@echo "    curl -sS -H 'Content-Type: application/json' -H \"X-Rollbackd-Signature: \$$sig\" --data-binary @$(FIRST_ALERT) http://127.0.0.1:9097/v1/alerts"
	./$(BUILD)/rollbackd serve $(if $(CONFIG),--config $(CONFIG))

# CI (.ci/run). gcc and clang, Debug and Release, each warning-free with
# -Werror; unit, fuzz corpora, rules and integration on gcc RelWithDebInfo;
# the full suite (e2e included) under ASan+UBSan; the unit suite on clang
# Release; the integration suite under TSan with 4 workers; clang-format
# (.ci/check-format). ctest -j2: the integration and e2e entries (each
# tests/run_suite.py, modules side by side) overlap. README.md says how long.
test: test-format test-compile test-release test-asan test-clang test-tsan

test-release: build
	cd $(BUILD) && ctest --output-on-failure -j2 -LE e2e

# Every test, e2e included.
test-all: build
	cd $(BUILD) && ctest --output-on-failure -j2

test-asan: build-asan
	cd $(ASAN_BUILD) && \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	ctest --output-on-failure -j2

test-clang: deps
	@$(call configure,build-clang-release,clang,Release)
	@cmake --build build-clang-release -j$(JOBS)
	cd build-clang-release && ctest --output-on-failure -j2 -L unit

# Reports go to files (TSAN_OPTIONS log_path) so that none is lost in a test's
# stderr handling; any report fails the step and is printed. The suite runs
# directly (not through ctest, whose timeout is sized for uninstrumented runs).
test-tsan: build-tsan
	@rm -f $(TSAN_BUILD)/tsan.*
	ROLLBACKD_BIN=$(CURDIR)/$(TSAN_BUILD)/rollbackd ROLLBACKD_SRC=$(CURDIR) \
	ROLLBACKD_TEST_WORKERS=4 ROLLBACKD_TEST_TIMEOUT_SCALE=3 \
	TSAN_OPTIONS="log_path=$(CURDIR)/$(TSAN_BUILD)/tsan second_deadlock_stack=1" \
	python3 tests/run_suite.py tests/integration
	@if ls $(TSAN_BUILD)/tsan.* >/dev/null 2>&1; then \
		cat $(TSAN_BUILD)/tsan.*; echo "test-tsan: ThreadSanitizer reports above" >&2; exit 1; fi

# The build types not run above, compiled only: the daemon and its library
# (the tests' own code is compiled, -Werror, by gcc and clang in the builds
# that run them).
test-compile: deps
	@$(call configure,build-gcc-debug,gcc,Debug)
	@cmake --build build-gcc-debug -j$(JOBS) --target rollbackd
	@$(call configure,build-gcc-release,gcc,Release)
	@cmake --build build-gcc-release -j$(JOBS) --target rollbackd
	@$(call configure,build-clang-debug,clang,Debug)
	@cmake --build build-clang-debug -j$(JOBS) --target rollbackd

test-format:
	@./.ci/check-format

# libFuzzer harnesses (clang); FUZZ_SECONDS per harness.
FUZZ_SECONDS ?= 60
fuzz: deps
	@cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DROLLBACKD_FUZZ=ON \
		-DSANITIZE=address,undefined $(CMAKE_OPTS) >/dev/null
	@cmake --build build-fuzz -j$(JOBS) --target fuzz_payload fuzz_sighdr fuzz_json_diff
	for h in payload sighdr json_diff; do mkdir -p build-fuzz/corpus-$$h && \
		./build-fuzz/fuzz_$$h -max_total_time=$(FUZZ_SECONDS) build-fuzz/corpus-$$h \
		tests/fuzz/corpus/$$h || exit 1; done

bench: build
	@./deploy/install-deps.sh --bench
	./bench/intake.sh ./$(BUILD)/rollbackd

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) build-fuzz build-clang-release build-gcc-debug \
		build-gcc-release build-clang-debug
