#!/bin/sh
# SPDX-License-Identifier: MIT
# Collect the programs of a meson build dir into one bin/ folder (symlinks).
#   scripts/link-bins.sh BUILDDIR BINDIR
set -eu
src=$1 dst=$2
mkdir -p "$dst"
find "$src/src" "$src/bench" -maxdepth 3 -type f \( -name 'disagg*' -o -name 'libdisagg-shim.so' \) \
	-perm -u+x 2>/dev/null | while read -r f; do
	case "$f" in *.p/*) continue ;; esac
	ln -sf "$(realpath "$f")" "$dst/$(basename "$f")"
done
