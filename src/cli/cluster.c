// SPDX-License-Identifier: MIT
/*
 * The local cluster's state on disk: which data directory, and
 * DIR/cluster.json, written by `disagg up` and read by `down`, `status`
 * and every command that looks for the orchestrator.
 *
 * cluster.json: {"version": 1, "dir": DIR, "url": "http://HOST:PORT",
 * "key": PATH, "grant_key": PATH, "grant_pubkey": PATH, "created": RFC3339,
 * "components": [{"name", "kind",
 * "node_id", "pid", "starttime", "addr", "http", "log"}, ...]}. A pid is
 * trusted only together with its start time (field 22 of /proc/PID/stat),
 * so a recycled pid is never signalled.
 *
 * `disagg down` (SIGTERM by tiers: compute nodes, device nodes, memory
 * nodes, the orchestrator; SIGKILL to the process group of whatever outlives the
 * timeout) and `disagg status` live here too.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "net.h"
#include "proc.h"

#define DEFAULT_DOWN_TIMEOUT_S 30

int cluster_data_dir(const struct cli_args *a, char **ret)
{
	const char *d = a->data_dir, *env;
	char *s = NULL;

	if (!d && (env = getenv("DISAGG_DATA")) && *env)
		d = env;
	if (d) {
		if (d[0] == '/') {
			s = strdup(d);
		} else {
			_cleanup_free_ char *cwd = getcwd(NULL, 0);

			if (!cwd)
				return -errno;
			if (asprintf(&s, "%s/%s", cwd, d) < 0)
				s = NULL;
		}
	} else if ((env = getenv("XDG_RUNTIME_DIR")) && env[0] == '/') {
		if (asprintf(&s, "%s/disagg", env) < 0)
			s = NULL;
	} else if (asprintf(&s, "/tmp/disagg-%u", (unsigned)getuid()) < 0) {
		s = NULL;
	}
	if (!s)
		return -ENOMEM;
	/* No trailing slashes: the path is printed and joined. */
	for (size_t l = strlen(s); l > 1 && s[l - 1] == '/'; l--)
		s[l - 1] = '\0';
	*ret = s;
	return 0;
}

int cluster_load(const char *dir, json_t **ret)
{
	_cleanup_free_ char *path = NULL;
	json_error_t err;
	json_t *j;

	if (asprintf(&path, "%s/cluster.json", dir) < 0)
		return -ENOMEM;
	if (access(path, F_OK) < 0)
		return -errno;
	j = json_load_file(path, 0, &err);
	if (!j || !json_is_object(j)) {
		json_decref(j);
		return -EBADMSG;
	}
	*ret = j;
	return 0;
}

int cluster_save(const char *dir, const json_t *cluster)
{
	_cleanup_free_ char *path = NULL, *tmp = NULL;

	if (asprintf(&path, "%s/cluster.json", dir) < 0 ||
	    asprintf(&tmp, "%s/.cluster.json.tmp", dir) < 0)
		return -ENOMEM;
	if (json_dump_file(cluster, tmp, JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0)
		return -EIO;
	if (rename(tmp, path) < 0) {
		int r = -errno;

		unlink(tmp);
		return r;
	}
	return 0;
}

int64_t cluster_pid_starttime(int64_t pid)
{
	return proc_starttime(pid);
}

bool cluster_pid_alive(int64_t pid, int64_t starttime)
{
	return proc_alive(pid, starttime);
}

char *cluster_path(const char *dir, const char *name)
{
	char *p;

	return asprintf(&p, "%s/%s", dir, name) < 0 ? NULL : p;
}

int cluster_lock(const char *dir)
{
	_cleanup_free_ char *path = cluster_path(dir, ".lock");
	int fd;

	if (!path)
		return -ENOMEM;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int r = -errno;

		close(fd);
		return r == -EWOULDBLOCK ? -EBUSY : r;
	}
	return fd;
}

/* ---- down ---------------------------------------------------------------- */

struct victim {
	const char *name;
	int64_t pid, starttime;
	const char *result;
	double secs;
	bool killed, survived;
};

