// SPDX-License-Identifier: MIT
/*
 * A slot created from an image (volumes_boot.h; docs/api.md, "Slots").
 *
 * Prepare (the slot is `creating`, its compute node chosen): the image's
 * base volume is cloned into the slot's root volume, NAME-root (lower
 * case, dots as dashes), on the image's device node, grown to the size
 * asked; the root volume (disk0) and the volumes named in the request
 * (disk1...) are attached to the slot as an attach does (volumes_disks.c):
 * `attaching`, the slot recorded, the epoch advanced, a grant minted for
 * the compute node. The VM's request gets them as "disks", with explicit
 * ids, and "boot": the image's kernel and initramfs as URLs of this
 * orchestrator (GET /v1/images/NAME/kernel|initrd), its command line
 * `root=LABEL=root console=ttyS0` and the request's own.
 *
 * Done: the VM runs, each volume is recorded attached (volume_attached);
 * or it does not, each volume is free again and the root volume is
 * deleted: a failed create leaves nothing behind. An orchestrator that
 * stops in between leaves them `attaching`, which the next run settles
 * from the agent, as for any attach.
 *
 * A slot's delete deletes its root volume too (boot_deleted),
 * unless asked to keep it: it is then an ordinary volume, free.
 */
#include "volumes_boot.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "volumes.h"
#include "volumes_api.h"

#define BOOT_MAX_DISKS 8        /* the compute agent's */
#define BOOT_CMDLINE "root=LABEL=root console=ttyS0"

struct orch_boot {
	struct slot_rec s;
	struct node_rec c;
	struct volume_rec v[BOOT_MAX_DISKS];
	size_t n;
	char root[STORE_NAME_MAX];   /* "" when the slot has no image */
};

/* resp's answer moved into dst (the caller's), scratch emptied. */
static void pass_on(struct http_resp *scratch, struct http_resp *dst)
{
	free(dst->body);
	*dst = *scratch;
	*scratch = (struct http_resp){ .status = 200 };
}

static void scratch_free(struct http_resp *r)
{
	free(r->body);
	free(r->hdr_value);
	*r = (struct http_resp){ .status = 200 };
}

