#!/bin/bash
# SPDX-License-Identifier: MIT
#
# `make demo`: the main walk-through.
#
#   1. `disagg up`: an orchestrator, two compute nodes, two memory nodes and
#      a device node on loopback, with a fresh cluster key and TLS on the
#      fabric;
#   2. a slot with 512 MiB of RAM, half of it on the memory nodes: a stock
#      QEMU boots an unmodified Linux guest whose remote pages are served
#      over the network by the pager;
#   3. the guest writes and verifies a memory pattern;
#   4. the slot grows by 256 MiB while it runs (hot-added sections), the
#      guest uses the new memory; the per-node memory map is shown;
#   5. it shrinks back, the guest's data is intact;
#   6. a volume on the device node is attached to the running slot as a
#      disk (the compute node is its vhost-user back end); the guest writes
#      and verifies it;
#   7. it moves to the other compute node while it runs (its local half goes
#      to the memory nodes first; only CPU and device state travel; the disk
#      comes along), then its memory moves from one memory node to the
#      other, and the guest verifies its memory and its disk after each move;
#   8. the slot is deleted and the cluster stopped.
#
# Each step prints what it did and how long it took. DEMO_KEEP=1 leaves the
# cluster running at the end (stop it with `build/bin/disagg down --data DIR`).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/build/bin
export DISAGG_DATA=${DISAGG_DATA:-$(mktemp -d /tmp/disagg-demo.XXXXXX)}
UP=0

cleanup() {
	local rc=$?
	if [ "$UP" = 1 ] && [ -z "${DEMO_KEEP:-}" ]; then
		"$BIN/disagg" down >/dev/null 2>&1 || true
	fi
	if [ $rc -ne 0 ]; then
		echo "demo FAILED (exit $rc); logs: $DISAGG_DATA/logs" >&2
	fi
}
trap cleanup EXIT

step() {
	STEP_T0=$(date +%s%N)
	printf '\n\033[1m==> %s\033[0m\n' "$*"
}
done_step() {
	printf '    (%d ms)\n' $((($(date +%s%N) - STEP_T0) / 1000000))
}
run() {
	printf '    $ %s\n' "$*"
	"$@" 2>&1 | sed 's/^/    /'
	return "${PIPESTATUS[0]}"
}
disagg() { "$BIN/disagg" "$@"; }

step "start a one-machine cluster: orchestrator, 2 compute nodes, 2 memory nodes (1 GiB each), a device node"
run disagg up --memnodes 2 --computes 2 --pool 1G
UP=1
run disagg node ls
done_step

step "create slot 'web': 1 vCPU, 512 MiB, 50% of it on memory nodes, 128 MiB local cache for the remote half"
run disagg slot create web --vcpus 1 --memory 512M --remote 50 --cache 128M
run disagg slot show web
done_step

step "the guest booted (serial console, last lines)"
disagg slot console web | grep -E 'Linux version|Memory:|disagg-guest-init' | tail -4 | sed 's/^/    /'
done_step

step "inside the guest: write 256 MiB of patterned memory and verify it"
run disagg slot guest web MEMINFO
run disagg slot guest web "FILL 1 7 256"
run disagg slot guest web "VERIFY 1"
done_step

step "grow the running slot by 256 MiB (two 128 MiB sections hot-plugged, onlined by the guest)"
run disagg slot resize web --memory 768M
run disagg slot guest web MEMINFO
done_step

step "use the new memory: another 256 MiB region, then verify both"
run disagg slot guest web "FILL 2 9 256"
run disagg slot guest web "VERIFY 2"
run disagg slot guest web "VERIFY 1"
done_step

step "where the slot's memory lives: sections per memory node"
run disagg section ls
run disagg node ls
done_step

step "shrink back to 512 MiB (the guest gives the hot-plugged memory back)"
run disagg slot guest web "FREE 2"
run disagg slot resize web --memory 512M
run disagg slot guest web MEMINFO
run disagg slot guest web "VERIFY 1"
done_step

slot_field() {   # slot_field EXPR: a Python expression over the slot's JSON `s`
	disagg --json slot show web | python3 -c "import json, sys; s = json.load(sys.stdin); print($1)"
}

step "a remote disk: a 64 MiB volume on the device node, attached to the running slot (the guest's virtio-blk driver takes it; the compute node serves it from the device node)"
run disagg volume create data1 64M
run disagg device attach web data1
for _ in $(seq 100); do   # the guest's PCI hot-plug takes a moment
	disagg slot guest web DISKS | grep -q 'vda' && break
	sleep 0.3
done
run disagg slot guest web DISKS
run disagg slot guest web "DWRITE vda 0 33554432 41"
run disagg slot guest web "DFLUSH vda"
run disagg slot guest web "DVERIFY vda 0 33554432 41"
done_step

step "move the running slot to the other compute node (its local half goes to the memory nodes first; QEMU sends only CPU and device state; the disk comes along)"
dst=$((3 - $(slot_field 's["compute"]')))
run disagg slot migrate web --to "$dst"
run disagg slot guest web "VERIFY 1"
run disagg slot guest web "DVERIFY vda 0 33554432 41"
run disagg device ls
done_step

step "move the slot's memory to the other memory node while the guest runs"
from=$(slot_field 's["sections"][0]["memnode"]')
run disagg slot migrate-memory web --from "$from" --to $((201 - from))
run disagg slot guest web "VERIFY 1"
run disagg slot guest web "DVERIFY vda 0 33554432 41"
run disagg section ls
done_step

step "delete the slot: the VM stops, its sections return to the memory nodes, its disk is detached (the volume keeps its data)"
run disagg slot delete web
run disagg volume delete data1
run disagg node ls
done_step

if [ -n "${DEMO_KEEP:-}" ]; then
	printf '\ndemo finished; the cluster keeps running (disagg down --data %s)\n' "$DISAGG_DATA"
	exit 0
fi
step "stop the cluster"
run disagg down
UP=0
done_step

printf '\ndemo finished: every page verified.\n'
