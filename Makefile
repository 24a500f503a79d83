# SPDX-License-Identifier: MIT
#
# Thin wrapper over meson. Targets:
#   make              install missing deps, build, programs in build/bin/
#   make check        build with ASan+UBSan (clang) and run every test suite
#   make demo         the main walk-through
#   make chaos SEEDS=N  fault injection: N seeds of PER_SEED injections (default 20 x 10)
#   make bench        every benchmark, medians in build/bench/summary.json
#   make bench-memnode | bench-pager | bench-orchestrator | bench-vm | bench-migration
#        | bench-shared | bench-devices | bench-replicas
#                     one benchmark (results in build/bench/)
#   make bench-compare  every benchmark, then the table against bench/baseline.json
#   make clean
#
# Variables: SUITES="unit fuzz functional vm ui" limits `make check`.

BUILD    := build
REL      := $(BUILD)/release
CHK      := $(BUILD)/check
SUITES   ?= unit fuzz functional vm ui
MESON    := meson
PY       := /usr/bin/python3

.PHONY: all deps build check demo bench bench-memnode bench-pager bench-orchestrator clean

all: build

deps:
	@scripts/install-deps.sh

$(REL)/build.ninja: | deps
	@mkdir -p $(BUILD)
	@$(MESON) setup $(REL) -Dbuildtype=debugoptimized >$(BUILD)/setup-release.log 2>&1 || \
		{ cat $(BUILD)/setup-release.log; rm -rf $(REL); exit 1; }

build: deps $(REL)/build.ninja
	@ninja -C $(REL) --quiet
	@scripts/link-bins.sh $(REL) $(BUILD)/bin
	@scripts/build-guest.sh $(BUILD)/guest

$(CHK)/build.ninja: | deps
	@mkdir -p $(BUILD)
	@CC=clang $(MESON) setup $(CHK) -Dbuildtype=debug \
		-Db_sanitize=address,undefined -Db_lundef=false -Dfuzz=true -Dwerror_ci=true \
		>$(BUILD)/setup-check.log 2>&1 || { cat $(BUILD)/setup-check.log; rm -rf $(CHK); exit 1; }

check: build $(CHK)/build.ninja
	@ninja -C $(CHK) --quiet
	@scripts/link-bins.sh $(CHK) $(CHK)/bin
	@rc=0; $(MESON) test -C $(CHK) --print-errorlogs --no-rebuild \
		$(foreach s,$(SUITES),--suite $(s)) || rc=$$?; \
	$(PY) scripts/test-summary.py $(CHK)/meson-logs/testlog.json; exit $$rc

demo: build
	@scripts/demo.sh

# Each benchmark runs BENCH_REPS times (its own repetitions inside, for the
# VM ones); bench/gate.py keeps every run and takes medians.
BENCH_REPS ?= 5
GATE       := $(PY) bench/gate.py

bench: bench-memnode bench-pager bench-orchestrator bench-vm bench-migration bench-shared \
	bench-devices bench-replicas
	@$(GATE) summary

# `make bench` runs what the gate reads (bench/gate.py FIGURES), to stay
# within 15 minutes: bench-vm without remote_50, bench-devices without the
# two extra baselines (qemu-storage-daemon, our back end on a local file)
# and the random writes. Alone, `make bench-vm` and `make bench-devices`
# run everything; VMBENCH_ARGS and DEVBENCH_ARGS override either way.
bench: VMBENCH_ARGS ?= --configs plain,local,remote_100,remote_100_nowb,remote_25,remote_25_rep2
bench: DEVBENCH_ARGS ?= --backends ours,local,nbd --workloads randread_qd1,randread_qd32,seqread_1m
VMBENCH_ARGS  ?=
DEVBENCH_ARGS ?=

bench-memnode: build
	@$(GATE) run memnode --reps $(BENCH_REPS) -- \
		$(BUILD)/bin/disagg-memnode-bench --seconds 0.5 --json {json}

bench-pager: build
	@$(GATE) run pager --reps $(BENCH_REPS) -- $(BUILD)/bin/disagg-pagerbench --pin --json {json}

bench-orchestrator: build
	@$(GATE) run orchestrator --reps $(BENCH_REPS) -- \
		$(PY) bench/orchestrator/orchbench.py --targets --json {json}

# make bench-compare: every benchmark, then the table against
# bench/baseline.json; fails on a regression beyond tolerance.
# BENCH_RUN=0 compares the results already in build/bench.
BENCH_RUN ?= 1
.PHONY: bench-compare
bench-compare:
	@if [ "$(BENCH_RUN)" != 0 ]; then $(MAKE) --no-print-directory bench; else $(GATE) summary; fi
	@$(GATE) compare

clean:
	rm -rf $(BUILD)

.PHONY: bench-vm
bench-vm: build
	@$(GATE) run vm -- $(PY) bench/vm/vmbench.py $(VMBENCH_ARGS) --json {json}

.PHONY: bench-replicas
bench-replicas: build
	@$(GATE) run replicas -- $(PY) bench/vm/replbench.py --json {json}

.PHONY: bench-migration
bench-migration: build
	@$(GATE) run migration -- $(PY) bench/migration/migbench.py --json {json}

.PHONY: bench-shared
bench-shared: build
	@$(GATE) run shared -- $(PY) bench/shared/sharedbench.py --json {json}

.PHONY: bench-devices
bench-devices: build
	@$(GATE) run devices -- $(PY) bench/devices/devbench.py $(DEVBENCH_ARGS) --json {json}

# Fault injection with real guests (tests/chaos/chaos.py): seeds 1..SEEDS,
# PER_SEED injections each; records and the fault x outcome table in
# build/chaos.json and on standard output.
SEEDS    ?= 20
PER_SEED ?= 10
.PHONY: chaos
chaos: build
	@$(PY) tests/chaos/chaos.py --seeds $$(seq -s, 1 $(SEEDS)) --per-seed $(PER_SEED) \
		--json $(BUILD)/chaos.json