/* SIGTERM the victims, wait up to timeout, SIGKILL their process groups. */
static void stop_tier(struct victim *v, size_t n, double timeout_s)
{
	uint64_t start = now_ns(), deadline = start + (uint64_t)(timeout_s * 1e9);
	bool pending;

	for (size_t i = 0; i < n; i++) {
		if (!cluster_pid_alive(v[i].pid, v[i].starttime)) {
			v[i].result = "was not running";
			continue;
		}
		kill((pid_t)v[i].pid, SIGTERM);
	}
	for (bool killed = false;;) {
		pending = false;
		for (size_t i = 0; i < n; i++) {
			if (v[i].result)
				continue;
			if (!cluster_pid_alive(v[i].pid, v[i].starttime)) {
				v[i].secs = (double)(now_ns() - start) / 1e9;
				v[i].result = v[i].killed ? "killed (SIGKILL)" : "stopped";
				continue;
			}
			pending = true;
		}
		if (!pending)
			return;
		if (!killed && now_ns() > deadline) {
			for (size_t i = 0; i < n; i++)
				if (!v[i].result) {
					/* Its process group: a compute node's QEMUs go too. */
					kill(-(pid_t)v[i].pid, SIGKILL);
					kill((pid_t)v[i].pid, SIGKILL);
					v[i].killed = true;
				}
			killed = true;
			deadline = now_ns() + 5000000000ull;
		} else if (killed && now_ns() > deadline) {
			for (size_t i = 0; i < n; i++)
				if (!v[i].result) {
					v[i].result = "STILL RUNNING";
					v[i].survived = true;
				}
			return;
		}
		usleep(20 * 1000);
	}
}

int cmd_down(struct cli_args *a)
{
	static const char *const tiers[] = { "compute", "devnode", "memnode", "orchestrator" };
	static const char *const tier_labels[] = { "compute nodes", "device nodes", "memory nodes",
						   "orchestrator" };
	_cleanup_(json_decrefp) json_t *cl = NULL;
	_cleanup_free_ char *dir = NULL, *cj = NULL, *key = NULL;
	_cleanup_free_ struct victim *v = NULL;
	_cleanup_close_ int lockfd = -1;
	uint64_t timeout_s;
	size_t n = 0, i;
	json_t *c, *comps;
	bool bad = false;
	struct table t;
	static const char *const head[] = { "COMPONENT", "PID", "RESULT" };
	int r;

	if ((r = cli_opt_u64(a, "timeout", DEFAULT_DOWN_TIMEOUT_S, 86400, &timeout_s)))
		return r;
	if ((r = cluster_data_dir(a, &dir)) < 0)
		return cli_err("no data directory: %s", strerror(-r)), CLI_EXIT_ERROR;
	r = cluster_load(dir, &cl);
	if (r == -ENOENT) {
		fprintf(stderr, "nothing to stop: no cluster in %s\n", dir);
		return CLI_EXIT_OK;
	}
	if (r < 0) {
		cli_err("cannot read %s/cluster.json: %s", dir, strerror(-r));
		return CLI_EXIT_ERROR;
	}
	lockfd = cluster_lock(dir);
	if (lockfd < 0) {
		cli_err("cannot lock %s: %s", dir,
			lockfd == -EBUSY ? "another `disagg up` or `down` is running there" : strerror(-lockfd));
		return CLI_EXIT_ERROR;
	}
	comps = json_object_get(cl, "components");
	v = calloc(json_array_size(comps) + 1, sizeof(*v));
	if (!v)
		return CLI_EXIT_ERROR;
	/*
	 * Compute nodes first (they stop their VMs), then device nodes and memory nodes, then
	 * the orchestrator.
	 */
	for (size_t tier = 0; tier < ARRAY_SIZE(tiers); tier++) {
		size_t first = n;
		char label[64];
		struct progress p;

		json_array_foreach(comps, i, c) {
			const char *kind = jstr(c, "kind");

			if (!kind || strcmp(kind, tiers[tier]) != 0)
				continue;
			v[n].name = jstr(c, "name") ? jstr(c, "name") : kind;
			v[n].pid = jint(c, "pid", -1);
			v[n].starttime = jint(c, "starttime", -1);
			n++;
		}
		if (n == first)
			continue;
		snprintf(label, sizeof(label), "stopping the %s", tier_labels[tier]);
		progress_start(&p, label);
		stop_tier(v + first, n - first, (double)timeout_s);
		for (size_t k = first; k < n; k++)
			bad |= v[k].killed || v[k].survived;
		progress_end(&p, true, NULL);
	}
	table_init(&t, ARRAY_SIZE(head), head);
	t.right[1] = true;
	for (size_t k = 0; k < n; k++) {
		char res[96];

		if (strcmp(v[k].result, "stopped") == 0)
			snprintf(res, sizeof(res), "stopped in %.1fs", v[k].secs);
		else if (v[k].killed && !v[k].survived)
			snprintf(res, sizeof(res), "killed (SIGKILL) after %" PRIu64 "s without exiting",
				 timeout_s);
		else
			snprintf(res, sizeof(res), "%s", v[k].result);
		table_rowf(&t, "%s\t%" PRId64 "\t%s", v[k].name, v[k].pid, res);
	}
	if (a->json) {
		json_t *arr = json_array();

		for (size_t k = 0; k < n; k++)
			json_array_append_new(arr, json_pack("{s:s, s:I, s:s, s:b}", "name", v[k].name,
							     "pid", (json_int_t)v[k].pid, "result",
							     v[k].result, "clean",
							     !v[k].killed && !v[k].survived));
		json_t *o = json_pack("{s:s, s:o}", "dir", dir, "stopped", arr);
		print_json(o);
		json_decref(o);
	} else {
		table_print(&t);
	}
	table_free(&t);
	for (size_t k = 0; k < n; k++)
		if (v[k].survived) {
			cli_err("%s (pid %" PRId64 ") survived SIGKILL; cluster.json is kept", v[k].name,
				v[k].pid);
			return CLI_EXIT_ERROR;
		}
	cj = cluster_path(dir, "cluster.json");
	key = cluster_path(dir, "cluster.key");
	if (cj)
		unlink(cj);
	if (key)
		unlink(key);
	{
		/* The grant key goes with the cluster key: the next `up` makes new ones. */
		_cleanup_free_ char *gk = cluster_path(dir, "grant.key"),
				    *gp = cluster_path(dir, "grant.pub");

		if (gk)
			unlink(gk);
		if (gp)
			unlink(gp);
	}
	{
		/* So do the API token, the node secret and the node credentials. */
		_cleanup_free_ char *tf = cluster_path(dir, "api.tokens"),
				    *ns = cluster_path(dir, "node.secret");

		if (tf)
			unlink(tf);
		if (ns)
			unlink(ns);
		json_array_foreach(comps, i, c) {
			char *cred = NULL;

			if (jint(c, "node_id", -1) > 0 &&
			    asprintf(&cred, "%s/node-%" PRId64 ".cred", dir, jint(c, "node_id", -1)) > 0) {
				unlink(cred);
				free(cred);
			}
		}
	}
	if (!a->json)
		printf("cluster stopped; logs and the orchestrator's database stay in %s\n", dir);
	if (bad) {
		cli_err("not every process stopped on SIGTERM within %" PRIu64 "s: see the logs in %s/logs",
			timeout_s, dir);
		return CLI_EXIT_ERROR;
	}
	return CLI_EXIT_OK;
}

