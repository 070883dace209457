# Makefile -- thin wrapper over CMake (GNU make). The real build is
# CMakeLists.txt; this file only gives the everyday commands short names.
#
#   make            release build in build/
#   make run        install what is missing, build, run examples/basic on :8199
#   make run-https  the same, examples/https on :8200 (CERT=F KEY=F, or self-signed)
#   make test       install what is missing; gcc -Werror build (build-gcc/);
#                   ASan+UBSan build (build-asan/); ctest; pytest tests/integration
#                   once per backend (TEST_BACKENDS), two tests at a time; every
#                   libFuzzer harness for 20 s (build-fuzz/)
#   make test-gcc   gcc -Werror build only (release flags, so NDEBUG too)
#   make fuzz       the libFuzzer harnesses, FUZZ_SECONDS (60) each; crashes
#                   in build-fuzz/crashes/ (tests/fuzz/README.md)
#   make test-valgrind  plain debug build (build-valgrind/); pytest
#                   tests/integration with every server under valgrind memcheck
#   make bench      install what is missing, release build, bench/run.py, bench/report.py
#   make soak       install what is missing, release build, bench/soak.py
#   make install    release build, install under PREFIX (default /usr/local)
#   make clean      remove the build directories
#   make format     clang-format -i over the C sources
#
# Each recipe runs its steps in order on purpose (deps, then build, then run),
# so `make -j` cannot reorder them.

SHELL := /bin/bash
# Quieter recursive makes (CMake's generated Makefiles).
MAKEFLAGS += --no-print-directory
.DEFAULT_GOAL := all

PREFIX ?= /usr/local
JOBS ?= 2
# Debian's python3, which has python3-pytest and python3-requests; the
# python3 first on PATH may be another build without them.
PYTHON := /usr/bin/python3
DEPS := bash scripts/deps.sh

BUILD_DIR := build
ASAN_DIR := build-asan
WARN_DIR := build-gcc
FUZZ_DIR := build-fuzz
VALGRIND_DIR := build-valgrind

# make fuzz: seconds per harness; harnesses run $(JOBS) at a time, one core
# each. make test fuzzes each harness for FUZZ_TEST_SECONDS.
FUZZ_SECONDS ?= 60
FUZZ_TEST_SECONDS := 20

# Sanitizer settings for everything `make test` runs (unit tests, and the
# servers the integration tests start). Override on the command line.
ASAN_OPTIONS ?= detect_leaks=1:abort_on_error=0
UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1
SAN_ENV := ASAN_OPTIONS=$(ASAN_OPTIONS) UBSAN_OPTIONS=$(UBSAN_OPTIONS)

CMAKE_EXTRA ?=

# make test runs the black-box suite once on each backend (GRACE_BACKEND),
# PYTEST_JOBS tests at a time (pytest-xdist; every test finds its own
# ports). Each backend is checked first (scripts/backend-check.sh): where
# io_uring is forbidden (a container's seccomp profile) make test fails
# with grace's reason in one line; make test TEST_BACKENDS=epoll runs the
# rest there.
TEST_BACKENDS ?= epoll io_uring
PYTEST_JOBS ?= $(JOBS)

define release-build
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release $(CMAKE_EXTRA)
	cmake --build $(BUILD_DIR) -j$(JOBS)
endef

define gcc-build
	cmake -S . -B $(WARN_DIR) -DCMAKE_C_COMPILER=gcc -DCMAKE_BUILD_TYPE=Release \
	    -DGRACE_WERROR=ON -DGRACE_SANITIZE=OFF $(CMAKE_EXTRA)
	cmake --build $(WARN_DIR) -j$(JOBS)
endef

define asan-build
	cmake -S . -B $(ASAN_DIR) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
	    -DGRACE_WERROR=ON -DGRACE_SANITIZE=ON $(CMAKE_EXTRA)
	cmake --build $(ASAN_DIR) -j$(JOBS)
endef

# libFuzzer needs clang; RelWithDebInfo for speed (the fuzz section of
# CMakeLists.txt keeps asserts on). Only the harnesses are built.
define fuzz-build
	cmake -S . -B $(FUZZ_DIR) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	    -DGRACE_FUZZ=ON -DGRACE_EXAMPLES=OFF -DGRACE_TESTS=OFF $(CMAKE_EXTRA)
	cmake --build $(FUZZ_DIR) -j$(JOBS) --target \
	    $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
endef

.PHONY: all build run run-https test test-gcc fuzz test-valgrind bench soak install clean format \
        help

all build:
	$(release-build)

run:
	$(DEPS) build
	$(release-build)
	exec ./$(BUILD_DIR)/examples/basic --port 8199 --master

# HTTPS on :8200 (the seed's second example). Without CERT and KEY, a test CA
# and a certificate for localhost/127.0.0.1/::1 are made once in build/certs/
# (scripts/selfsigned.sh); clients trust build/certs/ca.pem, e.g.
# curl --cacert build/certs/ca.pem https://localhost:8200/
CERT ?=
KEY ?=
CERT_DIR := $(BUILD_DIR)/certs
run-https:
	$(DEPS) build
	$(release-build)
	@if [ -n "$(CERT)" ] && [ -n "$(KEY)" ]; then :; \
	 elif [ -n "$(CERT)$(KEY)" ]; then echo "make run-https: give both CERT=FILE and KEY=FILE" >&2; exit 2; \
	 else bash scripts/selfsigned.sh $(CERT_DIR) && \
	      echo "make run-https: try curl --cacert $(CERT_DIR)/ca.pem https://localhost:8200/"; fi
	exec ./$(BUILD_DIR)/examples/https --port 8200 \
	    --cert "$(if $(CERT),$(CERT),$(CERT_DIR)/cert.pem)" --key "$(if $(KEY),$(KEY),$(CERT_DIR)/key.pem)"

