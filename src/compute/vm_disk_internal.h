/* SPDX-License-Identifier: MIT */
/*
 * What vm_disk.c (attach, detach, the disks' threads) shares with
 * vm_disk_mig.c (disks arriving with a compute migration).
 */
#ifndef DISAGG_VM_DISK_INTERNAL_H
#define DISAGG_VM_DISK_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "disagg/proto.h"
#include "vm_disk.h"
#include "vm_internal.h"
#include "vu_blk.h"
#include "vu_devnode.h"

#define QMP_MS 10000
#define DETACH_MS 30000
/* Disk N is at PCI slot VM_DISK_PCI_SLOT + N of bus 0, on both ends of a migration. */
#define VM_DISK_PCI_SLOT 0x18u

struct vm_disk {
	bool in_use;
	char id[16];                 /* "disk0": the QEMU device; its chardev is "chr-" id */
	char volume[PROTO_VOL_NAME_SIZE];
	char devnode[PROTO_MAX_ADDR];
	char sock[108];
	bool readonly;
	struct vu_blk_conf conf;
	struct vu_devnode *store;
	int lfd, stop_efd;
	pthread_t thread;
	bool thread_on;
	pthread_mutex_t mu;          /* dev */
	struct vu_blk *dev;          /* the connection being served */
	bool stop;
	char serial[21];
	int64_t outage_ms;           /* as asked (-1: the default), shown and migrated */
};

struct vm_disks {
	struct vm_disk d[VM_MAX_DISKS];
	unsigned reserved;           /* bit N: slot of disk N taken by the cloud-init seed */
};

/* A disk as POST .../disks asks for it (pointers into the request's JSON). */
struct vm_disk_req {
	const char *volume, *devnode, *grant_hex, *serial;
	bool readonly;
	int64_t outage_ms;           /* -1: the default */
	bool deferred;               /* a migration's destination: open for writing at first use */
	uint64_t known_size;         /* a restarted agent's disk: its size (vu_devnode_conf) */
};

/*
 * The disks' part of the VM record (ext.h): "disks", each as the status
 * shows it with its grant, and "disk_slots_reserved"; written to vm.json
 * now if `persist`. vm->lock not held.
 */
void vm_disk_record(struct vm *vm, bool persist);

/* Fill q from a request object (its keys checked by the caller): -EINVAL with err. */
int vm_disk_req_parse(json_t *j, struct vm_disk_req *q, char *err, size_t errlen);
/* Open the volume for dk (its store and conf). */
int vm_disk_open(struct vm *vm, struct vm_disk *dk, const struct vm_disk_req *q, char *err,
		 size_t errlen);
/* Name it disk<idx>, listen on its socket and start its thread. */
int vm_disk_start(struct vm *vm, struct vm_disk *dk, unsigned idx, char *err, size_t errlen);
/* Stop its thread, close the volume, forget it. */
void vm_disk_release(struct vm_disk *dk);

#endif /* DISAGG_VM_DISK_INTERNAL_H */
