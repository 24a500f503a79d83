// SPDX-License-Identifier: MIT
/*
 * The /v1/images paths of the orchestrator's API (images.h, docs/api.md
 * "Images"). An import is three steps, so that an image of any size
 * crosses the API in bounded requests from any host:
 *
 *   POST /v1/images                      the record (`importing`) and its
 *                                        base volume, zero-filled
 *   PUT  /v1/images/NAME/disk?offset=N   bytes of the raw disk (and
 *        /kernel, /initrd)               of the kernel and initramfs)
 *   POST /v1/images/NAME/commit          checks that the kernel and
 *                                        initramfs are whole, flushes the
 *                                        volume: `ready`
 *
 * The client converts a qcow2 image to raw itself and sends only the
 * chunks that are not all zeros (the volume reads as zeros elsewhere).
 * An image's row goes with its base volume's (ON DELETE CASCADE), so a
 * delete is the base volume's delete, refused while clones of it exist.
 */
#include "images.h"
#include "images_data.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "volumes_api.h"

static const char *const part_names[] = {
	[IMAGES_DISK] = "disk", [IMAGES_KERNEL] = "kernel", [IMAGES_INITRD] = "initrd",
};

/* Image `name`: 0, or -errno with 404 not_found / 500 answered. */
static int image_get(struct orch *o, const char *name, struct image_rec *img,
		     struct http_resp *resp)
{
	int e = o->store->vol->image_get(o->store, name, img);

	if (e == -ENOENT)
		http_resp_error(resp, 404, "not_found", "unknown image %s", name);
	else if (e < 0)
		volumes_store_error(resp, e);
	return e;
}

/* The names of the volumes cloned from image `name` (an array; NULL: the store failed). */
static json_t *clones_of(struct orch *o, const char *name)
{
	_cleanup_free_ struct volume_rec *vs = NULL;
	size_t n = 0;
	json_t *arr;

	if (o->store->vol->volume_list(o->store, 0, &vs, &n) < 0)
		return NULL;
	arr = json_array();
	for (size_t i = 0; arr && i < n; i++)
		if (strcmp(vs[i].origin, name) == 0)
			json_array_append_new(arr, json_string(vs[i].name));
	return arr;
}

static json_t *size_or_null(uint64_t n)
{
	return n ? json_integer((json_int_t)n) : json_null();
}

static json_t *image_json(const struct image_rec *img)
{
	char created[32];

	orch_fmt_time(img->created, created, sizeof(created));
	return json_pack("{s:s, s:s, s:s, s:I, s:s, s:I, s:o, s:o, s:o, s:s}", "name", img->name,
			 "state", img->state, "format", img->format, "size",
			 (json_int_t)img->size, "volume", img->name, "devnode",
			 (json_int_t)img->devnode, "kernel", size_or_null(img->kernel_size),
			 "initrd", size_or_null(img->initrd_size), "cmdline",
			 img->cmdline[0] ? json_string(img->cmdline) : json_null(), "created",
			 created);
}

/* img takes state `to`, with event `kind` saying msg (kind NULL: none), in one transaction. */
static int set_state(struct orch *o, struct image_rec *img, const char *to, const char *kind,
		     const char *msg)
{
	struct store *st = o->store;
	int e = st->ops->begin(st);

	if (e < 0)
		return e;
	snprintf(img->state, sizeof(img->state), "%s", to);
	e = st->vol->image_update(st, img);
	if (e == 0 && kind)
		e = st->ops->event_add(st, kind, img->devnode, NULL, msg);
	if (e < 0) {
		st->ops->rollback(st);
		return e;
	}
	return st->ops->commit(st);
}

/* ---- import ----------------------------------------------------------------------- */

struct import_args {
	char name[STORE_NAME_MAX], format[16], cmdline[IMAGES_CMDLINE_MAX + 1];
	uint64_t size, devnode;
	int64_t kernel, initrd;
};

