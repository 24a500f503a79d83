/* SPDX-License-Identifier: MIT */
/*
 * Images (docs/api.md, "Images"): a disk image imported into a base volume
 * of the same name on a device node, with the kernel and initramfs that
 * boot it, if it has them.
 *
 *   images.c        the /v1/images routes: import (create, upload, commit),
 *                   list, show, the kernel and initramfs, delete; and what
 *                   the volume routes ask of images
 *   images_data.c   where an upload goes: the base volume through the
 *                   fabric (BLK_WRITE under a grant the orchestrator mints
 *                   for itself), the kernel and initramfs into files of the
 *                   orchestrator's image directory
 *
 * An image is `importing` from its POST until its commit, `ready` after,
 * `deleting` while its base volume goes. Its base volume is an ordinary
 * volume marked `image`: clones of it (`"from"`) are the volumes that
 * guests boot from; the volume routes (volumes_api.c) refuse to resize or
 * delete it, and to clone it before the image is ready.
 */
#ifndef DISAGG_ORCH_IMAGES_H
#define DISAGG_ORCH_IMAGES_H

#include "orch.h"

/*
 * Serve the /v1/images paths (o->images). Needs a store with a volume
 * catalog (o->store->vol).
 */
void images_start(struct orch *o);

#endif /* DISAGG_ORCH_IMAGES_H */
