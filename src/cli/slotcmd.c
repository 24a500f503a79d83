// SPDX-License-Identifier: MIT
/*
 * The slot subcommands of disagg: create, ls, show, resize, delete and
 * guest (migrations are in migrate.c, console and ssh in consolecmd.c).
 * Same rules as commands.c: usage errors exit 2 before anything is sent,
 * server errors print their code and exit 1, an unreachable orchestrator
 * exits 3.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void cli_print_slots(json_t *slots)
{
	static const char *const head[] = { "NAME", "STATE", "VCPUS", "MEMORY", "REMOTE",
					    "CACHE", "COMPUTE", "POLICY", "AGE" };
	struct table t;
	json_t *s;
	size_t i;

	table_init(&t, ARRAY_SIZE(head), head);
	t.right[2] = t.right[3] = t.right[4] = t.right[5] = t.right[6] = true;
	json_array_foreach(slots, i, s) {
		char vc[32], mem[32], rem[32], cache[32], comp[32], age[32], state[96];
		const char *name = json_is_string(s) ? json_string_value(s) : jstr(s, "name");
		json_t *red = json_object_get(s, "redundancy");

		jtext(s, "vcpus", vc, sizeof(vc));
		cli_size_of(s, "memory", mem, sizeof(mem));
		if (json_is_integer(json_object_get(s, "remote_percent")))
			snprintf(rem, sizeof(rem), "%" PRId64 "%%", jint(s, "remote_percent", 0));
		else
			snprintf(rem, sizeof(rem), "-");
		cli_size_of(s, "cache", cache, sizeof(cache));
		jtext(s, "compute", comp, sizeof(comp));
		fmt_age(jstr(s, "created"), age, sizeof(age));
		/* A replicated slot's state says how many replicas it has in. */
		snprintf(state, sizeof(state), "%s%s%s", jstr(s, "state") ? jstr(s, "state") : "",
			 jint(s, "replicas", 1) > 1 && jstr(red, "text") ? ", " : "",
			 jint(s, "replicas", 1) > 1 && jstr(red, "text") ? jstr(red, "text") : "");
		table_rowf(&t, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", name ? name : "",
			   state, vc, mem, rem, cache, comp,
			   jstr(s, "policy") ? jstr(s, "policy") : "", age);
	}
	if (t.nrows == 0)
		fprintf(stderr, "no slots\n");
	else
		table_print(&t);
	table_free(&t);
}

int cmd_slot_ls(struct cli_args *a)
{
	_cleanup_resp_ struct cli_resp r = { 0 };
	int ret = cli_query(a, "GET", "/v1/slots", NULL, NULL, &r);

	if (ret != CLI_MORE)
		return ret;
	cli_print_slots(json_object_get(r.json, "slots"));
	return CLI_EXIT_OK;
}

/* "2 local, 2 remote on memnodes 101, 102" */
static void slot_memory_summary(const json_t *slot, char *buf, size_t len)
{
	json_t *secs = json_object_get(slot, "sections"), *s;
	int64_t nodes[16];
	size_t i, nnodes = 0, local = 0, remote = 0, off;

	json_array_foreach(secs, i, s) {
		const char *kind = jstr(s, "kind");
		int64_t mn = jint(s, "memnode", -1);

		if (kind && strcmp(kind, "local") == 0) {
			local++;
			continue;
		}
		remote++;
		bool seen = false;
		for (size_t k = 0; k < nnodes; k++)
			seen |= nodes[k] == mn;
		if (!seen && mn >= 0 && nnodes < ARRAY_SIZE(nodes))
			nodes[nnodes++] = mn;
	}
	off = (size_t)snprintf(buf, len, "%zu sections: %zu local, %zu remote", local + remote,
			       local, remote);
	for (size_t k = 0; k < nnodes && off < len; k++)
		off += (size_t)snprintf(buf + off, len - off, "%s%" PRId64,
					k == 0 ? " on memnode " : ", ", nodes[k]);
}

/* "disks:  data1 as disk0 (rw), ..." (GET /v1/slots/NAME's "disks", the volumes attached). */
static void print_disks(json_t *disks)
{
	json_t *d;
	size_t i;

	printf("%-15s", "disks:");
	json_array_foreach(disks, i, d)
		printf("%s %s as %s (%s)", i ? "," : "", jstr(d, "volume") ? jstr(d, "volume") : "?",
		       jstr(d, "disk") ? jstr(d, "disk") : "?",
		       json_is_true(json_object_get(d, "read_only")) ? "ro" : "rw");
	putchar('\n');
}

