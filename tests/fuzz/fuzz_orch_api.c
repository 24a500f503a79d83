// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the orchestrator's REST API (src/orchestrator/
 * api.c and the handlers behind it: nodes.c, slots.c, migrate*.c,
 * regions*.c, volumes*.c with the disks of slots, images*.c, and the web
 * view's events.c (a long poll answers at once here), ui.c, slotpager.c):
 * routing, node ids and slot names in paths, strict JSON bodies,
 * registration and heartbeat documents, slot specifications, placement,
 * and the orchestrator's reading of the compute agents' answers.
 *
 * Each input gets a fresh orchestrator on an empty SQLite store in memory
 * (":memory:"), so nothing survives from one input to the next and nothing
 * is written. The network is the target's: the compute agents' HTTP client
 * (cclient_call) and the memory-node connections (mnpool_*) are replaced
 * by a scripted peer that answers from the input, so the orchestrator's
 * reading of those answers is fuzzed too and no address a request names is
 * ever contacted. When the script runs out, a compute agent has no VM (404),
 * except that a wait for a state is answered with that state (an agent
 * that gets there at once: the orchestrator's waiting loops end), and a
 * memory node is unreachable. A device node never answers for real
 * (volumes_connect fails with an error the script picks), so the catalog
 * starts with device node 31 and its volumes v1 and v2 already in the
 * store, v2 the base volume of image v2 (importing, with a kernel): what
 * attaches to slots and the image routes' checks need no device node. No
 * image directory: kernel uploads are refused.
 *
 * Input layout: number of requests (1), the requests (fuzz_http.h), then
 * the peer's script: for each compute call a 16-bit status (0: no answer),
 * a 16-bit body length and the body; for each memory-node call one byte
 * (even: success, the next bytes give section and generation).
 *
 * Seed inputs: tests/fuzz/corpus/orch_api/ (made by gen_corpus.py).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_http.h"
#include "events.h"
#include "images.h"
#include "log.h"
#include "orch.h"
#include "regions_api.h"
#include "store_sqlite.h"
#include "store_sqlite_volumes.h"
#include "volumes.h"
#include "volumes_api.h"
#include "volumes_boot.h"

static struct grant_key *fuzz_gkey;     /* the orchestrator's, made once */

static struct fz_in peer;   /* this input's script */

static const int peer_errors[] = { -EHOSTUNREACH, -ECONNREFUSED, -ETIMEDOUT, -ENOSPC, -EIO,
				   -ESTALE, -ENOENT, -EKEYREJECTED };

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_set_level(LOG_LVL_ERROR);
	return 0;
}

/* ---- the scripted compute agents ---------------------------------------- */

int cclient_global_init(void)
{
	return 0;
}

void cclient_global_cleanup(void)
{
}

/* Out of script: no VM here, but a wait for a state is met at once. */
static int cclient_unscripted(const char *method, const char *path, char **ret_body)
{
	const char *wait = strstr(path, "?wait=");
	size_t n;

	if (strcmp(method, "GET") || strncmp(path, "/v1/vms/", 8))
		return -ECONNREFUSED;
	if (!wait)
		return 404;
	wait += strlen("?wait=");
	n = strcspn(wait, "&");
	if (ret_body && asprintf(ret_body, "{\"state\": \"%.*s\"}", (int)n, wait) < 0)
		*ret_body = NULL;
	return 200;
}

int cclient_set_auth(const struct auth_key *secret, const char *cafile)
{
	return 0;
}

static int scripted_call(const char *method, const char *path, char **ret_body,
			 size_t *ret_len)
{
	unsigned status;
	size_t len;
	char *b;

	if (ret_body)
		*ret_body = NULL;
	if (peer.n < 4) {
		int r = cclient_unscripted(method, path, ret_body);

		if (ret_len && ret_body && *ret_body)
			*ret_len = strlen(*ret_body);
		return r;
	}
	status = fz_u16(&peer) % 600;
	len = fz_u16(&peer);
	len = len < peer.n ? len : peer.n;
	if (status < 100)
		return peer_errors[status % ARRAY_SIZE(peer_errors)];
	b = malloc(len + 1);
	CHECK(b);
	fz_bytes(&peer, b, len);
	b[len] = '\0';
	if (ret_len)
		*ret_len = len;
	if (ret_body)
		*ret_body = b;
	else
		free(b);
	return (int)status;
}

int cclient_call(uint64_t node_id, const char *http, const char *method, const char *path,
		 const char *body, int timeout_ms, char **ret_body)
{
	return scripted_call(method, path, ret_body, NULL);
}

/* The page-metadata hand-over's binary calls: the peer's bytes as they come. */
int cclient_call_raw(uint64_t node_id, const char *http, const char *method, const char *path,
		     const char *ctype, const void *body, size_t len, int timeout_ms,
		     char **ret_body, size_t *ret_len)
{
	if (ret_len)
		*ret_len = 0;
	return scripted_call(method, path, ret_body, ret_len);
}

/* ---- the scripted memory nodes ------------------------------------------- */

static int mn_answer(void)
{
	uint8_t c;

	if (!peer.n)
		return -EHOSTUNREACH;
	c = fz_u8(&peer);
	return c % 2 ? peer_errors[(c >> 1) % ARRAY_SIZE(peer_errors)] : 0;
}

int mnpool_new(struct orch *o, struct mnpool **ret)
{
	*ret = NULL;
	return 0;
}

