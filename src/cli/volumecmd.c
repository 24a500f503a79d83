// SPDX-License-Identifier: MIT
/*
 * The volume subcommands of disagg (docs/cli.md, "Volumes"): create, ls,
 * show, clone, resize, delete, adopt and grant, on the orchestrator's
 * /v1/volumes (docs/api.md, "Volumes"), and `device attach|detach|ls`, the
 * volumes attached to slots (/v1/slots/NAME/disks, docs/api.md "Disks").
 * Same rules as commands.c: usage
 * errors exit 2 before anything is sent, server errors print their code
 * and exit 1, an unreachable orchestrator exits 3.
 *
 * The rows of these commands are here (cli_volume_cmds), not in main.c's
 * table, which walks them after its own: main.c knows them as data only.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

/* A string field, or "" (printed as "-" in a table). */
static const char *text(const json_t *o, const char *key)
{
	return jstr(o, key) ? jstr(o, key) : "";
}

static void volume_row(struct table *t, const json_t *x)
{
	char size[32], dn[32], age[32];

	cli_size_of(x, "size", size, sizeof(size));
	jtext(x, "devnode", dn, sizeof(dn));
	fmt_age(jstr(x, "created"), age, sizeof(age));
	table_rowf(t, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", text(x, "name"), text(x, "state"),
		   jstr(x, "kind") ? jstr(x, "kind") : "file", size, dn, json_is_true(json_object_get(x, "image")) ? "yes" : "", text(x, "origin"),
		   text(x, "attached"), age);
}

static int cmd_volume_ls(struct cli_args *a)
{
	static const char *const head[] = { "NAME", "STATE", "KIND", "SIZE", "DEVNODE", "IMAGE",
					    "ORIGIN", "ATTACHED", "AGE" };
	_cleanup_free_ char *path = NULL;
	uint64_t devnode;
	int ret;

	if ((ret = cli_opt_u64(a, "devnode", 0, INT64_MAX, &devnode)))
		return ret;
	if ((devnode ? asprintf(&path, "/v1/volumes?devnode=%" PRIu64, devnode)
		     : asprintf(&path, "/v1/volumes")) < 0)
		return CLI_EXIT_ERROR;
	return cli_list(a, path, "volumes", head, ARRAY_SIZE(head), 1u << 3 | 1u << 4, volume_row);
}

static void print_volume(const json_t *v)
{
	static const char *const keys[] = { "name", "state", "devnode", "key" };
	static const char *const labels[] = { "name:", "state:", "device node:", "key:" };
	char size[32], alloc[32], age[32];

	cli_print_fields(v, keys, labels, ARRAY_SIZE(keys), false);
	cli_size_of(v, "size", size, sizeof(size));
	printf("%-15s %s (%" PRId64 " bytes)\n", "size:", size, jint(v, "size", 0));
	if (json_is_integer(json_object_get(v, "allocated"))) {
		cli_size_of(v, "allocated", alloc, sizeof(alloc));
		printf("%-15s %s on the device node's disk, open %" PRId64 " time%s\n", "allocated:",
		       alloc, jint(v, "open", 0), jint(v, "open", 0) == 1 ? "" : "s");
	} else if (jstr(v, "devnode_error")) {
		printf("%-15s unknown: the device node does not answer (%s)\n", "allocated:",
		       jstr(v, "devnode_error"));
	}
	if (jstr(v, "kind") && !strcmp(jstr(v, "kind"), "block"))
		printf("%-15s block: a block device the device node serves (it cannot be resized,\n"
		       "%-15s and deleting it only removes it from the catalog)\n", "kind:", "");
	else
		printf("%-15s file\n", "kind:");
	printf("%-15s %s\n", "image:", json_is_true(json_object_get(v, "image")) ? "yes" : "no");
	printf("%-15s %s\n", "cloned from:", jstr(v, "origin") ? jstr(v, "origin") : "-");
	if (jstr(v, "attached"))
		printf("%-15s slot %s as %s%s, on compute node %" PRId64 "\n", "attached to:",
		       jstr(v, "attached"), jstr(v, "disk") ? jstr(v, "disk") : "a disk not known yet",
		       json_is_true(json_object_get(v, "read_only")) ? ", read-only" : "",
		       jint(v, "holder", 0));
	else
		printf("%-15s -\n", "attached to:");
	printf("%-15s %" PRId64 "\n", "epoch:", jint(v, "epoch", 0));
	if (jstr(v, "created")) {
		fmt_age(jstr(v, "created"), age, sizeof(age));
		printf("%-15s %s (%s ago)\n", "created:", jstr(v, "created"), age);
	}
}

