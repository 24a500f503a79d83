/* SPDX-License-Identifier: MIT */
/*
 * Device-node client: block volumes over the fabric protocol (BLK_* and
 * VOL_*, include/disagg/proto.h, "device nodes: block volumes").
 *
 * A device node speaks the memory node's framing and handshake, so a
 * device-node connection is a struct mnc (mnclient.h) made by
 * dnc_connect(), which offers PROTO_FEAT_BLK and PROTO_FEAT_REVOKE (the
 * orchestrator pushes its revocation list with mnc_revoke()). Everything of
 * mnclient.h that is not about sections applies: one connection per
 * thread, pipelined requests, mnc_poll()/mnc_drain() run the callbacks of
 * the *_async calls, mnc_close() closes (and the node closes the
 * connection's handles with it), a broken connection stays broken.
 *
 * Block I/O goes through a handle that dnc_open() gets with a grant for
 * the volume (wire_vol_key_of_grant(): the grant names the volume's key).
 * Offsets and lengths are bytes, multiples of PROTO_BLK_SECTOR; READ and
 * WRITE move at most PROTO_BLK_MAX_IO bytes. A READ's reply, exactly
 * `len` bytes, lands in `buf`; a WRITE's `data` is sent from where it is
 * (not copied) and must stay valid until its callback has run.
 *
 * The VOL_* calls need a connection made with opts.orch_key (the node
 * answers -ENOKEY to anyone else).
 *
 * Errors: -errno; the node's refusals map through proto_status_to_errno()
 * (-ENOENT no such volume, -EEXIST name taken, -EBUSY volume open,
 * -ERANGE past the volume's end, -EPERM a write through a read-only
 * handle, -EKEYREJECTED a bad grant). Arguments the node would refuse
 * are refused here without sending: -EINVAL (a bad name, flags,
 * alignment, a zero length), -E2BIG (over PROTO_BLK_MAX_IO), -ERANGE
 * (offset + len past 2^64); -EOPNOTSUPP on a connection without
 * PROTO_FEAT_BLK. An *_async call that fails runs no callback; once it
 * returned 0 its callback runs exactly once.
 */
#ifndef DISAGG_DNCLIENT_H
#define DISAGG_DNCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mnclient.h"
#include "disagg/proto.h"

/* A volume as the node describes it (host order). */
struct dnc_volume {
	char name[PROTO_VOL_NAME_SIZE];    /* NUL-terminated */
	uint64_t size;                     /* bytes the guest sees */
	uint64_t allocated;                /* bytes on the node's disk */
	uint64_t key;                      /* grants name it */
	uint32_t users;                    /* open handles */
	bool reflinked;                    /* VOL_CLONE: blocks are shared with the source */
	bool block;                        /* a block device given to the node (else a file) */
};

/* 0 if `name` is a valid volume name (1-63 of [a-z0-9_-], first a letter or digit), else -EINVAL. */
int dnc_name_check(const char *name);

/*
 * mnc_connect() offering PROTO_FEAT_BLK | PROTO_FEAT_REVOKE (o->features is ignored):
 * -EPROTONOSUPPORT if the server does not serve block volumes.
 */
int dnc_connect(const struct mnc_opts *o, struct mnc **ret);

/*
 * Open volume `name` through grant g (held by us, for this node; the read
 * right, and the write right unless flags has PROTO_BLK_RDONLY). The
 * handle is valid on this connection only; *ret_size: the volume's size.
 */
int dnc_open(struct mnc *c, const struct proto_grant *g, const char *name, uint32_t flags,
	     uint32_t *ret_handle, uint64_t *ret_size);
int dnc_close(struct mnc *c, uint32_t handle);

/* Asynchronous requests; done(opaque, status, len) runs from mnc_poll() and friends. */
int dnc_read_async(struct mnc *c, uint32_t handle, uint64_t offset, uint32_t len, void *buf,
		   mnc_done_fn done, void *opaque);
int dnc_write_async(struct mnc *c, uint32_t handle, uint64_t offset, uint32_t len,
		    const void *data, mnc_done_fn done, void *opaque);
/* Every write answered before the FLUSH reached the node is on stable storage. */
int dnc_flush_async(struct mnc *c, uint32_t handle, mnc_done_fn done, void *opaque);
int dnc_discard_async(struct mnc *c, uint32_t handle, uint64_t offset, uint32_t len,
		      mnc_done_fn done, void *opaque);
int dnc_write_zeroes_async(struct mnc *c, uint32_t handle, uint64_t offset, uint32_t len,
			   mnc_done_fn done, void *opaque);

/* The same, waiting for the answer (FLUSH up to ten times the connection's timeout). */
int dnc_read(struct mnc *c, uint32_t handle, uint64_t offset, uint32_t len, void *buf);
int dnc_write(struct mnc *c, uint32_t handle, uint64_t offset, uint32_t len, const void *data);
int dnc_flush(struct mnc *c, uint32_t handle);
int dnc_discard(struct mnc *c, uint32_t handle, uint64_t offset, uint32_t len);
int dnc_write_zeroes(struct mnc *c, uint32_t handle, uint64_t offset, uint32_t len);

/*
 * Volumes (the orchestrator's). Sizes are multiples of PROTO_BLK_SECTOR
 * (create: nonzero). ret may be NULL. CREATE, RESIZE and CLONE wait up to
 * ten times the connection's timeout (a clone may copy the data).
 */
int dnc_vol_create(struct mnc *c, const char *name, uint64_t size, struct dnc_volume *ret);
int dnc_vol_delete(struct mnc *c, const char *name);
/* Growing adds zeros; shrinking drops the data past the new end and needs `shrink`. */
int dnc_vol_resize(struct mnc *c, const char *name, uint64_t size, bool shrink,
		   struct dnc_volume *ret);
/* A new volume `dst`, a copy of `src` (reflinked where the node's filesystem can). */
int dnc_vol_clone(struct mnc *c, const char *src, const char *dst, struct dnc_volume *ret);
int dnc_vol_stat(struct mnc *c, const char *name, struct dnc_volume *ret);
/* Every volume, in name order: *ret is malloc'ed (NULL when there are none). */
int dnc_vol_list(struct mnc *c, struct dnc_volume **ret, size_t *ret_n);

#endif /* DISAGG_DNCLIENT_H */