# pytest exits 5 when it collects no test; that fails `make test` like any
# other non-zero status (there must be integration tests). Both backends'
# suites run even if the first fails; then make fails.
#
# The fuzz step is a step of its own here, not a ctest entry: the harnesses
# need their own clang build (-fsanitize=fuzzer, optimised: build-asan is -O0,
# which would fuzz several times slower), and a time-boxed run is not a unit
# test. It comes last, so a finding never hides a failing test, and costs
# about a minute and a half: 20 s per harness, two at a time on two cores.
test:
	$(DEPS) test
	$(gcc-build)
	$(asan-build)
	$(SAN_ENV) ctest --test-dir $(ASAN_DIR) --output-on-failure
	@rc=0; for b in $(TEST_BACKENDS); do \
	    echo "make test: tests/integration with GRACE_BACKEND=$$b"; \
	    if ! $(SAN_ENV) bash scripts/backend-check.sh $(ASAN_DIR) $$b; then rc=1; \
	        echo "make test: its suite cannot run here (make test TEST_BACKENDS=epoll runs the rest)" >&2; \
	        continue; fi; \
	    $(SAN_ENV) GRACE_BACKEND=$$b GRACE_BUILD_DIR=$(CURDIR)/$(ASAN_DIR) $(PYTHON) -m pytest -q \
	        -n $(PYTEST_JOBS) tests/integration || { r=$$?; rc=$$r; \
	        [ $$r -ne 5 ] || echo "make test: pytest collected no integration test" >&2; \
	        echo "make test: tests/integration failed with GRACE_BACKEND=$$b" >&2; }; \
	done; exit $$rc
	$(fuzz-build)
	bash tests/fuzz/run.sh $(FUZZ_DIR) $(FUZZ_TEST_SECONDS) $(JOBS)

test-gcc:
	$(DEPS) test
	$(gcc-build)

# New inputs go to build-fuzz/corpus/NAME (scratch, kept between runs), never
# into tests/fuzz/corpus; fails if any harness finds a crash.
fuzz:
	$(DEPS) test
	$(fuzz-build)
	bash tests/fuzz/run.sh $(FUZZ_DIR) $(FUZZ_SECONDS) $(JOBS)

# Not part of `make test` (about 15 minutes on two cores): the black-box suite
# once more, against a build without sanitizers, every server under valgrind
# memcheck (tests/integration/conftest.py, GRACE_VALGRIND). Errors or definite
# leaks fail the test that started the server; -rs lists the few tests
# skipped under valgrind, with their reasons. On epoll: valgrind 3.19 runs
# io_uring_enter(2) as a call that never blocks, so a loop waiting in it
# keeps every other thread (signals too) from running.
test-valgrind:
	$(DEPS) test
	cmake -S . -B $(VALGRIND_DIR) -DCMAKE_C_COMPILER=gcc -DCMAKE_BUILD_TYPE=Debug \
	    -DGRACE_SANITIZE=OFF -DGRACE_WERROR=OFF $(CMAKE_EXTRA)
	cmake --build $(VALGRIND_DIR) -j$(JOBS)
	GRACE_VALGRIND=1 GRACE_BACKEND=epoll GRACE_BUILD_DIR=$(CURDIR)/$(VALGRIND_DIR) \
	    $(PYTHON) -m pytest -q -rs tests/integration

# About 5.5 minutes on a quiet machine with one grace backend (epoll), 8 with
# two (BENCH_QUICK=1: a smoke run of under 2; docs/benchmarks.md). Raw results
# go to build/bench-results/DATE.json (latest.json points at the newest); the
# report step prints the tables and draws docs/restart-under-load.png from it.
bench:
	$(DEPS) bench
	$(release-build)
	GRACE_BUILD_DIR=$(CURDIR)/$(BUILD_DIR) $(PYTHON) bench/run.py
	$(PYTHON) bench/report.py $(BUILD_DIR)/bench-results/latest.json

# Not part of `make test`: about 1.5 minutes of load, 100 graceful restarts of
# grace, then 100 reloads of nginx (bench/soak.py says what it measures).
soak:
	$(DEPS) bench
	$(release-build)
	GRACE_BUILD_DIR=$(CURDIR)/$(BUILD_DIR) $(PYTHON) bench/soak.py

install:
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=$(PREFIX) $(CMAKE_EXTRA)
	cmake --build $(BUILD_DIR) -j$(JOBS)
	cmake --install $(BUILD_DIR) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR) $(WARN_DIR) $(FUZZ_DIR) $(VALGRIND_DIR) build-clang

FORMAT_FILES = $(wildcard src/*.c src/*.h include/*.h examples/*.c tests/unit/*.c tests/fuzz/*.c \
                           tools/*.c tools/*.h)
format:
	$(if $(FORMAT_FILES),clang-format -i $(FORMAT_FILES),@echo "format: no files")

help:
	@sed -n '4,20s/^# \{0,1\}//p' $(firstword $(MAKEFILE_LIST))