static int cmd_volume_show(struct cli_args *a)
{
	return cli_show(a, "/v1/volumes/", a->args[0], print_volume);
}

/* POST /v1/volumes with body, then "volume NAME created: ...". */
static int create(struct cli_args *a, json_t *body, const char *label)
{
	_cleanup_resp_ struct cli_resp r = { 0 };
	char size[32];
	int ret = cli_query(a, "POST", "/v1/volumes", body, label, &r);

	if (ret != CLI_MORE)
		return ret;
	cli_size_of(r.json, "size", size, sizeof(size));
	printf("volume %s created: %s%s%s%s on device node %" PRId64 "\n", text(r.json, "name"),
	       jstr(r.json, "origin") ? "a clone of " : "", text(r.json, "origin"),
	       jstr(r.json, "origin") ? ", " : "", size, jint(r.json, "devnode", -1));
	return CLI_EXIT_OK;
}

static int cmd_volume_create(struct cli_args *a)
{
	_cleanup_(json_decrefp) json_t *body = NULL;
	_cleanup_free_ char *label = NULL;
	const char *from = cli_opt(a, "from");
	uint64_t size, devnode;
	char size_s[32];
	int ret;

	if ((ret = cli_parse_size(a, "SIZE", a->args[1], &size)) ||
	    (ret = cli_opt_u64(a, "devnode", 0, INT64_MAX, &devnode)))
		return ret;
	if (size == 0 || size % 512)
		return cli_usage_error(a, "SIZE must be a nonzero multiple of 512 bytes, not \"%s\"",
				       a->args[1]);
	if (from && !from[0])
		return cli_usage_error(a, "--from needs a volume name");
	body = json_pack("{s:s, s:I}", "name", a->args[0], "size", (json_int_t)size);
	if (body && devnode)
		json_object_set_new(body, "devnode", json_integer((json_int_t)devnode));
	if (body && from)
		json_object_set_new(body, "from", json_string(from));
	if (body && cli_flag(a, "image"))
		json_object_set_new(body, "image", json_true());
	fmt_size(size, size_s, sizeof(size_s));
	if (!body || asprintf(&label, "creating volume %s (%s%s%s)", a->args[0], size_s,
			      from ? ", a clone of " : "", from ? from : "") < 0)
		return CLI_EXIT_ERROR;
	return create(a, body, label);
}

static int cmd_volume_clone(struct cli_args *a)
{
	_cleanup_(json_decrefp) json_t *body = NULL;
	_cleanup_free_ char *label = NULL;

	body = json_pack("{s:s, s:s}", "name", a->args[1], "from", a->args[0]);
	if (!body || asprintf(&label, "cloning volume %s to %s", a->args[0], a->args[1]) < 0)
		return CLI_EXIT_ERROR;
	return create(a, body, label);
}

static int cmd_volume_resize(struct cli_args *a)
{
	_cleanup_resp_ struct cli_resp r = { 0 };
	_cleanup_(json_decrefp) json_t *body = NULL;
	_cleanup_free_ char *label = NULL, *path = NULL;
	const char *name = a->args[0];
	uint64_t size;
	char size_s[32];
	int ret;

	if ((ret = cli_parse_size(a, "SIZE", a->args[1], &size)))
		return ret;
	if (size == 0 || size % 512)
		return cli_usage_error(a, "SIZE must be a nonzero multiple of 512 bytes, not \"%s\"",
				       a->args[1]);
	path = cli_path_with("/v1/volumes/", name, "/resize");
	body = json_pack("{s:I, s:b}", "size", (json_int_t)size, "shrink", cli_flag(a, "shrink"));
	fmt_size(size, size_s, sizeof(size_s));
	if (!path || !body || asprintf(&label, "resizing volume %s to %s", name, size_s) < 0)
		return CLI_EXIT_ERROR;
	ret = cli_query(a, "POST", path, body, label, &r);
	if (ret != CLI_MORE)
		return ret;
	cli_size_of(r.json, "size", size_s, sizeof(size_s));
	printf("volume %s now has %s\n", name, size_s);
	return CLI_EXIT_OK;
}

