/* SPDX-License-Identifier: MIT */
/*
 * The JSON of one section of a slot, as GET /v1/slots/NAME shows it
 * (docs/api.md): where it lives, never its grant.
 */
#ifndef DISAGG_ORCH_SECJSON_H
#define DISAGG_ORCH_SECJSON_H

#include <jansson.h>

#include "store.h"

json_t *slots_section_json(const struct section_rec *x);

#endif /* DISAGG_ORCH_SECJSON_H */
