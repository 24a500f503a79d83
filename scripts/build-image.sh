#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Build a Debian 12 (bookworm) cloud guest image for disagg VMs:
#
#   OUTDIR/debian-12.ext4   the root filesystem (raw ext4, label "root", sparse)
#   OUTDIR/vmlinuz          the kernel of the tree (linux-image-cloud-amd64)
#   OUTDIR/initrd.img       its initramfs (virtio_pci, virtio_blk, ext4 in it)
#   OUTDIR/image.json       what was built: sizes, kernel version, packages
#
# The tree is made by mmdebstrap and the filesystem by `mkfs.ext4 -d`: no
# loop device and no mount of the image. The guest boots with
#   -kernel OUTDIR/vmlinuz -initrd OUTDIR/initrd.img
#   -append 'root=LABEL=root console=ttyS0'
# and reads cloud-init's NoCloud seed (a disk labelled CIDATA) if there is
# one. Package downloads are kept in OUTDIR/cache for the next build.
#
#   scripts/build-image.sh [--force] [--size SIZE] [--mirror URL] OUTDIR
#
# A finished image in OUTDIR is reused unless --force. Needs root (mmdebstrap
# installs the packages in a chroot) and the packages of
# `scripts/install-deps.sh --image`. docs/images.md has the details.
set -euo pipefail

NAME=debian-12
SUITE=bookworm
SIZE=2G
MIRROR=
FORCE=0

usage() {
	sed -n 's/^#   scripts/scripts/p' "$0" >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case "$1" in
	--force) FORCE=1 ;;
	--size) [ $# -ge 2 ] || usage; SIZE=$2; shift ;;
	--mirror) [ $# -ge 2 ] || usage; MIRROR=$2; shift ;;
	-h|--help) usage ;;
	-*) echo "build-image: unknown option $1" >&2; usage ;;
	*) [ -z "${OUT:-}" ] || usage; OUT=$1 ;;
	esac
	shift
done
[ -n "${OUT:-}" ] || usage

log() { echo "build-image: $*"; }
die() { echo "build-image: error: $*" >&2; exit 1; }

IMG=$OUT/$NAME.ext4
if [ "$FORCE" = 0 ] && [ -f "$OUT/image.json" ] && [ -f "$IMG" ] &&
	[ -f "$OUT/vmlinuz" ] && [ -f "$OUT/initrd.img" ]; then
	log "$IMG is already built (--force to build it again)"
	exit 0
fi

[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap installs packages in a chroot); try sudo"
for t in mmdebstrap mkfs.ext4 e2fsck debugfs; do
	command -v "$t" >/dev/null 2>&1 ||
		PATH=$PATH:/usr/sbin:/sbin command -v "$t" >/dev/null 2>&1 ||
		die "$t is missing: run scripts/install-deps.sh --image"
done
export PATH=$PATH:/usr/sbin:/sbin
case "$SIZE" in
[0-9]*[MG]) ;;
*) die "--size takes a number with M or G, e.g. 2G (got '$SIZE')" ;;
esac

mkdir -p "$OUT/cache"
OUT=$(cd "$OUT" && pwd)
IMG=$OUT/$NAME.ext4
CACHE=$OUT/cache
TREE=$OUT/rootfs.tmp
rm -f "$OUT/image.json"        # the image is "finished" only when this is back
rm -rf "$TREE"
trap 'rm -rf "$TREE" "$IMG.tmp"' EXIT

PKGS=systemd-sysv,udev,dbus,openssh-server,cloud-init,fio,sudo
PKGS=$PKGS,linux-image-cloud-amd64,initramfs-tools,e2fsprogs
PKGS=$PKGS,ifupdown,isc-dhcp-client,iproute2,netbase,ca-certificates,less

# Written into the tree before the kernel is installed, so that the first
# initramfs already has them. conf.d and hooks are not package conffiles.
HOOK_INITRAMFS='
mkdir -p "$1/etc/initramfs-tools/conf.d" "$1/etc/initramfs-tools/hooks"
echo MODULES=most >"$1/etc/initramfs-tools/conf.d/disagg.conf"
cat >"$1/etc/initramfs-tools/hooks/disagg" <<EOF
#!/bin/sh
# disagg: the root filesystem is ext4 on a virtio-blk disk.
[ "\$1" = prereqs ] && exit 0
. /usr/share/initramfs-tools/hook-functions
manual_add_modules virtio_pci virtio_blk ext4
EOF
chmod 0755 "$1/etc/initramfs-tools/hooks/disagg"
'

