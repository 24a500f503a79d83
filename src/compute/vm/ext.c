// SPDX-License-Identifier: MIT
/*
 * The registry of feature hooks (ext.h). Written at startup only, read
 * by every VM afterwards without a lock.
 */
#include "ext.h"

#include <stdlib.h>

static const struct vm_ext_ops *exts[VM_EXT_MAX];
static unsigned nexts;

int vm_ext_register(const struct vm_ext_ops *ops)
{
	for (unsigned i = 0; i < nexts; i++)
		if (exts[i] == ops)
			return -EEXIST;
	if (nexts == VM_EXT_MAX)
		return -ENOSPC;
	exts[nexts++] = ops;
	return 0;
}

void vm_ext_strv_free(char **v[VM_EXT_MAX], unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		for (char **s = v[i]; s && *s; s++)
			free(*s);
		free(v[i]);
		v[i] = NULL;
	}
}

int vm_ext_qemu_args(struct vm *vm, char **ret[VM_EXT_MAX], unsigned *ret_n)
{
	unsigned n = 0;

	for (unsigned i = 0; i < nexts; i++) {
		char **v = NULL;
		int r;

		if (!exts[i]->qemu_args)
			continue;
		r = exts[i]->qemu_args(vm, &v);
		if (r < 0) {
			vm_ext_strv_free(ret, n);
			return r;
		}
		if (v)
			ret[n++] = v;
	}
	*ret_n = n;
	return 0;
}

int vm_ext_qmp_ready(struct vm *vm, char *err, size_t errlen)
{
	for (unsigned i = 0; i < nexts; i++) {
		int r = exts[i]->qmp_ready ? exts[i]->qmp_ready(vm, err, errlen) : 0;

		if (r < 0)
			return r;
	}
	return 0;
}

void vm_ext_guest_attached(struct vm *vm)
{
	for (unsigned i = 0; i < nexts; i++)
		if (exts[i]->guest_attached)
			exts[i]->guest_attached(vm);
}

void vm_ext_status(struct vm *vm, json_t *j)
{
	for (unsigned i = 0; i < nexts; i++)
		if (exts[i]->status)
			exts[i]->status(vm, j);
}

int vm_ext_adopt(struct vm *vm, json_t *rec, char *err, size_t errlen)
{
	for (unsigned i = 0; i < nexts; i++) {
		int r = exts[i]->adopt ? exts[i]->adopt(vm, rec, err, errlen) : 0;

		if (r < 0)
			return r;
	}
	return 0;
}

void vm_ext_record_set(struct vm *vm, const char *key, json_t *v)
{
	if (!vm->ext_record && v)
		vm->ext_record = json_object();
	if (v && vm->ext_record)
		(void)json_object_set_new(vm->ext_record, key, v);
	else if (v)
		json_decref(v);
	else
		(void)json_object_del(vm->ext_record, key);
}

void vm_ext_record_put(struct vm *vm, json_t *rec)
{
	const char *k;
	json_t *v;

	json_object_foreach(vm->ext_record, k, v)
		json_object_set_new(rec, k, json_deep_copy(v));
}

void vm_ext_free(struct vm *vm)
{
	/* The last registered goes first: a feature may use what an earlier one set up. */
	for (unsigned i = nexts; i-- > 0;)
		if (exts[i]->free)
			exts[i]->free(vm);
}
