/* SPDX-License-Identifier: MIT */
/*
 * Small secret files (keys, tokens, credentials): read whole, and only if
 * they are regular files that no group or other may access.
 */
#ifndef DISAGG_PRIVFILE_H
#define DISAGG_PRIVFILE_H

#include <stddef.h>

/*
 * Read path into *ret (NUL-terminated, malloc'd; *ret_len bytes, may be
 * NULL). -EINVAL: not a regular file; -EPERM: group or others may access
 * it; -EFBIG: larger than max; -errno otherwise.
 */
int privfile_read(const char *path, size_t max, char **ret, size_t *ret_len);

#endif /* DISAGG_PRIVFILE_H */
