/* SPDX-License-Identifier: MIT */
/*
 * The compute agent: the set of VMs on this node and its HTTP control API
 * (docs/compute.md). main.c parses options and runs it.
 */
#ifndef DISAGG_AGENT_H
#define DISAGG_AGENT_H

#include <pthread.h>
#include <stdatomic.h>

#include "apiauth.h"
#include "http.h"
#include "vm.h"

#define AGENT_MAX_VMS 64

struct agent {
	struct vm_env env;
	pthread_mutex_t lock;         /* protects vms[] (each VM has its own lock) */
	struct vm *vms[AGENT_MAX_VMS];
	struct http_server *http;
	unsigned bg_frees;            /* VMs being freed in the background */
	pthread_cond_t bg_cond;       /* signalled when one is done (with lock) */
	uint64_t started_ns;
	struct registrar *_Atomic reg; /* heartbeats (NULL without --orchestrator) */
	struct apiauth_node auth;     /* who may call the API (--node-credential) */
	const char *orch_ca;          /* --http-ca: an https:// orchestrator's CA (NULL: the system's) */
};

int agent_http_start(struct agent *a, const char *addr, const char *cert, const char *key);
/* The API's routes (opaque: the agent), as the server is given them. */
const struct http_route *agent_http_routes(size_t *ret_n);
unsigned agent_vm_count(struct agent *a);
/* Stop every VM and free them. */
void agent_shutdown(struct agent *a);

#endif /* DISAGG_AGENT_H */
