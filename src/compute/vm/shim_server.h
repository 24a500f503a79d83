/* SPDX-License-Identifier: MIT */
/*
 * The agent's side of the shim protocol (src/shim/shim.h): a
 * SOCK_SEQPACKET socket that libdisagg-shim.so inside QEMU connects to,
 * and a thread that answers every message. It knows the wire format and
 * nothing of VMs: what a message means is the handler's (struct
 * shim_server_ops; mappings.c gives the VM's). Tested on its own by
 * tests/vm_layers/test_shim_server.c.
 */
#ifndef DISAGG_VM_SHIM_SERVER_H
#define DISAGG_VM_SHIM_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "shim.h"

/*
 * What the messages mean. Each returns 0 or -errno, which is the answer to
 * the shim. A message that carried a uffd: on an error the server closes
 * it; on success it goes to keep_uffd (whose it is from then on).
 */
struct shim_server_ops {
	/* MAP (readopt false) or READOPT (true) of msg->path; uffd >= 0. */
	int (*map)(void *opaque, const struct shim_msg *msg, int uffd, bool readopt);
	/* UNMAP of the range at msg->addr. */
	int (*unmap)(void *opaque, const struct shim_msg *msg);
	/* READOPT_DONE: the shim handed `n` mappings back. */
	void (*readopt_done)(void *opaque, unsigned n);
	/* A uffd that came with a message that succeeded. */
	void (*keep_uffd)(void *opaque, uint64_t addr, int uffd);
};

struct shim_server;

/*
 * Receive one message on fd (its uffd, if any, in *ret_fd, else -1).
 * -EPIPE when the peer hung up (or sent an empty message); -EBADMSG for a
 * message of the wrong size, a truncated one or one with more than one
 * descriptor; another -errno of recvmsg. Descriptors that came with a
 * message that is refused are closed.
 */
int shim_server_recv(int fd, struct shim_msg *msg, int *ret_fd);
/*
 * Receive one message on connection fd, hand it to ops, send the answer.
 * 0 with the answer in *ret_status (0 or -errno: malformed messages and
 * unknown operations are answered, never fatal: so is an UNMAP or a
 * READOPT_DONE that carries a descriptor, -EBADMSG with the descriptor
 * closed, never kept); -EPIPE or -ECONNRESET
 * when the peer hung up (nothing answered: close the connection).
 */
int shim_server_handle(int fd, const struct shim_server_ops *ops, void *opaque,
		       int32_t *ret_status);
/*
 * Listen on `path` (replacing a stale socket there) and serve its
 * connections in a thread until shim_server_free. -ENAMETOOLONG, -errno.
 */
int shim_server_start(const char *path, const struct shim_server_ops *ops, void *opaque,
		      struct shim_server **ret);
/* Stop the thread, close the socket and the connections. Accepts NULL. */
void shim_server_free(struct shim_server *s);

#endif /* DISAGG_VM_SHIM_SERVER_H */