/* The body of POST /v1/images into a: 0, or -EINVAL with 400 answered. */
static int import_args(json_t *body, struct import_args *a, struct http_resp *resp)
{
	const char *fmt = json_string_value(json_object_get(body, "format"));
	json_t *cl = json_object_get(body, "cmdline");

	a->kernel = a->initrd = 0;      /* http_json_int leaves them when absent */
	if (volumes_name_arg(body, "name", true, a->name, resp) < 0 ||
	    volumes_size_arg(body, "size", &a->size, resp) < 0 ||
	    volumes_id_arg(body, "devnode", "a device node", &a->devnode, resp) < 0 ||
	    !http_json_int(body, "kernel_size", 0, (int64_t)IMAGES_FILE_MAX, &a->kernel, resp) ||
	    !http_json_int(body, "initrd_size", 0, (int64_t)IMAGES_FILE_MAX, &a->initrd, resp))
		return -EINVAL;
	if (!a->size) {
		http_resp_error(resp, 400, "bad_size", "\"size\" (the disk's bytes) is required");
		return -EINVAL;
	}
	if (!fmt || (strcmp(fmt, "raw") != 0 && strcmp(fmt, "qcow2") != 0)) {
		http_resp_error(resp, 400, "bad_format",
				"\"format\" is the format of the image imported: \"raw\" or \"qcow2\" "
				"(the disk is uploaded raw either way)");
		return -EINVAL;
	}
	snprintf(a->format, sizeof(a->format), "%s", fmt);
	if (a->initrd && !a->kernel) {
		http_resp_error(resp, 400, "bad_request", "\"initrd_size\" needs \"kernel_size\"");
		return -EINVAL;
	}
	a->cmdline[0] = '\0';
	if (cl && (!json_is_string(cl) || json_string_length(cl) > IMAGES_CMDLINE_MAX ||
		   strlen(json_string_value(cl)) != json_string_length(cl))) {
		http_resp_error(resp, 400, "bad_request",
				"\"cmdline\" must be a string of at most %d bytes", IMAGES_CMDLINE_MAX);
		return -EINVAL;
	}
	if (cl)
		snprintf(a->cmdline, sizeof(a->cmdline), "%s", json_string_value(cl));
	return 0;
}

static void h_import(struct orch *o, const struct http_req *req, struct http_resp *resp)
{
	static const char *const keys[] = { "name", "size", "format", "devnode", "kernel_size",
					    "initrd_size", "cmdline", NULL };
	_cleanup_(json_decrefp) json_t *body = http_json_args(req, resp, keys);
	struct volumes_new nv = { .image = true };
	struct http_resp undo = { 0 };
	struct import_args a;
	struct image_rec img = { 0 };
	struct volume_rec v;
	struct node_rec dn;
	int e;

	if (!body || import_args(body, &a, resp) < 0)
		return;
	if (a.kernel && !o->images_dir) {
		http_resp_error(resp, 501, "not_supported",
				"this orchestrator keeps no kernels (no image directory)");
		return;
	}
	if (volumes_pick(o, a.devnode, &dn, resp) < 0)
		return;
	snprintf(nv.name, sizeof(nv.name), "%s", a.name);
	nv.size = a.size;
	volumes_make(o, &nv, &dn, NULL, resp, &v);
	if (resp->status != 201)
		return;         /* 409 exists and the like: answered */
	snprintf(img.name, sizeof(img.name), "%s", a.name);
	snprintf(img.state, sizeof(img.state), "importing");
	snprintf(img.format, sizeof(img.format), "%s", a.format);
	snprintf(img.cmdline, sizeof(img.cmdline), "%s", a.cmdline);
	img.size = v.size;
	img.volume_id = v.id;
	img.devnode = v.devnode;
	img.kernel_size = (uint64_t)a.kernel;
	img.initrd_size = (uint64_t)a.initrd;
	img.created = (int64_t)time(NULL);
	images_files_remove(o, a.name);     /* an earlier image's, if its delete left them */
	e = o->store->vol->image_insert(o->store, &img);
	if (e < 0) {
		volumes_delete(o, a.name, true, &undo);
		free(undo.body);
		volumes_store_error(resp, e);
		return;
	}
	slots_event(o, "image_importing", dn.id, NULL,
		    "image %s (%s, %" PRIu64 " bytes%s): importing into volume %s on device node %s",
		    img.name, img.format, img.size, img.kernel_size ? ", with a kernel" : "",
		    img.name, dn.name);
	http_resp_json(resp, 201, image_json(&img));
}

