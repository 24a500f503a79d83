// SPDX-License-Identifier: MIT
/*
 * A slot's network card: the create request's "net", the agent's part of
 * it, and the card as the agent reported it (slotnet.h).
 */
#include "slotnet.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "jsonhttp.h"
#include "macro.h"

#define BRIDGE_MAX 15   /* IFNAMSIZ - 1 */

int slotnet_parse(json_t *body, struct slot_rec *s, struct http_resp *resp)
{
	static const char *const keys[] = { "mode", "bridge", NULL };
	json_t *v = json_object_get(body, "net");
	const char *mode = json_string_value(json_object_get(v, "mode"));
	const char *br = json_string_value(json_object_get(v, "bridge"));
	const char *bad = NULL;

	if (!v) {
		snprintf(s->net, sizeof(s->net), "{\"mode\":\"user\"}");
		return 0;
	}
	if (!json_is_object(v) || json_check_keys(v, keys, &bad) < 0 || !mode ||
	    (strcmp(mode, "user") && strcmp(mode, "bridge") && strcmp(mode, "none")) ||
	    (!strcmp(mode, "bridge") != (br != NULL)) || json_object_size(v) != 1u + (br != NULL) ||
	    (br && (!*br || strlen(br) > BRIDGE_MAX || strchr(br, '/')))) {
		http_resp_error(resp, 400, "bad_request",
				"\"net\" must be {\"mode\": \"user\"}, {\"mode\": \"none\"} or "
				"{\"mode\": \"bridge\", \"bridge\": NAME} (an interface name of up "
				"to %d characters)", BRIDGE_MAX);
		return -EINVAL;
	}
	if (br)
		snprintf(s->net, sizeof(s->net), "{\"mode\":\"bridge\",\"bridge\":\"%s\"}", br);
	else
		snprintf(s->net, sizeof(s->net), "{\"mode\":\"%s\"}", mode);
	return 0;
}

json_t *slotnet_json(const struct slot_rec *s)
{
	json_t *j = s->net[0] ? json_loads(s->net, 0, NULL) : NULL;

	return json_is_object(j) ? j : (json_decref(j), json_pack("{s:s}", "mode", "none"));
}

json_t *slotnet_request(const struct slot_rec *s)
{
	json_t *j = slotnet_json(s), *br = json_object_get(j, "bridge");
	json_t *r = json_pack("{s:O}", "mode", json_object_get(j, "mode"));

	if (r && br)
		json_object_set(r, "bridge", br);
	json_decref(j);
	return r;
}

/* "ADDR:PORT" on 0.0.0.0: the compute node's host (from its API address) instead. */
static json_t *ssh_addr(const char *ssh, const struct node_rec *c)
{
	const char *port = strrchr(ssh, ':'), *host = c->http, *end;

	if (!port || strncmp(ssh, "0.0.0.0:", 8) != 0)
		return json_string(ssh);
	if (strstr(host, "://"))
		host = strstr(host, "://") + 3;
	end = host[0] == '[' ? strchr(host, ']') : strrchr(host, ':');
	if (host[0] == '[' && end)
		end++;
	if (!end)
		end = host + strlen(host);
	return json_sprintf("%.*s%s", (int)(end - host), host, port);
}

void slotnet_record(const struct slot_rec *s, json_t *answer_net, const struct node_rec *c,
		    char *net, size_t len)
{
	json_t *j = slotnet_request(s), *mac = json_object_get(answer_net, "mac");
	const char *ssh = json_string_value(json_object_get(answer_net, "ssh"));
	char *text;

	if (!j || !json_is_object(answer_net))
		goto out;
	if (json_is_string(mac))
		json_object_set(j, "mac", mac);
	if (ssh)
		json_object_set_new(j, "ssh", ssh_addr(ssh, c));
	text = json_dumps(j, JSON_COMPACT);
	if (text && strlen(text) < len)
		snprintf(net, len, "%s", text);
	free(text);
out:
	json_decref(j);
}
