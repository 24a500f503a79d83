/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the daemons' JSON control APIs: strict request bodies
 * (a JSON object, duplicate and unknown members refused), JSON responses,
 * and sizes written as integers or strings with binary suffixes
 * ("512M", "1G", "128KiB").
 */
#ifndef DISAGG_JSONHTTP_H
#define DISAGG_JSONHTTP_H

#include <jansson.h>
#include <stdint.h>

#include "http.h"

/* Parse the body as a JSON object; on failure answer 400 and return NULL. */
json_t *http_json_body(const struct http_req *req, struct http_resp *resp);
/* Answer with j (reference stolen); 500 if it cannot be serialised. */
void http_resp_json(struct http_resp *resp, int status, json_t *j);
/* json_check_keys, answering 400 unknown_field for a member not allowed: 0 or -EINVAL. */
int http_check_keys(json_t *obj, const char *const *allowed, struct http_resp *resp);
/* http_json_body and http_check_keys: the object, or NULL once answered (400). */
json_t *http_json_args(const struct http_req *req, struct http_resp *resp,
		       const char *const *allowed);
/* -EINVAL with *ret_bad naming the first member of obj not in `allowed` (NULL-terminated). */
/* obj's optional integer key, in [min, max], into *val; false: answered 400. */
bool http_json_int(json_t *obj, const char *key, int64_t min, int64_t max, int64_t *val,
		   struct http_resp *resp);
int json_check_keys(json_t *obj, const char *const *allowed, const char **ret_bad);

/* Decimal digits only (no sign, no blanks) -> *ret. -EINVAL or -ERANGE. */
int u64_parse(const char *s, uint64_t *ret);
/* "4096", "512M", "1G", "2GiB" -> bytes. -EINVAL (syntax) or -ERANGE (overflow). */
int size_parse(const char *s, uint64_t *ret);
/* A JSON integer (bytes, >= 0) or a size string. */
int json_size(json_t *v, uint64_t *ret);

#endif /* DISAGG_JSONHTTP_H */
