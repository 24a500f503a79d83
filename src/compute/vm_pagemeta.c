// SPDX-License-Identifier: MIT
/*
 * The page-metadata table of a sealed VM over HTTP (vm_pagemeta.h).
 *
 *   GET  /v1/vms/NAME/page-meta?from=K
 *        the source's snapshot (taken after the final flush of a compute
 *        migration), records K.. (at most VM_META_CHUNK of them):
 *        {"total": N, "from": K, "next": K', "records": BASE64}; 404
 *        "no_snapshot" if there is none.
 *   POST /v1/vms/NAME/page-meta {"records": BASE64, "done": BOOL}
 *        a destination takes records; with done, its faults on remote
 *        pages (parked until then) are served. 409 once it is complete.
 * A record is the slot page index (32 bits LE) and its 24-byte entry
 * (vm/pagemeta.h). The table names versions and tags, not the key: the
 * key reaches each agent with the VM's create request only.
 */
#include "vm_pagemeta.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "http.h"
#include "jsonhttp.h"
#include "hex.h"
#include "log.h"
#include "macro.h"
#include "pagemeta.h"
#include "state.h"
#include "vm_internal.h"

#define VM_META_CHUNK 65536u   /* records per part: 1.8 MB, 2.4 MB in base64 (< HTTP_MAX_BODY) */

static void http_get(struct vm *vm, const struct http_req *req, struct http_resp *resp)
{
	const char *f = http_req_query(req, "from");
	_cleanup_free_ uint8_t *rec = NULL;
	_cleanup_free_ char *b64 = NULL;
	uint64_t from = 0;
	size_t len = 0, total = 0;
	int r;

	if (f && u64_parse(f, &from) < 0) {
		http_resp_error(resp, 400, "bad_request", "\"from\" must be a record number");
		return;
	}
	r = vm_pagemeta_read(vm, (size_t)from, VM_META_CHUNK, &rec, &len, &total);
	if (r == -ENOENT) {
		http_resp_error(resp, 404, "no_snapshot",
				"VM %s has no page-metadata snapshot (not sealed, or not migrated)",
				vm_name(vm));
		return;
	}
	if (r < 0) {
		http_resp_error(resp, r == -ERANGE ? 400 : 500, r == -ERANGE ? "bad_request" : "internal",
				"page metadata: %s", strerror(-r));
		return;
	}
	b64 = malloc(4 * ((len + 2) / 3) + 1);
	if (!b64) {
		http_resp_error(resp, 500, "internal", "out of memory");
		return;
	}
	EVP_EncodeBlock((unsigned char *)b64, rec, (int)len);
	http_resp_json(resp, 200, json_pack("{s:I, s:I, s:I, s:s}", "total", (json_int_t)total,
					    "from", (json_int_t)from, "next",
					    (json_int_t)(from + len / VM_META_RECORD), "records",
					    b64));
}

/* Base64 (no line breaks) to bytes: -EINVAL if malformed. */
static int unb64(const char *s, uint8_t **ret, size_t *ret_len)
{
	size_t n = strlen(s), pad = 0;
	uint8_t *out;
	int got;

	if (n % 4)
		return -EINVAL;
	if (n && s[n - 1] == '=')
		pad++;
	if (n > 1 && s[n - 2] == '=')
		pad++;
	out = malloc(n / 4 * 3 + 1);
	if (!out)
		return -ENOMEM;
	got = n ? EVP_DecodeBlock(out, (const unsigned char *)s, (int)n) : 0;
	if (got < 0 || (size_t)got < pad) {
		free(out);
		return -EINVAL;
	}
	*ret = out;
	*ret_len = (size_t)got - pad;
	return 0;
}

static void http_post(struct vm *vm, const struct http_req *req, struct http_resp *resp)
{
	static const char *const keys[] = { "records", "done", NULL };
	_cleanup_free_ uint8_t *rec = NULL;
	const char *b64;
	json_t *j, *done;
	size_t len = 0;
	int r;

	j = http_json_args(req, resp, keys);
	if (!j)
		return;
	b64 = json_string_value(json_object_get(j, "records"));
	done = json_object_get(j, "done");
	if (!b64 || (done && !json_is_boolean(done))) {
		atomic_fetch_add(&vm->meta_refused, 1);
		http_resp_error(resp, 400, "bad_request",
				"{\"records\": BASE64, \"done\": true|false} expected");
		goto out;
	}
	r = unb64(b64, &rec, &len);
	if (r == 0 && len % VM_META_RECORD)
		r = -EINVAL;
	if (r < 0) {
		atomic_fetch_add(&vm->meta_refused, 1);
		http_resp_error(resp, 400, "bad_request",
				"\"records\" must be base64 of %u-byte records", VM_META_RECORD);
		goto out;
	}
	r = vm_pagemeta_put(vm, rec, len, json_is_true(done));
	if (r < 0)
		atomic_fetch_add(&vm->meta_refused, 1);
	switch (r) {
	case 0:
		http_resp_json(resp, 200, json_pack("{s:b}", "pending", !json_is_true(done)));
		break;
	case -EALREADY:
		http_resp_error(resp, 409, "conflict", "VM %s has its page metadata already",
				vm_name(vm));
		break;
	case -ENOTSUP:
		http_resp_error(resp, 409, "conflict", "VM %s is not sealed", vm_name(vm));
		break;
	case -ERANGE:
		http_resp_error(resp, 400, "bad_request", "a record is outside the VM's memory");
		break;
	default:
		http_resp_error(resp, r == -ESRCH ? 409 : 500, r == -ESRCH ? "conflict" : "internal",
				"page metadata: %s", strerror(-r));
	}
out:
	json_decref(j);
}

void vm_pagemeta_http(struct vm *vm, const struct http_req *req, struct http_resp *resp)
{
	if (!strcmp(req->method, "GET"))
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
