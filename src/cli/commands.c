// SPDX-License-Identifier: MIT
/*
 * The API subcommands of disagg: node, slot, section and events. Each one
 * validates its arguments (usage errors exit 2 before anything is sent),
 * makes its request through client.c, and prints either the server's JSON
 * (--json) or a table / a short summary. Server errors are printed with
 * their code and exit 1; an unreachable orchestrator exits 3.
 */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "net.h"

/*
 * Make a request and check the answer: 2xx with a JSON object body (unless
 * `want_json` is false). Returns CLI_EXIT_OK or the exit status to return.
 */
int cli_call(const struct cli_args *a, const char *method, const char *path, json_t *body,
		const char *progress, bool want_json, struct cli_resp *r)
{
	int ret = cli_http(a, method, path, body, progress, r);

	if (ret < 0)
		return CLI_EXIT_UNREACHABLE;
	if (r->status < 200 || r->status >= 300)
		return cli_server_error(r);
	if (want_json && !json_is_object(r->json)) {
		cli_err("unexpected answer from the orchestrator (%ld, %zu bytes, not a JSON object)",
			r->status, r->len);
		return CLI_EXIT_ERROR;
	}
	return CLI_EXIT_OK;
}

int cli_query(const struct cli_args *a, const char *method, const char *path, json_t *body,
	      const char *progress, struct cli_resp *r)
{
	int ret = cli_call(a, method, path, body, progress, true, r);

	if (ret)
		return ret;
	if (a->json) {
		print_json(r->json);
		return CLI_EXIT_OK;
	}
	return CLI_MORE;
}

/* "/v1/slots/NAME..." with NAME escaped for a URL path. */
char *cli_path_with(const char *prefix, const char *name, const char *suffix)
{
	char *esc = curl_easy_escape(NULL, name, 0), *p = NULL;

	if (!esc)
		return NULL;
	if (asprintf(&p, "%s%s%s", prefix, esc, suffix ? suffix : "") < 0)
		p = NULL;
	curl_free(esc);
	return p;
}

int cli_show(struct cli_args *a, const char *prefix, const char *name,
	     void (*print)(const json_t *))
{
	_cleanup_resp_ struct cli_resp r = { 0 };
	_cleanup_free_ char *path = cli_path_with(prefix, name, NULL);
	int ret;

	if (!path)
		return CLI_EXIT_ERROR;
	ret = cli_query(a, "GET", path, NULL, NULL, &r);
	if (ret != CLI_MORE)
		return ret;
	print(r.json);
	return CLI_EXIT_OK;
}

int cli_list(struct cli_args *a, const char *path, const char *key, const char *const *head,
	     int ncols, unsigned right, void (*row)(struct table *t, const json_t *x))
{
	_cleanup_resp_ struct cli_resp r = { 0 };
	struct table t;
	json_t *x;
	size_t i;
	int ret = cli_query(a, "GET", path, NULL, NULL, &r);

	if (ret != CLI_MORE)
		return ret;
	table_init(&t, ncols, head);
	for (int c = 0; c < ncols; c++)
		t.right[c] = right & (1u << c);
	json_array_foreach(json_object_get(r.json, key), i, x)
		row(&t, x);
	if (t.nrows == 0)
		fprintf(stderr, "no %s\n", key);
	else
		table_print(&t);
	table_free(&t);
	return CLI_EXIT_OK;
}

int cli_delete(struct cli_args *a, const char *prefix, const char *name, const char *what,
	       bool progress)
{
	_cleanup_resp_ struct cli_resp r = { 0 };
	_cleanup_free_ char *label = NULL, *path = cli_path_with(prefix, name, NULL);
	int ret;

	if (!path || (progress && asprintf(&label, "deleting %s %s", what, name) < 0))
		return CLI_EXIT_ERROR;
	ret = cli_call(a, "DELETE", path, NULL, label, false, &r);
	if (ret)
		return ret;
	if (a->json)
		r.json ? print_json(r.json) : (void)puts("{}");
	else
		printf("%s %s deleted\n", what, name);
	return CLI_EXIT_OK;
}

