/* SPDX-License-Identifier: MIT */
/*
 * The volume store's insides (volume.c), shared with the ways of filling a
 * new volume (volume_import.c) and with block devices' volumes
 * (volume_block.c). Not for other users.
 *
 *     char tmp[DN_VOL_TMP_MAX];
 *     int fd = dn_vol_begin_new(vs, name, tmp, sizeof(tmp));   // unnamed file
 *     ... size and fill fd ...
 *     r = dn_vol_publish(vs, fd, tmp, name);                    // fsync, link, sync dir
 *     dn_vol_drop_unnamed(vs, tmp);                             // always
 *
 * Each kind of volume is an ops table (struct dn_vol_kind): the store
 * finds a name's kind (dn_vol_kind_of) and asks it, so that the
 * operations do not test kinds themselves.
 */
#ifndef DISAGG_DEVNODE_VOLUME_INT_H
#define DISAGG_DEVNODE_VOLUME_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "volume.h"

#define DN_VOL_TMP_MAX 80
#define DN_VOL_COPY_CHUNK (1u << 20)

struct dn_user {
	char name[DN_VOLUME_NAME_MAX + 1];
	unsigned n;
};

struct dn_blockdev;

struct dn_volumes {
	int dirfd;
	pthread_mutex_t mu;          /* users */
	struct dn_user *users;
	size_t nusers;
	struct dn_blockdev **blocks; /* added before serving, fixed after */
	size_t nblocks;
};

/* What a kind of volume does; every function returns 0 or -errno. */
struct dn_vol_kind {
	const char *name;            /* "file", "block" */
	int (*stat)(struct dn_volumes *vs, const char *name, struct dn_volume_info *ret);
	/* An fd (O_RDWR | O_CLOEXEC | flags), size, key and epoch store. */
	int (*open)(struct dn_volumes *vs, const char *name, int flags, struct dn_volume_ref *ret);
	int (*remove)(struct dn_volumes *vs, const char *name);
	int (*resize)(struct dn_volumes *vs, const char *name, uint64_t size, bool shrink);
	/* As a clone's source: an fd to read and its size ... */
	int (*open_src)(struct dn_volumes *vs, const char *name, int *ret_fd, uint64_t *ret_size);
	/* ... copied into dfd (sized already). */
	int (*copy)(int sfd, int dfd, uint64_t size, bool *ret_reflinked);
};

extern const struct dn_vol_kind dn_vol_block_kind;   /* volume_block.c */

/* The block device volume `name`, or NULL (vs->blocks is fixed while serving: no lock). */
struct dn_blockdev *dn_vol_block_find(struct dn_volumes *vs, const char *name);
/* Their infos, appended to *v (*n of *cap): -ENOMEM. */
int dn_vol_block_list(struct dn_volumes *vs, struct dn_volume_info **v, size_t *n, size_t *cap);
void dn_vol_blocks_free(struct dn_volumes *vs);
/* Open users of `name` (dn_volume_open without dn_volume_put). */
unsigned dn_vol_users(struct dn_volumes *vs, const char *name);
/* The file volume NAME.vol exists. */
bool dn_vol_file_exists(struct dn_volumes *vs, const char *name);
/* A nonzero random key, little-endian in b. */
int dn_vol_new_key(uint8_t b[8], uint64_t *ret);

/* An fd of a new unnamed file for volume `name`; -EEXIST if the name is taken. */
int dn_vol_begin_new(struct dn_volumes *vs, const char *name, char *tmp, size_t tmplen);
/* Sync fd and link it as `name`: -EEXIST if the name was taken meanwhile. */
int dn_vol_publish(struct dn_volumes *vs, int fd, const char *tmp, const char *name);
/* Remove the temporary name, if begin_new had to use one. */
void dn_vol_drop_unnamed(struct dn_volumes *vs, const char *tmp);

#endif /* DISAGG_DEVNODE_VOLUME_INT_H */
