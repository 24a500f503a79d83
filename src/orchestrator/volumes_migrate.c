// SPDX-License-Identifier: MIT
/*
 * Disks in a compute migration (docs/api.md, "Migration" and "Volume
 * ownership epochs"): what migrate_compute.c asks of the volumes attached
 * to the slot through struct orch_volumes, as regions_migrate.c does for
 * shared regions.
 *
 * Begin (the slot is `migrating`): the source agent says where each disk
 * is (GET /v1/vms/NAME: each disk's id and PCI address in the guest; ask,
 * don't guess: an agent that does not say `pci` is refused with 409, the
 * slot stays). In one transaction every volume attached to the slot
 * enters `migrating` (so no detach, resize or delete changes it while the
 * VM moves) with its ownership epoch advanced; then each gets a grant for
 * the destination of that epoch, and goes in the destination's "disks"
 * as the attach takes it, plus the source's `id` and `pci`. The epoch is
 * in the store before any grant of it exists, so a restart never mints
 * an older one again.
 *
 * Nothing is fenced here: the device node fences the source's handles when
 * the destination first opens a volume with the new epoch, which it does
 * once the guest runs there (the source has stopped for good). A migration
 * that fails before that leaves the source writing at its older epoch,
 * which no one has opened past; the raised epoch is harmless and the next
 * change of owner raises it again.
 *
 * End: the volumes are `ready` again. Moved (the source handed the VM
 * over), each has event volume_moved; its holder follows the slot's
 * compute node (the store joins them), so the slot's move is the volume's.
 */
#include "volumes_migrate.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "migrate.h"
#include "volumes.h"

/* The source agent's entry for volume `name` in its VM's "disks", or NULL. */
static json_t *source_disk(json_t *vm, const char *name)
{
	return mig_entry(json_object_get(vm, "disks"), "volume", name);
}

/*
 * Each of the n volumes of slot s is one the source serves and says
 * where it is: 0, or -errno with resp answered (409).
 */
static int check_sources(const struct slot_rec *s, const struct node_rec *c,
			 const struct volume_rec *vs, size_t n, json_t *vm, struct http_resp *resp)
{
	for (size_t i = 0; i < n; i++) {
		json_t *e = source_disk(vm, vs[i].name);
		const char *id = json_string_value(json_object_get(e, "id"));

		if (!e || !id || !id[0] || strlen(id) >= VOLUMES_DISK_ID_MAX) {
			http_resp_error(resp, 409, "disk_not_attached",
					"compute node %s does not serve volume %s for slot %s: "
					"detach it (disagg device detach %s %s), or attach it again, "
					"before moving the slot", c->name, vs[i].name, s->name,
					s->name, vs[i].name);
			return -ENOENT;
		}
		if (!json_is_string(json_object_get(e, "pci"))) {
			http_resp_error(resp, 409, "disk_not_movable",
					"compute node %s does not say where volume %s is in slot "
					"%s's guest (no \"pci\" in its disks: an agent older than "
					"this orchestrator); the slot stays there: upgrade the "
					"agent, or detach the volume first", c->name, vs[i].name,
					s->name);
			return -EPROTO;
		}
		if (strcmp(vs[i].state, "ready") != 0) {
			http_resp_error(resp, 409, "busy", "volume %s of slot %s is %s", vs[i].name,
					s->name, vs[i].state);
			return -EBUSY;
		}
	}
	return 0;
}

/*
 * In one transaction: every volume of slot s still attached to it and
 * `ready` enters `migrating` with its epoch advanced (and its disk id the
 * source's, when the catalog did not know it). 0, or -errno with resp
 * answered (nothing changed).
 */
static int enter(struct orch *o, const struct slot_rec *s, struct volume_rec *vs, size_t n,
		 json_t *vm, struct http_resp *resp)
{
	struct store *st = o->store;
	int e = st->ops->begin(st);

	if (e < 0) {
		volumes_store_error(resp, e);
		return e;
	}
	for (size_t i = 0; i < n; i++) {
		struct volume_rec v;

		e = st->vol->volume_get(st, vs[i].name, &v);
		if (e < 0)
			return orch_refuse(o, resp, 500, "internal", "store: %s", strerror(-e));
		if (v.slot_id != s->id || strcmp(v.state, "ready") != 0)
			return orch_refuse(o, resp, 409, "busy", "volume %s of slot %s is %s",
					   v.name, s->name, v.slot_id == s->id ? v.state
									       : "detached meanwhile");
		if (!v.disk[0])
			snprintf(v.disk, sizeof(v.disk), "%s", json_string_value(json_object_get(
					 source_disk(vm, v.name), "id")));
		snprintf(v.state, sizeof(v.state), "migrating");
		v.run = volumes_run();
		v.epoch++;      /* the destination's: in the store before its grant exists */
		e = st->vol->volume_update(st, &v);
		if (e < 0)
			return orch_refuse(o, resp, 500, "internal", "store: %s", strerror(-e));
		vs[i] = v;
	}
	e = st->ops->commit(st);
	if (e < 0)
		volumes_store_error(resp, e);
	return e;
}

