/* SPDX-License-Identifier: MIT */
/*
 * A slot's page key (guest memory at rest, docs/security.md): 32 random
 * bytes as 64 hex digits, made at slot create unless the request says
 * "encrypt": false.
 */
#ifndef DISAGG_ORCH_PAGEKEY_H
#define DISAGG_ORCH_PAGEKEY_H

#include <jansson.h>

#include "http.h"

#define ORCH_PAGE_KEY_HEX 65

/*
 * From a slot create body: a new key into ret (or "" with "encrypt": false).
 * 0, or -errno with resp set (400 for a bad "encrypt", 500 without random bytes).
 */
int orch_page_key(json_t *body, char ret[ORCH_PAGE_KEY_HEX], struct http_resp *resp);

#endif /* DISAGG_ORCH_PAGEKEY_H */
