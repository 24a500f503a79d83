// SPDX-License-Identifier: MIT
/*
 * A VM's page-metadata table and key (pagemeta.h).
 */
#include "pagemeta.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "vm_internal.h"

/* Write the key (new VM) or read it back (adopted VM): RUN_DIR/NAME/page.key, 0600. */
static int key_file(struct vm *vm, bool create, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct stat sb;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/page.key", vm->dir);
	if (create) {
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0 || fchmod(fd, 0600) < 0 ||
		    write(fd, vm->spec.key, sizeof(vm->spec.key)) != (ssize_t)sizeof(vm->spec.key)) {
			int e = errno ? -errno : -EIO;

			if (fd >= 0)
				close(fd);
			snprintf(err, errlen, "cannot write %s: %s", path, strerror(-e));
			return e;
		}
		close(fd);
		return 0;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		int e = -errno;

		snprintf(err, errlen, "the VM's pages are sealed but its key %s is gone: %s",
			 path, strerror(-e));
		return e;
	}
	if (fstat(fd, &sb) < 0 || (sb.st_mode & 077) || sb.st_size != (off_t)sizeof(vm->spec.key)) {
		close(fd);
		snprintf(err, errlen, "%s must be %zu bytes, mode 0600", path, sizeof(vm->spec.key));
		return -EINVAL;
	}
	n = read(fd, vm->spec.key, sizeof(vm->spec.key));
	close(fd);
	if (n != (ssize_t)sizeof(vm->spec.key)) {
		snprintf(err, errlen, "cannot read %s", path);
		return -EIO;
	}
	return 0;
}

static void pending_path(struct vm *vm, char *buf, size_t len)
{
	snprintf(buf, len, "%s/page-meta.pending", vm->dir);
}

int vm_pagemeta_open(struct vm *vm, bool *ret_pending, char *err, size_t errlen)
{
	uint64_t npages = (uint64_t)(vm->spec.nbase + vm->spec.max_hot) *
			  (vm->env.section_size / PAGER_PAGE_SIZE);
	char path[PATH_MAX];
	int r;

	r = key_file(vm, !vm->adopted, err, errlen);
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "%s/page-meta", vm->dir);
	if (vm->adopted && access(path, F_OK) < 0) {
		r = -errno;
		snprintf(err, errlen, "the VM's pages are sealed but its table %s is gone: %s",
			 path, strerror(-r));
		return r;
	}
	if (!vm->adopted)
		(void)unlink(path);   /* a leftover of an earlier VM of this name */
	r = pager_crypt_new(vm->spec.key, path, npages, &vm->crypt);
	if (r < 0) {
		snprintf(err, errlen, "page-metadata table %s: %s", path,
			 r == -EKEYREJECTED ? "made with another key" : strerror(-r));
		return r;
	}
	pending_path(vm, path, sizeof(path));
	if (!vm->adopted && vm->spec.incoming) {
		int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

		if (fd < 0) {
			r = -errno;
			snprintf(err, errlen, "cannot create %s: %s", path, strerror(-r));
			return r;
		}
		close(fd);
	}
	*ret_pending = access(path, F_OK) == 0;
	return 0;
}

int vm_pagemeta_snapshot(struct vm *vm)
{
	const struct pager_meta_entry *e;
	uint8_t *snap;
	size_t len, n = 0, k = 0;

	pthread_mutex_lock(&vm->lock);
	if (!vm->crypt) {
		pthread_mutex_unlock(&vm->lock);
		return 0;
	}
	e = pager_crypt_table(vm->crypt, &len);
	len /= PAGER_META_ENTRY;
	for (size_t i = 0; i < len; i++)
		n += e[i].ver != 0;
	snap = malloc(MAX(n, 1) * VM_META_RECORD);
	if (!snap) {
		pthread_mutex_unlock(&vm->lock);
		return -ENOMEM;
	}
	for (size_t i = 0; i < len && k < n; i++) {
		uint32_t idx = (uint32_t)i;

		if (!e[i].ver)
			continue;
		memcpy(snap + k * VM_META_RECORD, &idx, 4);
		memcpy(snap + k * VM_META_RECORD + 4, &e[i], PAGER_META_ENTRY);
		k++;
	}
	free(vm->meta_snap);
	vm->meta_snap = snap;
	vm->meta_snap_len = k * VM_META_RECORD;
	pthread_mutex_unlock(&vm->lock);
	log_debug("vm %s: page-metadata snapshot: %zu pages", vm->spec.name, k);
	return 0;
}

void vm_pagemeta_drop(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	free(vm->meta_snap);
	vm->meta_snap = NULL;
	vm->meta_snap_len = 0;
	pthread_mutex_unlock(&vm->lock);
}

int vm_pagemeta_read(struct vm *vm, size_t from, size_t max, uint8_t **ret, size_t *ret_len,
		     size_t *ret_total)
{
	size_t total, n;
	uint8_t *out;

	pthread_mutex_lock(&vm->lock);
	if (!vm->meta_snap) {
		pthread_mutex_unlock(&vm->lock);
		return -ENOENT;
	}
	total = vm->meta_snap_len / VM_META_RECORD;
	if (from > total) {
		pthread_mutex_unlock(&vm->lock);
		return -ERANGE;
	}
	n = MIN(max, total - from);
	out = malloc(MAX(n, 1) * VM_META_RECORD);
	if (!out) {
		pthread_mutex_unlock(&vm->lock);
		return -ENOMEM;
	}
	memcpy(out, vm->meta_snap + from * VM_META_RECORD, n * VM_META_RECORD);
	pthread_mutex_unlock(&vm->lock);
	*ret = out;
	*ret_len = n * VM_META_RECORD;
	*ret_total = total;
	return 0;
}

int vm_pagemeta_put(struct vm *vm, const uint8_t *rec, size_t len, bool done)
{
	struct pager *p;
	int r = 0;

	if (len % VM_META_RECORD)
		return -EINVAL;
	pthread_mutex_lock(&vm->lock);
	p = vm->released ? NULL : vm->pager;
	if (!vm->crypt || !p) {
		pthread_mutex_unlock(&vm->lock);
		return vm->crypt ? -ESRCH : -ENOTSUP;
	}
	if (!pager_meta_pending(p)) {
		pthread_mutex_unlock(&vm->lock);
		return -EALREADY;   /* complete: a table in use is never overwritten */
	}
	for (size_t i = 0; i < len / VM_META_RECORD && r == 0; i++) {
		struct pager_meta_entry e;
		uint32_t idx;

		memcpy(&idx, rec + i * VM_META_RECORD, 4);
		memcpy(&e, rec + i * VM_META_RECORD + 4, sizeof(e));
		r = pager_crypt_put(vm->crypt, idx, &e);
	}
	if (r == 0 && done) {
		char path[PATH_MAX];

		pending_path(vm, path, sizeof(path));
		(void)unlink(path);
		pager_meta_done(p);
	}
	pthread_mutex_unlock(&vm->lock);
	return r;
}