/* ---- upload and commit ---------------------------------------------------------------- */

static void h_upload(struct orch *o, const char *name, enum images_part part,
		     const struct http_req *req, struct http_resp *resp)
{
	const char *q = http_req_query(req, "offset");
	struct image_rec img;
	struct volume_rec v;
	struct node_rec dn;
	uint64_t off, limit, len = req->body_len;
	int e;

	if (!q || u64_parse(q, &off) < 0 || len == 0 || len > IMAGES_CHUNK_MAX) {
		http_resp_error(resp, 400, "bad_request",
				"an upload is PUT ...?offset=BYTES with 1 byte to %u MiB of data",
				IMAGES_CHUNK_MAX >> 20);
		return;
	}
	if (image_get(o, name, &img, resp) < 0)
		return;
	if (strcmp(img.state, "importing") != 0) {
		http_resp_error(resp, 409, "not_importing",
				"image %s is %s: uploads go to an image being imported", name,
				img.state);
		return;
	}
	limit = part == IMAGES_DISK ? img.size : part == IMAGES_KERNEL ? img.kernel_size
								        : img.initrd_size;
	if (off > limit || len > limit - off ||
	    (part == IMAGES_DISK && (off % PROTO_BLK_SECTOR || len % PROTO_BLK_SECTOR))) {
		http_resp_error(resp, 400, "bad_range",
				"bytes %" PRIu64 "+%" PRIu64 " are not inside image %s's %s (%" PRIu64
				" bytes%s)", off, len, name, part_names[part], limit,
				part == IMAGES_DISK ? ", written in whole sectors of 512 bytes" : "");
		return;
	}
	if (part != IMAGES_DISK) {
		e = images_file_write(o, name, part, off, req->body, len);
		if (e < 0) {
			http_resp_error(resp, 500, "internal", "cannot write image %s's %s: %s", name,
					part_names[part], strerror(-e));
			return;
		}
	} else {
		if (volumes_get(o, name, &v, resp) < 0 || volumes_devnode(o, v.devnode, &dn, resp) < 0)
			return;
		e = images_disk_write(o, &v, &dn, off, req->body, len);
		if (e < 0) {
			volumes_node_error(resp, &dn, e, "cannot write image %s", name);
			return;
		}
	}
	http_resp_json(resp, 200, json_pack("{s:s, s:s, s:I, s:I}", "image", name, "part",
					     part_names[part], "offset", (json_int_t)off, "length",
					     (json_int_t)len));
}

