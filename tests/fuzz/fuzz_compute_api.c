// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the compute agent's HTTP API (src/compute/api.c
 * and the handlers it hands requests to: vm_memmig_http, vm_evacuate_http,
 * vm_prefetch_http): routing, strict JSON bodies, section maps and grants
 * in hex, every field's range checks, and the answers.
 *
 * Each input gets a fresh agent with two VMs that exist but never ran
 * ("vm0" and "vm1", created as recovery creates records), so every path
 * under /v1/vms/NAME is reachable; requests that would act on a running VM
 * get its "not running" answer. Their run directory and the agent's run
 * root name a directory that does not exist: creating a VM fails at its
 * first file system step after the body was parsed, and nothing is ever
 * written. A request is a method, a path and a body (fuzz_http.h); an
 * input holds as many as it has bytes for.
 *
 * Seed inputs: tests/fuzz/corpus/compute_api/ (made by gen_corpus.py).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "ext.h"
#include "fuzz_http.h"
#include "log.h"
#include "net.h"
#include "vm_incoming.h"
#include "vm_internal.h"
#include "vm_migrate.h"

#define NOWHERE "/nonexistent/disagg-fuzz"

static const struct auth_key fuzz_key = { .bytes = "fuzz-key-fuzz-key-fuzz-key-0123" };

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_set_level(LOG_LVL_ERROR);
	CHECK(vm_ext_register(&vm_mig_ext) == 0 && vm_ext_register(&vm_incoming_ext) == 0);
	return 0;
}

static void add_vm(struct agent *a, unsigned slot, const char *name)
{
	struct vm *vm = vm_alloc(&a->env);

	CHECK(vm);
	snprintf(vm->spec.name, sizeof(vm->spec.name), "%s", name);
	vm->spec.vcpus = 1;
	snprintf(vm->dir, sizeof(vm->dir), NOWHERE "/%s", name);
	snprintf(vm->console_path, sizeof(vm->console_path), "%s/console.log", vm->dir);
	a->vms[slot] = vm;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	struct agent *a = calloc(1, sizeof(*a));
	const struct http_route *routes;
	struct http_req req;
	char *path, *body;
	size_t nroutes;

	CHECK(a);
	a->env = (struct vm_env){
		.run_root = NOWHERE,
		.qemu = NOWHERE "/qemu",
		.shim = NOWHERE "/libdisagg-shim.so",
		.accel = "tcg",
		.section_size = 2u << 20,
		.key = &fuzz_key,
		.node_id = 3,
	};
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->bg_cond, NULL);
	a->started_ns = now_ns();
	add_vm(a, 0, "vm0");
	add_vm(a, 5, "vm1");
	routes = agent_http_routes(&nroutes);
	while (fz_http_next(&in, &req, &path, &body) == 0) {
		fz_http_serve(routes, nroutes, a, &req);
		free(path);
		free(body);
	}
	agent_shutdown(a);
	pthread_cond_destroy(&a->bg_cond);
	pthread_mutex_destroy(&a->lock);
	free(a);
	return 0;
}
