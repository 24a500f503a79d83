// SPDX-License-Identifier: MIT
/*
 * The replicas of a remote section as the compute agent reads them
 * (src/compute/vm/replica_json.c): the same parsers take POST /v1/vms and
 * the VM's record (vm.json) when a restarted agent adopts it, so every
 * malformed "replicas" and "out" is refused here with its message, and
 * what is accepted comes back as it went in.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "grant.h"
#include "pager.h"
#include "replica_json.h"
#include "tap.h"

static char hex_of[8][GRANT_HEX_LEN + 1];

/* A grant (unsigned: parsing never verifies) of memory node mn, as hex. */
static const char *grant_hex(unsigned slot, uint64_t mn, uint32_t section)
{
	struct proto_grant g = { .memnode_id = mn, .holder_id = 1, .section = section,
				 .generation = 1, .rights = 3, .epoch = 1 };

	grant_to_hex(&g, hex_of[slot]);
	return hex_of[slot];
}

/* Section JSON (position 0 on memory node 100) with the given replicas text. */
static json_t *section_of(const char *replicas, const char *out)
{
	char text[4096];
	json_error_t e;

	snprintf(text, sizeof(text),
		 "{\"kind\": \"remote\", \"addr\": \"127.0.0.1:7000\", \"grant\": \"%s\"%s%s%s%s}",
		 grant_hex(0, 100, 5), replicas ? ", \"replicas\": " : "", replicas ? replicas : "",
		 out ? ", \"out\": " : "", out ? out : "");
	json_t *j = json_loads(text, 0, &e);

	if (!j)
		diag("bad test JSON: %s: %s", e.text, text);
	return j;
}

/*
 * Parse j as a remote section (position 0 as sections.c takes it), then
 * its replicas and out positions; 0 or -errno, err set.
 */
static int parse(json_t *j, struct pager_section *s, char *err, size_t errlen)
{
	int r;

	memset(s, 0, sizeof(*s));
	err[0] = '\0';
	s->kind = PAGER_SEC_REMOTE;
	r = grant_from_hex(json_string_value(json_object_get(j, "grant")), &s->grant);
	if (r == 0)
		r = vm_replicas_parse(j, s, err, errlen);
	if (r == 0)
		r = vm_replicas_out_parse(json_object_get(j, "out"), s, err, errlen);
	return r;
}

/* A replica entry on memory node mn. */
static const char *rep(unsigned slot, uint64_t mn)
{
	static char buf[8][GRANT_HEX_LEN + 96];

	snprintf(buf[slot], sizeof(buf[slot]), "{\"addr\": \"127.0.0.1:%" PRIu64 "\", \"grant\": \"%s\"}",
		 7000 + mn, grant_hex(slot, mn, 9));
	return buf[slot];
}

static void refused(const char *what, const char *replicas, const char *out, const char *want)
{
	struct pager_section s;
	char err[256];
	json_t *j = section_of(replicas, out);
	int r = j ? parse(j, &s, err, sizeof(err)) : 0;

	ok(j && r == -EINVAL && strstr(err, want), "%s: refused (%d, \"%s\")", what, r, err);
	json_decref(j);
}

