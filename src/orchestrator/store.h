/* SPDX-License-Identifier: MIT */
/*
 * The orchestrator's durable state behind an ops table.
 *
 * Everything the orchestrator knows (nodes, slots, their sections, shared
 * regions with their sections and attachments, the answers to requests
 * carrying an X-Request-Id, the event log) goes through
 * `struct store_ops`, and the catalog of block volumes through `struct
 * store_volume_ops` (store->vol; NULL in a store without one). The one
 * implementation is store_sqlite.c (an embedded SQLite file in WAL mode,
 * its volume catalog in store_sqlite_volumes.c); a distributed store
 * (etcd) can replace it by providing the same operations, so nothing
 * outside store_*.c knows SQL.
 *
 * Threading: a store is shared by every request thread. Each operation is
 * atomic on its own. begin()/commit()/rollback() group several operations
 * into one transaction; the calling thread holds the store exclusively
 * between begin() and commit()/rollback() (other threads wait), so a
 * transaction must never wait for the network.
 *
 * Records use fixed-size strings so they can be copied around freely.
 * Times are seconds since the Unix epoch. Errors are -errno: -ENOENT for a
 * missing row, -EEXIST for a duplicate key, -EIO for a database error.
 */
#ifndef DISAGG_ORCH_STORE_H
#define DISAGG_ORCH_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_NAME_MAX 64
#define STORE_ADDR_MAX 256
#define STORE_JSON_MAX 1024
#define STORE_STATE_MAX 16

struct node_rec {
	uint64_t id;
	char kind[STORE_STATE_MAX];      /* memnode, compute, devnode */
	char name[STORE_NAME_MAX];
	char state[STORE_STATE_MAX];     /* up, down */
	bool drained;
	char addr[STORE_ADDR_MAX];       /* data address (memory nodes) */
	char http[STORE_ADDR_MAX];       /* control address */
	char labels[STORE_JSON_MAX];     /* JSON object of strings */
	uint64_t section_size;
	int64_t sections_total;
	int64_t sections_free;           /* last report, minus our allocations since */
	int64_t vcpus;                   /* compute nodes: capacity */
	int64_t registered;
	int64_t last_heartbeat;
	/* Filled by node_list/node_get only (not stored). */
	int64_t nslots;                  /* slots using the node */
	int64_t vcpus_used;              /* compute nodes: vCPUs of their live slots */
};

struct slot_rec {
	int64_t id;                      /* never reused: the owner id on memory nodes */
	char name[STORE_NAME_MAX];
	char state[STORE_STATE_MAX];     /* creating, running, resizing, deleting, migrating,
					    unresolved, failed, lost */
	int64_t vcpus;
	uint64_t memory;                 /* bytes */
	int64_t remote_percent;
	int64_t cache;                   /* bytes, -1 = no limit */
	uint64_t compute;                /* compute node id */
	char policy[STORE_STATE_MAX];    /* spread, pack */
	char hotplug[STORE_STATE_MAX];   /* dimm, virtio-mem */
	char constraints[STORE_JSON_MAX];/* JSON: {"compute": {..}, "memory": {..}} */
	char reason[STORE_ADDR_MAX];     /* why it failed or was lost */
	int64_t created;
	char op[STORE_JSON_MAX];         /* JSON of a migration in progress, "" = none */
	char page_key[65];               /* the slot's page key, hex (guest memory at rest); "" = pages in clear */
	char net[256];                   /* JSON: its network card (slotnet.c); "" = none (a slot from before cards) */
	int64_t replicas;                /* replicas of each remote section, 1..3 (replicas.c) */
};

struct section_rec {
	int64_t slot_id;
	char slot[STORE_NAME_MAX];       /* filled by section_list */
	int64_t idx;                     /* position in the VM's memory, 0.. */
	bool remote;
	uint64_t memnode;                /* remote only */
	uint32_t section;
	uint32_t generation;
	int64_t hot_index;               /* compute agent's hot-plug index; -1 = boot RAM */
	uint32_t epoch;                  /* remote: ownership epoch of its grants (fence.c) */
};

/*
 * One replica of a slot's remote section (replicas.c): position 0 is the
 * section itself (its sections row), positions 1.. its extra replicas
 * (section_replicas rows). state: in, out (missed writes: not used until
 * repaired), repairing.
 */
