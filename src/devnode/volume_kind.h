/* SPDX-License-Identifier: MIT */
/*
 * The volume store's types (volume.h), and what a kind of volume does
 * (struct dn_vol_kind): the store (volume.c) finds the kind of the name
 * an operation gives and asks it, so that no operation tests kinds
 * itself. Kinds: files (volume.c) and block devices (volume_block.c).
 */
#ifndef DISAGG_DEVNODE_VOLUME_KIND_H
#define DISAGG_DEVNODE_VOLUME_KIND_H

#include <stdbool.h>
#include <stdint.h>

struct dn_volumes;

#define DN_VOLUME_NAME_MAX 63
#define DN_VOLUME_SECTOR   512ull
#define DN_VOLUME_MAX_SIZE (1ull << 44)   /* 16 TiB */

#define DN_VOLUME_DEV_MAX  256      /* a block device's path, NUL included */

enum dn_volume_kind {
	DN_VOLUME_FILE,              /* NAME.vol in the data directory */
	DN_VOLUME_BLOCK,             /* a block device given to the node */
};

struct dn_volume_info {
	char name[DN_VOLUME_NAME_MAX + 1];
	enum dn_volume_kind kind;
	char device[DN_VOLUME_DEV_MAX]; /* DN_VOLUME_BLOCK: the device's path; else "" */
	uint64_t size;               /* bytes the guest sees */
	uint64_t allocated;          /* bytes the file takes on disk (a device: all of it) */
	uint64_t key;                /* nonzero, random, new for every volume made (grants name it) */
	unsigned users;              /* dn_volume_open without dn_volume_put */
};

/*
 * Where a volume keeps its ownership epoch (fence.h reads and raises it
 * through this; the volume's kind chooses): a file's extended attribute
 * user.disagg.epoch, a block device's state file. write is durable when
 * it returns 0; the caller serialises the writes of one volume.
 */
struct dn_epoch_store;
struct dn_epoch_ops {
	int (*read)(const struct dn_epoch_store *s, uint32_t *ret);   /* 0 if never raised */
	int (*write)(const struct dn_epoch_store *s, uint32_t epoch);
};

struct dn_epoch_store {
	const struct dn_epoch_ops *ops;
	void *ctx;                   /* the kind's own (a block device's record) */
	int fd;                      /* the volume, open */
};

/* An open volume (dn_volume_open_ref): its fd, size, key and epoch store. */
struct dn_volume_ref {
	int fd;
	uint64_t size;
	uint64_t key;
	enum dn_volume_kind kind;
	struct dn_epoch_store epoch;
};

/*
 * A kind's operations: `obj` is what the store keeps of the volume (a
 * block device's record; NULL for a file, found by its name). Every one
 * returns 0 or -errno; the store has checked the name and fills `users`.
 */
struct dn_vol_kind {
	const char *name;            /* "file", "block" */
	int (*stat)(struct dn_volumes *vs, const char *name, void *obj,
		    struct dn_volume_info *ret);
	/* An fd (O_RDWR | O_CLOEXEC | flags), size, key and epoch store. */
	int (*open)(struct dn_volumes *vs, const char *name, void *obj, int flags,
		    struct dn_volume_ref *ret);
	int (*remove)(struct dn_volumes *vs, const char *name, void *obj);
	int (*resize)(struct dn_volumes *vs, const char *name, void *obj, uint64_t size,
		      bool shrink);
	/* As a clone's source: an fd to read and its size ... */
	int (*open_src)(struct dn_volumes *vs, const char *name, void *obj, int *ret_fd,
			uint64_t *ret_size);
	/* ... copied into dfd (not sized yet). */
	int (*copy)(int sfd, int dfd, uint64_t size, bool *ret_reflinked);
};

#endif /* DISAGG_DEVNODE_VOLUME_KIND_H */
