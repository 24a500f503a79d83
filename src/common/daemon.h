/* SPDX-License-Identifier: MIT */
/*
 * The steps the long-running daemons (memory node, device node,
 * orchestrator) take around their own work: the options they all parse
 * the same way, their key files, their signals, their listening socket,
 * the ready line and the end of serving. Each step logs its own failure,
 * so that the same mistake reads the same in every daemon; the daemon
 * only picks the exit status.
 */
#ifndef DISAGG_DAEMON_H
#define DISAGG_DAEMON_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "auth.h"
#include "grant.h"
#include "tls.h"

/* --log-level LEVEL, for the daemon's getopt_long table. */
#define DAEMON_OPT_LOG_LEVEL 0x4201
#define DAEMON_LOG_LEVEL_OPTION { "log-level", required_argument, NULL, DAEMON_OPT_LOG_LEVEL }

/*
 * The default: of a daemon's getopt switch. --log-level: 0 (go on), or
 * -EINVAL for an unknown level (logged); 'h' (--help): the usage on
 * stdout and 1; anything else: the usage on stderr and -EINVAL.
 */
int daemon_opt(int opt, const char *arg, void (*usage)(FILE *f));
/*
 * After the options of a node that checks grants (memory, device):
 * --grant-pubkey, a nonzero --node-id and the fabric's options. 0 or
 * -EINVAL (logged).
 */
int daemon_node_opts_check(const char *grant_keyfile, uint64_t node_id,
			   const struct fabric_conf *fabric);

/*
 * The cluster key, then the grant key (need_private: the orchestrator's
 * private half, else the public half the nodes verify with). 0 or -errno
 * (logged, with the hint for the file's mistake).
 */
int daemon_keys_load(const char *keyfile, struct auth_key *ret_key, const char *grant_keyfile,
		     bool need_private, struct grant_key **ret_grant);
/* Every connection is an fd: raise the soft limit to the hard one. */
void daemon_raise_fd_limit(void);

/*
 * Ignore SIGPIPE and block SIGTERM and SIGINT (*ret_mask): called before
 * any other thread starts, so that every thread inherits the mask and the
 * signals wait for the main thread's sigwait() or signalfd.
 */
void daemon_block_signals(sigset_t *ret_mask);
/* The same, and a signalfd (non-blocking, close-on-exec) that reads them: fd or -errno (logged). */
int daemon_signalfd(void);
/* Listen on addr (HOST:PORT, non-blocking): the fd and its bound address in ret_addr, or -errno (logged). */
int daemon_listen(const char *addr, char *ret_addr, size_t len);

/*
 * The ready line "PROG listening on ADDR" (" http HTTP" added when http is
 * not NULL) on stdout, which scripts and tests wait for, then READY=1 to a
 * service manager that asked.
 */
void daemon_ready(const char *prog, const char *addr, const char *http);
/*
 * Serving ended with r: 0 for a signal ("shutting down"), or the accept
 * loop's -errno (logged). Sends STOPPING=1 and returns the exit status.
 */
int daemon_stopped(int r);

#endif /* DISAGG_DAEMON_H */
