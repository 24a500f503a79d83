/* SPDX-License-Identifier: MIT */
/*
 * RLITMUS (litmus.c): the message-passing and store-buffering litmus tests
 * between two guests sharing a region, as a background job (rjob.h).
 */
#ifndef DISAGG_GUEST_LITMUS_H
#define DISAGG_GUEST_LITMUS_H

#include "guestutil.h"

/* Terminated by an entry with a NULL name. */
extern const struct guest_cmd litmus_cmds[];

#endif
