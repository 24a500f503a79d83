/* SPDX-License-Identifier: MIT */
/*
 * A device node's block volumes (volume.c; docs/devnode.md): each volume
 * is a sparse raw file NAME.vol in the node's data directory (kind
 * "file"), or a block device the node was given (kind "block",
 * volume_block.c; its key and epoch in a state file NAME.blk there).
 *
 * - Names are 1-63 characters of [a-z0-9_-], starting with a letter or a
 *   digit: they go into file names and URLs as they are.
 * - Sizes are multiples of 512 bytes (a virtio-blk sector), up to
 *   DN_VOLUME_MAX_SIZE.
 * - Create and clone are atomic: the file is made unnamed (O_TMPFILE),
 *   sized or filled, synced, and only then linked under its name, so a
 *   crash leaves either no volume or a whole one, never a half-made file.
 * - A clone shares the source's blocks (FICLONE) where the filesystem can;
 *   elsewhere it copies only the source's data extents (SEEK_DATA), so
 *   the clone is as sparse as its source.
 * - Every volume made (create, clone, import) gets a new random 64-bit key,
 *   kept in the file's extended attribute user.disagg.key: grants name
 *   it, so a volume deleted and made again under its name is a different
 *   volume to them. A file without one (put there by hand) gets one when
 *   it is first looked at. The filesystem needs user xattrs (-EOPNOTSUPP).
 * - A volume that is open (dn_volume_open, until dn_volume_put) cannot be
 *   deleted or shrunk: -EBUSY.
 * - A block device's volume is never made, deleted or resized here: its
 *   name is taken (-EEXIST), delete and resize are -EOPNOTSUPP. It can be
 *   the source of a clone (every block is read; the zeros stay holes).
 *
 * Every function returns 0 or -errno. Not thread-safe by itself beyond the
 * open counts, which take their own lock.
 */
#ifndef DISAGG_DEVNODE_VOLUME_H
#define DISAGG_DEVNODE_VOLUME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "volume_kind.h"

struct dn_volumes;

/* Open (and make, mode 0700, if missing) the data directory dir. */
int dn_volumes_open(const char *dir, struct dn_volumes **ret);
void dn_volumes_close(struct dn_volumes *vs);

bool dn_volume_name_valid(const char *name);

/* A new zero-filled volume: -EEXIST, -EINVAL (name or size). */
int dn_volume_create(struct dn_volumes *vs, const char *name, uint64_t size);
/* -ENOENT, -EBUSY (open). */
int dn_volume_delete(struct dn_volumes *vs, const char *name);
/*
 * Change a volume's size. Growing adds zeros. Shrinking drops the data
 * past the new end and is refused (-EINVAL) unless shrink is true, as
 * `qemu-img resize --shrink`; an open volume is never shrunk (-EBUSY).
 */
int dn_volume_resize(struct dn_volumes *vs, const char *name, uint64_t size, bool shrink);
/* dst becomes a copy of src; *ret_reflinked (may be NULL): it shares src's blocks. */
int dn_volume_clone(struct dn_volumes *vs, const char *src, const char *dst,
		    bool *ret_reflinked);
int dn_volume_stat(struct dn_volumes *vs, const char *name, struct dn_volume_info *ret);
/* Every volume, sorted by name; *ret is malloc'ed (free it). */
int dn_volume_list(struct dn_volumes *vs, struct dn_volume_info **ret, size_t *ret_n);

/*
 * An fd of the volume (O_RDWR | O_CLOEXEC, plus extra_flags such as
 * O_DIRECT) and one more user; *ret_size: its size. dn_volume_put ends
 * the use (the caller closes the fd).
 */
int dn_volume_open(struct dn_volumes *vs, const char *name, int extra_flags, int *ret_fd,
		   uint64_t *ret_size);
/* The same, with everything a BLK_OPEN checks (ret->fd is the caller's to close). */
int dn_volume_open_ref(struct dn_volumes *vs, const char *name, int extra_flags,
		       struct dn_volume_ref *ret);
void dn_volume_put(struct dn_volumes *vs, const char *name);
/* The key of the file volume open at fd (made if it has none). */
int dn_volume_key(int fd, uint64_t *ret);

/*
 * Serve the block device at path as volume `name` (volume_block.c), until
 * dn_volumes_close. The device is opened O_EXCL, so no other device node
 * (nor a mount) uses it meanwhile. -EINVAL (name), -EEXIST (a volume of
 * that name), -ENOTBLK (not a block device), -EBUSY (in use elsewhere, or
 * given twice), -ERANGE (its size is 0, not whole sectors or over the
 * maximum), -EBADMSG (its state file is damaged), -errno of open.
 */
int dn_volume_add_block(struct dn_volumes *vs, const char *name, const char *path);

#endif /* DISAGG_DEVNODE_VOLUME_H */
