# Thin wrapper: dependencies, build, run, test. The build itself is CMake.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CONFIG     ?=

.PHONY: all deps build build-asan run test test-release test-asan fuzz bench clean

all: build

deps:
	@./deploy/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

build-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSANITIZE=address,undefined >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)

# Starts rollbackd on its built-in defaults (or CONFIG=path/to/rollbackd.json).
run: build
	@echo "rollbackd: listening on 127.0.0.1:9097 (built-in defaults: rules from ./rules, dry-run on,"
	@echo "  no secret configured, so unauthenticated webhooks are accepted from loopback only)"
	@echo "  journal: ./var/journal.jsonl   read it: ./$(BUILD)/rollbackd audit show --journal var/journal.jsonl"
	@echo "  send a test alert:"
	@echo "    curl -sS -H 'Content-Type: application/json' --data-binary @tests/data/am_firing_3.json http://127.0.0.1:9097/v1/alerts"
	@echo "  signed (rollbackd sign + curl), once auth.hmac is configured with the key in hmac.key:"
	@echo "    sig=\$$(./$(BUILD)/rollbackd sign --secret-file hmac.key < tests/data/am_firing_3.json)"
	@echo "    curl -sS -H 'Content-Type: application/json' -H \"X-Rollbackd-Signature: \$$sig\" --data-binary @tests/data/am_firing_3.json http://127.0.0.1:9097/v1/alerts"
	./$(BUILD)/rollbackd serve $(if $(CONFIG),--config $(CONFIG))

test: test-release test-asan

test-release: build
	cd $(BUILD) && ctest --output-on-failure -j1

test-asan: build-asan
	cd $(ASAN_BUILD) && \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	ctest --output-on-failure -j1

# libFuzzer harnesses (clang); FUZZ_SECONDS per harness.
FUZZ_SECONDS ?= 60
fuzz: deps
	@cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DROLLBACKD_FUZZ=ON \
		-DSANITIZE=address,undefined >/dev/null
	@cmake --build build-fuzz -j$(JOBS) --target fuzz_payload fuzz_sighdr fuzz_json_diff
	for h in payload sighdr json_diff; do mkdir -p build-fuzz/corpus-$$h && \
		./build-fuzz/fuzz_$$h -max_total_time=$(FUZZ_SECONDS) build-fuzz/corpus-$$h \
		tests/fuzz/corpus/$$h || exit 1; done

bench: build
	@./deploy/install-deps.sh --bench
	./bench/intake.sh ./$(BUILD)/rollbackd

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