int cli_parse_u64(const struct cli_args *a, const char *what, const char *s, uint64_t max,
		  uint64_t *ret)
{
	char *end;
	unsigned long long v;

	errno = 0;
	if (!s || s[0] < '0' || s[0] > '9')
		return cli_usage_error(a, "%s must be a number, not \"%s\"", what, s ? s : "");
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return cli_usage_error(a, "%s must be a number from 0 to %" PRIu64 ", not \"%s\"", what,
				       max, s);
	*ret = v;
	return 0;
}

int cli_parse_size(const struct cli_args *a, const char *what, const char *s, uint64_t *ret)
{
	if (parse_size(s, ret) < 0 || *ret == 0)
		return cli_usage_error(a, "%s must be a size such as 512M, 1.5G or 1073741824, not \"%s\"",
				       what, s);
	return 0;
}

void cli_size_of(const json_t *o, const char *key, char *buf, size_t len)
{
	json_t *v = json_object_get(o, key);

	if (json_is_integer(v) && json_integer_value(v) >= 0)
		fmt_size((uint64_t)json_integer_value(v), buf, len);
	else
		jtext(o, key, buf, len);
}

/* ---- nodes ----------------------------------------------------------------- */

static void node_capacity(const json_t *n, char *free_s, char *total_s, char *vcpus, size_t len)
{
	int64_t ss = jint(n, "section_size", 0), tot = jint(n, "sections_total", -1),
		fr = jint(n, "sections_free", -1);

	snprintf(free_s, len, "-");
	snprintf(total_s, len, "-");
	if (ss > 0 && tot >= 0)
		fmt_size((uint64_t)(ss * tot), total_s, len);
	if (ss > 0 && fr >= 0)
		fmt_size((uint64_t)(ss * fr), free_s, len);
	if (json_is_integer(json_object_get(n, "vcpus_used")))
		snprintf(vcpus, len, "%" PRId64 "/%" PRId64, jint(n, "vcpus_used", 0), jint(n, "vcpus", 0));
	else
		jtext(n, "vcpus", vcpus, len);
}

int cmd_node_ls(struct cli_args *a)
{
	static const char *const head[] = { "ID", "KIND", "NAME", "STATE", "ADDRESS", "FREE",
					    "TOTAL", "VCPUS", "SLOTS", "SEEN" };
	_cleanup_resp_ struct cli_resp r = { 0 };
	struct table t;
	json_t *nodes, *n;
	size_t i;
	int ret = cli_query(a, "GET", "/v1/nodes", NULL, NULL, &r);

	if (ret != CLI_MORE)
		return ret;
	nodes = json_object_get(r.json, "nodes");
	table_init(&t, ARRAY_SIZE(head), head);
	t.right[0] = t.right[5] = t.right[6] = t.right[7] = t.right[8] = true;
	json_array_foreach(nodes, i, n) {
		char id[32], fr[32], tot[32], vc[32], slots[32], seen[32];
		const char *kind = jstr(n, "kind"), *addr = jstr(n, "addr");
		json_t *sl = json_object_get(n, "slots");

		jtext(n, "node_id", id, sizeof(id));
		node_capacity(n, fr, tot, vc, sizeof(fr));
		if (json_is_array(sl))
			snprintf(slots, sizeof(slots), "%zu", json_array_size(sl));
		else
			jtext(n, "slots", slots, sizeof(slots));
		fmt_age(jstr(n, "last_heartbeat"), seen, sizeof(seen));
		if (strcmp(seen, "-") != 0)
			strncat(seen, " ago", sizeof(seen) - strlen(seen) - 1);
		/* Compute nodes have no data address: show their control address. */
		if (!addr || (kind && strcmp(kind, "compute") == 0 && jstr(n, "http")))
			addr = jstr(n, "http");
		table_rowf(&t, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", id, kind ? kind : "",
			   jstr(n, "name") ? jstr(n, "name") : "", jstr(n, "state") ? jstr(n, "state") : "",
			   addr ? addr : "", fr, tot, vc, slots, seen);
	}
	if (t.nrows == 0)
		fprintf(stderr, "no nodes\n");
	else
		table_print(&t);
	table_free(&t);
	return CLI_EXIT_OK;
}

