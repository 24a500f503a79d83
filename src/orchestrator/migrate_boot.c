// SPDX-License-Identifier: MIT
/*
 * What a slot's VM boots, in a compute migration (migrate.h; docs/api.md,
 * "Disks in a compute migration"). QEMU migrates the state of the devices,
 * not the devices: the destination's VM needs the same boot files (the
 * image's kernel and initramfs, or the firmware boot) and the same
 * cloud-init seed drive at the same PCI slot.
 *
 * Ask, don't guess: the source agent says what its VM was created with
 * (GET /v1/vms/NAME/boot: "boot" and "cloud_init" as asked, the orchestrator's
 * image URLs among them, and "seed", where the seed drive is and its size),
 * and the three go as they are in the destination's request, which fetches
 * the same files with its own token and makes the same seed at the same
 * slot. Nothing is changed here, so nothing needs undoing.
 *
 * An agent that cannot say (an older one answers 404) is refused with
 * 409 image_slot for a slot made from an image, whose destination could
 * not start; any other slot moves as before.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "migrate.h"

/* The members of the source's answer ans that go to the destination, or NULL. */
static json_t *dest_members(json_t *ans)
{
	static const char *const keys[] = { "boot", "cloud_init", "seed", NULL };
	json_t *out = json_object();

	for (size_t i = 0; out && keys[i]; i++)
		if (json_is_object(json_object_get(ans, keys[i])) &&
		    json_object_set(out, keys[i], json_object_get(ans, keys[i])) < 0)
			json_decref(TAKE_PTR(out));
	return out;
}

int mig_boot_begin(struct orch *o, const struct slot_rec *s, json_t **ret_boot,
		   struct http_resp *resp)
{
	char root[STORE_NAME_MAX] = "", image[STORE_NAME_MAX] = "", path[160], why[512];
	_cleanup_(json_decrefp) json_t *ans = NULL;
	struct node_rec c;
	json_t *out;
	int status, e;

	e = o->store->ops->node_get(o->store, s->compute, &c);
	if (e < 0) {
		http_resp_error(resp, 500, "internal", "store: %s", strerror(-e));
		return e;
	}
	if (o->boot)
		o->boot->root(o, s, root, image);
	snprintf(path, sizeof(path), "/v1/vms/%s/boot", s->name);
	status = mig_call(&c, "GET", path, NULL, MIG_SHORT_TIMEOUT_MS, &ans);
	mig_why(status, ans, why, sizeof(why));
	if (status == 200 && root[0] && !json_is_object(json_object_get(ans, "boot"))) {
		status = 404;   /* it cannot say after all */
		snprintf(why, sizeof(why), "no \"boot\" in its answer");
	}
	if (status == 404 && !root[0]) {
		/* An older agent: a slot with no image moves as before. */
		*ret_boot = json_object();
		return *ret_boot ? 0 : -ENOMEM;
	}
	if (status == 404) {
		http_resp_error(resp, 409, "image_slot", "slot %s was created from image %s, and "
				"compute node %s does not say what its VM boots (%s: an agent older "
				"than this orchestrator): its destination could not start the same "
				"VM; the slot stays, upgrade the agent to move it", s->name, image,
				c.name, why);
		return -EPROTO;
	} else if (status != 200) {
		http_resp_error(resp, status < 0 ? 503 : 502, status < 0 ? "node_unreachable"
									 : "agent_refused",
				"cannot ask compute node %s what slot %s's VM boots (%s): the slot "
				"stays there", c.name, s->name, why);
		return status < 0 ? status : -EIO;
	}
	if (json_is_object(json_object_get(ans, "cloud_init")) &&
	    !json_is_object(json_object_get(ans, "seed"))) {
		http_resp_error(resp, 409, "image_slot", "compute node %s does not say where slot "
				"%s's cloud-init seed drive is: the slot stays there", c.name, s->name);
		return -EPROTO;
	}
	out = dest_members(ans);
	if (!out) {
		http_resp_error(resp, 500, "internal", "out of memory");
		return -ENOMEM;
	}
	if (json_object_size(out))
		log_info("slot %s: its boot files%s go along to the destination", s->name,
			 json_object_get(out, "seed") ? " and its cloud-init seed" : "");
	*ret_boot = out;
	return 0;
}
