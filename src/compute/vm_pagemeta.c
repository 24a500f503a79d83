// SPDX-License-Identifier: MIT
/*
 * The page-metadata table of a sealed VM over HTTP (vm_pagemeta.h). The
 * records travel as they are (application/octet-stream): a record is the
 * slot page index (32 bits LE) and its 24-byte entry (vm/pagemeta.h).
 *
 *   POST /v1/vms/NAME/page-meta/precopy
 *        a source, guest running: copy the live table (the base):
 *        {"snapshot": GEN, "records": N}.
 *   GET  /v1/vms/NAME/page-meta?of=KIND&from=K&max=M[&base=GEN]
 *        records K.. (at most M, at most VM_META_PART_MAX) of a snapshot:
 *        "precopy" (the base), "final" (default: the table after the final
 *        flush of a compute migration) or "delta" (the final table's
 *        records that differ from pre-copy GEN). X-Page-Meta-Total: the
 *        snapshot's records. 404 "no_snapshot" if there is none, 409
 *        "stale_snapshot" if the delta is against another pre-copy.
 *   POST /v1/vms/NAME/page-meta[?done=1] (application/octet-stream)
 *        a destination takes records (all or none); with done, its faults
 *        on remote pages (parked until then) are served: {"pending": BOOL,
 *        "records": N}. 409 once it is complete.
 * Every refusal is counted (disagg_compute_page_meta_refused_total). The
 * table names versions and tags, not the key: the key reaches each agent
 * with the VM's create request only.
 */
#include "vm_pagemeta.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"
#include "jsonhttp.h"
#include "hex.h"
#include "log.h"
#include "macro.h"
#include "pagemeta.h"
#include "state.h"
#include "vm_internal.h"

#define OCTETS "application/octet-stream"

/* A refusal: counted, then answered. */
#define refuse(vm, resp, status, code, ...)                                   \
	do {                                                                  \
		atomic_fetch_add(&(vm)->meta_refused, 1);                     \
		http_resp_error((resp), (status), (code), __VA_ARGS__);      \
	} while (0)

static int kind_parse(const char *s, enum vm_meta_kind *ret)
{
	static const char *const names[VM_META_NKINDS] = {
		[VM_META_FINAL] = "final", [VM_META_PRECOPY] = "precopy", [VM_META_DELTA] = "delta",
	};

	for (unsigned k = 0; k < VM_META_NKINDS; k++)
		if (!strcmp(s, names[k])) {
			*ret = (enum vm_meta_kind)k;
			return 0;
		}
	return -EINVAL;
}

static void http_get(struct vm *vm, const struct http_req *req, struct http_resp *resp)
{
	const char *f = http_req_query(req, "from"), *m = http_req_query(req, "max");
	const char *of = http_req_query(req, "of"), *g = http_req_query(req, "base");
	enum vm_meta_kind kind = VM_META_FINAL;
	uint8_t *rec = NULL;
	uint64_t from = 0, max = VM_META_PART_MAX, gen = 0;
	size_t len = 0, total = 0;
	int r;

	if ((f && u64_parse(f, &from) < 0) || (m && (u64_parse(m, &max) < 0 || !max)) ||
	    (of && kind_parse(of, &kind) < 0) || (g && u64_parse(g, &gen) < 0) ||
	    (kind == VM_META_DELTA && !g)) {
		refuse(vm, resp, 400, "bad_request",
		       "?of=final|precopy|delta (delta with base=GEN), from=RECORD, max=N (N > 0) "
		       "expected");
		return;
	}
	r = vm_pagemeta_read(vm, kind, gen, (size_t)from, (size_t)MIN(max, VM_META_PART_MAX),
			     &rec, &len, &total);
	switch (r) {
	case 0:
		break;
	case -ENOENT:
		refuse(vm, resp, 404, "no_snapshot",
		       "VM %s has no %s page-metadata snapshot (not sealed, or not migrating)",
		       vm_name(vm), of ? of : "final");
		return;
	case -ESTALE:
		refuse(vm, resp, 409, "stale_snapshot",
		       "VM %s's page-metadata delta is not against pre-copy %llu", vm_name(vm),
		       (unsigned long long)gen);
		return;
	case -ERANGE:
		refuse(vm, resp, 400, "bad_request", "\"from\" is past the snapshot's end");
		return;
	default:
		http_resp_error(resp, 500, "internal", "page metadata: %s", strerror(-r));
		return;
	}
	http_resp_bytes(resp, 200, OCTETS, rec, len);
	resp->hdr_name = "X-Page-Meta-Total";
	if (asprintf(&resp->hdr_value, "%zu", total) < 0)
		resp->hdr_value = NULL;
}

