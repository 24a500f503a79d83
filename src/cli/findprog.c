// SPDX-License-Identifier: MIT
/*
 * Where `disagg up` finds the daemons it starts (findprog.h).
 */
#include "findprog.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"

static bool is_exec(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

static char *join(const char *dir, const char *name)
{
	char *p;

	return asprintf(&p, "%s/%s", dir, name) < 0 ? NULL : p;
}

/* First executable `name` in the PATH directories, or NULL. */
static char *search_path(const char *name)
{
	const char *path = getenv("PATH");
	_cleanup_free_ char *copy = strdup(path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
	char *save = copy, *d;

	while (copy && (d = strsep(&save, ":"))) {
		char *p = join(*d ? d : ".", name);

		if (p && is_exec(p))
			return p;
		free(p);
	}
	return NULL;
}

int find_program(const char *argv0, const char *name, char **ret)
{
	static const char *const meson_dirs[] = { "orchestrator", "memnode", "compute", "devnode" };
	_cleanup_free_ char *self = NULL, *invoked = NULL, *exe = realpath("/proc/self/exe", NULL);
	const char *dirs[2 + ARRAY_SIZE(meson_dirs)];
	char *p, sib[4096];
	size_t nd = 0;

	/* The directory disagg was invoked from (build/bin/disagg: a symlink there). */
	if (argv0 && strchr(argv0, '/'))
		invoked = strdup(argv0);
	else if (argv0)
		invoked = search_path(argv0);
	if (invoked)
		dirs[nd++] = dirname(invoked);
	/* The directory of the real executable (build/release/src/cli/disagg). */
	if (exe) {
		self = strdup(exe);
		if (self)
			dirs[nd++] = dirname(self);
	}
	for (size_t i = 0; i < nd; i++) {
		p = join(dirs[i], name);
		if (p && is_exec(p)) {
			*ret = p;
			return 0;
		}
		free(p);
	}
	/* A meson build tree: src/cli/disagg beside src/memnode/disagg-memnode. */
	if (self) {
		for (size_t i = 0; i < ARRAY_SIZE(meson_dirs); i++) {
			snprintf(sib, sizeof(sib), "%s/../%s/%s", self, meson_dirs[i], name);
			if (is_exec(sib)) {
				*ret = realpath(sib, NULL);
				return *ret ? 0 : -errno;
			}
		}
	}
	*ret = search_path(name);
	return *ret ? 0 : -ENOENT;
}
