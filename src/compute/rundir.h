/* SPDX-License-Identifier: MIT */
/*
 * The agent's run directory and who owns it (rundir.c).
 *
 * A run directory belongs to one agent of one cluster: the agent holds an
 * flock on RUN_DIR/.lock for as long as it runs, and RUN_DIR/.owner names
 * the cluster (a fingerprint of its key) and the node id. Another agent,
 * of this cluster or of another, never uses it at the same time, and an
 * agent of another cluster or node id never uses it at all: so an agent
 * only ever adopts, stops or removes VMs that it or an earlier instance of
 * itself started. docs/compute.md, "Run directory".
 */
#ifndef DISAGG_RUNDIR_H
#define DISAGG_RUNDIR_H

#include <stddef.h>
#include <stdint.h>

#include "auth.h"

#define RUNDIR_CLUSTER_ID_LEN 16   /* hex digits */

/* The cluster's fingerprint: an HMAC of a fixed label under the key (not the key). */
int rundir_cluster_id(const struct auth_key *key, char ret[RUNDIR_CLUSTER_ID_LEN + 1]);

/* The default run directory: /dev/shm/disagg-compute-CLUSTER-ID. */
void rundir_default(const char *cluster_id, uint64_t node_id, char *ret, size_t len);

/*
 * Create dir if needed (0700) and make it this agent's: returns the lock's
 * fd (keep it open while the agent runs) or -errno with err saying why:
 * -ENOTDIR (a symbolic link or not a directory), -EPERM (owned by another
 * user, writable by group or others, or it belongs to another cluster or
 * node), -EBUSY (another agent runs on it), -ENOTEMPTY (it holds VM
 * directories but no owner record), or the error of a file operation.
 */
int rundir_claim(const char *dir, const char *cluster_id, uint64_t node_id, char *err,
		 size_t errlen);

/*
 * At a clean exit, when no VM directory is left: remove the owner record
 * and the lock (and, if remove_dir, the boot cache, RUNDIR_BOOT_CACHE, and
 * the directory itself), then close lockfd. With VM directories left (VMs
 * that keep running), only close lockfd.
 */
void rundir_release(const char *dir, int lockfd, int remove_dir);

/* The kernels and initramfs fetched for new VMs (vm_boot.c), inside the run directory. */
#define RUNDIR_BOOT_CACHE "boot-cache"

#endif /* DISAGG_RUNDIR_H */