static int root_name(const char *slot, char ret[STORE_NAME_MAX])
{
	size_t n = 0;

	for (const char *p = slot; *p && n < STORE_NAME_MAX - 1; p++)
		ret[n++] = *p == '.' ? '-' : (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : *p;
	ret[n] = '\0';
	if (strlen(slot) + 5 >= STORE_NAME_MAX)
		return -ENAMETOOLONG;
	strcat(ret, "-root");
	return dnc_name_check(ret);
}

/* The clone of image img as root (size bytes): 0, or -errno answered. */
static int clone_root(struct orch *o, const char *img, const char *root, uint64_t size,
		      struct http_resp *resp)
{
	struct http_resp scratch = { .status = 200 };
	struct volumes_new a = { .size = size };
	struct volume_rec src, made;
	struct node_rec dn;
	int e;

	snprintf(a.name, sizeof(a.name), "%s", root);
	snprintf(a.from, sizeof(a.from), "%s", img);
	if (volumes_begin(o, img, &src, resp) < 0)
		return -ENOENT;
	if (volumes_image_not_ready(o, &src, resp))
		return -EBUSY;
	if (size && size < src.size)
		return orch_refuse(o, resp, 400, "bad_size",
				   "\"disk\": the root disk is at least as large as image %s (%" PRIu64
				   " bytes)", img, src.size);
	if (volumes_begin_commit(o, &src, "cloning", resp) < 0)
		return -EBUSY;
	a.size = MAX(size, src.size);
	memset(&made, 0, sizeof(made));
	e = volumes_devnode(o, src.devnode, &dn, &scratch);
	if (e == 0) {
		volumes_make(o, &a, &dn, &src, &scratch, &made);
		e = scratch.status == 201 ? 0 : -EIO;
	}
	volumes_end(o, &src);
	if (e < 0) {
		pass_on(&scratch, resp);
		return e;
	}
	scratch_free(&scratch);
	return 0;
}

/* Volume name as disk `id` of slot s, `attaching`: 0 (b->v[b->n++]) or -errno answered. */
static int attach_one(struct orch *o, struct orch_boot *b, const char *name, json_t *disks,
		      struct http_resp *resp)
{
	struct volume_rec *v = &b->v[b->n];
	char hex[GRANT_HEX_LEN + 1];
	struct node_rec dn;
	int e;

	if (volumes_begin(o, name, v, resp) < 0)
		return -ENOENT;
	if (v->slot_id)
		return orch_refuse(o, resp, 409, "volume_attached",
				   "volume %s is attached to slot %s: detach it first", name, v->slot);
	if (volumes_image_refuse(o, v, "be attached read-write", resp))
		return -EINVAL;
	v->slot_id = b->s.id;
	snprintf(v->slot, sizeof(v->slot), "%s", b->s.name);
	snprintf(v->disk, sizeof(v->disk), "disk%zu", b->n);
	v->read_only = false;
	v->epoch++;
	if (volumes_begin_commit(o, v, "attaching", resp) < 0)
		return -EBUSY;
	b->n++;
	e = volumes_devnode(o, v->devnode, &dn, resp);
	if (e == 0) {
		e = volumes_grant(o, v, b->c.id, true, orch_grant_expiry(o), hex);
		if (e < 0)
			http_resp_error(resp, 500, "internal", "volume %s: cannot mint a grant: %s",
					name, strerror(-e));
	}
	if (e == 0 && json_array_append_new(disks, json_pack("{s:s, s:s, s:s, s:s}", "id",
							     v->disk, "volume", v->name,
							     "devnode", dn.addr, "grant", hex)) < 0) {
		http_resp_error(resp, 500, "internal", "out of memory");
		e = -ENOMEM;
	}
	return e;
}

static json_t *boot_json(struct orch *o, const struct image_rec *img, const char *append)
{
	char k[400], i[400], cmd[1024];

	if (!img->kernel_size)   /* a disk with its own boot loader: the firmware boots it */
		return json_pack("{s:b}", "firmware", 1);
	snprintf(k, sizeof(k), "%s/v1/images/%s/kernel", o->public_url, img->name);
	snprintf(i, sizeof(i), "%s/v1/images/%s/initrd", o->public_url, img->name);
	snprintf(cmd, sizeof(cmd), "%s%s%s", img->cmdline[0] ? img->cmdline : BOOT_CMDLINE,
		 append ? " " : "", append ? append : "");
	return img->initrd_size ? json_pack("{s:s, s:s, s:s}", "kernel", k, "initrd", i, "append", cmd)
				: json_pack("{s:s, s:s}", "kernel", k, "append", cmd);
}

static void boot_done(struct orch *o, struct orch_boot *b, bool ok);
static void boot_deleted(struct orch *o, const char *root, bool keep);

static int boot_prepare(struct orch *o, const struct slot_rec *s, const struct node_rec *c,
			const struct slotboot_req *req, json_t *vm, struct orch_boot **ret,
			struct http_resp *resp)
{
	struct orch_boot *b = calloc(1, sizeof(*b));
	json_t *disks = json_array(), *v;
	struct image_rec img;
	size_t i;
	int e = 0;

	if (!b || !disks) {
		free(b);
		json_decref(disks);
		http_resp_error(resp, 500, "internal", "out of memory");
		return -ENOMEM;
	}
	b->s = *s;
	b->c = *c;
	if (req->image) {
		e = o->store->vol->image_get(o->store, req->image, &img);
		if (e == -ENOENT)
			http_resp_error(resp, 404, "not_found", "no image %s", req->image);
		else if (e < 0)
			volumes_store_error(resp, e);
		else if (!img.kernel_size && req->append) {
			http_resp_error(resp, 400, "bad_request", "image %s has no kernel of its own "
					"(the firmware boots its disk): \"append\" has no kernel to go to",
					req->image);
			e = -EINVAL;
		} else if (root_name(s->name, b->root) < 0) {
			http_resp_error(resp, 400, "bad_request", "slot %s: no volume can be named "
					"after it (NAME-root: a volume name, at most 63 characters)",
					s->name);
			e = -EINVAL;
		}
		if (e == 0)
			e = clone_root(o, req->image, b->root, req->disk, resp);
		if (e < 0)
			b->root[0] = '\0';
		if (e == 0)
			e = attach_one(o, b, b->root, disks, resp);
		if (e == 0)
			json_object_set_new(vm, "boot", boot_json(o, &img, req->append));
	}
	json_array_foreach(req->volumes, i, v) {
		if (e < 0)
			break;
		if (b->n >= BOOT_MAX_DISKS) {
			http_resp_error(resp, 400, "bad_request", "a slot has at most %d disks",
					BOOT_MAX_DISKS);
			e = -EINVAL;
			break;
		}
		e = attach_one(o, b, json_string_value(v), disks, resp);
	}
	json_object_set_new(vm, "disks", disks);
	if (e < 0) {
		json_object_del(vm, "boot");
		json_object_del(vm, "disks");
		boot_done(o, b, false);
		return e;
	}
	*ret = b;
	return 0;
}

static void boot_done(struct orch *o, struct orch_boot *b, bool ok)
{
	for (size_t i = 0; b && i < b->n; i++) {
		struct volume_rec *v = &b->v[i];

		if (ok && volumes_record(o, v, "volume_attached", b->c.id, b->s.name,
					 "volume %s attached to slot %s as %s at its creation",
					 v->name, b->s.name, v->disk) == 0)
			continue;
		if (ok)
			log_warn("volume %s: its attachment to slot %s is not recorded yet (the next "
				 "start asks the agent)", v->name, b->s.name);
		else {
			volumes_detached(v);
			volumes_end(o, v);
		}
	}
	if (b && !ok && b->root[0])
		boot_deleted(o, b->root, false);
	free(b);
}

static void boot_root(struct orch *o, const struct slot_rec *s, char root[STORE_NAME_MAX],
		      char image[STORE_NAME_MAX])
{
	_cleanup_free_ struct volume_rec *vs = NULL;
	char want[STORE_NAME_MAX];
	size_t n = 0;

	root[0] = image[0] = '\0';
	if (root_name(s->name, want) < 0 || volumes_of_slot(o, s->id, &vs, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(vs[i].name, want) && !strcmp(vs[i].disk, "disk0") && vs[i].origin[0]) {
			snprintf(root, STORE_NAME_MAX, "%s", vs[i].name);
			snprintf(image, STORE_NAME_MAX, "%s", vs[i].origin);
		}
}

static void boot_deleted(struct orch *o, const char *root, bool keep)
{
	struct http_resp scratch = { .status = 200 };

	if (!root[0])
		return;
	if (keep) {
		log_info("volume %s (a root disk) kept, as asked", root);
		return;
	}
	volumes_delete(o, root, false, &scratch);
	if (scratch.status != 204)
		log_warn("root volume %s is left behind: %s", root,
			 scratch.body ? scratch.body : "cannot delete it");
	scratch_free(&scratch);
}

static const struct orch_boot_ops ops = {
	.prepare = boot_prepare,
	.done = boot_done,
	.root = boot_root,
	.deleted = boot_deleted,
};

void volumes_boot_start(struct orch *o)
{
	if (o->volumes)
		o->boot = &ops;
}
