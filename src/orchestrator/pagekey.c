// SPDX-License-Identifier: MIT
/*
 * A slot's page key (pagekey.h).
 */
#include "pagekey.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "hex.h"
#include "jsonhttp.h"

int orch_page_key(json_t *body, char ret[ORCH_PAGE_KEY_HEX], struct http_resp *resp)
{
	json_t *v = json_object_get(body, "encrypt");
	uint8_t k[32];

	ret[0] = '\0';
	if (v && !json_is_boolean(v)) {
		http_resp_error(resp, 400, "bad_request", "\"encrypt\" must be true or false");
		return -EINVAL;
	}
	if (v && !json_is_true(v))
		return 0;
	if (RAND_bytes(k, sizeof(k)) != 1) {
		http_resp_error(resp, 500, "internal", "no random bytes for the slot's page key");
		return -EIO;
	}
	hex_encode(k, sizeof(k), ret);
	OPENSSL_cleanse(k, sizeof(k));
	return 0;
}
