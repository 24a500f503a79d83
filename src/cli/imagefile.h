/* SPDX-License-Identifier: MIT */
/*
 * The local side of `disagg image import` (imagefile.c): a disk image file
 * or a scripts/build-image.sh output directory, as raw bytes to upload.
 */
#ifndef DISAGG_CLI_IMAGEFILE_H
#define DISAGG_CLI_IMAGEFILE_H

#include <stdint.h>

struct image_src {
	char format[16];        /* what was given: raw, qcow2 */
	uint64_t size;          /* the disk's bytes (virtual size) */
	char *disk;             /* a raw file to upload: the image, or tmp */
	char *tmp;              /* a converted qcow2 image, removed by image_src_close */
	char *kernel, *initrd;  /* a build-image.sh directory's; NULL: none */
	char cmdline[256];
};

/*
 * Probe path (a file: raw or qcow2; a directory: build-image.sh's output)
 * and make its disk a raw file. 0, or -errno with the error printed.
 */
int image_src_open(const char *path, struct image_src *src);
void image_src_close(struct image_src *src);

#endif /* DISAGG_CLI_IMAGEFILE_H */
