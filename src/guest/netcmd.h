/* SPDX-License-Identifier: MIT */
/*
 * Network commands of disagg-guest (netcmd.c; docs/guest.md, "Network"):
 *
 *   NETINFO                       OK eth0=ADDR/BITS gw=ADDR  (ADDR "-" while none)
 *   NETCHECK HOST PORT [MS]       OK connected=HOST:PORT src=ADDR ms=T
 *       a TCP connection out to HOST:PORT (an IPv4 address), retried until
 *       MS (default 10000) while the network is still coming up; it sends
 *       "disagg-guest netcheck from ADDR\n" and closes.
 *
 * And a listener on the guest's port 22 (net_listener_start), which
 * answers every connection with one line, "disagg-guest: no ssh server
 * in this guest", and closes it: the busybox guest runs no sshd, but a
 * host can see its forwarded ssh port reach the guest.
 */
#ifndef DISAGG_GUEST_NETCMD_H
#define DISAGG_GUEST_NETCMD_H

#include "guestutil.h"

#define NET_BANNER "disagg-guest: no ssh server in this guest"

extern const struct guest_cmd net_cmds[];

/* The port-22 listener's thread: 0 or -errno (no network: nothing to do). */
int net_listener_start(void);

#endif
