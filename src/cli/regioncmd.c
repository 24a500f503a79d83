// SPDX-License-Identifier: MIT
/*
 * The region subcommands of disagg (docs/cli.md, "Shared regions"):
 * create, ls, show, attach, detach, lock, unlock, migrate and delete, on the
 * orchestrator's /v1/regions (docs/api.md, "Shared regions"). Same rules
 * as commands.c: usage errors exit 2 before anything is sent, server
 * errors print their code and exit 1, an unreachable orchestrator exits 3.
 *
 * The rows of these commands are here (cli_region_cmds), not in main.c's
 * table, which walks them after its own: main.c knows them as data only.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* "2 sections on memory node 101" */
static void placement(const json_t *r, char *buf, size_t len)
{
	size_t n = json_array_size(json_object_get(r, "sections"));

	snprintf(buf, len, "%zu section%s on memory node %" PRId64, n, n == 1 ? "" : "s",
		 jint(r, "home", -1));
}

/* A string field, or "" (printed as "-" in a table). */
static const char *text(const json_t *o, const char *key)
{
	return jstr(o, key) ? jstr(o, key) : "";
}

/* "a,b" (the attached slots), or "-". */
static void slot_list(const json_t *r, char *buf, size_t len)
{
	json_t *x;
	size_t i, off = 0;

	buf[0] = '\0';
	json_array_foreach(json_object_get(r, "attachments"), i, x)
		if (off < len)
			off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? "," : "",
						jstr(x, "slot") ? jstr(x, "slot") : "?");
	if (!buf[0])
		snprintf(buf, len, "-");
}

static void region_row(struct table *t, const json_t *x)
{
	char size[32], home[32], holder[80], epoch[32], slots[256], age[32];

	cli_size_of(x, "size_bytes", size, sizeof(size));
	jtext(x, "home", home, sizeof(home));
	jtext(x, "holder", holder, sizeof(holder));
	jtext(x, "epoch", epoch, sizeof(epoch));
	slot_list(x, slots, sizeof(slots));
	fmt_age(jstr(x, "created"), age, sizeof(age));
	table_rowf(t, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", text(x, "name"), text(x, "mode"),
		   size, text(x, "state"), home, holder, epoch, slots, age);
}

static int cmd_region_ls(struct cli_args *a)
{
	static const char *const head[] = { "NAME", "MODE", "SIZE", "STATE", "HOME", "HOLDER",
					    "EPOCH", "SLOTS", "AGE" };

	return cli_list(a, "/v1/regions", "regions", head, ARRAY_SIZE(head),
			1u << 2 | 1u << 4 | 1u << 6, region_row);
}

static void print_region(const json_t *r)
{
	static const char *const keys[] = { "name", "mode", "state" };
	static const char *const labels[] = { "name:", "mode:", "state:" };
	static const char *const ahead[] = { "SLOT", "COMPUTE", "PCI", "NOTE" };
	static const char *const shead[] = { "INDEX", "MEMNODE", "SECTION", "GEN", "EPOCH" };
	char size[32], where[96], age[32];
	struct table t;
	json_t *x;
	size_t i;

	cli_print_fields(r, keys, labels, ARRAY_SIZE(keys), false);
	cli_size_of(r, "size_bytes", size, sizeof(size));
	placement(r, where, sizeof(where));
	printf("%-15s %s (%s)\n", "size:", size, where);
	printf("%-15s %s (epoch %" PRId64 ")\n", "holder:",
	       jstr(r, "holder") ? jstr(r, "holder") : "none", jint(r, "epoch", 0));
	if (jstr(r, "created")) {
		fmt_age(jstr(r, "created"), age, sizeof(age));
		printf("%-15s %s (%s ago)\n", "created:", jstr(r, "created"), age);
	}
	printf("\nattached to (%zu)%s\n", json_array_size(json_object_get(r, "attachments")),
	       json_array_size(json_object_get(r, "attachments")) ? ":" : "");
	table_init(&t, ARRAY_SIZE(ahead), ahead);
	t.right[1] = true;
	json_array_foreach(json_object_get(r, "attachments"), i, x) {
		char comp[32], pci[64], note[96];
		const char *slot = jstr(x, "slot") ? jstr(x, "slot") : "";

		jtext(x, "compute", comp, sizeof(comp));
		jtext(x, "pci", pci, sizeof(pci));
		snprintf(note, sizeof(note), "%s%s%s",
			 jstr(r, "mode") && strcmp(jstr(r, "mode"), "exclusive") ? "writes"
			 : jstr(r, "holder") && !strcmp(jstr(r, "holder"), slot) ? "holds the lock"
										  : "reads",
			 json_is_true(json_object_get(x, "stale")) ? ", not invalidated yet" : "",
			 jstr(x, "state") ? ", " : "");
		if (jstr(x, "state"))
			strncat(note, jstr(x, "state"), sizeof(note) - strlen(note) - 1);
		table_rowf(&t, "%s\t%s\t%s\t%s", slot, comp, pci, note);
	}
	if (t.nrows)
		table_print(&t);
	table_free(&t);
	putchar('\n');
	table_init(&t, ARRAY_SIZE(shead), shead);
	for (int c = 0; c < 5; c++)
		t.right[c] = true;
	json_array_foreach(json_object_get(r, "sections"), i, x) {
		char mn[32], sec[32], gen[32], ep[32];

		jtext(x, "memnode", mn, sizeof(mn));
		jtext(x, "section", sec, sizeof(sec));
		jtext(x, "generation", gen, sizeof(gen));
		jtext(x, "epoch", ep, sizeof(ep));
		table_rowf(&t, "%zu\t%s\t%s\t%s\t%s", i, mn, sec, gen, ep);
	}
	if (t.nrows)
		table_print(&t);
	table_free(&t);
}

