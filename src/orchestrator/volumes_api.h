/* SPDX-License-Identifier: MIT */
/*
 * Block volumes, as main.c starts them (volumes_api.c): the table of
 * struct orch_volumes that the rest of the orchestrator calls through;
 * and the steps of the volume routes that images.c builds on.
 */
#ifndef DISAGG_ORCH_VOLUMES_API_H
#define DISAGG_ORCH_VOLUMES_API_H

#include "volumes.h"

/*
 * Settle the volumes a restart interrupted (asking their device nodes),
 * then set o->volumes. Needs a store with a volume catalog (o->store->vol).
 */
void volumes_start(struct orch *o);

/* ---- what images.c uses ------------------------------------------------------ */

/* A new volume (volumes_make). */
struct volumes_new {
	char name[STORE_NAME_MAX], from[STORE_NAME_MAX];
	uint64_t size;          /* 0: a clone's source's */
	uint64_t devnode;       /* 0: placement (a clone: its source's) */
	bool image;
};

/*
 * Arguments of a JSON body, with 400 answered when bad: body[key] a
 * volume name into dst (absent and !required: ""); a size (bad_size;
 * *ret 0 when absent); a node id (*ret 0 when absent). 0 or -EINVAL.
 */
int volumes_name_arg(json_t *body, const char *key, bool required, char dst[STORE_NAME_MAX],
		     struct http_resp *resp);
int volumes_size_arg(json_t *body, const char *key, uint64_t *ret, struct http_resp *resp);
int volumes_id_arg(json_t *body, const char *key, const char *what, uint64_t *ret,
		   struct http_resp *resp);
/*
 * The device node for a new volume: `devnode` (0: placement). 0, or
 * -errno with 404, 409 conflict (drained), 409 capacity or 503 answered.
 */
int volumes_pick(struct orch *o, uint64_t devnode, struct node_rec *dn, struct http_resp *resp);
/*
 * Make volume a on device node dn: its row first (`creating`), then the
 * node's volume (a clone of src when src is not NULL, grown to a->size),
 * then the record. 201 with the volume answered (and *ret, if not NULL,
 * its record), or the error answered.
 */
void volumes_make(struct orch *o, const struct volumes_new *a, const struct node_rec *dn,
		  const struct volume_rec *src, struct http_resp *resp, struct volume_rec *ret);
/*
 * DELETE /v1/volumes/NAME: 204, or the error answered. image: the caller
 * deletes the image whose base volume it is (else that is refused).
 */
void volumes_delete(struct orch *o, const char *name, bool image, struct http_resp *resp);

#endif /* DISAGG_ORCH_VOLUMES_API_H */