static void h_commit(struct orch *o, const char *name, struct http_resp *resp)
{
	char msg[512];
	struct image_rec img;
	struct volume_rec v;
	struct node_rec dn;
	int64_t have;
	int e;

	if (image_get(o, name, &img, resp) < 0)
		return;
	if (strcmp(img.state, "ready") == 0) {
		http_resp_json(resp, 200, image_json(&img));    /* committed already */
		return;
	}
	if (strcmp(img.state, "importing") != 0) {
		http_resp_error(resp, 409, "not_importing", "image %s is %s", name, img.state);
		return;
	}
	for (enum images_part p = IMAGES_KERNEL; p <= IMAGES_INITRD; p++) {
		uint64_t want = p == IMAGES_KERNEL ? img.kernel_size : img.initrd_size;

		have = want ? images_file_size(o, name, p) : 0;
		if (have < 0 || (uint64_t)have != want) {
			http_resp_error(resp, 409, "incomplete",
					"image %s's %s has %" PRId64 " of its %" PRIu64
					" bytes: upload the rest first", name, part_names[p], have, want);
			return;
		}
	}
	if (volumes_get(o, name, &v, resp) < 0 || volumes_devnode(o, v.devnode, &dn, resp) < 0)
		return;
	e = images_disk_write(o, &v, &dn, 0, NULL, 0);
	if (e < 0) {
		volumes_node_error(resp, &dn, e, "cannot flush image %s", name);
		return;
	}
	snprintf(msg, sizeof(msg), "image %s imported: %" PRIu64 " bytes in volume %s on device "
		 "node %s", name, img.size, name, dn.name);
	e = set_state(o, &img, "ready", "image_imported", msg);
	if (e < 0) {
		volumes_store_error(resp, e);
		return;
	}
	log_info("image %s imported (%" PRIu64 " bytes on device node %" PRIu64 ")", name, img.size,
		 dn.id);
	http_resp_json(resp, 200, image_json(&img));
}

/* ---- list, show, files, delete --------------------------------------------------- */

static void h_list(struct orch *o, struct http_resp *resp)
{
	_cleanup_free_ struct image_rec *is = NULL;
	size_t n = 0;
	json_t *arr;
	int e = o->store->vol->image_list(o->store, &is, &n);

	if (e < 0) {
		volumes_store_error(resp, e);
		return;
	}
	arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, image_json(&is[i]));
	http_resp_json(resp, 200, json_pack("{s:o}", "images", arr));
}

static void h_show(struct orch *o, const char *name, struct http_resp *resp)
{
	struct image_rec img;
	json_t *j, *clones;

	if (image_get(o, name, &img, resp) < 0)
		return;
	j = image_json(&img);
	clones = clones_of(o, name);
	if (j)
		json_object_set_new(j, "clones", clones ? clones : json_null());
	http_resp_json(resp, 200, j);
}

/* GET /v1/images/NAME/kernel|initrd: the file, for a compute node that boots the image. */
static void h_file(struct orch *o, const char *name, enum images_part part,
		   struct http_resp *resp)
{
	_cleanup_free_ char *path = images_file_path(o, name, part);
	_cleanup_close_ int fd = -1;
	struct image_rec img;
	uint64_t want;
	char *buf;
	ssize_t n;

