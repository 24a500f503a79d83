/* SPDX-License-Identifier: MIT */
/*
 * Block volumes, as main.c starts them (volumes_api.c): the table of
 * struct orch_volumes that the rest of the orchestrator calls through.
 */
#ifndef DISAGG_ORCH_VOLUMES_API_H
#define DISAGG_ORCH_VOLUMES_API_H

#include "orch.h"

/*
 * Settle the volumes a restart interrupted (asking their device nodes),
 * then set o->volumes. Needs a store with a volume catalog (o->store->vol).
 */
void volumes_start(struct orch *o);

#endif /* DISAGG_ORCH_VOLUMES_API_H */