struct replica_rec {
	int64_t slot_id;
	char slot[STORE_NAME_MAX];       /* filled by replica_list */
	int64_t idx;                     /* the section's position in the VM's memory */
	int64_t replica;                 /* position, 0.. */
	uint64_t memnode;
	uint32_t section;
	uint32_t generation;
	uint32_t epoch;
	char state[STORE_STATE_MAX];
	char reason[STORE_ADDR_MAX];
};

/* A shared region (regions.c): memory on one memory node that slots map at once. */
struct region_rec {
	int64_t id;                      /* never reused: owner ORCH_REGION_OWNER | id on memory nodes */
	char name[STORE_NAME_MAX];
	char mode[STORE_STATE_MAX];      /* exclusive */
	char state[STORE_STATE_MAX];     /* creating, ready, attaching, detaching, locking,
					    unlocking, deleting */
	uint64_t size;                   /* bytes */
	uint64_t home;                   /* the memory node of its sections */
	int64_t holder;                  /* slot id holding the lock; 0 = none */
	char holder_name[STORE_NAME_MAX];/* filled by region_get/region_list */
	int64_t pending;                 /* slot id the operation in progress is for; 0 = none */
	uint32_t epoch;                  /* ownership epoch of its sections' grants */
	int64_t created;
};

struct region_section_rec {
	int64_t region_id;
	int64_t idx;                     /* position in the region, 0.. */
	uint64_t memnode;
	uint32_t section;
	uint32_t generation;
	uint32_t epoch;                  /* follows the region's (region_update) */
};

/* A slot that maps a region. */
struct region_attach_rec {
	int64_t region_id;
	char region[STORE_NAME_MAX];     /* filled by attach_list */
	int64_t slot_id;
	char slot[STORE_NAME_MAX];       /* filled by attach_list */
	uint64_t compute;                /* the slot's compute node, filled by attach_list */
	char state[STORE_STATE_MAX];     /* attaching, attached, detaching */
	char pci[32];                    /* the device's PCI address in the guest; "" = not known */
	bool stale;                      /* an invalidation after an unlock did not reach it */
};

/* A block volume on a device node (volumes*.c): a row of the volume catalog. */
struct volume_rec {
	int64_t id;
	char name[STORE_NAME_MAX];       /* unique in the cluster: [a-z0-9_-]{1,63}, first not - or _ */
	char state[STORE_STATE_MAX];     /* creating, ready, resizing, cloning, deleting */
	uint64_t devnode;                /* the device node that holds it */
	uint64_t size;                   /* bytes */
	uint64_t key;                    /* the device node's random key, which grants name; 0 while creating */
	bool image;                      /* a base image */
	char kind[8];                    /* "file" (a NAME.vol of the node's data directory) or
					    "block" (a block device the node serves: it cannot be
					    resized or deleted there); "" reads as "file" */
	char origin[STORE_NAME_MAX];     /* the volume it was cloned from; "" = none */
	int64_t slot_id;                 /* the slot it is attached to (or being attached to,
					    detached from); 0 = none */
	char slot[STORE_NAME_MAX];       /* that slot's name, filled by volume_get/volume_list */
	char disk[16];                   /* the compute agent's id of the disk ("disk0"); "" = not
					    known (read as "" while slot_id is 0) */
	bool read_only;                  /* attached read-only */
	uint32_t epoch;                  /* ownership epoch: its grants carry it (volumes_disks.c) */
	uint64_t holder;                 /* the compute node of its slot, filled by
					    volume_get/volume_list; 0 = not attached */
	int64_t run;                     /* the orchestrator run whose operation it is in (state != ready) */
	int64_t created;
};

/*
 * An image (images.c): a disk image imported into a base volume of the
 * same name, with the kernel and initramfs to boot it, if it has them
 * (files in the orchestrator's image directory).
 */
struct image_rec {
	int64_t id;
	char name[STORE_NAME_MAX];       /* its base volume's name too */
	char state[STORE_STATE_MAX];     /* importing, ready, deleting */
	char format[16];                 /* what was imported: raw, qcow2 */
	uint64_t size;                   /* bytes of the disk (its base volume's size) */
	int64_t volume_id;               /* the base volume */
	uint64_t devnode;                /* its device node, filled by image_get/image_list */
	uint64_t kernel_size, initrd_size; /* bytes; 0 = none */
	char cmdline[256];               /* the kernel command line it boots with; "" = none */
	int64_t created;
};

