// SPDX-License-Identifier: MIT
/*
 * The JSON of one section of a slot (secjson.h).
 */
#include "secjson.h"

json_t *slots_section_json(const struct section_rec *x)
{
	if (!x->remote)
		return json_pack("{s:I, s:s}", "index", (json_int_t)x->idx, "kind", "local");
	return json_pack("{s:I, s:s, s:I, s:I, s:I, s:I}", "index", (json_int_t)x->idx, "kind",
			 "remote", "memnode", (json_int_t)x->memnode, "section",
			 (json_int_t)x->section, "generation", (json_int_t)x->generation, "epoch",
			 (json_int_t)x->epoch);
}