/* The destination's entry for v: the attach's members, the source's id and pci. */
static json_t *dest_entry(struct orch *o, const struct volume_rec *v, const struct node_rec *dst,
			  json_t *src)
{
	const char *serial = json_string_value(json_object_get(src, "serial"));
	char hex[GRANT_HEX_LEN + 1];
	struct node_rec dn;
	json_t *x;

	if (o->store->ops->node_get(o->store, v->devnode, &dn) < 0 ||
	    volumes_grant(o, v, dst->id, !v->read_only, orch_grant_expiry(o), hex) < 0)
		return NULL;
	x = json_pack("{s:s, s:s, s:s, s:b, s:s, s:O, s:O}", "volume", v->name, "devnode",
		      dn.addr, "grant", hex, "read_only", v->read_only, "serial",
		      serial ? serial : v->name, "id", json_object_get(src, "id"), "pci",
		      json_object_get(src, "pci"));
	if (x && json_is_integer(json_object_get(src, "outage_ms")))
		json_object_set(x, "outage_ms", json_object_get(src, "outage_ms"));
	return x;
}

int volumes_migrate_begin(struct orch *o, const struct slot_rec *s, const struct node_rec *dst,
			  json_t **ret_disks, struct http_resp *resp)
{
	_cleanup_free_ struct volume_rec *vs = NULL;
	_cleanup_(json_decrefp) json_t *vm = NULL;
	char path[160], what[192];
	struct node_rec c;
	json_t *out;
	size_t n = 0;
	int e = volumes_of_slot(o, s->id, &vs, &n), status;

	if (e < 0) {
		volumes_store_error(resp, e);
		return e;
	}
	if (n == 0) {
		*ret_disks = json_array();
		return *ret_disks ? 0 : -ENOMEM;
	}
	e = o->store->ops->node_get(o->store, s->compute, &c);
	if (e < 0) {
		volumes_store_error(resp, e);
		return e;
	}
	snprintf(path, sizeof(path), "/v1/vms/%s", s->name);
	status = mig_call(&c, "GET", path, NULL, VOLUMES_AGENT_SHORT_MS, &vm);
	if (status != 200) {
		snprintf(what, sizeof(what), "cannot move slot %s's disks: it stays on %s",
			 s->name, c.name);
		volumes_agent_error(resp, &c, status, vm, what);
		return -EIO;
	}
	e = check_sources(s, &c, vs, n, vm, resp);
	if (e == 0)
		e = enter(o, s, vs, n, vm, resp);
	if (e < 0)
		return e;
	out = json_array();
	for (size_t i = 0; out && i < n; i++)
		if (json_array_append_new(out, dest_entry(o, &vs[i], dst,
							  source_disk(vm, vs[i].name))) < 0)
			json_decref(TAKE_PTR(out));
	if (!out) {
		volumes_migrate_end(o, s, false, s->compute, dst->id);
		http_resp_error(resp, 500, "internal", "cannot mint the grants of slot %s's disks",
				s->name);
		return -ENOMEM;
	}
	log_info("slot %s: %zu disk%s go along to compute node %s", s->name, n, n == 1 ? "" : "s",
		 dst->name);
	*ret_disks = out;
	return 0;
}

void volumes_migrate_end(struct orch *o, const struct slot_rec *s, bool moved, uint64_t from,
			 uint64_t to)
{
	_cleanup_free_ struct volume_rec *vs = NULL;
	size_t n = 0;

	if (volumes_of_slot(o, s->id, &vs, &n) < 0) {
		log_error("slot %s: cannot list its volumes after its migration: they stay "
			  "`migrating` until a restart settles them", s->name);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (strcmp(vs[i].state, "migrating") != 0 || vs[i].run != volumes_run())
			continue;
		if (!moved) {
			volumes_end(o, &vs[i]);
			continue;
		}
		if (volumes_record(o, &vs[i], "volume_moved", to, s->name,
				   "volume %s of slot %s moved from compute node %" PRIu64 " to %"
				   PRIu64 " as %s at epoch %" PRIu32, vs[i].name, s->name, from, to,
				   vs[i].disk[0] ? vs[i].disk : "a disk", vs[i].epoch) == 0)
			log_info("volume %s moved with slot %s to compute node %" PRIu64, vs[i].name,
				 s->name, to);
	}
}
