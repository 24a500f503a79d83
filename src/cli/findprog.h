/* SPDX-License-Identifier: MIT */
/*
 * Finding the daemons `disagg up` starts: next to the disagg that was
 * invoked (build/bin), next to the real executable, in a meson build tree
 * (src/cli/disagg beside src/memnode/disagg-memnode), then in PATH.
 */
#ifndef DISAGG_CLI_FINDPROG_H
#define DISAGG_CLI_FINDPROG_H

/* *ret: a malloc'd path. 0 or -ENOENT. */
int find_program(const char *argv0, const char *name, char **ret);

#endif /* DISAGG_CLI_FINDPROG_H */