/* Who holds a section of GET /v1/sections or a memory node: its slot, or "region:NAME". */
static void section_owner(const json_t *x, char *buf, size_t len)
{
	if (jstr(x, "region"))
		snprintf(buf, len, "region:%s", jstr(x, "region"));
	else
		jtext(x, "slot", buf, len);
}

static int node_id_arg(const struct cli_args *a, uint64_t *ret)
{
	return cli_parse_u64(a, "the node ID", a->args[0], INT64_MAX, ret);
}

/* "key: value" lines for the given fields, in order, skipping absent ones. */
void cli_print_fields(const json_t *o, const char *const *keys, const char *const *labels,
		      size_t n, bool sizes)
{
	for (size_t i = 0; i < n; i++) {
		char v[256];

		if (!json_object_get(o, keys[i]))
			continue;
		if (sizes)
			cli_size_of(o, keys[i], v, sizeof(v));
		else
			jtext(o, keys[i], v, sizeof(v));
		printf("%-15s %s\n", labels[i], v);
	}
}

void cli_print_sections(json_t *secs)
{
	static const char *const head[] = { "INDEX", "KIND", "MEMNODE", "SECTION", "GEN" };
	struct table t;
	json_t *s;
	size_t i;

	table_init(&t, 5, head);
	t.right[0] = t.right[2] = t.right[3] = t.right[4] = true;
	json_array_foreach(secs, i, s) {
		char idx[32], mn[32], sec[32], gen[32];
		const char *kind = jstr(s, "kind");

		jtext(s, "index", idx, sizeof(idx));
		jtext(s, "memnode", mn, sizeof(mn));
		jtext(s, "section", sec, sizeof(sec));
		jtext(s, "generation", gen, sizeof(gen));
		if (!kind)
			kind = json_object_get(s, "memnode") ? "remote" : "";
		table_rowf(&t, "%s\t%s\t%s\t%s\t%s", idx, kind, mn, sec, gen);
	}
	if (t.nrows)
		table_print(&t);
	table_free(&t);
}


