/* SPDX-License-Identifier: MIT */
/* GET /v1/slots/NAME/pager: a slot's pager counters (slotpager.c). */
#ifndef DISAGG_ORCH_SLOTPAGER_H
#define DISAGG_ORCH_SLOTPAGER_H

#include "orch.h"

void slots_pager(struct orch *o, const char *name, struct http_resp *resp);

#endif /* DISAGG_ORCH_SLOTPAGER_H */
