/* SPDX-License-Identifier: MIT */
/*
 * The volume store's steps for making a new volume (volume.c), shared
 * with the ways of filling one (volume_import.c). Not for other users.
 *
 *     char tmp[DN_VOL_TMP_MAX];
 *     int fd = dn_vol_begin_new(vs, name, tmp, sizeof(tmp));   // unnamed file
 *     ... size and fill fd ...
 *     r = dn_vol_publish(vs, fd, tmp, name);                    // fsync, link, sync dir
 *     dn_vol_drop_unnamed(vs, tmp);                             // always
 */
#ifndef DISAGG_DEVNODE_VOLUME_INT_H
#define DISAGG_DEVNODE_VOLUME_INT_H

#include <stddef.h>

struct dn_volumes;

#define DN_VOL_TMP_MAX 80

/* An fd of a new unnamed file for volume `name`; -EEXIST if the name is taken. */
int dn_vol_begin_new(struct dn_volumes *vs, const char *name, char *tmp, size_t tmplen);
/* Sync fd and link it as `name`: -EEXIST if the name was taken meanwhile. */
int dn_vol_publish(struct dn_volumes *vs, int fd, const char *tmp, const char *name);
/* Remove the temporary name, if begin_new had to use one. */
void dn_vol_drop_unnamed(struct dn_volumes *vs, const char *tmp);

#endif /* DISAGG_DEVNODE_VOLUME_INT_H */
