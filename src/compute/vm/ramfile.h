/* SPDX-License-Identifier: MIT */
/*
 * The files of a VM's run directory: the tmpfs RAM files QEMU maps
 * (ram-base, dimm-K, vmem, region-NAME), release regions' twins, strict
 * regions' recall answers, and the removal of the directory.
 */
#ifndef DISAGG_VM_RAMFILE_H
#define DISAGG_VM_RAMFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "vm_internal.h"

/* DIR/leaf, created (O_EXCL) with `size` bytes; its path in ret_path: 0 or -errno. */
int vm_make_file(struct vm *vm, const char *leaf, uint64_t size, char *ret_path, size_t len);
/*
 * The twins' file of a release region whose backing file is region_path
 * (REGION.twins beside it, pager/twin.h): opened, created if missing, and
 * emptied unless keep (an agent restart's adoption keeps the twins the
 * earlier agent left). An fd or -errno.
 */
int vm_twins_open(const char *region_path, bool keep);
/*
 * The same for a strict region's answers' file (REGION.answers,
 * pager/answers.h).
 */
int vm_answers_open(const char *region_path, bool keep);
/* Remove a region's twins' and answers' files (a detached region). */
void vm_region_sides_remove(const char *region_path);
/* Remove the files of directory `name` (at rootfd), then the directory: 0 or -errno. */
int vm_remove_tree(int rootfd, const char *name);
/* Remove the VM's run directory and what is left in it. */
void vm_remove_dir(struct vm *vm);

#endif /* DISAGG_VM_RAMFILE_H */
