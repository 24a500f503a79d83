// SPDX-License-Identifier: MIT
/*
 * The local cluster's state on disk: which data directory, and
 * DIR/cluster.json, written by `disagg up` and read by `down`, `status`
 * and every command that looks for the orchestrator.
 *
 * cluster.json: {"version": 1, "dir": DIR, "url": "http://HOST:PORT",
 * "key": PATH, "created": RFC3339, "components": [{"name", "kind",
 * "node_id", "pid", "starttime", "addr", "http", "log"}, ...]}. A pid is
 * trusted only together with its start time (field 22 of /proc/PID/stat),
 * so a recycled pid is never signalled.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

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
	char path[64], buf[1024], *p;
	_cleanup_close_ int fd = -1;
	ssize_t n;
	long long st = -1;

	if (pid <= 0)
		return -EINVAL;
	snprintf(path, sizeof(path), "/proc/%lld/stat", (long long)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	/* The command name may hold spaces and parentheses: start after the last ')'. */
	p = strrchr(buf, ')');
	if (!p)
		return -EBADMSG;
	/* Fields after ")": 3 state ... 22 starttime. A zombie counts as gone. */
	if (p[1] == ' ' && p[2] == 'Z')
		return -ESRCH;
	for (int field = 2; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	if (!p || sscanf(p + 1, "%lld", &st) != 1)
		return -EBADMSG;
	return st;
}

bool cluster_pid_alive(int64_t pid, int64_t starttime)
{
	int64_t st = cluster_pid_starttime(pid);

	return st >= 0 && (starttime <= 0 || st == starttime);
}