/* A file volume is deleted on its device node; a block device's is forgotten (the answer says). */
static int cmd_volume_delete(struct cli_args *a)
{
	_cleanup_resp_ struct cli_resp r = { 0 };
	_cleanup_free_ char *label = NULL, *path = cli_path_with("/v1/volumes/", a->args[0], NULL);
	int ret;

	if (!path || asprintf(&label, "deleting volume %s", a->args[0]) < 0)
		return CLI_EXIT_ERROR;
	ret = cli_call(a, "DELETE", path, NULL, label, false, &r);
	if (ret)
		return ret;
	if (a->json)
		r.json ? print_json(r.json) : (void)puts("{}");
	else if (jstr(r.json, "message"))
		printf("%s\n", jstr(r.json, "message"));
	else
		printf("volume %s deleted\n", a->args[0]);
	return CLI_EXIT_OK;
}

static int cmd_volume_adopt(struct cli_args *a)
{
	_cleanup_resp_ struct cli_resp r = { 0 };
	_cleanup_(json_decrefp) json_t *body = NULL;
	_cleanup_free_ char *label = NULL, *path = NULL;
	uint64_t devnode, epoch;
	char size[32];
	int ret;

	if ((ret = cli_opt_u64(a, "devnode", 0, INT64_MAX, &devnode)) ||
	    (ret = cli_opt_u64(a, "epoch", 0, UINT32_MAX, &epoch)))
		return ret;
	if (!devnode)
		return cli_usage_error(a, "--devnode ID is required: the device node that has it");
	path = cli_path_with("/v1/volumes/", a->args[0], "/adopt");
	body = json_pack("{s:I, s:I}", "devnode", (json_int_t)devnode, "epoch", (json_int_t)epoch);
	if (!path || !body ||
	    asprintf(&label, "adopting volume %s of device node %" PRIu64, a->args[0], devnode) < 0)
		return CLI_EXIT_ERROR;
	ret = cli_query(a, "POST", path, body, label, &r);
	if (ret != CLI_MORE)
		return ret;
	cli_size_of(r.json, "size", size, sizeof(size));
	printf("volume %s adopted: a %s of %s on device node %" PRId64 "\n", text(r.json, "name"),
	       !strcmp(text(r.json, "kind"), "block") ? "block device" : "file", size,
	       jint(r.json, "devnode", -1));
	return CLI_EXIT_OK;
}

/* The grant on stdout alone (for scripts), what it is for on stderr. */
static int cmd_volume_grant(struct cli_args *a)
{
	_cleanup_resp_ struct cli_resp r = { 0 };
	_cleanup_(json_decrefp) json_t *body = NULL;
	_cleanup_free_ char *path = NULL;
	uint64_t holder, ttl;
	char left[32];
	int ret;

	if (!cli_opt(a, "holder"))
		return cli_usage_error(a, "--holder is required");
	if ((ret = cli_opt_u64(a, "holder", 0, INT64_MAX, &holder)) ||
	    (ret = cli_opt_u64(a, "ttl", 0, 86400, &ttl)))
		return ret;
	path = cli_path_with("/v1/volumes/", a->args[0], "/grant");
	body = json_pack("{s:I, s:s}", "holder", (json_int_t)holder, "rights",
			 cli_flag(a, "read-only") ? "r" : "rw");
	if (body && ttl)
		json_object_set_new(body, "ttl", json_integer((json_int_t)ttl));
	if (!path || !body)
		return CLI_EXIT_ERROR;
	ret = cli_query(a, "POST", path, body, NULL, &r);
	if (ret != CLI_MORE)
		return ret;
	printf("%s\n", text(r.json, "grant"));
	fmt_duration((double)(jint(r.json, "expiry", 0) - (int64_t)time(NULL)), left, sizeof(left));
	fprintf(stderr, "grant of volume %s for node %" PRIu64 " (%s) on device node %" PRId64
		" at %s, expires in %s\n", a->args[0], holder, text(r.json, "rights"),
		jint(r.json, "devnode", -1), text(r.json, "addr"), left);
	return CLI_EXIT_OK;
}

/* ---- devices: volumes attached to slots ---------------------------------------- */