static int cmd_region_show(struct cli_args *a)
{
	return cli_show(a, "/v1/regions/", a->args[0], print_region);
}

static int cmd_region_create(struct cli_args *a)
{
	_cleanup_resp_ struct cli_resp r = { 0 };
	_cleanup_(json_decrefp) json_t *body = NULL;
	_cleanup_free_ char *label = NULL;
	const char *name = a->args[0], *mode = cli_opt(a, "mode");
	char size_s[32], where[96];
	uint64_t size, home;
	int ret;

	if (!name[0])
		return cli_usage_error(a, "the region name must not be empty");
	if ((ret = cli_opt_u64(a, "home", 0, INT64_MAX, &home)))
		return ret;
	if (!cli_opt(a, "size"))
		return cli_usage_error(a, "--size is required");
	if ((ret = cli_parse_size(a, "--size", cli_opt(a, "size"), &size)))
		return ret;
	if (size & (size - 1))
		return cli_usage_error(a, "--size must be a power of two (128M, 256M, 512M, ...), "
				       "not \"%s\"", cli_opt(a, "size"));
	if (mode && strcmp(mode, "exclusive") && strcmp(mode, "strict") && strcmp(mode, "release"))
		return cli_usage_error(a, "--mode is exclusive, strict or release, not \"%s\"",
				       mode);
	body = json_pack("{s:s, s:I, s:s}", "name", name, "size_bytes", (json_int_t)size, "mode",
			 mode ? mode : "exclusive");
	if (body && home)
		json_object_set_new(body, "home", json_integer((json_int_t)home));
	fmt_size(size, size_s, sizeof(size_s));
	if (!body || asprintf(&label, "creating region %s (%s)", name, size_s) < 0)
		return CLI_EXIT_ERROR;
	ret = cli_query(a, "POST", "/v1/regions", body, label, &r);
	if (ret != CLI_MORE)
		return ret;
	placement(r.json, where, sizeof(where));
	printf("region %s created: %s %s, %s\n", name, size_s,
	       jstr(r.json, "mode") ? jstr(r.json, "mode") : "", where);
	return CLI_EXIT_OK;
}

static int cmd_region_delete(struct cli_args *a)
{
	return cli_delete(a, "/v1/regions/", a->args[0], "region", false);
}

/* The attachment of `slot` in a region's JSON, or NULL. */
static json_t *attachment(const json_t *r, const char *slot)
{
	json_t *x;
	size_t i;

	json_array_foreach(json_object_get(r, "attachments"), i, x)
		if (jstr(x, "slot") && !strcmp(jstr(x, "slot"), slot))
			return x;
	return NULL;
}

