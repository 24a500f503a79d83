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

_Static_assert(VM_META_NKINDS == ARRAY_SIZE(((struct vm *)0)->meta_rec), "one per kind");

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

/* Does entry i go over: written ever (against no base), or not as in base? */
static bool rec_wanted(const struct pager_meta_entry *e, const struct pager_meta_entry *base,
		       size_t i)
{
	if (!e[i].ver)
		return false;   /* never written: the destination's table has zeros too */
	return !base || memcmp(&e[i], &base[i], sizeof(e[i])) != 0;
}

/* Records of the n entries of e (all written ones, or those not as in base). */
static int records(const struct pager_meta_entry *e, size_t n,
		   const struct pager_meta_entry *base, struct vm *vm, enum vm_meta_kind kind)
{
	size_t cnt = 0, k = 0;
	uint8_t *out;

	for (size_t i = 0; i < n; i++)
		cnt += rec_wanted(e, base, i);
	out = malloc(MAX(cnt, 1) * VM_META_RECORD);
	if (!out)
		return -ENOMEM;
	for (size_t i = 0; i < n && k < cnt; i++) {
		uint32_t idx = (uint32_t)i;

		if (!rec_wanted(e, base, i))
			continue;
		memcpy(out + k * VM_META_RECORD, &idx, 4);
		memcpy(out + k * VM_META_RECORD + 4, &e[i], PAGER_META_ENTRY);
		k++;
	}
	free(vm->meta_rec[kind]);
	vm->meta_rec[kind] = out;
	vm->meta_len[kind] = k * VM_META_RECORD;
	return 0;
}

int vm_pagemeta_precopy(struct vm *vm, uint64_t *ret_gen, size_t *ret_records)
{
	struct pager_meta_entry *base;
	const void *e;
	size_t len;
	int r;

	pthread_mutex_lock(&vm->lock);
	if (!vm->crypt) {
		pthread_mutex_unlock(&vm->lock);
		return -ENOTSUP;
	}
	e = pager_crypt_table(vm->crypt, &len);
	base = malloc(MAX(len, 1));
	if (!base) {
		pthread_mutex_unlock(&vm->lock);
		return -ENOMEM;
	}
	/*
	 * The guest runs: write-backs change entries while we copy. An entry
	 * caught half-way differs from its final value, so the delta sends
	 * it again; one read with version 0 is sent as nothing, like the
	 * destination's zeros.
	 */
	memcpy(base, e, len);
	for (size_t i = 0; i < len / PAGER_META_ENTRY; i++)
		if (!base[i].ver)
			memset(&base[i], 0, sizeof(base[i]));
	r = records(base, len / PAGER_META_ENTRY, NULL, vm, VM_META_PRECOPY);
	if (r < 0) {
		free(base);
		pthread_mutex_unlock(&vm->lock);
		return r;
	}
	free(vm->meta_base);
	vm->meta_base = (uint8_t *)base;
	vm->meta_base_len = len;
	*ret_gen = ++vm->meta_gen;
	*ret_records = vm->meta_len[VM_META_PRECOPY] / VM_META_RECORD;
	pthread_mutex_unlock(&vm->lock);
	log_debug("vm %s: page-metadata pre-copy %llu: %zu pages", vm->spec.name,
		  (unsigned long long)*ret_gen, *ret_records);
	return 0;
}

int vm_pagemeta_snapshot(struct vm *vm)
{
	const struct pager_meta_entry *e;
	size_t len;
	int r;

	pthread_mutex_lock(&vm->lock);
	if (!vm->crypt) {
		pthread_mutex_unlock(&vm->lock);
		return 0;
	}
	e = pager_crypt_table(vm->crypt, &len);
	r = records(e, len / PAGER_META_ENTRY, NULL, vm, VM_META_FINAL);
	free(vm->meta_rec[VM_META_DELTA]);
	vm->meta_rec[VM_META_DELTA] = NULL;
	vm->meta_len[VM_META_DELTA] = 0;
	if (r == 0 && vm->meta_base && vm->meta_base_len == len) {
		r = records(e, len / PAGER_META_ENTRY,
			    (const struct pager_meta_entry *)vm->meta_base, vm, VM_META_DELTA);
		vm->meta_delta_gen = vm->meta_gen;
	}
	log_debug("vm %s: page-metadata snapshot: %zu pages, %zu changed since pre-copy %llu",
		  vm->spec.name, vm->meta_len[VM_META_FINAL] / VM_META_RECORD,
		  vm->meta_len[VM_META_DELTA] / VM_META_RECORD,
		  (unsigned long long)vm->meta_delta_gen);
	pthread_mutex_unlock(&vm->lock);
	return r;
}

void vm_pagemeta_free(struct vm *vm)
{
	for (unsigned k = 0; k < VM_META_NKINDS; k++) {
		free(vm->meta_rec[k]);
		vm->meta_rec[k] = NULL;
		vm->meta_len[k] = 0;
	}
	free(vm->meta_base);
	vm->meta_base = NULL;
	vm->meta_base_len = 0;
}

int vm_pagemeta_read(struct vm *vm, enum vm_meta_kind kind, uint64_t gen, size_t from,
		     size_t max, uint8_t **ret, size_t *ret_len, size_t *ret_total)
{
	size_t total, n;
	uint8_t *out;

	if ((unsigned)kind >= VM_META_NKINDS)
		return -EINVAL;
	pthread_mutex_lock(&vm->lock);
	if (!vm->meta_rec[kind]) {
		pthread_mutex_unlock(&vm->lock);
		return -ENOENT;
	}
	if (kind == VM_META_DELTA && gen != vm->meta_delta_gen) {
		pthread_mutex_unlock(&vm->lock);
		return -ESTALE;
	}
	total = vm->meta_len[kind] / VM_META_RECORD;
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
	memcpy(out, vm->meta_rec[kind] + from * VM_META_RECORD, n * VM_META_RECORD);
	pthread_mutex_unlock(&vm->lock);
	*ret = out;
	*ret_len = n * VM_META_RECORD;
	*ret_total = total;
	return 0;
}

int vm_pagemeta_put(struct vm *vm, const uint8_t *rec, size_t len, bool done,
		    uint64_t *ret_bad)
{
	size_t n = len / VM_META_RECORD;
	uint64_t npages;
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
	/* All or nothing: every record is checked before any is applied. */
	npages = pager_crypt_npages(vm->crypt);
	for (size_t i = 0; i < n && r == 0; i++) {
		struct pager_meta_entry e;
		uint32_t idx;

		memcpy(&idx, rec + i * VM_META_RECORD, 4);
		memcpy(&e, rec + i * VM_META_RECORD + 4, sizeof(e));
		if (idx >= npages)
			r = -ERANGE;
		else if (!(e.ver & ~PAGER_META_STORED))
			r = -EBADMSG;
		if (r < 0 && ret_bad)
			*ret_bad = idx;
	}
	for (size_t i = 0; i < n && r == 0; i++) {
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