int cmd_node_show(struct cli_args *a)
{
	static const char *const keys[] = { "node_id", "kind", "name", "state", "addr", "http",
					    "vcpus", "sections_total", "sections_free" };
	static const char *const labels[] = { "id:", "kind:", "name:", "state:", "address:",
					      "http:", "vcpus:", "sections:", "free sections:" };
	_cleanup_resp_ struct cli_resp r = { 0 };
	_cleanup_free_ char *path = NULL;
	uint64_t id;
	char seen[32], buf[64], buf2[64];
	json_t *labels_o, *sl, *secs;
	int ret = node_id_arg(a, &id);

	if (ret)
		return ret;
	if (asprintf(&path, "/v1/nodes/%" PRIu64, id) < 0)
		return CLI_EXIT_ERROR;
	ret = cli_query(a, "GET", path, NULL, NULL, &r);
	if (ret != CLI_MORE)
		return ret;
	cli_print_fields(r.json, keys, labels, ARRAY_SIZE(keys), false);
	if (jint(r.json, "section_size", 0) > 0) {
		cli_size_of(r.json, "section_size", buf, sizeof(buf));
		printf("%-15s %s\n", "section size:", buf);
		node_capacity(r.json, buf, buf2, seen, sizeof(buf));
		printf("%-15s %s free of %s\n", "memory:", buf, buf2);
	}
	if (json_is_integer(json_object_get(r.json, "catalog_volumes"))) {
		/* A device node: its report, and what the catalog places on it. */
		cli_size_of(r.json, "volume_bytes_allocated", buf, sizeof(buf));
		cli_size_of(r.json, "catalog_bytes", buf2, sizeof(buf2));
		jtext(r.json, "volumes", seen, sizeof(seen));
		printf("%-15s %s (%s on its disk); the catalog has %" PRId64 " (%s)\n", "volumes:",
		       seen, buf, jint(r.json, "catalog_volumes", 0), buf2);
	}
	labels_o = json_object_get(r.json, "labels");
	if (json_object_size(labels_o)) {
		const char *k;
		json_t *v;
		bool first = true;

		printf("%-15s ", "labels:");
		json_object_foreach(labels_o, k, v) {
			printf("%s%s=%s", first ? "" : ",", k,
			       json_is_string(v) ? json_string_value(v) : "?");
			first = false;
		}
		putchar('\n');
	}
	fmt_age(jstr(r.json, "last_heartbeat"), seen, sizeof(seen));
	if (jstr(r.json, "last_heartbeat"))
		printf("%-15s %s (%s ago)\n", "last heartbeat:", jstr(r.json, "last_heartbeat"), seen);

	secs = json_object_get(r.json, "sections");
	if (json_is_array(secs)) {
		static const char *const head[] = { "SECTION", "GEN", "OWNER", "INDEX" };
		struct table t;
		json_t *x;
		size_t i;

		printf("\nsections in use (%zu)%s\n", json_array_size(secs),
		       json_array_size(secs) ? ":" : "");
		table_init(&t, ARRAY_SIZE(head), head);
		t.right[0] = t.right[1] = t.right[3] = true;
		json_array_foreach(secs, i, x) {
			char sec[32], gen[32], owner[160], idx[32];

			jtext(x, "section", sec, sizeof(sec));
			jtext(x, "generation", gen, sizeof(gen));
			section_owner(x, owner, sizeof(owner));
			jtext(x, "index", idx, sizeof(idx));
			table_rowf(&t, "%s\t%s\t%s\t%s", sec, gen, owner, idx);
		}
		if (t.nrows)
			table_print(&t);
		table_free(&t);
	}
	sl = json_object_get(r.json, "slots");
	if (json_is_array(sl) && json_is_object(json_array_get(sl, 0))) {
		printf("\nslots (%zu):\n", json_array_size(sl));
		cli_print_slots(sl);
	} else if (json_is_array(sl)) {
		json_t *x;
		size_t i;

		printf("%-15s ", "slots:");
		json_array_foreach(sl, i, x)
			printf("%s%s", i ? ", " : "", json_is_string(x) ? json_string_value(x) : "?");
		printf("%s\n", json_array_size(sl) ? "" : "none");
	}
	return CLI_EXIT_OK;
}

int cli_node_action(struct cli_args *a, const char *verb, const char *done)
{
	_cleanup_resp_ struct cli_resp r = { 0 };
	_cleanup_free_ char *path = NULL;
	uint64_t id;
	int ret = node_id_arg(a, &id);

	if (ret)
		return ret;
	if (asprintf(&path, "/v1/nodes/%" PRIu64 "/%s", id, verb) < 0)
		return CLI_EXIT_ERROR;
	ret = cli_call(a, "POST", path, NULL, NULL, false, &r);
	if (ret)
		return ret;
	if (a->json)
		r.json ? print_json(r.json) : (void)puts("{}");
	else
		printf("node %" PRIu64 " %s\n", id, done);
	return CLI_EXIT_OK;
}

int cmd_node_drain(struct cli_args *a)
{
	return cli_node_action(a, "drain", "drained: it takes no new slots or sections");
}

int cmd_node_undrain(struct cli_args *a)
{
	return cli_node_action(a, "undrain", "undrained: it takes new slots and sections again");
}

int cmd_node_remove(struct cli_args *a)
{
	return cli_node_action(a, "remove", "removed: the orchestrator forgot it");
}