/* " (N pages written back)" from an answer's key (release: an object; detach: a number). */
static void written_back(const json_t *ans, char *buf, size_t len)
{
	const json_t *rel = json_object_get(ans, "release");
	int64_t n = jint(rel, "flushed_pages", jint(ans, "flushed_pages", -1));

	if (json_is_true(json_object_get(ans, "forced")))
		snprintf(buf, len, " (forced: its VM is gone, its unreleased writes are lost)");
	else if (n >= 0)
		snprintf(buf, len, " (%" PRId64 " page%s written back)", n, n == 1 ? "" : "s");
	else
		buf[0] = '\0';
}

/* The slots of the answer's arrays keys[0] and keys[1], each after says[k], at buf + off. */
static size_t slot_lists(const json_t *ans, const char *const keys[2], const char *const says[2],
			 char *buf, size_t off, size_t len)
{
	for (size_t k = 0; k < 2; k++) {
		json_t *arr = json_object_get(ans, keys[k]), *x;
		size_t i;

		json_array_foreach(arr, i, x)
			if (off < len)
				off += (size_t)snprintf(buf + off, len - off, "%s%s",
							i ? ", " : says[k],
							json_string_value(x) ? json_string_value(x) : "?");
	}
	return off;
}

/* "; invalidated: b, c; not reached: d (they read stale data until they are)" */
static void invalidated(const json_t *ans, char *buf, size_t len)
{
	static const char *const keys[] = { "invalidated", "not_invalidated" };
	static const char *const says[] = { "; invalidated: ", "; not reached: " };
	size_t off;

	buf[0] = '\0';
	off = slot_lists(ans, keys, says, buf, 0, len);
	if (json_array_size(json_object_get(ans, "not_invalidated")) && off < len)
		snprintf(buf + off, len - off, " (they may read older data until they are)");
}

/*
 * A release region's detach of a slot whose VM is gone: "; its VM is
 * gone: fenced at epoch N; new grants: b; not reached: c (until the next
 * renewal)".
 */
static void fenced_out(const json_t *ans, char *buf, size_t len)
{
	static const char *const keys[] = { "regranted", "not_regranted" };
	static const char *const says[] = { "; new grants: ", "; not reached: " };
	int64_t epoch = jint(ans, "fenced_epoch", -1), unfenced = jint(ans, "not_fenced_sections", 0);
	size_t off;

	buf[0] = '\0';
	if (epoch < 0)
		return;
	off = (size_t)snprintf(buf, len, "; its VM is gone: fenced at epoch %" PRId64, epoch);
	if (unfenced > 0 && off < len)
		off += (size_t)snprintf(buf + off, len - off, " (%" PRId64 " sections not reached)",
					unfenced);
	off = slot_lists(ans, keys, says, buf, off, len);
	if (json_array_size(json_object_get(ans, "not_regranted")) && off < len)
		snprintf(buf + off, len - off, " (until the next renewal)");
}

/*
 * attach, detach, lock, unlock, release, acquire: POST
 * /v1/regions/NAME/VERB {"slot": S}, then one line.
 */
