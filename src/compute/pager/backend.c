// SPDX-License-Identifier: MIT
/*
 * Backends (backend.h): freeing one, and the retry loop with reconnects
 * that every transfer of the pager goes through.
 */
#include "backend.h"

#include <unistd.h>

#include "core.h"
#include "net.h"

void pager_backend_free(struct pager_backend *be)
{
	if (!be)
		return;
	if (be->ops && be->ops->destroy)
		be->ops->destroy(be->priv);
	free(be);
}

static bool err_fatal(int err)
{
	switch (-err) {
	case EKEYREJECTED: case EKEYEXPIRED: case EPERM: case EACCES: case ERANGE:
	case EINVAL: case E2BIG: case ENOENT: case ESTALE: case ECANCELED: case EKEYREVOKED:
	case EOPNOTSUPP:   /* the node lacks the feature (WRITE_DIFF, ...): no retry helps */
		return true;
	default:
		return false;
	}
}

int pager_retry_io(struct pager *p, void **connp, int (*fn)(void *conn, void *arg), void *arg)
{
	const struct pager_backend_ops *ops = p->cfg.backend->ops;
	uint64_t start = now_ns();
	unsigned delay_ms = 2;

	for (;;) {
		int r;

		if (!*connp) {
			r = ops->conn_open(p->cfg.backend->priv, connp);
			if (r < 0)
				*connp = NULL;
		} else {
			r = 0;
		}
		if (r >= 0) {
			r = fn(*connp, arg);
			if (r >= 0)
				return r;
		}
		/* A cancelled attempt (region removed, section fenced) is no backend error. */
		if (r != -ECANCELED)
			pager_count_error(p, r, "backend attempt (retried)");
		if (err_fatal(r))
			return r;
		if (*connp)
			ops->reset(*connp);
		if (atomic_load(&p->stop))
			return -ECANCELED;
		if ((now_ns() - start) / 1000000 >= (uint64_t)p->cfg.fail_timeout_ms)
			return r;
		usleep(delay_ms * 1000);
		delay_ms = MIN(delay_ms * 2, 200u);
	}
}