/* node label ID KEY=VALUE... (KEY=: remove the label) */
int cmd_node_label(struct cli_args *a)
{
	_cleanup_resp_ struct cli_resp r = { 0 };
	_cleanup_free_ char *path = NULL;
	json_t *labels = json_object(), *body;
	uint64_t id;
	int ret = node_id_arg(a, &id);

	for (int i = 1; ret == 0 && i < a->nargs; i++) {
		const char *eq = strchr(a->args[i], '=');
		char key[128];

		if (!eq || eq == a->args[i] || (size_t)(eq - a->args[i]) >= sizeof(key)) {
			ret = cli_usage_error(a, "labels are KEY=VALUE (KEY= removes one), not \"%s\"",
					      a->args[i]);
			break;
		}
		snprintf(key, sizeof(key), "%.*s", (int)(eq - a->args[i]), a->args[i]);
		json_object_set_new(labels, key, eq[1] ? json_string(eq + 1) : json_null());
	}
	body = json_pack("{s:o}", "labels", labels);
	if (ret == 0 && (!body || asprintf(&path, "/v1/nodes/%" PRIu64 "/labels", id) < 0))
		ret = CLI_EXIT_ERROR;
	if (ret == 0)
		ret = cli_call(a, "POST", path, body, NULL, false, &r);
	json_decref(body);
	if (ret)
		return ret;
	if (a->json) {
		r.json ? print_json(r.json) : (void)puts("{}");
	} else {
		_cleanup_free_ char *l = json_dumps(json_object_get(r.json, "labels"), JSON_COMPACT);

		printf("node %" PRIu64 " labels: %s\n", id, l ? l : "?");
	}
	return CLI_EXIT_OK;
}

/* ---- sections -------------------------------------------------------------- */

int cmd_section_ls(struct cli_args *a)
{
	static const char *const head[] = { "MEMNODE", "SECTION", "GEN", "OWNER", "INDEX" };
	_cleanup_resp_ struct cli_resp r = { 0 };
	_cleanup_free_ char *path = NULL, *sq = NULL, *rq = NULL;
	const char *node = cli_opt(a, "node"), *slot = cli_opt(a, "slot");
	const char *region = cli_opt(a, "region");
	char nodeq[48] = "";
	uint64_t id = 0;
	struct table t;
	json_t *s;
	size_t i;
	int ret;

	if (node && (ret = cli_parse_u64(a, "--node", node, INT64_MAX, &id)))
		return ret;
	if (slot && region) {
		fprintf(stderr, "disagg: --slot and --region each name an owner: give one of them\n");
		return CLI_EXIT_USAGE;
	}
	if (node)
		snprintf(nodeq, sizeof(nodeq), "node=%" PRIu64, id);
	if ((slot && !(sq = cli_path_with("", slot, NULL))) ||
	    (region && !(rq = cli_path_with("", region, NULL))))
		return CLI_EXIT_ERROR;
	if (asprintf(&path, "/v1/sections%s%s%s%s%s%s", node || slot || region ? "?" : "", nodeq,
		     node && (slot || region) ? "&" : "", slot ? "slot=" : region ? "region=" : "",
		     sq ? sq : "", rq ? rq : "") < 0)
		return CLI_EXIT_ERROR;
	ret = cli_query(a, "GET", path, NULL, NULL, &r);
	if (ret != CLI_MORE)
		return ret;
	table_init(&t, ARRAY_SIZE(head), head);
	t.right[0] = t.right[1] = t.right[2] = t.right[4] = true;
	json_array_foreach(json_object_get(r.json, "sections"), i, s) {
		char mn[32], sec[32], gen[32], owner[160], idx[32];

		jtext(s, "memnode", mn, sizeof(mn));
		jtext(s, "section", sec, sizeof(sec));
		jtext(s, "generation", gen, sizeof(gen));
		section_owner(s, owner, sizeof(owner));
		jtext(s, "index", idx, sizeof(idx));
		table_rowf(&t, "%s\t%s\t%s\t%s\t%s", mn, sec, gen, owner, idx);
	}
	if (t.nrows == 0)
		fprintf(stderr, "no sections\n");
	else
		table_print(&t);
	table_free(&t);
	return CLI_EXIT_OK;
}

/* ---- events ---------------------------------------------------------------- */

#define EVENTS_WAIT_S 20   /* --follow's long poll (GET /v1/events?wait=, at most 30) */

static volatile sig_atomic_t events_stop;

static void on_sigint(int sig)
{
	events_stop = 1;
}

static const char *const event_head[] = { "SEQ", "TIME", "KIND", "NODE", "SLOT", "MESSAGE" };

/*
 * One event: a JSON line (--json), a row of `t` (a table printed at the
 * end), or, with --follow, a line at once in fixed-width columns.
 */
