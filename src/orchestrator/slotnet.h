/* SPDX-License-Identifier: MIT */
/*
 * A slot's network card (docs/api.md, "Slots"): what the create request
 * asked ("net": {"mode": "user"|"bridge"|"none", "bridge": BR}), sent to
 * the compute agent at create and at every compute migration, and what
 * the agent answered (the MAC and the address of the ssh forward), kept
 * in the slot's record (slot_rec.net, JSON) and shown with the slot.
 */
#ifndef DISAGG_ORCH_SLOTNET_H
#define DISAGG_ORCH_SLOTNET_H

#include <jansson.h>

#include "http.h"
#include "store.h"

/* The create request's "net" (absent: user) into s->net: 0, or -EINVAL answered (400). */
int slotnet_parse(json_t *body, struct slot_rec *s, struct http_resp *resp);
/* The agent's "net" for this slot's VM: its mode (and bridge); none for a slot from before cards. */
json_t *slotnet_request(const struct slot_rec *s);
/*
 * What compute node c answered for the VM (its status's "net") into net
 * (a slot_rec.net buffer): the requested mode with the agent's MAC and ssh
 * address. A forward on 0.0.0.0 is shown on the compute node's host.
 * Unchanged when the answer has no card.
 */
void slotnet_record(const struct slot_rec *s, json_t *answer_net, const struct node_rec *c,
		    char *net, size_t len);
/* The slot's "net" as the API shows it ({"mode": "none"} for a slot from before cards). */
json_t *slotnet_json(const struct slot_rec *s);

#endif