/* ---- status -------------------------------------------------------------- */

int cmd_status(struct cli_args *a)
{
	static const char *const head[] = { "COMPONENT", "ID", "ADDRESS", "HTTP", "PID", "STATE", "LOG" };
	_cleanup_(json_decrefp) json_t *cl = NULL;
	_cleanup_free_ char *dir = NULL;
	struct table t;
	json_t *c;
	size_t i, down = 0;
	int r;

	if ((r = cluster_data_dir(a, &dir)) < 0)
		return cli_err("no data directory: %s", strerror(-r)), CLI_EXIT_ERROR;
	r = cluster_load(dir, &cl);
	if (r < 0) {
		cli_err(r == -ENOENT ? "no cluster in %s (start one with `disagg up`)%s"
				     : "cannot read %s/cluster.json: %s",
			dir, r == -ENOENT ? "" : strerror(-r));
		return CLI_EXIT_ERROR;
	}
	table_init(&t, ARRAY_SIZE(head), head);
	t.right[1] = t.right[4] = true;
	json_array_foreach(json_object_get(cl, "components"), i, c) {
		char id[32], pid[32];
		bool alive = cluster_pid_alive(jint(c, "pid", -1), jint(c, "starttime", -1));

		jtext(c, "node_id", id, sizeof(id));
		jtext(c, "pid", pid, sizeof(pid));
		down += !alive;
		table_rowf(&t, "%s\t%s\t%s\t%s\t%s\t%s\t%s", jstr(c, "kind") ? jstr(c, "kind") : "", id,
			   jstr(c, "addr") ? jstr(c, "addr") : "", jstr(c, "http") ? jstr(c, "http") : "",
			   pid, alive ? "running" : "NOT RUNNING", jstr(c, "log") ? jstr(c, "log") : "");
		if (a->json)
			json_object_set_new(c, "running", json_boolean(alive));
	}
	if (a->json) {
		print_json(cl);
	} else {
		printf("cluster in %s, orchestrator %s\n\n", dir, jstr(cl, "url") ? jstr(cl, "url") : "-");
		table_print(&t);
	}
	table_free(&t);
	if (down) {
		cli_err("%zu process%s of the cluster %s not running", down, down == 1 ? "" : "es",
			down == 1 ? "is" : "are");
		return CLI_EXIT_ERROR;
	}
	return CLI_EXIT_OK;
}