static int region_verb(struct cli_args *a, const char *verb, const char *doing)
{
	_cleanup_resp_ struct cli_resp r = { 0 };
	_cleanup_(json_decrefp) json_t *body = NULL;
	_cleanup_free_ char *label = NULL, *path = NULL, *suffix = NULL;
	const char *name = a->args[0], *slot = cli_opt(a, "slot");
	char pci[64], more[160], inv[512], fence[512];
	json_t *att;
	int ret;

	if (!slot || !slot[0])
		return cli_usage_error(a, "--slot is required");
	if (asprintf(&suffix, "/%s", verb) < 0)
		return CLI_EXIT_ERROR;
	path = cli_path_with("/v1/regions/", name, suffix);
	body = json_pack("{s:s}", "slot", slot);
	if (!path || !body || asprintf(&label, "%s region %s for slot %s", doing, name, slot) < 0)
		return CLI_EXIT_ERROR;
	ret = cli_query(a, "POST", path, body, label, &r);
	if (ret != CLI_MORE)
		return ret;
	att = attachment(r.json, slot);
	written_back(r.json, more, sizeof(more));
	invalidated(r.json, inv, sizeof(inv));
	if (!strcmp(verb, "attach")) {
		jtext(att, "pci", pci, sizeof(pci));
		printf("region %s attached to slot %s (compute node %" PRId64 ", PCI %s), %s%s\n",
		       name, slot, jint(att, "compute", -1), pci,
		       jstr(r.json, "mode") && strcmp(jstr(r.json, "mode"), "exclusive")
			       ? "read-write, mode " : jstr(r.json, "holder") &&
			       !strcmp(jstr(r.json, "holder"), slot) ? "read-write (it holds the lock)"
			       : "read-only",
		       jstr(r.json, "mode") && strcmp(jstr(r.json, "mode"), "exclusive")
			       ? jstr(r.json, "mode") : "");
	} else if (!strcmp(verb, "detach")) {
		fenced_out(r.json, fence, sizeof(fence));
		printf("region %s detached from slot %s%s%s%s\n", name, slot, more, inv, fence);
	} else if (!strcmp(verb, "lock")) {
		printf("region %s locked by slot %s (epoch %" PRId64 ")\n", name, slot,
		       jint(r.json, "epoch", -1));
	} else if (!strcmp(verb, "release")) {
		printf("region %s released by slot %s (%" PRId64 " pages published, %" PRId64
		       " bytes changed)\n", name, slot, jint(r.json, "published_pages", -1),
		       jint(r.json, "diff_bytes", -1));
	} else if (!strcmp(verb, "acquire")) {
		printf("region %s acquired by slot %s (%" PRId64 " cached pages dropped)\n", name,
		       slot, jint(r.json, "dropped_pages", -1));
	} else {
		printf("region %s unlocked by slot %s%s%s\n", name, slot, more, inv);
	}
	return CLI_EXIT_OK;
}

static int cmd_region_attach(struct cli_args *a)
{
	return region_verb(a, "attach", "attaching");
}

static int cmd_region_detach(struct cli_args *a)
{
	return region_verb(a, "detach", "detaching");
}

static int cmd_region_lock(struct cli_args *a)
{
	return region_verb(a, "lock", "locking");
}

static int cmd_region_unlock(struct cli_args *a)
{
	return region_verb(a, "unlock", "unlocking");
}

static int cmd_region_release(struct cli_args *a)
{
	return region_verb(a, "release", "releasing");
}

static int cmd_region_acquire(struct cli_args *a)
{
	return region_verb(a, "acquire", "acquiring");
}

/* POST /v1/regions/NAME/migrate {"to"}: one line with the pause the users saw. */
static int cmd_region_migrate(struct cli_args *a)
{
	_cleanup_resp_ struct cli_resp r = { 0 };
	_cleanup_(json_decrefp) json_t *body = NULL;
	_cleanup_free_ char *label = NULL, *path = NULL;
	const char *name = a->args[0];
	char copied[32];
	uint64_t to;
	int ret;

	if (!cli_opt(a, "to"))
		return cli_usage_error(a, "--to is required");
	if ((ret = cli_opt_u64(a, "to", 0, INT64_MAX, &to)))
		return ret;
	path = cli_path_with("/v1/regions/", name, "/migrate");
	body = json_pack("{s:I}", "to", (json_int_t)to);
	if (!path || !body ||
	    asprintf(&label, "moving region %s to memory node %" PRIu64, name, to) < 0)
		return CLI_EXIT_ERROR;
	ret = cli_query(a, "POST", path, body, label, &r);
	if (ret != CLI_MORE)
		return ret;
	fmt_size((uint64_t)jint(r.json, "bytes_copied", 0), copied, sizeof(copied));
	printf("region %s moved from memory node %" PRId64 " to %" PRId64 ": %" PRId64
	       " section%s, %s copied in %" PRId64 " ms; its %zu user%s paused %" PRId64 " ms\n",
	       name, jint(r.json, "from", -1), jint(r.json, "to", -1), jint(r.json, "sections", 0),
	       jint(r.json, "sections", 0) == 1 ? "" : "s", copied, jint(r.json, "copy_ms", 0),
	       json_array_size(json_object_get(r.json, "users")),
	       json_array_size(json_object_get(r.json, "users")) == 1 ? "" : "s",
	       jint(r.json, "pause_ms", 0));
	if (json_array_size(json_object_get(r.json, "not_resumed")))
		fprintf(stderr, "warning: %zu user(s) did not resume: their accesses to the region "
			"wait until their agents restart or the region moves again\n",
			json_array_size(json_object_get(r.json, "not_resumed")));
	return CLI_EXIT_OK;
}