/* "network:  user, ssh 127.0.0.1:40022 (mac 52:54:00:..)" (the slot's "net"). */
static void print_net(const json_t *net)
{
	const char *mode = jstr(net, "mode"), *mac = jstr(net, "mac");

	printf("%-15s %s", "network:", mode ? mode : "?");
	if (jstr(net, "bridge"))
		printf(" on bridge %s", jstr(net, "bridge"));
	if (jstr(net, "ssh"))
		printf(", ssh %s", jstr(net, "ssh"));
	if (mac)
		printf(" (mac %s)", mac);
	putchar('\n');
}

static void print_slot(const json_t *slot)
{
	static const char *const keys[] = { "name", "state", "reason", "vcpus", "compute",
					    "policy", "hotplug" };
	static const char *const labels[] = { "name:", "state:", "reason:", "vcpus:",
					      "compute node:", "policy:", "hotplug:" };
	char mem[32], cache[32], sum[256], age[32];

	cli_print_fields(slot, keys, labels, ARRAY_SIZE(keys), false);
	cli_size_of(slot, "memory", mem, sizeof(mem));
	slot_memory_summary(slot, sum, sizeof(sum));
	printf("%-15s %s (%s)\n", "memory:", mem, sum);
	if (json_object_get(slot, "remote_percent"))
		printf("%-15s %" PRId64 "%%\n", "remote:", jint(slot, "remote_percent", 0));
	if (jint(slot, "replicas", 1) > 1)
		printf("%-15s %" PRId64 " of each remote section, %s\n", "replicas:",
		       jint(slot, "replicas", 1),
		       jstr(json_object_get(slot, "redundancy"), "text")
			       ? jstr(json_object_get(slot, "redundancy"), "text") : "?");
	cli_size_of(slot, "cache", cache, sizeof(cache));
	printf("%-15s %s\n", "cache:", strcmp(cache, "-") == 0 ? "no limit" : cache);
	if (json_is_boolean(json_object_get(slot, "encrypted")))
		printf("%-15s %s\n", "sealed:",
		       json_is_true(json_object_get(slot, "encrypted")) ?
			       "yes (pages leave this node encrypted)" : "no");
	if (jstr(slot, "created")) {
		fmt_age(jstr(slot, "created"), age, sizeof(age));
		printf("%-15s %s (%s ago)\n", "created:", jstr(slot, "created"), age);
	}
	if (json_object_get(slot, "net"))
		print_net(json_object_get(slot, "net"));
	if (jstr(slot, "image"))
		printf("%-15s %s, root disk %s\n", "image:", jstr(slot, "image"),
		       jstr(slot, "root_disk") ? jstr(slot, "root_disk") : "?");
	if (json_array_size(json_object_get(slot, "disks")))
		print_disks(json_object_get(slot, "disks"));
	if (json_array_size(json_object_get(slot, "sections"))) {
		putchar('\n');
		cli_print_sections(json_object_get(slot, "sections"));
	}
}

static const char *slot_name_arg(const struct cli_args *a)
{
	return a->args[0];
}

int cmd_slot_show(struct cli_args *a)
{
	return cli_show(a, "/v1/slots/", slot_name_arg(a), print_slot);
}

/* A small text file (a public key, cloud-init user data) as a string: NULL (printed) if not. */
static char *read_small(struct cli_args *a, const char *opt, const char *path, bool one_line)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	char *buf = malloc(65537);
	size_t n;

	if (!f || !buf) {
		free(buf);
		cli_err("--%s %s: %s", opt, path, strerror(errno));
		return NULL;
	}
	n = fread(buf, 1, 65536, f);
	buf[n] = '\0';
	if (n == 65536 && fgetc(f) != EOF) {
		free(buf);
		cli_err("--%s %s: more than 64 KiB", opt, path);
		return NULL;
	}
	while (one_line && n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	if (one_line && (!n || strchr(buf, '\n'))) {
		free(buf);
		cli_err("--%s %s: not a public key (one line, as in id_ed25519.pub)", opt, path);
		return NULL;
	}
	return buf;
}

