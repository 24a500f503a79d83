#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Build the test and demo guest: build/guest/vmlinuz and build/guest/initrd.img
# from Debian packages (linux-image-cloud-amd64's kernel, busybox-static) plus
# disagg-guest when it has been built (build/bin/disagg-guest).
#
# The result is cached: nothing is rebuilt while the inputs (this script, the
# kernel package, busybox, disagg-guest) are unchanged.
#
#   scripts/build-guest.sh [OUTDIR]      default OUTDIR: build/guest
#
# Boot it with, for example:
#   qemu-system-x86_64 -accel tcg -m 512M -nographic -kernel build/guest/vmlinuz \
#     -initrd build/guest/initrd.img -append "console=ttyS0 memhp_default_state=online_movable"
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-build/guest}
CACHE=$OUT/cache
mkdir -p "$CACHE"

# Virtio modules the guest needs, in any order: dependencies are resolved
# from modules.dep so each module loads after the ones it needs.
MODULES="virtio_pci virtio_blk virtio_net virtio_console virtio_mem virtio_balloon"

log() { echo "build-guest: $*" >&2; }

kpkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
	sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -1)
if [ -z "$kpkg" ]; then
	log "updating the package lists to find linux-image-cloud-amd64"
	apt-get update -qq
	kpkg=$(apt-cache depends linux-image-cloud-amd64 |
		sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -1)
fi
[ -n "$kpkg" ] || { log "cannot resolve the cloud kernel package"; exit 1; }
kver=${kpkg#linux-image-}

guest_bin=build/bin/disagg-guest
busybox=/bin/busybox
[ -x "$busybox" ] || { log "busybox-static is not installed (scripts/install-deps.sh)"; exit 1; }

stamp=$( {
	sha256sum "$0" "$busybox"
	echo "$kpkg $(apt-cache policy "$kpkg" | sed -n 's/ *Candidate: //p')"
	if [ -e "$guest_bin" ]; then sha256sum "$(readlink -f "$guest_bin")"; fi
} | sha256sum | cut -d' ' -f1)
if [ -f "$OUT/.stamp" ] && [ "$(cat "$OUT/.stamp")" = "$stamp" ] &&
	[ -f "$OUT/vmlinuz" ] && [ -f "$OUT/initrd.img" ]; then
	exit 0
fi

log "building the guest image (kernel $kver)"
deb=$(ls "$CACHE"/"$kpkg"_*.deb 2>/dev/null | head -1 || true)
if [ -z "$deb" ]; then
	(cd "$CACHE" && apt-get download "$kpkg" 2>/dev/null) ||
		(apt-get update -qq && cd "$CACHE" && apt-get download "$kpkg")
	deb=$(ls "$CACHE"/"$kpkg"_*.deb | head -1)
fi

work=$(mktemp -d "$OUT/work.XXXXXX")
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$deb" "$work/k"
depmod -b "$work/k" "$kver"
moddir=$work/k/lib/modules/$kver

# Load order: depth-first over modules.dep, dependencies first, no repeats.
declare -A seen=()
order=()
visit() {
	local path=$1 deps dep
	[ -n "${seen[$path]:-}" ] && return
	seen[$path]=1
	deps=$(sed -n "s|^$path: *||p" "$moddir/modules.dep")
	for dep in $deps; do visit "$dep"; done
	order+=("$path")
}
for m in $MODULES; do
	path=$(grep -E "(^|/)${m}\.ko(\.[a-z]+)?:" "$moddir/modules.dep" | cut -d: -f1 | head -1)
	[ -n "$path" ] || { log "module $m not found in $kver"; exit 1; }
	visit "$path"
done

root=$work/root
mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,run,etc,lib/modules}
cp "$busybox" "$root/bin/busybox"
for app in sh mount umount insmod mkdir cat echo ls sleep poweroff reboot grep sed \
	free dmesg mdev ln sync ip udhcpc setsid ps kill hostname; do
	ln -sf busybox "$root/bin/$app"
done
: >"$root/etc/modules.order"
for path in "${order[@]}"; do
	cp "$moddir/$path" "$root/lib/modules/"
	basename "$path" >>"$root/etc/modules.order"
done
if [ -e "$guest_bin" ]; then
	cp "$(readlink -f "$guest_bin")" "$root/bin/disagg-guest"
fi

# udhcpc's hook (/init names it with -s): configure eth0 with the lease.
mkdir -p "$root/etc/udhcpc"
cat >"$root/etc/udhcpc/default.script" <<'DHCP'
#!/bin/sh
# udhcpc calls this with deconfig, bound, renew, leasefail or nak; the
# lease is in the environment (interface, ip, mask, router, dns).
case "$1" in
deconfig)
	ip addr flush dev "$interface"
	ip link set "$interface" up
	;;
bound|renew)
	ip addr flush dev "$interface"
	ip addr add "$ip/${mask:-24}" dev "$interface"
	for gw in $router; do
		ip route replace default via "$gw" dev "$interface"
		break
	done
	: >/etc/resolv.conf
	for d in $dns; do echo "nameserver $d" >>/etc/resolv.conf; done
	echo "disagg-guest-init: $interface $ip/${mask:-24} gw ${router:--}" >/dev/console
	;;
esac
exit 0
DHCP
chmod +x "$root/etc/udhcpc/default.script"

cat >"$root/init" <<'INIT'
#!/bin/sh
# disagg guest init: mount the basics, load virtio modules in dependency
# order, online hot-added memory as movable, bring eth0 up by DHCP in the
# background, offer a shell on the serial console (after Enter), then hand
# over to disagg-guest (or to a shell on the console when it is absent).
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null || mdev -s
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
while read -r m; do
	insmod "/lib/modules/$m" 2>/dev/null || echo "init: cannot load $m"
done </etc/modules.order
for b in /sys/devices/system/memory/memory*/state; do
	[ "$(cat "$b")" = offline ] && echo online_movable >"$b" 2>/dev/null
done
echo "disagg-guest-init: up, $(grep MemTotal /proc/meminfo)"
ip link set lo up
if [ -e /sys/class/net/eth0 ]; then
	# The network comes up meanwhile: boot does not wait for the lease.
	ip link set eth0 up
	udhcpc -f -S -i eth0 -s /etc/udhcpc/default.script -t 20 -T 1 >/dev/null 2>&1 </dev/null &
fi
if [ -x /bin/disagg-guest ]; then
	# A root shell on the serial console once someone presses Enter there
	# (`disagg slot console`): the log stays free of prompts until then.
	echo "disagg-guest-init: press Enter for a shell on this console"
	setsid -c sh -c 'read -r _; exec sh -i' </dev/ttyS0 >/dev/ttyS0 2>&1 &
	exec /bin/disagg-guest
fi
if grep -q 'disagg.poweroff' /proc/cmdline; then
	poweroff -f
fi
exec sh
INIT
chmod +x "$root/init"

(cd "$root" && find . | cpio -o -H newc --quiet) | gzip -1 >"$work/initrd.img"
cp "$work/k/boot/vmlinuz-$kver" "$work/vmlinuz"
mv "$work/vmlinuz" "$OUT/vmlinuz"
mv "$work/initrd.img" "$OUT/initrd.img"
echo "$stamp" >"$OUT/.stamp"
log "wrote $OUT/vmlinuz and $OUT/initrd.img ($(du -h "$OUT/initrd.img" | cut -f1))"