int main(void)
{
	struct pager_section s, v;
	char err[256], list[4 * (GRANT_HEX_LEN + 96)];
	json_t *j, *back;

	/* ---- accepted ---- */
	snprintf(list, sizeof(list), "[%s, %s]", rep(1, 101), rep(2, 102));
	j = section_of(list, "[2]");
	is(parse(j, &s, err, sizeof(err)), 0, "two replicas and one out position: accepted (%s)", err);
	is(s.nrep, 3, "three positions");
	is(s.out, 1u << 2, "position 2 is out");
	is(s.more[0].grant.memnode_id, 101, "position 1 is on memory node 101");
	is_str(s.more[1].addr, "127.0.0.1:7102", "position 2's address");
	vm_replica_view(&s, 2, &v);
	ok(v.grant.memnode_id == 102 && strcmp(v.addr, "127.0.0.1:7102") == 0 && v.nrep == 0 &&
		   v.out == 0, "the view of position 2 is that replica alone");
	vm_replica_view(&s, 0, &v);
	ok(v.grant.memnode_id == 100 && v.nrep == 0, "the view of position 0 is the section");
	back = vm_replicas_json(&s, true);
	ok(json_array_size(back) == 2 &&
		   strcmp(json_string_value(json_object_get(json_array_get(back, 1), "grant")),
			  hex_of[2]) == 0, "the record's replicas give back the grants as they came");
	json_decref(back);
	back = vm_replicas_out_positions(&s);
	ok(json_array_size(back) == 1 && json_integer_value(json_array_get(back, 0)) == 2,
	   "the record's out positions give back [2]");
	json_decref(back);
	json_decref(j);

	j = section_of(NULL, NULL);
	is(parse(j, &s, err, sizeof(err)), 0, "no replicas: accepted");
	ok(s.nrep == 0 && s.out == 0, "an unreplicated section");
	ok(vm_replicas_json(&s, true) == NULL, "it has no replicas to record");
	json_decref(j);
	j = section_of("null", "[]");
	is(parse(j, &s, err, sizeof(err)), 0, "\"replicas\": null and \"out\": []: accepted");
	ok(s.nrep == 0, "null is none");
	json_decref(j);

	/* ---- refused: "replicas" ---- */
	snprintf(list, sizeof(list), "[%s, %s, %s]", rep(1, 101), rep(2, 102), rep(3, 103));
	refused("three replicas besides position 0", list, NULL, "at most 2");
	refused("replicas not an array", "{}", NULL, "must be an array");
	refused("replicas a string", "\"101\"", NULL, "must be an array");
	snprintf(list, sizeof(list), "[%s]", rep(1, 100));
	refused("a replica on position 0's memory node", list, NULL,
		"replicas[0] is on memory node 100, as position 0");
	snprintf(list, sizeof(list), "[%s, %s]", rep(1, 101), rep(2, 101));
	refused("two replicas on one memory node", list, NULL,
		"replicas[1] and replicas[0] are on one memory node");
	refused("a replica with a short grant", "[{\"addr\": \"127.0.0.1:1\", \"grant\": \"abcd\"}]",
		NULL, "\"replicas[0]\".grant must be 208 hex digits");
	refused("a replica without an address", "[{\"grant\": \"00\"}]", NULL,
		"\"replicas[0]\" needs \"addr\"");
	refused("a replica with an unknown field",
		"[{\"addr\": \"127.0.0.1:1\", \"grant\": \"00\", \"epoch\": 3}]", NULL,
		"unknown field \"epoch\" in \"replicas[0]\"");
	refused("a replica that is not an object", "[7]", NULL, "\"replicas[0]\" must be an object");
	refused("a replica of kind local", "[{\"kind\": \"local\", \"addr\": \"a:1\", \"grant\": \"0\"}]",
		NULL, "needs \"addr\"");

	/* ---- refused: "out" ---- */
	snprintf(list, sizeof(list), "[%s]", rep(1, 101));
	refused("out past the positions", list, "[2]", "\"out\"[0] is not a replica position");
	refused("out negative", list, "[-1]", "\"out\"[0] is not a replica position");
	refused("out repeated", list, "[1, 1]", "\"out\"[1] is not a replica position");
	refused("out not an integer", list, "[\"1\"]", "\"out\"[0] is not a replica position");
	refused("out not an array", list, "1", "\"out\" must be an array");
	refused("every position out", list, "[0, 1]", "\"out\" names every replica");
	refused("out on an unreplicated section", NULL, "[0]", "\"out\"[0] is not a replica position");

	/* A local section never has replicas (vm_replicas_parse on its own). */
	memset(&s, 0, sizeof(s));
	s.kind = PAGER_SEC_LOCAL;
	snprintf(list, sizeof(list), "{\"replicas\": [%s]}", rep(1, 101));
	j = json_loads(list, 0, NULL);
	ok(j && vm_replicas_parse(j, &s, err, sizeof(err)) == -EINVAL &&
		   strstr(err, "only a remote section has \"replicas\""),
	   "replicas on a local section: refused (%s)", err);
	json_decref(j);

	done_testing();
	return tap_exit();
}
