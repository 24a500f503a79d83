/* SPDX-License-Identifier: MIT */
/*
 * The shared-region commands that answer at once (regioncmd.c): REGIONS,
 * RFILL, RVERIFY, RPEEK. The background ones (RPOKE, RCOUNTER, RLITMUS,
 * RJOB) are in rjob.h and litmus.h.
 */
#ifndef DISAGG_GUEST_REGIONCMD_H
#define DISAGG_GUEST_REGIONCMD_H

#include "guestutil.h"

/* Terminated by an entry with a NULL name. */
extern const struct guest_cmd region_cmds[];

#endif