/* "/v1/slots/SLOT/disks" and, with volume, "/VOLUME", each name escaped. */
static char *disks_path(const char *slot, const char *volume)
{
	_cleanup_free_ char *p = cli_path_with("/v1/slots/", slot, volume ? "/disks/" : "/disks");

	return p && volume ? cli_path_with(p, volume, NULL) : TAKE_PTR(p);
}

static int cmd_device_attach(struct cli_args *a)
{
	_cleanup_resp_ struct cli_resp r = { 0 };
	_cleanup_(json_decrefp) json_t *body = NULL;
	_cleanup_free_ char *label = NULL, *path = disks_path(a->args[0], NULL);
	char size[32];
	int ret;

	body = json_pack("{s:s, s:b}", "volume", a->args[1], "read_only", cli_flag(a, "read-only"));
	if (!path || !body ||
	    asprintf(&label, "attaching volume %s to slot %s", a->args[1], a->args[0]) < 0)
		return CLI_EXIT_ERROR;
	ret = cli_query(a, "POST", path, body, label, &r);
	if (ret != CLI_MORE)
		return ret;
	cli_size_of(r.json, "size", size, sizeof(size));
	printf("volume %s attached to slot %s as %s (%s, %s on device node %" PRId64 ")\n",
	       a->args[1], a->args[0], jstr(r.json, "disk") ? jstr(r.json, "disk") : "?",
	       json_is_true(json_object_get(r.json, "read_only")) ? "read-only" : "read-write", size,
	       jint(r.json, "devnode", -1));
	return CLI_EXIT_OK;
}

static int cmd_device_detach(struct cli_args *a)
{
	_cleanup_resp_ struct cli_resp r = { 0 };
	_cleanup_free_ char *label = NULL, *path = disks_path(a->args[0], a->args[1]);
	int ret;

	if (!path ||
	    asprintf(&label, "detaching volume %s from slot %s", a->args[1], a->args[0]) < 0)
		return CLI_EXIT_ERROR;
	ret = cli_query(a, "DELETE", path, NULL, label, &r);
	if (ret != CLI_MORE)
		return ret;
	printf("volume %s detached from slot %s\n", a->args[1], a->args[0]);
	return CLI_EXIT_OK;
}

/*
 * The disks of slot SLOT (GET /v1/slots/SLOT/disks), or of every slot (the
 * attached volumes of GET /v1/volumes).
 */
static int cmd_device_ls(struct cli_args *a)
{
	static const char *const head[] = { "SLOT", "VOLUME", "DISK", "SIZE", "DEVNODE", "COMPUTE",
					    "EPOCH", "MODE", "STATE" };
	_cleanup_resp_ struct cli_resp r = { 0 };
	_cleanup_free_ char *path = a->nargs ? disks_path(a->args[0], NULL) : strdup("/v1/volumes");
	const char *list = a->nargs ? "disks" : "volumes";
	struct table t;
	json_t *x;
	size_t i;
	int ret;

	if (!path)
		return CLI_EXIT_ERROR;
	ret = cli_query(a, "GET", path, NULL, NULL, &r);
	if (ret != CLI_MORE)
		return ret;
	table_init(&t, ARRAY_SIZE(head), head);
	t.right[3] = t.right[4] = t.right[5] = t.right[6] = true;
	json_array_foreach(json_object_get(r.json, list), i, x) {
		const char *slot = jstr(x, a->nargs ? "slot" : "attached");
		char size[32], dn[32], holder[32], epoch[32];

		if (!slot)
			continue;       /* a volume attached to no slot */
		cli_size_of(x, "size", size, sizeof(size));
		jtext(x, "devnode", dn, sizeof(dn));
		jtext(x, "holder", holder, sizeof(holder));
		jtext(x, "epoch", epoch, sizeof(epoch));
		table_rowf(&t, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", slot,
			   text(x, a->nargs ? "volume" : "name"), text(x, "disk"), size, dn, holder,
			   epoch,
			   json_is_true(json_object_get(x, "read_only")) ? "ro" : "rw",
			   a->nargs ? text(x, "state")
				    : strcmp(text(x, "state"), "ready") ? text(x, "state") : "attached");
	}
	if (t.nrows == 0)
		fprintf(stderr, "no volumes attached%s%s\n", a->nargs ? " to slot " : "",
			a->nargs ? a->args[0] : "");
	else
		table_print(&t);
	table_free(&t);
	return CLI_EXIT_OK;
}

