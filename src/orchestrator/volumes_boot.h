/* SPDX-License-Identifier: MIT */
/*
 * A slot created from an image (volumes_boot.c; docs/api.md, "Slots",
 * "image"): its root volume, a clone of the image, and the volumes it is
 * created with, attached before its VM starts: the table struct
 * orch_boot_ops that slots.c calls.
 */
#ifndef DISAGG_ORCH_VOLUMES_BOOT_H
#define DISAGG_ORCH_VOLUMES_BOOT_H

#include "orch.h"

/* After volumes_start: set o->boot (struct orch_boot_ops) when o->volumes is. */
void volumes_boot_start(struct orch *o);

#endif /* DISAGG_ORCH_VOLUMES_BOOT_H */