static void print_event(const struct cli_args *a, const json_t *e, struct table *t, bool *header)
{
	char node[32], slot[128], when[64] = "-", seq[32];
	const char *kind = jstr(e, "kind") ? jstr(e, "kind") : "-",
		   *msg = jstr(e, "message") ? jstr(e, "message") : "";
	int64_t tm_s;

	if (a->json) {
		json_dumpf(e, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
		fputc('\n', stdout);
		fflush(stdout);
		return;
	}
	if (parse_time(jstr(e, "time"), &tm_s) == 0) {
		time_t tt = (time_t)tm_s;
		struct tm tm;

		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime_r(&tt, &tm));
	}
	jtext(e, "seq", seq, sizeof(seq));
	jtext(e, "node", node, sizeof(node));
	jtext(e, "slot", slot, sizeof(slot));
	if (t) {
		table_rowf(t, "%s\t%s\t%s\t%s\t%s\t%s", seq, when, kind, node, slot, msg);
		return;
	}
	if (!*header) {
		printf("%-6s  %-19s  %-20s  %-6s  %-12s  %s\n", event_head[0], event_head[1],
		       event_head[2], event_head[3], event_head[4], event_head[5]);
		*header = true;
	}
	printf("%-6s  %-19s  %-20s  %-6s  %-12s  %s\n", seq, when, kind, node, slot, msg);
	fflush(stdout);
}

int cmd_events(struct cli_args *a)
{
	bool follow = cli_flag(a, "follow"), header = false;
	uint64_t since = 0, limit = 0;
	int64_t last = -1;
	struct table t;
	int ret;

	table_init(&t, ARRAY_SIZE(event_head), event_head);
	t.right[0] = true;
	if (cli_opt(a, "since") && (ret = cli_parse_u64(a, "--since", cli_opt(a, "since"), INT64_MAX, &since)))
		return ret;
	if (cli_opt(a, "limit") &&
	    (ret = cli_parse_u64(a, "--limit", cli_opt(a, "limit"), 1000000, &limit)))
		return ret;
	if (cli_opt(a, "since"))
		last = (int64_t)since;
	if (follow) {
		struct sigaction sa = { .sa_handler = on_sigint };

		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		cli_cancel_on(&events_stop);   /* Ctrl-C ends a long poll under way */
	}
	/* Without --follow: one request with --limit, else page until nothing new comes. */
	for (int pages = 0; !events_stop; pages++) {
		_cleanup_resp_ struct cli_resp r = { 0 };
		char path[128];
		json_t *evs, *e;
		size_t i, fresh = 0;
		int n = snprintf(path, sizeof(path), "/v1/events");
		uint64_t asked = now_ns();

		if (last >= 0)
			n += snprintf(path + n, sizeof(path) - n, "?since=%" PRId64, last);
		if (limit)
			n += snprintf(path + n, sizeof(path) - n, "%climit=%" PRIu64,
				      last >= 0 ? '&' : '?', limit);
		/* Following: a long poll, answered as soon as an event is recorded. */
		if (follow)
			snprintf(path + n, sizeof(path) - n, "%cwait=%d",
				 last >= 0 || limit ? '&' : '?', EVENTS_WAIT_S);
		ret = cli_call(a, "GET", path, NULL, NULL, true, &r);
		if (ret) {
			if (events_stop)
				break;
			table_free(&t);
			return ret;
		}
		evs = json_object_get(r.json, "events");
		json_array_foreach(evs, i, e) {
			int64_t seq = jint(e, "seq", -1);

			if (seq >= 0 && seq <= last)
				continue; /* already printed */
			print_event(a, e, follow ? NULL : &t, &header);
			fresh++;
			last = MAX(last, seq);
		}
		if (!follow && (limit || fresh == 0 || pages > 1000))
			break;
		/* An orchestrator without the long poll answers at once: poll each second. */
		if (follow && fresh == 0 && now_ns() - asked < 1000000000ull) {
			for (int k = 0; k < 10 && !events_stop; k++)
				usleep(100 * 1000);
		}
	}
	if (!a->json && !follow) {
		if (t.nrows)
			table_print(&t);
		else
			fprintf(stderr, "no events\n");
	}
	table_free(&t);
	return CLI_EXIT_OK;
}
