/* SPDX-License-Identifier: MIT */
/*
 * Messages between libdisagg-shim.so (inside QEMU) and the compute agent,
 * over the SOCK_SEQPACKET socket named by $DISAGG_SHIM_SOCK.
 *
 * shim -> agent: one struct shim_msg per message; a MAP message carries the
 *                userfaultfd (SCM_RIGHTS) registered for MISSING|WP faults
 *                on [addr, addr + len).
 * agent -> shim: an int32: 0 when the agent serves the range, else -errno
 *                (the shim then fails the mmap with that error).
 *
 * The shim keeps its own copy of every uffd it registered. When the agent
 * goes away (its socket reports a hang-up), the shim connects again to the
 * same socket path, retrying until a new agent listens there, and hands
 * every registered mapping over again: one READOPT per mapping (same
 * fields and the same uffd as its MAP), then one READOPT_DONE whose `len`
 * is the number of READOPTs sent. The agent answers each as it answers a
 * MAP; an error is reported on QEMU's stderr and the mapping stays
 * registered (its faults wait). A MAP or UNMAP never overtakes a READOPT:
 * whichever thread connects first re-sends the table before its own
 * message.
 *
 * Environment read by the shim:
 *   DISAGG_SHIM_DIR            files under this directory are guest RAM
 *   DISAGG_SHIM_SOCK           the agent's socket
 *   DISAGG_SHIM_UFFD_FEATURES  UFFDIO_API features to request (number)
 */
#ifndef DISAGG_SHIM_H
#define DISAGG_SHIM_H

#include <errno.h>
#include <stdint.h>

enum shim_op {
	SHIM_MSG_MAP   = 1,   /* a guest-RAM file was mapped; uffd attached */
	SHIM_MSG_UNMAP = 2,   /* a registered range is about to be unmapped */
	SHIM_MSG_READOPT = 3, /* a MAP again, to a new agent: the range may have pages */
	SHIM_MSG_READOPT_DONE = 4, /* every registered range was handed over (len: count) */
};

struct shim_msg {
	uint32_t op;          /* enum shim_op */
	uint32_t pid;         /* the mapping process */
	uint64_t addr;        /* start of the mapping in that process */
	uint64_t len;         /* bytes */
	uint64_t offset;      /* file offset of addr */
	char path[256];       /* the file, NUL-terminated (MAP only) */
};
_Static_assert(sizeof(struct shim_msg) == 288, "shim_msg size");

/*
 * The agent's answer as the shim takes it: 0 or -errno (down to -4095).
 * Any other value cannot be an answer: -EPROTO (the mapping fails).
 */
static inline int shim_answer_status(int32_t status)
{
	return status <= 0 && status >= -4095 ? status : -EPROTO;
}

#endif /* DISAGG_SHIM_H */
