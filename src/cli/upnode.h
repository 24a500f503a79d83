/* SPDX-License-Identifier: MIT */
/*
 * The nodes `disagg up` starts (upnode.c): each kind's command line, and
 * what each keeps in the data directory (docs/cli.md, "What `disagg up`
 * does"). Errors are printed.
 */
#ifndef DISAGG_CLI_UPNODE_H
#define DISAGG_CLI_UPNODE_H

#include <stdbool.h>
#include <stdint.h>

#define UPNODE_DEVNODE_BASE 300    /* device nodes are 300, 301, ... */

/* What every node of a cluster started by `up` is given. */
struct upnode_conf {
	const char *dir;              /* the data directory */
	const char *key, *gpub;       /* the cluster key, the grant key's public half */
	const char *url;              /* the orchestrator */
	const char *ca;               /* the cluster CA (DIR/tls/ca.pem) */
	const char *rundir;           /* the parent of compute nodes' --run-dir, or NULL */
	const char *accel;            /* compute nodes' --accel */
	const char *bind;             /* "IP:0": every node's --listen and --http */
	uint64_t pool;                /* memory nodes' --pool, bytes */
	bool persistent;              /* memory nodes keep their pools in DIR */
	bool plaintext;               /* --fabric-plaintext instead of certificates */
};

/*
 * Before node `id` of `kind` (memnode, compute, devnode) starts: a memory
 * node's state directory loses an earlier cluster's revocations, a device
 * node's data directory (DIR/devnode-ID.data) its volumes, which the new
 * cluster's empty catalog does not list. 0 or -errno.
 */
int upnode_prepare(const struct upnode_conf *c, const char *kind, int64_t id);
/*
 * The command line of node `id` of `kind` running `path`, registering
 * with credential file `cred`, with its fabric certificate (tls_cert,
 * tls_key; NULL for a device node, which speaks plaintext only): a
 * NULL-terminated argv of malloc'd strings, or NULL (out of memory).
 */
char **upnode_argv(const struct upnode_conf *c, const char *kind, const char *path, int64_t id,
		   const char *cred, const char *tls_cert, const char *tls_key);
void upnode_argv_free(char **argv);   /* accepts NULL */

#endif /* DISAGG_CLI_UPNODE_H */
