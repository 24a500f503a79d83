/* SPDX-License-Identifier: MIT */
/*
 * Guest channel client: the host side of disagg-guest's line protocol
 * (docs/guest.md). QEMU exposes the guest's virtio-serial port
 * "org.disagg.guest" as a UNIX socket chardev:
 *
 *   -chardev socket,id=gch,path=SOCK,server=on,wait=off
 *   -device virtio-serial-pci -device virtserialport,chardev=gch,name=org.disagg.guest
 *
 * guestchan_qemu_args() produces that fragment. The host sends one command
 * per line and gets one "OK ..." or "ERR ..." line back; the guest also
 * sends unsolicited lines ("READY ...", "HB ..."), which are skipped while
 * waiting for an answer and handed to an optional callback.
 *
 * All calls are serialised by an internal mutex (any thread may use a
 * channel). Every call has a timeout. Errors: -ETIMEDOUT, -EPIPE when QEMU
 * closed the socket (exited), -EIO when the guest answered "ERR ..." (the
 * text is then in guestchan_last_error()), -E2BIG for an over-long line.
 * The protocol has no request ids: when a command times out, its late
 * answer is recognised as stale and dropped before the next command's.
 */
#ifndef DISAGG_GUESTCHAN_H
#define DISAGG_GUESTCHAN_H

#include <stddef.h>
#include <stdint.h>

#include "macro.h"

struct guestchan;

/* The port name disagg-guest looks for. */
#define GUESTCHAN_PORT_NAME "org.disagg.guest"

/*
 * Called with every unsolicited line (without the newline), from inside
 * whichever guestchan call read it, with the channel's lock held: it must
 * not call back into the channel.
 */
typedef void (*guestchan_line_fn)(const char *line, void *userdata);

/* Connect to QEMU's chardev socket, retrying until QEMU has created it. */
int guestchan_connect(const char *path, int timeout_ms, struct guestchan **ret);
/* A channel over a connected, non-blocking socket, which it owns from here on (also on failure). */
int guestchan_open_fd(int fd, struct guestchan **ret);
void guestchan_close(struct guestchan *g);   /* accepts NULL */
DEFINE_CLEANUP_FUNC(struct guestchan, guestchan_close)

void guestchan_set_callback(struct guestchan *g, guestchan_line_fn fn, void *userdata);

/*
 * Wait for the guest's "READY disagg-guest 1 memtotal_kb=N" line (returns at
 * once if it was already seen since the last call). *ret_memtotal_kb (may
 * be NULL) gets N.
 */
int guestchan_wait_ready(struct guestchan *g, int timeout_ms, uint64_t *ret_memtotal_kb);

/*
 * Send one command line (printf format, no newline; a newline inside is
 * -EINVAL) and wait for its answer. "OK ..." -> 0 and the whole line in
 * ret_line (if not NULL; truncated to len); "ERR ..." -> -EIO.
 */
int guestchan_cmd(struct guestchan *g, int timeout_ms, char *ret_line, size_t len,
		  const char *fmt, ...) _printf_(5, 6);

/*
 * The guest may owe answers to commands sent on another connection (after
 * a compute migration, the guest answers on the destination's channel what
 * the source asked). Before the next command, guestchan_cmd() then sends a
 * unique marker ("SYNC-..."; the guest answers "ERR unknown command
 * SYNC-...") and drops every answer that comes before the marker's.
 */
void guestchan_resync(struct guestchan *g);

/*
 * Read and dispatch unsolicited lines for up to timeout_ms (heartbeats).
 * With timeout_ms 0 it never waits: while a command waits for its answer
 * (which reads and dispatches every line meanwhile) it returns 0 at once.
 */
int guestchan_poll(struct guestchan *g, int timeout_ms);

/* The guest's last "ERR ..." line ("" if none). */
const char *guestchan_last_error(struct guestchan *g);

/*
 * Parse the value of "key=value" in a line (fields separated by spaces).
 * -ENOENT when the key is absent, -EINVAL when the value is not a number.
 */
int guestchan_field_u64(const char *line, const char *key, uint64_t *ret);
int guestchan_field_str(const char *line, const char *key, char *ret, size_t len);

/*
 * The QEMU argv fragment for the channel (chardev id `id`, socket `path`),
 * NULL-terminated, in a newly allocated array of newly allocated strings
 * (free with guestchan_strv_free()).
 */
int guestchan_qemu_args(const char *id, const char *path, char ***ret_argv);
void guestchan_strv_free(char **strv);   /* accepts NULL */

#endif /* DISAGG_GUESTCHAN_H */