struct event_rec {
	int64_t seq;
	int64_t time;
	char kind[32];
	uint64_t node;                   /* 0 = none */
	char slot[STORE_NAME_MAX];       /* "" = none */
	char message[1024];
};

struct store;

struct store_ops {
	void (*close)(struct store *s);

	int (*begin)(struct store *s);
	int (*commit)(struct store *s);
	void (*rollback)(struct store *s);

	/* Nodes. node_put inserts or updates everything but state/drained. */
	int (*node_put)(struct store *s, const struct node_rec *n);
	int (*node_get)(struct store *s, uint64_t id, struct node_rec *ret);
	/* kind NULL = all kinds; ordered by id; *ret is malloc'd. */
	int (*node_list)(struct store *s, const char *kind, struct node_rec **ret, size_t *ret_n);
	int (*node_set_state)(struct store *s, uint64_t id, const char *state);
	int (*node_set_drained)(struct store *s, uint64_t id, bool drained);
	/* Heartbeat at `now`; free/vcpus < 0 leave the value alone. */
	int (*node_heartbeat)(struct store *s, uint64_t id, int64_t now, int64_t sections_free,
			      int64_t sections_total, int64_t vcpus);
	int (*node_adjust_free)(struct store *s, uint64_t id, int64_t delta);
	int (*node_set_free)(struct store *s, uint64_t id, int64_t sections_free);
	/* Up nodes whose last heartbeat is older than `deadline`: ids in *ret (malloc'd). */
	int (*node_stale)(struct store *s, int64_t deadline, uint64_t **ret, size_t *ret_n);

	/* Slots. slot_insert sets rec->id; -EEXIST when the name is taken. */
	int (*slot_insert)(struct store *s, struct slot_rec *rec);
	int (*slot_get)(struct store *s, const char *name, struct slot_rec *ret);
	/* compute 0 = all; memnode != 0: slots with a section there. */
	int (*slot_list)(struct store *s, uint64_t compute, uint64_t memnode, struct slot_rec **ret,
			 size_t *ret_n);
	/* state, memory, reason, compute, op, net */
	int (*slot_update)(struct store *s, const struct slot_rec *rec);
	int (*slot_delete)(struct store *s, int64_t id);                   /* and its sections */

	/* Sections of slots. slot_id / memnode 0 = any. Ordered by slot, idx. */
	int (*section_add)(struct store *s, const struct section_rec *rec);
	int (*section_remove)(struct store *s, int64_t slot_id, int64_t idx);
	int (*section_list)(struct store *s, int64_t slot_id, uint64_t memnode,
			    struct section_rec **ret, size_t *ret_n);
	int (*section_count)(struct store *s, int64_t *ret);

	/*
	 * Idempotency records. request_begin: 0 = new (now in progress),
	 * -EEXIST = known: *ret_status is 0 while the first one runs, else its
	 * answer with *ret_body (malloc'd) and the method/path it was for.
	 */
	int (*request_begin)(struct store *s, const char *id, const char *method, const char *path,
			     int64_t now, int *ret_status, char **ret_body, char **ret_key);
	int (*request_finish)(struct store *s, const char *id, int status, const char *body);
	int (*request_forget)(struct store *s, const char *id);
	int (*request_prune)(struct store *s, int64_t before);
	/* Forget requests still marked in progress (at start: they died with us). */
	int (*request_abandon)(struct store *s);

	/* Events. */
	/* Revoked node ids: add one (again: no change), the whole list (*ret malloc'd). */
	int (*revoked_add)(struct store *s, uint64_t id, int64_t now);
	int (*revoked_list)(struct store *s, uint64_t **ret, size_t *ret_n);
	int (*event_add)(struct store *s, const char *kind, uint64_t node, const char *slot,
			 const char *message);
	int (*event_list)(struct store *s, int64_t since, int64_t limit, struct event_rec **ret,
			  size_t *ret_n);

