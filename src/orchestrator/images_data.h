/* SPDX-License-Identifier: MIT */
/*
 * Where the bytes of an image go (images_data.c): the disk into its base
 * volume through the fabric, the kernel and initramfs into files of the
 * orchestrator's image directory.
 */
#ifndef DISAGG_ORCH_IMAGES_DATA_H
#define DISAGG_ORCH_IMAGES_DATA_H

#include "orch.h"

#define IMAGES_CHUNK_MAX (4u << 20)          /* bytes of one upload: HTTP_MAX_BODY */
#define IMAGES_FILE_MAX (256ull << 20)       /* a kernel or an initramfs */
#define IMAGES_CMDLINE_MAX 255

/* Which part of an image an upload writes. */
enum images_part {
	IMAGES_DISK,
	IMAGES_KERNEL,
	IMAGES_INITRD,
};

/*
 * Write len bytes at offset into the image's base volume v, on device node
 * dn (offset and len: whole sectors), through a handle opened with a grant
 * for ourselves; len 0: a flush of everything written before. 0 or -errno
 * (the device node's: volumes_node_error says what it means).
 */
int images_disk_write(struct orch *o, const struct volume_rec *v, const struct node_rec *dn,
		      uint64_t offset, const void *data, size_t len);
/* o->images_dir/NAME.kernel or .initrd, malloc'd (NULL: no memory, or no directory). */
char *images_file_path(struct orch *o, const char *name, enum images_part part);
/* Write len bytes at offset into the image's file `part` (made if missing). 0 or -errno. */
int images_file_write(struct orch *o, const char *name, enum images_part part, uint64_t offset,
		      const void *data, size_t len);
/* The size of the image's file `part` (0 when there is none), or -errno. */
int64_t images_file_size(struct orch *o, const char *name, enum images_part part);
/* Remove the image's kernel and initramfs (missing ones are fine). */
void images_files_remove(struct orch *o, const char *name);

#endif /* DISAGG_ORCH_IMAGES_DATA_H */
