/* SPDX-License-Identifier: MIT */
/*
 * Who may write a volume (fence.c): ownership epochs and takeovers, shared
 * by every connection of the device node.
 *
 * - Every volume has an ownership epoch, 0 until raised, kept where its
 *   kind keeps it (struct dn_epoch_store: a file's extended attribute
 *   user.disagg.epoch, a block device's state file). A writable BLK_OPEN
 *   through a grant of an older epoch is refused (FENCED); one of a newer
 *   epoch raises it (durably) and fences every open handle of an older
 *   one. A compute migration opens with the next epoch, so that the source
 *   can no longer write. A read-only open changes nothing, whatever its
 *   epoch (the destination checks its grant before the guest runs there).
 * - A BLK_OPEN with PROTO_BLK_TAKEOVER fences the other handles of the
 *   same holder (the authenticated node) on the volume, whatever their
 *   epoch: an agent that reconnects after losing its connection takes the
 *   volume back from its own earlier connection, which a device node that
 *   was cut off may still be serving.
 * - A fenced handle's writes, discards, write-zeroes and flushes are
 *   refused (FENCED); its reads go on. The open that fences waits until
 *   the fenced handles' writes already on a ring have completed, so none of
 *   them lands after it answers.
 *
 * A handle counts its writes on the ring (dn_fence_write_begin before
 * submitting, dn_fence_write_end after the kernel answered): the begin
 * counts first and looks at `fenced` after, and the fencing side sets
 * `fenced` first and looks at the count after, so one of the two sees the
 * other.
 */
#ifndef DISAGG_DEVNODE_FENCE_H
#define DISAGG_DEVNODE_FENCE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "volume.h"

#define DN_FENCE_WAIT_MS 10000     /* an open waits this long for fenced writes */

struct dn_fences;
struct dn_fvol;

struct dn_fence {
	struct dn_fence *next;       /* the volume's handles */
	struct dn_fvol *vol;
	uint64_t holder;
	uint32_t epoch;
	bool writable;
	_Atomic bool fenced;
	_Atomic unsigned writes;     /* on a ring now */
};

int dn_fences_new(struct dn_fences **ret);
void dn_fences_free(struct dn_fences *fs);   /* accepts NULL; every handle has left */

/*
 * Join the volume `name` of key `key` (its epoch in es) with handle f: -EKEYREVOKED for a
 * writable open of an epoch older than the volume's; -ETIMEDOUT when
 * fenced writes did not finish in DN_FENCE_WAIT_MS (f has not joined);
 * -errno of the epoch's store.
 */
int dn_fence_join(struct dn_fences *fs, const char *name, uint64_t key,
		  const struct dn_epoch_store *es, uint64_t holder, uint32_t epoch, bool writable,
		  bool takeover, struct dn_fence *f);
void dn_fence_leave(struct dn_fences *fs, struct dn_fence *f);

/* A write is about to go on a ring: false (and not counted) if f is fenced. */
static inline bool dn_fence_write_begin(struct dn_fence *f)
{
	atomic_fetch_add(&f->writes, 1);
	if (!atomic_load(&f->fenced))
		return true;
	atomic_fetch_sub(&f->writes, 1);
	return false;
}

static inline void dn_fence_write_end(struct dn_fence *f)
{
	atomic_fetch_sub(&f->writes, 1);
}

#endif /* DISAGG_DEVNODE_FENCE_H */