	/*
	 * Shared regions. region_insert sets rec->id (-EEXIST: the name is
	 * taken); region_update writes state, holder, pending, epoch and home,
	 * and sets the epoch of every section of the region to rec->epoch;
	 * region_delete removes its sections and attachments too. Lists are
	 * ordered by id.
	 */
	int (*region_insert)(struct store *s, struct region_rec *rec);
	int (*region_get)(struct store *s, const char *name, struct region_rec *ret);
	int (*region_list)(struct store *s, struct region_rec **ret, size_t *ret_n);
	int (*region_update)(struct store *s, const struct region_rec *rec);
	int (*region_delete)(struct store *s, int64_t id);
	/* region_id / memnode 0 = any; ordered by region, idx. */
	int (*region_section_add)(struct store *s, const struct region_section_rec *rec);
	int (*region_section_list)(struct store *s, int64_t region_id, uint64_t memnode,
				   struct region_section_rec **ret, size_t *ret_n);
	/* Attachments: attach_put inserts or replaces (state, pci, stale). */
	int (*attach_put)(struct store *s, const struct region_attach_rec *rec);
	int (*attach_remove)(struct store *s, int64_t region_id, int64_t slot_id);
	/* region_id / slot_id 0 = any; ordered by region, slot. */
	int (*attach_list)(struct store *s, int64_t region_id, int64_t slot_id,
			   struct region_attach_rec **ret, size_t *ret_n);
};

/*
 * The volume catalog. volume_insert sets rec->id (-EEXIST: the name is
 * taken); volume_update writes state, size, key, slot_id, disk,
 * read_only, epoch and run. Lists are ordered by name; devnode 0 = every device
 * node.
 */
struct store_volume_ops {
	int (*volume_insert)(struct store *s, struct volume_rec *rec);
	int (*volume_get)(struct store *s, const char *name, struct volume_rec *ret);
	int (*volume_list)(struct store *s, uint64_t devnode, struct volume_rec **ret,
			   size_t *ret_n);
	int (*volume_update)(struct store *s, const struct volume_rec *rec);
	int (*volume_delete)(struct store *s, int64_t id);
	/*
	 * Images (store_sqlite_images.c): image_insert sets rec->id (-EEXIST:
	 * the name is taken); image_update writes state; lists are by name.
	 */
	int (*image_insert)(struct store *s, struct image_rec *rec);
	int (*image_get)(struct store *s, const char *name, struct image_rec *ret);
	int (*image_list)(struct store *s, struct image_rec **ret, size_t *ret_n);
	int (*image_update)(struct store *s, const struct image_rec *rec);
	int (*image_delete)(struct store *s, int64_t id);
};

/*
 * Replicas of slots' remote sections (store_sqlite_replicas.c). replica_list
 * gives every position of every remote section (0 from sections, 1.. from
 * section_replicas), slot_id / memnode 0 = any, ordered by slot, idx,
 * position. replica_put inserts or replaces a position >= 1; replica_update
 * writes memnode, section, generation, epoch, state and reason of any
 * position (0: the sections row); replica_remove drops positions >= 1 of
 * section idx (-1: of every section of the slot).
 */
struct store_replica_ops {
	int (*replica_list)(struct store *s, int64_t slot_id, uint64_t memnode,
			    struct replica_rec **ret, size_t *ret_n);
	int (*replica_put)(struct store *s, const struct replica_rec *rec);
	int (*replica_update)(struct store *s, const struct replica_rec *rec);
	int (*replica_remove)(struct store *s, int64_t slot_id, int64_t idx);
	/*
	 * The operator's edits of a node that replication relies on
	 * (replicas_nodes.c): its labels (JSON text: zones), and forgetting it
	 * (-EEXIST while a slot, section, replica, region or volume names it).
	 */
	int (*node_set_labels)(struct store *s, uint64_t id, const char *labels);
	int (*node_remove)(struct store *s, uint64_t id);
};

struct store {
	const struct store_ops *ops;
	/* Replicas of sections (store_sqlite_replicas.h); NULL: none. */
	const struct store_replica_ops *rep;
	/* The volume catalog, in the same database (store_sqlite_volumes.h); NULL: none. */
	const struct store_volume_ops *vol;
};

/* The implementation: store_sqlite_open() (store_sqlite.h). */

static inline void store_close(struct store *s)
{
	if (s)
		s->ops->close(s);
}

#endif /* DISAGG_ORCH_STORE_H */