	if (image_get(o, name, &img, resp) < 0)
		return;
	want = part == IMAGES_KERNEL ? img.kernel_size : img.initrd_size;
	if (!want || !path) {
		http_resp_error(resp, 404, "not_found", "image %s has no %s", name, part_names[part]);
		return;
	}
	if (strcmp(img.state, "ready") != 0) {
		http_resp_error(resp, 409, "not_ready", "image %s is %s", name, img.state);
		return;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	buf = fd >= 0 ? malloc(want) : NULL;
	n = buf ? pread(fd, buf, want, 0) : -1;
	if (n < 0 || (uint64_t)n != want) {
		free(buf);
		http_resp_error(resp, 500, "internal", "cannot read image %s's %s", name,
				part_names[part]);
		return;
	}
	http_resp_bytes(resp, 200, "application/octet-stream", buf, want);
}

/*
 * Refused while volumes cloned from the image exist (409 image_in_use,
 * naming them); else its base volume is deleted, which takes the image's
 * row with it, then its files.
 */
static void h_delete(struct orch *o, const char *name, struct http_resp *resp)
{
	_cleanup_(json_decrefp) json_t *clones = NULL;
	_cleanup_free_ char *list = NULL;
	struct store *st = o->store;
	struct image_rec img;
	char was[STORE_STATE_MAX];
	int e = st->ops->begin(st);

	if (e < 0) {
		volumes_store_error(resp, e);
		return;
	}
	if (image_get(o, name, &img, resp) < 0) {
		st->ops->rollback(st);
		return;
	}
	clones = clones_of(o, name);
	if (clones && json_array_size(clones)) {
		list = json_dumps(clones, JSON_COMPACT);
		orch_refuse(o, resp, 409, "image_in_use",
			    "image %s has volumes cloned from it: %s; delete them first", name,
			    list ? list : "?");
		return;
	}
	snprintf(was, sizeof(was), "%s", img.state);
	snprintf(img.state, sizeof(img.state), "deleting");
	e = clones ? st->vol->image_update(st, &img) : -ENOMEM;
	if (e == 0)
		e = st->ops->commit(st);
	else
		st->ops->rollback(st);
	if (e < 0) {
		volumes_store_error(resp, e);
		return;
	}
	volumes_delete(o, name, true, resp);
	if (resp->status != 204) {
		/* The volume and its image stay: the image as it was. */
		if (set_state(o, &img, was, NULL, NULL) < 0)
			log_warn("image %s stays deleting: delete it again", name);
		return;
	}
	images_files_remove(o, name);
	slots_event(o, "image_deleted", img.devnode, NULL, "image %s deleted", name);
	log_info("image %s deleted", name);
}

/* ---- routing ------------------------------------------------------------------------ */

static bool is_method(const struct http_req *req, const char *m)
{
	return strcmp(req->method, m) == 0;
}

/* "/disk", "/kernel", "/initrd": the part; else -1. */
static int part_of(const char *tail)
{
	for (size_t i = 0; i < ARRAY_SIZE(part_names); i++)
		if (tail[0] == '/' && strcmp(tail + 1, part_names[i]) == 0)
			return (int)i;
	return -1;
}

static enum orch_route route(struct orch *o, const char *rest, const struct http_req *req,
			     struct http_resp *resp)
{
	char name[STORE_NAME_MAX];
	const char *tail;
	int item = orch_path_item(rest, name, &tail), part;

	if (item == 0) {
		if (is_method(req, "GET")) {
			h_list(o, resp);
			return RT_IMAGES_LIST;
		}
		if (is_method(req, "POST")) {
			h_import(o, req, resp);
			return RT_IMAGES_IMPORT;
		}
		http_resp_error(resp, 405, "method_not_allowed", "use GET or POST on this path");
		return RT_OTHER;
	}
	if (item < 0) {
		http_resp_error(resp, 404, "not_found", "unknown image");
		return RT_IMAGES_GET;
	}
	if (*tail == '\0') {
		if (is_method(req, "GET")) {
			h_show(o, name, resp);
			return RT_IMAGES_GET;
		}
		if (is_method(req, "DELETE")) {
			h_delete(o, name, resp);
			return RT_IMAGES_DELETE;
		}
		http_resp_error(resp, 405, "method_not_allowed", "use GET or DELETE on this path");
		return RT_OTHER;
	}
	if (strcmp(tail, "/commit") == 0) {
		if (is_method(req, "POST"))
			h_commit(o, name, resp);
		else
			http_resp_error(resp, 405, "method_not_allowed", "use POST on this path");
		return RT_IMAGES_COMMIT;
	}
	part = part_of(tail);
	if (part < 0) {
		http_resp_error(resp, 404, "not_found", "no such path %s", req->path);
		return RT_OTHER;
	}
	if (is_method(req, "PUT")) {
		h_upload(o, name, (enum images_part)part, req, resp);
		return RT_IMAGES_UPLOAD;
	}
	/* HEAD: the same answer without its body (the compute node's cache asks the size). */
	if ((is_method(req, "GET") || is_method(req, "HEAD")) && part != IMAGES_DISK) {
		h_file(o, name, (enum images_part)part, resp);
		return RT_IMAGES_FILE;
	}
	http_resp_error(resp, 405, "method_not_allowed",
			part == IMAGES_DISK ? "use PUT on this path" : "use GET or PUT on this path");
	return RT_OTHER;
}

static const struct orch_images hooks = {
	.route = route,
};

void images_start(struct orch *o)
{
	if (o->store->vol)
		o->images = &hooks;
}
