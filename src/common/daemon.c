// SPDX-License-Identifier: MIT
/*
 * The daemons' common startup and shutdown steps (daemon.h). The messages
 * are the ones tests and operators match on: change them in one place.
 */
#include "daemon.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "log.h"
#include "net.h"
#include "notify.h"

int daemon_opt(int opt, const char *arg, void (*usage)(FILE *f))
{
	switch (opt) {
	case DAEMON_OPT_LOG_LEVEL:
		if (log_set_level_str(arg) < 0) {
			log_error("invalid --log-level '%s'", arg);
			return -EINVAL;
		}
		return 0;
	case 'h':
		usage(stdout);
		return 1;
	default:
		usage(stderr);
		return -EINVAL;
	}
}

int daemon_node_opts_check(const char *grant_keyfile, uint64_t node_id,
			   const struct fabric_conf *fabric)
{
	if (!grant_keyfile) {
		log_error("--grant-pubkey FILE is required (the public half of the orchestrator's "
			  "grant key)");
		return -EINVAL;
	}
	if (!node_id) {
		log_error("--node-id ID is required");
		return -EINVAL;
	}
	return fabric_conf_check(fabric) < 0 ? -EINVAL : 0;
}

int daemon_keys_load(const char *keyfile, struct auth_key *ret_key, const char *grant_keyfile,
		     bool need_private, struct grant_key **ret_grant)
{
	int r = auth_key_load(keyfile, ret_key);

	if (r < 0) {
		log_error("cannot load cluster key %s: %s%s", keyfile, strerror(-r),
			  auth_key_hint(r));
		return r;
	}
	r = grant_key_load(grant_keyfile, need_private, ret_grant);
	if (r < 0)
		log_error("cannot load the grant key %s: %s%s", grant_keyfile, strerror(-r),
			  grant_key_hint(r));
	return r;
}

void daemon_raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_debug("setrlimit(RLIMIT_NOFILE): %s", strerror(errno));
	}
}

void daemon_block_signals(sigset_t *ret_mask)
{
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(ret_mask);
	sigaddset(ret_mask, SIGTERM);
	sigaddset(ret_mask, SIGINT);
	pthread_sigmask(SIG_BLOCK, ret_mask, NULL);
}

int daemon_signalfd(void)
{
	sigset_t mask;
	int fd;

	daemon_block_signals(&mask);
	fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (fd < 0) {
		fd = -errno;
		log_error("signalfd: %s", strerror(-fd));
	}
	return fd;
}

int daemon_listen(const char *addr, char *ret_addr, size_t len)
{
	int fd = net_listen_tcp(addr, true), r;

	if (fd < 0) {
		log_error("cannot listen on %s: %s", addr, strerror(-fd));
		return fd;
	}
	r = net_local_addr(fd, ret_addr, len);
	if (r < 0) {
		log_error("getsockname: %s", strerror(-r));
		close(fd);
		return r;
	}
	return fd;
}

void daemon_ready(const char *prog, const char *addr, const char *http)
{
	if (http)
		printf("%s listening on %s http %s\n", prog, addr, http);
	else
		printf("%s listening on %s\n", prog, addr);
	fflush(stdout);
	notify_ready();
}

int daemon_stopped(int r)
{
	if (r < 0)
		log_error("accept loop: %s", strerror(-r));
	else
		log_info("shutting down");
	notify_stopping();
	return r < 0 ? 1 : 0;
}