/* --image, --disk, --ssh-key, --user-data, --append and --volume into body. */
static int boot_args(struct cli_args *a, json_t *body)
{
	const char *const *vals;
	const char *o;
	uint64_t v;
	int n, ret;

	if ((o = cli_opt(a, "image")))
		json_object_set_new(body, "image", json_string(o));
	if (!o && (cli_opt(a, "disk") || cli_opt(a, "ssh-key") || cli_opt(a, "user-data") ||
		   cli_opt(a, "append")))
		return cli_usage_error(a, "--disk, --ssh-key, --user-data and --append go with "
				       "--image");
	if ((o = cli_opt(a, "disk"))) {
		if ((ret = cli_parse_size(a, "--disk", o, &v)))
			return ret;
		json_object_set_new(body, "disk", json_integer((json_int_t)v));
	}
	if ((o = cli_opt(a, "append")))
		json_object_set_new(body, "append", json_string(o));
	if (cli_opt(a, "ssh-key") && cli_opt(a, "user-data"))
		return cli_usage_error(a, "--ssh-key or --user-data (which then holds the keys), "
				       "not both");
	n = cli_opt_all(a, "ssh-key", &vals);
	if (n) {
		json_t *keys = json_array();

		json_object_set_new(body, "ssh_keys", keys);
		for (int i = 0; i < n; i++) {
			char *k = read_small(a, "ssh-key", vals[i], true);

			if (!k)
				return CLI_EXIT_ERROR;
			json_array_append_new(keys, json_string(k));
			free(k);
		}
	}
	if ((o = cli_opt(a, "user-data"))) {
		char *ud = read_small(a, "user-data", o, false);

		if (!ud)
			return CLI_EXIT_ERROR;
		json_object_set_new(body, "user_data", json_string(ud));
		free(ud);
	}
	n = cli_opt_all(a, "volume", &vals);
	if (n) {
		json_t *vols = json_array();

		json_object_set_new(body, "volumes", vols);
		for (int i = 0; i < n; i++)
			json_array_append_new(vols, json_string(vals[i]));
	}
	return 0;
}

int cmd_slot_create(struct cli_args *a)
{
	_cleanup_resp_ struct cli_resp r = { 0 };
	_cleanup_(json_decrefp) json_t *body = NULL;
	_cleanup_free_ char *label = NULL;
	const char *name = slot_name_arg(a), *o;
	uint64_t vcpus, memory, v;
	char mem[32], sum[256];
	int ret;

	if (!name[0])
		return cli_usage_error(a, "the slot name must not be empty");
	if ((!cli_opt(a, "vcpus") || !cli_opt(a, "memory")) && !cli_opt(a, "image"))
		return cli_usage_error(a, "--vcpus and --memory are required (but for --image)");
	if ((ret = cli_parse_u64(a, "--vcpus", cli_opt(a, "vcpus") ? cli_opt(a, "vcpus") : "1",
				 1024, &vcpus)))
		return ret;
	if (vcpus == 0)
		return cli_usage_error(a, "--vcpus must be at least 1");
	if ((ret = cli_parse_size(a, "--memory", cli_opt(a, "memory") ? cli_opt(a, "memory") : "1G",
				  &memory)))
		return ret;
	body = json_pack("{s:s, s:I, s:I}", "name", name, "vcpus", (json_int_t)vcpus, "memory",
			 (json_int_t)memory);
	if (!body)
		return CLI_EXIT_ERROR;
	if ((o = cli_opt(a, "remote"))) {
		if ((ret = cli_parse_u64(a, "--remote", o, 100, &v)))
			return ret;
		json_object_set_new(body, "remote_percent", json_integer((json_int_t)v));
	}
	if ((o = cli_opt(a, "cache"))) {
		if ((ret = cli_parse_size(a, "--cache", o, &v)))
			return ret;
		json_object_set_new(body, "cache", json_integer((json_int_t)v));
	}
	if ((o = cli_opt(a, "replicas"))) {
		if ((ret = cli_parse_u64(a, "--replicas", o, 3, &v)))
			return ret;
		if (v < 1)
			return cli_usage_error(a, "--replicas is 1 to 3");
		json_object_set_new(body, "replicas", json_integer((json_int_t)v));
	}
	if ((o = cli_opt(a, "policy"))) {
		if (strcmp(o, "spread") != 0 && strcmp(o, "pack") != 0)
			return cli_usage_error(a, "--policy is spread or pack, not \"%s\"", o);
		json_object_set_new(body, "policy", json_string(o));
	}
	if ((o = cli_opt(a, "hotplug"))) {
		if (strcmp(o, "dimm") != 0 && strcmp(o, "virtio-mem") != 0)
			return cli_usage_error(a, "--hotplug is dimm or virtio-mem, not \"%s\"", o);
		json_object_set_new(body, "hotplug", json_string(o));
	}
	if ((o = cli_opt(a, "encrypt"))) {
		if (strcmp(o, "yes") != 0 && strcmp(o, "no") != 0)
			return cli_usage_error(a, "--encrypt is yes or no, not \"%s\"", o);
		json_object_set_new(body, "encrypt", json_boolean(strcmp(o, "yes") == 0));
	}
	if ((o = cli_opt(a, "net"))) {
		if (!strcmp(o, "user") || !strcmp(o, "none"))
			json_object_set_new(body, "net", json_pack("{s:s}", "mode", o));
		else if (!strncmp(o, "bridge:", 7) && o[7])
			json_object_set_new(body, "net", json_pack("{s:s, s:s}", "mode", "bridge",
								   "bridge", o + 7));
		else
			return cli_usage_error(a, "--net is user, bridge:BRIDGE or none, not \"%s\"", o);
	}
	if ((ret = boot_args(a, body)))
		return ret;
	fmt_size(memory, mem, sizeof(mem));
	if (asprintf(&label, "creating slot %s (%" PRIu64 " vcpu%s, %s)", name, vcpus,
		     vcpus == 1 ? "" : "s", mem) < 0)
		return CLI_EXIT_ERROR;
	ret = cli_query(a, "POST", "/v1/slots", body, label, &r);
	if (ret != CLI_MORE)
		return ret;
	slot_memory_summary(r.json, sum, sizeof(sum));
	printf("slot %s %s on compute node %" PRId64 ": %s\n", name,
	       jstr(r.json, "state") ? jstr(r.json, "state") : "created", jint(r.json, "compute", -1),
	       sum);
	return CLI_EXIT_OK;
}

