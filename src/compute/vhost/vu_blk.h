/* SPDX-License-Identifier: MIT */
/*
 * A vhost-user-blk back end (vu_blk.c, vu_blkcfg.c): QEMU's
 * vhost-user-blk-pci front end connects to its socket, hands it the
 * guest's memory and virtqueues, and the back end serves the guest's
 * virtio-blk requests straight from guest memory through a storage back
 * end (an ops table: a local file, a device node's volume), so QEMU is not
 * in the data path.
 *
 * One thread per device: it reads QEMU's messages, takes the chains the
 * guest kicks, hands each request to the storage back end, and when a
 * request completes writes its status, puts it on the used ring and, once
 * per round of the loop, signals the guest (one interrupt for all the
 * requests that completed together).
 */
#ifndef DISAGG_VU_BLK_H
#define DISAGG_VU_BLK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vu_ring.h"

#define VU_BLK_MAX_QUEUES 8u
#define VU_BLK_MAX_IO     (1u << 20)   /* bytes a storage back end is asked at once, at most */

/* virtio-blk request types and statuses. */
enum {
	VU_BLK_T_IN = 0,
	VU_BLK_T_OUT = 1,
	VU_BLK_T_FLUSH = 4,
	VU_BLK_T_GET_ID = 8,
	VU_BLK_T_DISCARD = 11,
	VU_BLK_T_WRITE_ZEROES = 13,
};

struct vu_blk;

/* One request of the guest, as the storage back end sees it. */
struct vu_blk_io {
	struct vu_blk *dev;
	unsigned queue;
	uint16_t head;
	uint32_t type;           /* VU_BLK_T_IN, OUT, FLUSH, DISCARD, WRITE_ZEROES */
	uint64_t offset;         /* bytes */
	uint64_t len;            /* bytes: the data (IN, OUT) or the range (DISCARD, WRITE_ZEROES) */
	bool unmap;              /* WRITE_ZEROES may free the blocks */
	struct iovec *iov;       /* IN, OUT: the data in guest memory */
	unsigned niov;
	uint8_t *status;         /* in guest memory */
	uint32_t used_len;       /* bytes written into the guest's buffers, status included */
	void *be_data;           /* the storage back end's, per request */
	struct vu_chain chain;   /* owns the buffers iov points into */
	struct iovec data[VU_MAX_SEGS];
};

struct vu_blk_store_ops {
	/*
	 * Start a request; its end is told with vu_blk_io_done(), on the
	 * device's thread (from inside submit or from poll). A return < 0 is
	 * the request's end, done here.
	 */
	int (*submit)(void *store, struct vu_blk_io *io);
	/* An fd the device polls for completions, or -1 (submit completes at once). */
	int (*poll_fd)(void *store);
	void (*poll)(void *store);
	/* Requests started and not done: the device waits for none before unmapping. */
	unsigned (*inflight)(void *store);
	/*
	 * The device is going away and its requests have not all ended in
	 * VU_BLK_FREE_WAIT_MS (a device node that does not answer): drop
	 * every one without an answer (vu_blk_io_drop), none touching guest
	 * memory afterwards. QEMU's in-flight log keeps them flagged, so a
	 * back end after us (an agent started again) sends them again. NULL:
	 * the device waits for them however long it takes.
	 */
	void (*abandon)(void *store);
};

#define VU_BLK_FREE_WAIT_MS 2000u

struct vu_blk_conf {
	uint64_t capacity;       /* bytes, a multiple of 512 */
	bool readonly;
	unsigned num_queues;     /* offered: 1 .. VU_BLK_MAX_QUEUES */
	const char *serial;      /* GET_ID (at most 20 bytes shown) */
	bool discard, write_zeroes;
	const struct vu_mem_ops *mem_ops;   /* told of guest-memory mappings (vu_mem.h), or NULL */
	void *mem_opaque;
};

/* A device serving the vhost-user connection `sock` (the device owns it). */
int vu_blk_new(int sock, const struct vu_blk_conf *conf, const struct vu_blk_store_ops *ops,
	       void *store, struct vu_blk **ret);
/*
 * Serve until QEMU hangs up or vu_blk_stop(): 0, or -errno when the
 * connection broke (a malformed message: -EBADMSG). Run on its own thread.
 */
int vu_blk_run(struct vu_blk *d);
/* Ask vu_blk_run to return (any thread). */
void vu_blk_stop(struct vu_blk *d);
/*
 * After vu_blk_run returned: waits for the requests in flight (at most
 * VU_BLK_FREE_WAIT_MS, then abandons them), unmaps guest memory, closes
 * everything.
 */
void vu_blk_free(struct vu_blk *d);

/* A request's end: 0, -EOPNOTSUPP (UNSUPP to the guest) or another -errno (IOERR). */
void vu_blk_io_done(struct vu_blk_io *io, int err);
/* A request dropped unanswered (vu_blk_store_ops.abandon). */
void vu_blk_io_drop(struct vu_blk_io *io);

struct vu_blk_stats {
	uint64_t requests[14];   /* by type */
	uint64_t errors, unsupported, bad_chains, interrupts;
	uint64_t bytes_read, bytes_written;
};
const struct vu_blk_stats *vu_blk_stats(const struct vu_blk *d);

#endif /* DISAGG_VU_BLK_H */