void mnpool_free(struct mnpool *p)
{
}

void mnpool_forget(struct mnpool *p, uint64_t node_id)
{
}

int mnpool_alloc(struct mnpool *p, const struct node_rec *n, uint64_t owner,
		 uint32_t *ret_section, uint32_t *ret_generation)
{
	int r = mn_answer();

	if (r == 0) {
		*ret_section = fz_u16(&peer);
		*ret_generation = fz_u8(&peer);
	}
	return r;
}

int mnpool_free_section(struct mnpool *p, const struct node_rec *n, uint32_t section,
			uint32_t generation, uint32_t epoch)
{
	return mn_answer();
}

int mnpool_copy(struct mnpool *p, const struct node_rec *n, uint32_t src, uint32_t src_gen,
		const struct proto_grant *dst_grant, const char *dst_addr,
		struct proto_copy_rep *ret)
{
	int r = mn_answer();

	if (r == 0)
		*ret = (struct proto_copy_rep){ .pages = fz_u16(&peer), .usec = fz_u16(&peer) };
	return r;
}

int mnpool_fence(struct mnpool *p, const struct node_rec *n, const struct proto_grant *g,
		 uint32_t *ret_epoch)
{
	int r = mn_answer();

	if (r == 0 && ret_epoch)
		*ret_epoch = g->epoch + fz_u8(&peer) % 2;
	return r;
}

int mnpool_revoke(struct mnpool *p, const struct node_rec *n)
{
	return mn_answer();
}

int revoke_push(struct orch *o, struct mnc *c)
{
	return mn_answer();
}

/* ---- the scripted device nodes ------------------------------------------- */

int volumes_connect(struct orch *o, const struct node_rec *dn, struct mnc **ret)
{
	uint8_t c = peer.n ? fz_u8(&peer) : 0;

	*ret = NULL;
	return c % 2 ? -EOPNOTSUPP : peer_errors[(c >> 1) % ARRAY_SIZE(peer_errors)];
}

/* Device node 31, two volumes on it and an image, as if created before. */
static void seed_catalog(struct store *st)
{
	struct node_rec dn = { .id = 31, .registered = 1, .last_heartbeat = 1 };
	struct volume_rec v = { .devnode = 31, .size = 1 << 20, .key = 0x1122334455667788ull,
				.created = 1 };
	struct image_rec img = { .created = 1 };

	snprintf(dn.kind, sizeof(dn.kind), "devnode");
	snprintf(dn.name, sizeof(dn.name), "dn31");
	snprintf(dn.addr, sizeof(dn.addr), "127.0.0.1:7301");
	snprintf(dn.labels, sizeof(dn.labels), "{}");
	CHECK(st->ops->node_put(st, &dn) == 0);
	snprintf(v.name, sizeof(v.name), "v1");
	snprintf(v.state, sizeof(v.state), "ready");
	CHECK(st->vol->volume_insert(st, &v) == 0);
	snprintf(v.name, sizeof(v.name), "v2");
	v.image = true;
	v.key++;
	CHECK(st->vol->volume_insert(st, &v) == 0);
	/* v2 is the base volume of image v2, being imported, with a kernel. */
	snprintf(img.name, sizeof(img.name), "v2");
	snprintf(img.state, sizeof(img.state), "importing");
	snprintf(img.format, sizeof(img.format), "qcow2");
	img.size = v.size;
	img.volume_id = v.id;
	img.kernel_size = 4096;
	CHECK(st->vol->image_insert(st, &img) == 0);
}

/* ---- requests --------------------------------------------------------------- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	unsigned nreq = fz_u8(&in) % 17;
	const struct http_route *routes;
	struct http_req reqs[16];
	char *paths[16], *bodies[16];
	struct orch *o = calloc(1, sizeof(*o));
	size_t nroutes;
	unsigned n = 0;

	CHECK(o);
	while (n < nreq && fz_http_next(&in, &reqs[n], &paths[n], &bodies[n]) == 0)
		n++;
	peer = in;
	o->node_id = 1;
	memcpy(o->key.bytes, "fuzz-key-fuzz-key-fuzz-key-0123", PROTO_KEY_SIZE);
	if (!fuzz_gkey)
		CHECK(grant_key_generate(&fuzz_gkey) == 0);
	o->grant_key = fuzz_gkey;
	o->grant_ttl_s = 3600;
	o->node_timeout_s = 30;
	o->heartbeat_s = 10;
	o->section_size = 2u << 20;
	o->compute_timeout_ms = 1000;
	pthread_mutex_init(&o->place_mu, NULL);
	pthread_mutex_init(&o->mon_mu, NULL);
	pthread_cond_init(&o->mon_cv, NULL);
	CHECK(store_sqlite_open(":memory:", &o->store) == 0);
	store_sqlite_volumes(o->store);
	seed_catalog(o->store);
	regions_start(o);
	volumes_start(o);
	volumes_boot_start(o);
	images_start(o);
	o->events_no_wait = true;
	events_start(o);
	routes = api_routes(&nroutes);
	for (unsigned i = 0; i < n; i++) {
		fz_http_serve(routes, nroutes, o, &reqs[i]);
		free(paths[i]);
		free(bodies[i]);
	}
	store_close(o->store);
	pthread_cond_destroy(&o->mon_cv);
	pthread_mutex_destroy(&o->mon_mu);
	pthread_mutex_destroy(&o->place_mu);
	free(o);
	return 0;
}