int cmd_slot_resize(struct cli_args *a)
{
	_cleanup_resp_ struct cli_resp r = { 0 };
	_cleanup_(json_decrefp) json_t *body = NULL;
	_cleanup_free_ char *label = NULL, *path = NULL;
	const char *name = slot_name_arg(a);
	uint64_t memory;
	char mem[32], sum[256];
	int ret;

	if (!cli_opt(a, "memory"))
		return cli_usage_error(a, "--memory is required");
	if ((ret = cli_parse_size(a, "--memory", cli_opt(a, "memory"), &memory)))
		return ret;
	path = cli_path_with("/v1/slots/", name, "/resize");
	body = json_pack("{s:I}", "memory", (json_int_t)memory);
	fmt_size(memory, mem, sizeof(mem));
	if (!path || !body || asprintf(&label, "resizing slot %s to %s", name, mem) < 0)
		return CLI_EXIT_ERROR;
	ret = cli_query(a, "POST", path, body, label, &r);
	if (ret != CLI_MORE)
		return ret;
	cli_size_of(r.json, "memory", mem, sizeof(mem));
	slot_memory_summary(r.json, sum, sizeof(sum));
	printf("slot %s now has %s (%s)\n", name, mem, sum);
	return CLI_EXIT_OK;
}

int cmd_slot_delete(struct cli_args *a)
{
	_cleanup_resp_ struct cli_resp r = { 0 };
	_cleanup_free_ char *label = NULL, *path = NULL;
	const char *name = slot_name_arg(a);
	int ret;

	if (!cli_flag(a, "keep-disk"))
		return cli_delete(a, "/v1/slots/", name, "slot", true);
	path = cli_path_with("/v1/slots/", name, "?keep_disk=true");
	if (!path || asprintf(&label, "deleting slot %s", name) < 0)
		return CLI_EXIT_ERROR;
	ret = cli_call(a, "DELETE", path, NULL, label, false, &r);
	if (ret)
		return ret;
	if (a->json)
		r.json ? print_json(r.json) : (void)puts("{}");
	else
		printf("slot %s deleted, its root disk kept\n", name);
	return CLI_EXIT_OK;
}

/* One disagg-guest command line; exit 1 when the guest answers ERR. */
int cmd_slot_guest(struct cli_args *a)
{
	_cleanup_resp_ struct cli_resp r = { 0 };
	_cleanup_free_ char *path = cli_path_with("/v1/slots/", slot_name_arg(a), "/guest");
	_cleanup_(json_decrefp) json_t *body = NULL;
	const char *reply;
	int ret;

	if (!path)
		return CLI_EXIT_ERROR;
	body = json_pack("{s:s}", "command", a->args[1]);
	if (!body)
		return CLI_EXIT_ERROR;
	ret = cli_call(a, "POST", path, body, NULL, true, &r);
	if (ret)
		return ret;
	if (a->json) {
		print_json(r.json);
	} else {
		reply = json_string_value(json_object_get(r.json, "reply"));
		puts(reply ? reply : "");
	}
	return json_is_true(json_object_get(r.json, "ok")) ? CLI_EXIT_OK : CLI_EXIT_ERROR;
}