const struct cli_cmd cli_volume_cmds[] = {
	{ "volume create", "NAME SIZE [--devnode ID] [--from VOLUME] [--image]", 2, 2,
	  "create a block volume on a device node",
	  "NAME is 1 to 63 characters of [a-z0-9_-], starting with a letter or a digit,\n"
	  "unique in the cluster. SIZE is bytes or a number with K, M, G or T (a multiple\n"
	  "of 512 bytes, at most 16T). The device node is --devnode, or the one that is\n"
	  "up with the fewest bytes allocated. With --from, the volume is a clone of\n"
	  "another (on its device node), grown to SIZE if that is larger.",
	  cmd_volume_create,
	  { { "devnode", "ID", "the device node to put it on (default: placement)" },
	    { "from", "VOLUME", "a clone of this volume" },
	    { "image", NULL, "mark it as a base image" } } },
	{ "volume ls", "[--devnode ID]", 0, 0, "list volumes", NULL, cmd_volume_ls,
	  { { "devnode", "ID", "only the volumes of this device node" } } },
	{ "volume show", "NAME", 1, 1, "show a volume and what its device node says of it", NULL,
	  cmd_volume_show, { { NULL } } },
	{ "volume clone", "SRC DST", 2, 2, "make volume DST a copy of SRC",
	  "On SRC's device node; its blocks are shared where the node's filesystem can\n"
	  "(XFS, btrfs), else only SRC's data is copied. Flush or detach SRC first for a\n"
	  "consistent copy.",
	  cmd_volume_clone, { { NULL } } },
	{ "volume resize", "NAME SIZE [--shrink]", 2, 2, "grow or shrink a volume",
	  "Growing adds zeros. Shrinking drops the data past SIZE and needs --shrink\n"
	  "(refused while the volume is open or attached).",
	  cmd_volume_resize, { { "shrink", NULL, "allow a smaller SIZE (drops data)" } } },
	{ "volume delete", "NAME", 1, 1, "delete a volume and its data",
	  "Refused while it is attached to a slot or open on its device node. A block\n"
	  "device's volume (kind block) is only removed from the catalog: its device node\n"
	  "keeps serving it, and `volume adopt` brings it back.", cmd_volume_delete,
	  { { NULL } } },
	{ "volume adopt", "NAME --devnode ID [--epoch N]", 1, 1,
	  "bring a volume a device node has already into the catalog",
	  "A block device the node serves (--block-device NAME=PATH) or a file volume made\n"
	  "there outside the catalog (disagg-dnctl). The orchestrator asks the node for its\n"
	  "size, key and kind; then it can be listed, attached to slots and cloned from.\n"
	  "--epoch: the ownership epoch its writers used outside the catalog, if not 0.",
	  cmd_volume_adopt,
	  { { "devnode", "ID", "the device node that has it (required)" },
	    { "epoch", "N", "its ownership epoch on the node (default 0)" } } },
	{ "volume grant", "NAME --holder ID [--read-only] [--ttl S]", 1, 1,
	  "print a grant for a compute node to open the volume",
	  "The grant (hex) goes to stdout, what it is for to stderr; the compute agent\n"
	  "asks for its own when it attaches a volume. disagg-dnctl --grant HEX uses it.",
	  cmd_volume_grant,
	  { { "holder", "ID", "the compute node that will use it (required)" },
	    { "read-only", NULL, "reads only" },
	    { "ttl", "S", "seconds it is valid (default: the orchestrator's --grant-ttl)" } } },
	{ "device attach", "SLOT VOLUME [--read-only]", 2, 2,
	  "attach a volume to a running slot as a disk",
	  "The slot's guest sees a virtio-blk disk (its serial the volume's name) that its\n"
	  "compute node serves from the volume's device node. Refused while the volume is\n"
	  "attached to a slot.",
	  cmd_device_attach, { { "read-only", NULL, "the guest reads it only" } } },
	{ "device detach", "SLOT VOLUME", 2, 2, "detach a volume from a slot",
	  "The disk disappears from the guest (stop using it there first); the volume\n"
	  "keeps its data.",
	  cmd_device_detach, { { NULL } } },
	{ "device ls", "[SLOT]", 0, 1, "list the volumes attached to slots (or to SLOT)", NULL,
	  cmd_device_ls, { { NULL } } },
};

const size_t cli_volume_ncmds = ARRAY_SIZE(cli_volume_cmds);
