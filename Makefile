# SPDX-License-Identifier: MIT
#
# Thin wrapper over meson. Targets:
#   make              install missing deps, build, programs in build/bin/
#   make check        build with ASan+UBSan (clang) and run every test suite
#   make demo         the main walk-through
#   make chaos SEEDS=N  fault injection: N seeds of PER_SEED injections (default 20 x 10)
#   make bench-memnode | bench-pager | bench-orchestrator | bench-vm | bench-migration
#                     benchmarks (results in build/bench/)
#   make clean
#
# Variables: SUITES="unit fuzz functional vm" limits `make check`.

BUILD    := build
REL      := $(BUILD)/release
CHK      := $(BUILD)/check
SUITES   ?= unit fuzz functional vm
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

bench: bench-memnode bench-pager

bench-memnode: build
	@mkdir -p $(BUILD)/bench
	@$(BUILD)/bin/disagg-memnode-bench --json $(BUILD)/bench/memnode.json

bench-pager: build
	@mkdir -p $(BUILD)/bench
	@$(BUILD)/bin/disagg-pagerbench --json $(BUILD)/bench/pager.json

bench-orchestrator: build
	@mkdir -p $(BUILD)/bench
	@$(PY) bench/orchestrator/orchbench.py --targets --json $(BUILD)/bench/orchestrator.json

clean:
	rm -rf $(BUILD)

.PHONY: bench-vm
bench-vm: build
	@mkdir -p $(BUILD)/bench
	@$(PY) bench/vm/vmbench.py --json $(BUILD)/bench/vm.json

.PHONY: bench-migration
bench-migration: build
	@mkdir -p $(BUILD)/bench
	@$(PY) bench/migration/migbench.py --json $(BUILD)/bench/migration.json

# Fault injection with real guests (tests/chaos/chaos.py): seeds 1..SEEDS,
# PER_SEED injections each; records and the fault x outcome table in
# build/chaos.json and on standard output.
SEEDS    ?= 20
PER_SEED ?= 10
.PHONY: chaos
chaos: build
	@$(PY) tests/chaos/chaos.py --seeds $$(seq -s, 1 $(SEEDS)) --per-seed $(PER_SEED) \
		--json $(BUILD)/chaos.json