static bool is_octets(const struct http_req *req)
{
	const char *ct = http_req_header(req, "Content-Type");
	size_t n = strlen(OCTETS);

	return ct && !strncasecmp(ct, OCTETS, n) && (!ct[n] || ct[n] == ';' || ct[n] == ' ');
}

static void http_post(struct vm *vm, const struct http_req *req, struct http_resp *resp)
{
	const char *d = http_req_query(req, "done");
	uint64_t bad = 0;
	bool done;
	int r;

	if (d && strcmp(d, "0") && strcmp(d, "1") && strcmp(d, "true") && strcmp(d, "false")) {
		refuse(vm, resp, 400, "bad_request", "?done=1|0 expected");
		return;
	}
	done = d && (!strcmp(d, "1") || !strcmp(d, "true"));
	if (!is_octets(req)) {
		refuse(vm, resp, 415, "unsupported_media_type",
		       "page metadata is posted as " OCTETS " (records of %u bytes)",
		       VM_META_RECORD);
		return;
	}
	if (req->body_len % VM_META_RECORD) {
		refuse(vm, resp, 400, "bad_request",
		       "%zu bytes are not whole records of %u bytes", req->body_len, VM_META_RECORD);
		return;
	}
	if (req->body_len / VM_META_RECORD > VM_META_PART_MAX) {
		refuse(vm, resp, 413, "too_large", "%zu records in one part, at most %u",
		       req->body_len / VM_META_RECORD, VM_META_PART_MAX);
		return;
	}
	r = vm_pagemeta_put(vm, (const uint8_t *)req->body, req->body_len, done, &bad);
	switch (r) {
	case 0:
		http_resp_json(resp, 200, json_pack("{s:b, s:I}", "pending", !done, "records",
						    (json_int_t)(req->body_len / VM_META_RECORD)));
		break;
	case -EALREADY:
		refuse(vm, resp, 409, "conflict", "VM %s has its page metadata already", vm_name(vm));
		break;
	case -ENOTSUP:
		refuse(vm, resp, 409, "conflict", "VM %s is not sealed", vm_name(vm));
		break;
	case -ERANGE:
		refuse(vm, resp, 400, "bad_request",
		       "a record names page %llu, outside the VM's memory; no record was taken",
		       (unsigned long long)bad);
		break;
	case -EBADMSG:
		refuse(vm, resp, 400, "bad_request",
		       "the record of page %llu has version 0; no record was taken",
		       (unsigned long long)bad);
		break;
	default:
		refuse(vm, resp, r == -ESRCH ? 409 : 500, r == -ESRCH ? "conflict" : "internal",
		       "page metadata: %s", strerror(-r));
	}
}

static void http_precopy(struct vm *vm, struct http_resp *resp)
{
	uint64_t gen = 0;
	size_t n = 0;
	int r;

	if (vm_get_state(vm) != VM_RUNNING) {
		refuse(vm, resp, 409, "conflict", "VM %s is %s, not running", vm_name(vm),
		       vm_state_name(vm_get_state(vm)));
		return;
	}
	r = vm_pagemeta_precopy(vm, &gen, &n);
	if (r == -ENOTSUP) {
		refuse(vm, resp, 409, "conflict", "VM %s is not sealed", vm_name(vm));
		return;
	}
	if (r < 0) {
		http_resp_error(resp, 500, "internal", "page metadata: %s", strerror(-r));
		return;
	}
	http_resp_json(resp, 200, json_pack("{s:I, s:I}", "snapshot", (json_int_t)gen, "records",
					    (json_int_t)n));
}

void vm_pagemeta_http(struct vm *vm, const char *sub, const struct http_req *req,
		      struct http_resp *resp)
{
	if (!strcmp(sub, "/precopy") && !strcmp(req->method, "POST"))
		http_precopy(vm, resp);
	else if (*sub)
		http_resp_error(resp, 404, "not_found", "no such path");
	else if (!strcmp(req->method, "GET"))
		http_get(vm, req, resp);
	else if (!strcmp(req->method, "POST"))
		http_post(vm, req, resp);
	else
		http_resp_error(resp, 405, "method_not_allowed", "use GET or POST");
}

int vm_pagemeta_key(json_t *v, struct vm_spec *spec, struct http_resp *resp)
{
	const char *hex = json_string_value(v);
	size_t n = sizeof(spec->key);

	if (hex && strlen(hex) == 2 * n && hex_decode(hex, spec->key, n) == 0) {
		spec->encrypt = true;
		return 0;
	}
	explicit_bzero(spec->key, n);
	http_resp_error(resp, 400, "bad_request",
			"\"encryption_key\" must be %zu hex digits (the slot's page key)", 2 * n);
	return -EINVAL;
}