const struct cli_cmd cli_region_cmds[] = {
	{ "region create", "NAME --size SIZE [--mode exclusive|strict|release] [--home MEMNODE]", 1, 1,
	  "create a shared region on a memory node",
	  "A region is memory that several slots map at once (an ivshmem device in\n"
	  "each guest). SIZE is a power of two and a whole number of sections, at\n"
	  "most 8 (128M to 1G); all of it lives on one memory node (--home, or the one\n"
	  "with the most free sections). Mode exclusive: one slot writes at a time (the lock holder), the\n"
	  "others read what it last released. Mode strict: every slot writes, and\n"
	  "the memory node's directory keeps each page coherent (sequential\n"
	  "consistency: spinlocks in the region work); there is no lock. Mode\n"
	  "release: every slot writes, even different bytes of one page; a slot's\n"
	  "writes reach the others at its release and their acquire.",
	  cmd_region_create,
	  { { "size", "SIZE", "the region's size (required)" },
	    { "mode", "MODE", "exclusive (default), strict or release" },
	    { "home", "MEMNODE", "the memory node of its sections (default: the one with the most free)" } } },
	{ "region ls", "", 0, 0, "list shared regions", NULL, cmd_region_ls, { { NULL } } },
	{ "region show", "NAME", 1, 1, "show a region, the slots that map it and its sections",
	  NULL, cmd_region_show, { { NULL } } },
	{ "region attach", "NAME --slot S", 1, 1, "map a region into a running slot",
	  "The slot's guest sees a new PCI device (ivshmem, BAR 2 = the region):\n"
	  "read-only unless the slot holds the lock (mode exclusive); a strict or\n"
	  "release region is read-write for every slot.",
	  cmd_region_attach, { { "slot", "S", "the slot (required)" } } },
	{ "region detach", "NAME --slot S", 1, 1, "unmap a region from a slot",
	  "A slot that holds the lock releases it first (its writes go back to the\n"
	  "memory node); in mode release the slot's diffs are published first.\n"
	  "Stop using the device in the guest before: it disappears.",
	  cmd_region_detach, { { "slot", "S", "the slot (required)" } } },
	{ "region lock", "NAME --slot S", 1, 1, "let a slot write the region (try-lock)",
	  "Fails at once when another slot holds the lock (exit 1, region_locked);\n"
	  "succeeds again for the holder.",
	  cmd_region_lock, { { "slot", "S", "the slot (required)" } } },
	{ "region unlock", "NAME --slot S", 1, 1, "release the lock: the others see the writes",
	  "The holder writes every change back to the memory node; then every other\n"
	  "slot drops what it had cached, so its next reads see them.",
	  cmd_region_unlock, { { "slot", "S", "the slot that holds it (required)" } } },
	{ "region release", "NAME --slot S", 1, 1, "publish a slot's writes (mode release)",
	  "The slot's changes since its last release (the bytes that differ from\n"
	  "the pages as it fetched them) go to the memory node; other slots see\n"
	  "them after their next acquire.",
	  cmd_region_release, { { "slot", "S", "the slot (required)" } } },
	{ "region acquire", "NAME --slot S", 1, 1, "read what others released (mode release)",
	  "The slot drops the pages it cached and has not changed since its last\n"
	  "release: its next reads fetch what the others released.",
	  cmd_region_acquire, { { "slot", "S", "the slot (required)" } } },
	{ "region migrate", "NAME --to MEMNODE", 1, 1,
	  "move a region's sections to another memory node while slots map it",
	  "Every slot that maps the region stops using it for a moment: its\n"
	  "changes are written back, its accesses to the region wait while the\n"
	  "memory nodes copy the sections, then go on from the new node (the\n"
	  "answer says how long: the pause). The lock stays with its holder. If a\n"
	  "step fails, the region stays on its node, nothing lost.",
	  cmd_region_migrate, { { "to", "MEMNODE", "the memory node to move to (required)" } } },
	{ "region delete", "NAME", 1, 1, "free a region that no slot maps", NULL, cmd_region_delete,
	  { { NULL } } },
};

const size_t cli_region_ncmds = ARRAY_SIZE(cli_region_cmds);
