// SPDX-License-Identifier: MIT
/*
 * The create request's boot members (slotboot.h): checked here so that a
 * bad one is a 400 before anything is placed.
 */
#include "slotboot.h"

#include <string.h>

#include "dnclient.h"
#include "jsonhttp.h"

#define SLOTBOOT_MAX_VOLUMES 7        /* with the root volume, the agent's 8 disks */

int slotboot_parse(json_t *body, bool have_volumes, struct slotboot_req *b,
		   struct http_resp *resp)
{
	json_t *v, *e;
	uint64_t size;
	size_t i;

	memset(b, 0, sizeof(*b));
	if ((v = json_object_get(body, "image"))) {
		b->image = json_string_value(v);
		if (!b->image || dnc_name_check(b->image) < 0) {
			http_resp_error(resp, 400, "bad_request", "\"image\" must be an image's name");
			return -EINVAL;
		}
	}
	if ((v = json_object_get(body, "disk"))) {
		if (!b->image) {
			http_resp_error(resp, 400, "bad_request", "\"disk\" (the root disk's size) "
					"needs \"image\"");
			return -EINVAL;
		}
		if (json_size(v, &size) < 0 || size == 0 || size % 512 || size > (1ull << 44)) {
			http_resp_error(resp, 400, "bad_size", "\"disk\" must be a size (such as "
					"\"10G\"): a multiple of 512 bytes, at most 16T");
			return -EINVAL;
		}
		b->disk = size;
	}
	if ((v = json_object_get(body, "volumes"))) {
		if (!json_is_array(v) || json_array_size(v) > SLOTBOOT_MAX_VOLUMES) {
			http_resp_error(resp, 400, "bad_request", "\"volumes\" must be an array of at "
					"most %d volume names", SLOTBOOT_MAX_VOLUMES);
			return -EINVAL;
		}
		json_array_foreach(v, i, e)
			if (!json_is_string(e) || dnc_name_check(json_string_value(e)) < 0) {
				http_resp_error(resp, 400, "bad_request", "\"volumes\": entry %zu is "
						"not a volume name", i);
				return -EINVAL;
			}
		b->volumes = json_array_size(v) ? v : NULL;
	}
	if ((v = json_object_get(body, "append"))) {
		b->append = json_string_value(v);
		if (!b->append || strlen(b->append) > 400 || !b->image) {
			http_resp_error(resp, 400, "bad_request", "\"append\" must be a string of at "
					"most 400 characters, with \"image\"");
			return -EINVAL;
		}
	}
	if ((v = json_object_get(body, "ssh_keys"))) {
		if (!json_is_array(v) || json_array_size(v) > 64) {
			http_resp_error(resp, 400, "bad_request", "\"ssh_keys\" must be an array of "
					"at most 64 public keys");
			return -EINVAL;
		}
		json_array_foreach(v, i, e) {
			const char *k = json_string_value(e);

			if (!k || !*k || strlen(k) > 16384 || strpbrk(k, "\n\r\"\\")) {
				http_resp_error(resp, 400, "bad_request", "\"ssh_keys\": key %zu must "
						"be one line (a public key, as in id_ed25519.pub)", i);
				return -EINVAL;
			}
		}
		b->ssh_keys = v;
	}
	if ((v = json_object_get(body, "user_data"))) {
		b->user_data = json_string_value(v);
		if (!b->user_data || strlen(b->user_data) > 65536) {
			http_resp_error(resp, 400, "bad_request", "\"user_data\" must be a string of "
					"at most 65536 bytes");
			return -EINVAL;
		}
		if (b->ssh_keys) {
			http_resp_error(resp, 400, "bad_request", "give \"ssh_keys\" or "
					"\"user_data\" (a #cloud-config that holds the keys), not both");
			return -EINVAL;
		}
	}
	b->any = b->image || b->volumes;
	if (b->any && !have_volumes) {
		http_resp_error(resp, 501, "no_volumes", "this orchestrator keeps no volumes");
		return -EINVAL;
	}
	return 0;
}

json_t *slotboot_cloud_init(const struct slotboot_req *b, const char *name)
{
	char host[64];
	size_t n = 0;
	json_t *ci;

	if (!b->image && !b->ssh_keys && !b->user_data)
		return NULL;
	/* A host name: the slot's, '_' as '-'. */
	for (const char *p = name; *p && n < sizeof(host) - 1; p++)
		host[n++] = *p == '_' ? '-' : *p;
	host[n] = '\0';
	ci = json_pack("{s:s}", "hostname", host);
	if (ci && b->ssh_keys)
		json_object_set(ci, "ssh_authorized_keys", b->ssh_keys);
	if (ci && b->user_data)
		json_object_set_new(ci, "user_data", json_string(b->user_data));
	return ci;
}
