/* SPDX-License-Identifier: MIT */
/* Importing an image into a new volume of the store (volume_import.c; volume.h). */
#ifndef DISAGG_DEVNODE_VOLUME_IMPORT_H
#define DISAGG_DEVNODE_VOLUME_IMPORT_H

#include <stdint.h>

struct dn_volumes;

/*
 * A new volume from the image file at path (volume_import.c): `qemu-img
 * info` reads its format and size (format NULL: qemu-img probes it; "raw"
 * or "qcow2": as given, the safe choice for an image from elsewhere), an
 * image with a backing file is refused (-EPERM: it would read other files
 * of this host), and `qemu-img convert` writes it raw into the new volume,
 * holes kept. The size is rounded up to a sector. -ENOENT or -EACCES
 * (path), -EEXIST, -EINVAL (name, format, size), -EIO (qemu-img failed;
 * its message went to stderr). *ret_size may be NULL.
 */
int dn_volume_import(struct dn_volumes *vs, const char *name, const char *path,
		     const char *format, uint64_t *ret_size);

#endif /* DISAGG_DEVNODE_VOLUME_IMPORT_H */