# The guest's configuration, once everything is installed.
HOOK_CONFIG='
set -e
echo debian >"$1/etc/hostname"
printf "127.0.0.1\tlocalhost\n127.0.1.1\tdebian\n::1\tlocalhost ip6-localhost ip6-loopback\n" >"$1/etc/hosts"
echo "LABEL=root / ext4 defaults,errors=remount-ro 0 1" >"$1/etc/fstab"
printf "auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n" >"$1/etc/network/interfaces"
cat >"$1/etc/cloud/cloud.cfg.d/90-disagg.cfg" <<EOF
# disagg: a NoCloud seed (a disk labelled CIDATA) or nothing; never wait
# for a metadata server. Only an ed25519 host key (RSA takes about a
# minute under TCG); no locale generation.
datasource_list: [ NoCloud, None ]
ssh_deletekeys: true
ssh_genkeytypes: [ ed25519 ]
locale: false
EOF
# Each copy of the image makes its own host keys at first boot: cloud-init
# does, and this unit does when cloud-init is disabled.
rm -f "$1"/etc/ssh/ssh_host_*
cat >"$1/etc/systemd/system/disagg-ssh-hostkey.service" <<EOF
[Unit]
Description=SSH host key of this copy of the image
After=cloud-init.service
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key

[Install]
WantedBy=ssh.service
EOF
chroot "$1" systemctl enable disagg-ssh-hostkey.service serial-getty@ttyS0.service
: >"$1/etc/machine-id"
rm -f "$1/var/lib/dbus/machine-id"
'

# The package list the image has, for image.json.
HOOK_LIST='chroot "$1" dpkg-query -W -f="\${Package} \${Version}\n" >"'$OUT'/packages.txt"'

start=$(date +%s)
log "installing $SUITE into $TREE (packages cached in $CACHE)"
# shellcheck disable=SC2086
mmdebstrap --variant=minbase --include="$PKGS" --skip=essential/unlink \
	--aptopt='Acquire::Retries "3"' \
	--setup-hook='mkdir -p "$1/var/cache/apt/archives/"' \
	--setup-hook="sync-in $CACHE /var/cache/apt/archives/" \
	--essential-hook="$HOOK_INITRAMFS" \
	--customize-hook="sync-out /var/cache/apt/archives $CACHE" \
	--customize-hook="$HOOK_CONFIG" \
	--customize-hook="$HOOK_LIST" \
	"$SUITE" "$TREE" $MIRROR 2>&1 | sed -u 's/^/  /'
t_tree=$(( $(date +%s) - start ))
rm -f "$CACHE"/lock "$CACHE"/partial 2>/dev/null || true

kver=$(ls "$TREE"/lib/modules | sort -V | tail -1)
[ -n "$kver" ] && [ -f "$TREE/boot/vmlinuz-$kver" ] && [ -f "$TREE/boot/initrd.img-$kver" ] ||
	die "no kernel or initramfs in $TREE/boot"
log "kernel $kver; checking the initramfs"
mods=$(chroot "$TREE" lsinitramfs "/boot/initrd.img-$kver")
for m in virtio_pci virtio_blk ext4; do
	# A module in the initramfs, or built into the kernel.
	echo "$mods" | grep -q "/$m\.ko" ||
		grep -q "/$m\.ko\$" "$TREE/lib/modules/$kver/modules.builtin" ||
		die "the initramfs lacks $m, and the kernel does not have it built in"
done

used_kib=$(du -sk "$TREE" | cut -f1)
size_kib=$(( ${SIZE%[MG]} * 1024 ))
case "$SIZE" in *G) size_kib=$(( size_kib * 1024 )) ;; esac
[ $(( used_kib * 10 )) -le $(( size_kib * 7 )) ] ||
	die "the tree takes $(( used_kib / 1024 )) MiB: --size $SIZE leaves less than 30% free"

log "making $IMG ($SIZE, ext4, label root) from $(( used_kib / 1024 )) MiB of files"
rm -f "$IMG" "$IMG.tmp"
mkfs.ext4 -q -F -L root -d "$TREE" "$IMG.tmp" "$SIZE"
fsck_out=$(e2fsck -fn "$IMG.tmp" 2>&1) || die "e2fsck found errors in the new image: $fsck_out"
cp "$TREE/boot/vmlinuz-$kver" "$OUT/vmlinuz.tmp"
cp "$TREE/boot/initrd.img-$kver" "$OUT/initrd.img.tmp"
mv "$IMG.tmp" "$IMG"
mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
mv "$OUT/initrd.img.tmp" "$OUT/initrd.img"
t_all=$(( $(date +%s) - start ))

apparent=$(stat -c %s "$IMG")
allocated=$(( $(stat -c %b "$IMG") * $(stat -c %B "$IMG") ))
npkgs=$(wc -l <"$OUT/packages.txt")
cat >"$OUT/image.json" <<EOF
{"name": "$NAME", "suite": "$SUITE", "rootfs": "$NAME.ext4", "kernel": "vmlinuz",
 "initrd": "initrd.img", "cmdline": "root=LABEL=root console=ttyS0",
 "kernel_version": "$kver", "size": $apparent, "allocated": $allocated,
 "packages": $npkgs, "built": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
 "seconds": {"tree": $t_tree, "total": $t_all}}
EOF
log "done in ${t_all}s: $IMG ($(( apparent >> 20 )) MiB, $(( allocated >> 20 )) MiB on disk," \
	"$npkgs packages), vmlinuz, initrd.img"
