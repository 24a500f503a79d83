#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Install the Debian 12 packages that building, testing and running disagg
# need. Idempotent: it asks apt only for what is missing, runs
# `apt-get update` only then, and prints nothing when all is present.
#
#   scripts/install-deps.sh            build + test dependencies
#   scripts/install-deps.sh --image    only what scripts/build-image.sh needs
#                                      (mmdebstrap, mkfs.ext4, qemu-img), and
#                                      what booting the image by hand needs
#                                      (a NoCloud seed: cloud-image-utils)
#   scripts/install-deps.sh --list [--image]  print the package list and exit
set -eu

PKGS="
build-essential meson ninja-build pkg-config clang libclang-rt-14-dev
libssl-dev libjansson-dev libmicrohttpd-dev libsqlite3-dev
libcurl4-openssl-dev liburing-dev
python3 python3-pytest
qemu-system-x86 qemu-utils busybox-static cpio kmod xz-utils zstd
procps iproute2 curl systemd
dosfstools mtools
chromium chromium-driver python3-selenium
"

# The Debian guest image (scripts/build-image.sh) is optional: `make build`
# does not pull these in.
IMAGE_PKGS="
mmdebstrap e2fsprogs qemu-utils cloud-image-utils ca-certificates
"

list=0
for a in "$@"; do
	case "$a" in
	--list) list=1 ;;
	--image) PKGS=$IMAGE_PKGS ;;
	*) echo "install-deps: unknown option $a" >&2; exit 2 ;;
	esac
done

if [ "$list" = 1 ]; then
	echo $PKGS
	exit 0
fi

missing=""
for p in $PKGS; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$st" in
	*"install ok installed"*) ;;
	*) missing="$missing $p" ;;
	esac
done

[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO=sudo
	else
		echo "install-deps: missing packages:$missing (run as root)" >&2
		exit 1
	fi
else
	SUDO=
fi

echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# Another apt run (unattended upgrades, a second install) holds the locks
# for a while: wait for it rather than fail.
LOCKWAIT="-o DPkg::Lock::Timeout=600"
# shellcheck disable=SC2086
$SUDO apt-get $LOCKWAIT update -qq
# shellcheck disable=SC2086
$SUDO apt-get $LOCKWAIT install -y -qq --no-install-recommends $missing >/dev/null
