// SPDX-License-Identifier: MIT
/*
 * What a VM boots, in a compute migration (vm_boot_mig.h).
 *
 * QEMU migrates device state and its own ROMs (linuxboot's option ROM with
 * them), not the devices themselves: the destination's VM must have the
 * same ones at the same addresses. For a VM that booted an image that is
 * the same -kernel and -initrd, or the same firmware boot, and the same
 * cloud-init seed drive at the same PCI slot with the same size.
 *
 * Source: the "boot" and "cloud_init" of its POST /v1/vms are kept as
 * asked, URLs and all, in the VM's directory (boot.json), so that they
 * outlive an agent restart. GET /v1/vms/NAME/boot says them, and where
 * the seed is ("seed": its PCI address and its size in bytes; the slot
 * is in the VM's record too, vm_disk.c, and so known after a restart).
 *
 * Destination: the orchestrator passes them on in the incoming VM's
 * POST /v1/vms. "boot" is parsed as for a new VM (vm_boot.c: a URL is
 * fetched with this node's token into its own cache); the seed's slot is
 * reserved before the disks (none may take it) and the seed is made again
 * from the same "cloud_init": vm_boot.c makes the same bytes from the same
 * input, and the size is checked against the source's. The guest read the
 * seed at its boot; a seed whose bytes still differed (an older
 * dosfstools) differs only in its volume serial.
 */
#include "vm_boot_mig.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jsonhttp.h"
#include "macro.h"
#include "vm_boot.h"
#include "vm_disk.h"
#include "vm_disk_mig.h"
#include "vm_internal.h"

static void record_path(struct vm *vm, char *ret, size_t n)
{
	snprintf(ret, n, "%s/boot.json", vm->dir);
}

/* Keep boot and ci (either may be NULL) in the VM's directory: 0, or -errno. */
static int record(struct vm *vm, json_t *boot, json_t *ci)
{
	_cleanup_(json_decrefp) json_t *j = NULL;
	char path[PATH_MAX], tmp[PATH_MAX + 8];

	if (!boot && !ci)
		return 0;
	j = json_object();
	if (!j || (boot && json_object_set(j, "boot", boot) < 0) ||
	    (ci && json_object_set(j, "cloud_init", ci) < 0))
		return -ENOMEM;
	record_path(vm, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (json_dump_file(j, tmp, JSON_COMPACT) < 0) {
		(void)unlink(tmp);
		return -EIO;
	}
	return rename(tmp, path) < 0 ? -errno : 0;
}

/* The seed's {"pci", "size"}, or null. */
static json_t *seed_json(struct vm *vm)
{
	char pci[24];
	struct stat st;

	if (!vm->spec.seed[0] || vm_disk_seed_pci(vm, pci, sizeof(pci)) < 0 ||
	    stat(vm->spec.seed, &st) < 0)
		return json_null();
	return json_pack("{s:s, s:I}", "pci", pci, "size", (json_int_t)st.st_size);
}

void vm_boot_mig_http(struct vm *vm, const struct http_req *req, struct http_resp *resp)
{
	char path[PATH_MAX];
	json_t *j, *out, *boot, *ci;

	if (strcmp(req->method, "GET") != 0) {
		http_resp_error(resp, 405, "method_not_allowed", "use GET");
		return;
	}
	record_path(vm, path, sizeof(path));
	j = json_load_file(path, 0, NULL);
	boot = json_object_get(j, "boot");
	ci = json_object_get(j, "cloud_init");
	out = json_pack("{s:O, s:O, s:o}", "boot", boot ? boot : json_null(), "cloud_init",
			ci ? ci : json_null(), "seed", seed_json(vm));
	json_decref(j);
	if (!out) {
		http_resp_error(resp, 500, "internal", "out of memory");
		return;
	}
	http_resp_json(resp, 200, out);
}

/* An incoming VM's seed slot: the source's, from "seed". 0, or -errno with err. */
static int incoming_slot(struct vm *vm, json_t *ci, json_t *seed, char *err, size_t errlen)
{
	static const char *const keys[] = { "pci", "size", NULL };
	json_t *size = json_object_get(seed, "size");
	const char *k;
	int r;

	if (!ci || !json_is_object(seed) || json_check_keys(seed, keys, &k) < 0 ||
	    (size && !json_is_integer(size))) {
		snprintf(err, errlen, "an incoming VM's \"cloud_init\" comes with \"seed\": "
			 "{\"pci\", \"size\"}, where the source has its seed drive");
		return -EINVAL;
	}
	r = vm_disk_seed_slot_at(vm, json_string_value(json_object_get(seed, "pci")));
	if (r < 0)
		snprintf(err, errlen, "\"seed\": \"pci\" must be a disk slot's address no disk "
			 "takes (as the source's seed has it)");
	return r == -ENOMEM ? r : r < 0 ? -EINVAL : 0;
}

int vm_boot_mig_prepare(struct vm *vm, json_t *req, char *err, size_t errlen)
{
	json_t *ci = json_object_get(req, "cloud_init"), *seed = json_object_get(req, "seed");
	json_t *size = json_object_get(seed, "size");
	struct stat st = { 0 };
	int r;

	if (seed && !vm->spec.incoming) {
		snprintf(err, errlen, "\"seed\" (where the source has its seed drive) is for an "
			 "incoming VM");
		return -EINVAL;
	}
	r = record(vm, json_object_get(req, "boot"), ci);
	if (r < 0) {
		snprintf(err, errlen, "cannot keep what the VM boots in %s: %s", vm->dir,
			 strerror(-r));
		return r;
	}
	if (!ci && !seed)
		return 0;
	if (vm->spec.incoming) {
		r = incoming_slot(vm, ci, seed, err, errlen);
	} else {
		r = vm_disk_seed_slot(vm);
		if (r == -ENOSPC)
			snprintf(err, errlen, "no slot left for the cloud-init seed after %d disks",
				 VM_MAX_DISKS);
	}
	if (r >= 0)
		r = vm_boot_cloud_init(vm, ci, err, errlen);
	if (r < 0)
		return r;
	if (size && (stat(vm->spec.seed, &st) < 0 ||
		     (json_int_t)st.st_size != json_integer_value(size))) {
		snprintf(err, errlen, "the cloud-init seed made here has %lld bytes, the source's "
			 "has %lld", (long long)st.st_size, (long long)json_integer_value(size));
		return -EINVAL;
	}
	return 0;
}
