/* SPDX-License-Identifier: MIT */
/*
 * What a slot boots (docs/api.md, "Slots", "image"): the create request's
 * "image", "disk", "volumes", "ssh_keys", "user_data" and "append" (slotboot.c),
 * and the cloud-init member of the VM's request. The volumes themselves
 * are volumes_boot.c's (struct orch_volumes.boot_prepare).
 */
#ifndef DISAGG_ORCH_SLOTBOOT_H
#define DISAGG_ORCH_SLOTBOOT_H

#include <jansson.h>
#include <stdbool.h>

#include <stdint.h>

#include "http.h"

/* Pointers into the create request's body. */
struct slotboot_req {
	const char *image;            /* NULL: no root volume */
	uint64_t disk;                /* the root volume's size; 0: the image's */
	json_t *volumes;              /* more volumes to attach (names), or NULL */
	const char *append;           /* more kernel command line, or NULL */
	json_t *ssh_keys;             /* or NULL */
	const char *user_data;        /* or NULL */
	bool any;                     /* an image or volumes: volumes_boot.c's part */
};

/*
 * Parse those members of the create request (have_volumes: the
 * orchestrator keeps volumes): 0, or -EINVAL answered (400, 501).
 */
int slotboot_parse(json_t *body, bool have_volumes, struct slotboot_req *ret,
		   struct http_resp *resp);
/* The VM's "cloud_init" for slot `name` (NULL when it has no image, keys or user data). */
json_t *slotboot_cloud_init(const struct slotboot_req *b, const char *name);

#endif
