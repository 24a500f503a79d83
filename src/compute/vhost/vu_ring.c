// SPDX-License-Identifier: MIT
/*
 * Split virtqueues (virtio 1.x, little-endian; this back end runs on
 * little-endian hosts only, which the build asserts). The avail ring is
 * read after an acquire fence on its index; the used ring's entries are
 * written before a release fence and the index after it, so the guest
 * never sees an index ahead of its entries.
 */
#include "vu_ring.h"

#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "virtio rings are little-endian");

#define VRING_DESC_F_NEXT      1
#define VRING_DESC_F_WRITE     2
#define VRING_DESC_F_INDIRECT  4
#define VRING_AVAIL_F_NO_INTERRUPT 1

struct vring_desc_le {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vring_avail_le {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[];
};

struct vring_used_elem_le {
	uint32_t id;
	uint32_t len;
};

struct vring_used_le {
	uint16_t flags;
	uint16_t idx;
	struct vring_used_elem_le ring[];
};

_Static_assert(sizeof(struct vu_inflight_desc) == 16, "the in-flight log's layout");
_Static_assert(offsetof(struct vu_inflight_q, desc) == 16, "the in-flight log's layout");

#define INFLIGHT_ALIGN 64u

uint64_t vu_inflight_q_size(uint16_t queue_size)
{
	uint64_t n = sizeof(struct vu_inflight_q) + (uint64_t)queue_size * sizeof(struct vu_inflight_desc);

	return (n + INFLIGHT_ALIGN - 1) / INFLIGHT_ALIGN * INFLIGHT_ALIGN;
}

static void resubmit_clear(struct vu_ring *r)
{
	free(r->resubmit);
	r->resubmit = NULL;
	r->nresubmit = r->resubmit_pos = 0;
}

void vu_ring_init(struct vu_ring *r)
{
	memset(r, 0, sizeof(*r));
	r->kick_fd = r->call_fd = r->err_fd = -1;
}

void vu_ring_stop(struct vu_ring *r)
{
	int *fds[] = { &r->kick_fd, &r->call_fd, &r->err_fd };

	for (unsigned i = 0; i < 3; i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
	r->started = false;
	r->desc = NULL;
	r->avail = NULL;
	r->used = NULL;
	resubmit_clear(r);
}

int vu_ring_map(struct vu_ring *r, const struct vu_mem *mem)
{
	if (!r->addr_set || !r->num)
		return -EFAULT;
	r->desc = vu_mem_uva(mem, r->addr.desc, (uint64_t)r->num * sizeof(struct vring_desc_le));
	r->avail = vu_mem_uva(mem, r->addr.avail, 4 + 2ull * r->num + 2);
	r->used = vu_mem_uva(mem, r->addr.used, 4 + 8ull * r->num + 2);
	return r->desc && r->avail && r->used ? 0 : -EFAULT;
}

struct taken {
	uint64_t counter;
	uint16_t head;
};

static int taken_cmp(const void *a, const void *b)
{
	const struct taken *x = a, *y = b;

	return x->counter < y->counter ? -1 : x->counter > y->counter;
}

/*
 * What a back end before us left in the log (libvhost-user's reading of
 * it, which QEMU's spec describes): a chain whose used entry was written
 * but whose flag was not yet cleared is the last batch's head; every
 * other flagged chain was taken and never answered. So the chains taken
 * are the used ones plus the flagged ones, and taking goes on from there.
 * The log is QEMU's memory, so it is checked like the rings are.
 */
static int inflight_resume(struct vu_ring *r)
{
	struct vu_inflight_q *q = r->infl;
	struct taken *t;
	uint16_t avail_idx;
	unsigned n = 0;

	if (q->desc_num != r->num || q->last_batch_head >= r->num)
		return -EBADMSG;
	if (!q->version) {
		q->version = 1;          /* a new log: nothing was taken */
		return 0;
	}
	if (q->used_idx != r->used_idx) {
		q->desc[q->last_batch_head].inflight = 0;
		__atomic_store_n(&q->used_idx, r->used_idx, __ATOMIC_RELEASE);
	}
	for (unsigned i = 0; i < r->num; i++)
		n += q->desc[i].inflight == 1;
	avail_idx = le16toh(__atomic_load_n(&r->avail->idx, __ATOMIC_ACQUIRE));
	if ((uint16_t)(avail_idx - r->used_idx) < n)
		return -EBADMSG;         /* more taken than the guest ever made available */
	r->counter = 0;
	r->last_avail = (uint16_t)(r->used_idx + n);
	if (!n)
		return 0;
	t = calloc(n, sizeof(*t));
	r->resubmit = calloc(n, sizeof(*r->resubmit));
	if (!t || !r->resubmit) {
		free(t);
		return -ENOMEM;
	}
	n = 0;
	for (unsigned i = 0; i < r->num; i++)
		if (q->desc[i].inflight == 1)
			t[n++] = (struct taken){ q->desc[i].counter, (uint16_t)i };
	qsort(t, n, sizeof(*t), taken_cmp);
	for (unsigned i = 0; i < n; i++)
		r->resubmit[i] = t[i].head;
	r->counter = t[n - 1].counter + 1;
	r->nresubmit = n;
	r->resubmit_pos = 0;
	free(t);
	return (int)n;
}

int vu_ring_start(struct vu_ring *r, const struct vu_mem *mem, int *ret_resubmit)
{
	int k = vu_ring_map(r, mem);

	*ret_resubmit = 0;
	if (k < 0)
		return k;
	/* Go on from where the used ring is (a ring that served before, elsewhere). */
	r->used_idx = le16toh(__atomic_load_n(&r->used->idx, __ATOMIC_ACQUIRE));
	resubmit_clear(r);
	if (r->infl) {
		*ret_resubmit = inflight_resume(r);
		if (*ret_resubmit < 0)
			r->infl = NULL;  /* serve without it, from SET_VRING_BASE */
	}
	r->started = true;
	return 0;
}

/* Add one buffer to the chain; readable ones may not follow writable ones. */
static int chain_add(struct vu_chain *c, const struct vu_mem *mem, const struct vring_desc_le *d)
{
	uint64_t addr = le64toh(d->addr);
	uint32_t len = le32toh(d->len);
	bool w = le16toh(d->flags) & VRING_DESC_F_WRITE;
	void *p;

	if (c->nout + c->nin == VU_MAX_SEGS || (!w && c->nin))
		return -EBADMSG;
	p = len ? vu_mem_gpa(mem, addr, len) : NULL;
	if (len && !p)
		return -EFAULT;
	c->iov[c->nout + c->nin] = (struct iovec){ p, len };
	c->gpa[c->nout + c->nin] = addr;
	if (w)
		c->nin++;
	else
		c->nout++;
	return 0;
}

/* Walk an indirect table of `len` bytes at guest address `addr`. */
static int chain_indirect(struct vu_chain *c, const struct vu_mem *mem, uint64_t addr,
			  uint32_t len)
{
	const struct vring_desc_le *t;
	unsigned n = len / sizeof(*t), i = 0;

	if (len == 0 || len % sizeof(*t) || n > VU_RING_MAX)
		return -EBADMSG;
	t = vu_mem_gpa(mem, addr, len);
	if (!t)
		return -EFAULT;
	for (unsigned hops = 0;; hops++) {
		struct vring_desc_le d;
		int r;

		if (hops == n)
			return -EBADMSG;   /* a loop */
		memcpy(&d, &t[i], sizeof(d));
		if (le16toh(d.flags) & VRING_DESC_F_INDIRECT)
			return -EBADMSG;   /* no nesting */
		r = chain_add(c, mem, &d);
		if (r < 0)
			return r;
		if (!(le16toh(d.flags) & VRING_DESC_F_NEXT))
			return 0;
		i = le16toh(d.next);
		if (i >= n)
			return -EBADMSG;
	}
}

int vu_ring_pop(struct vu_ring *r, const struct vu_mem *mem, struct vu_chain *c)
{
	uint16_t avail_idx, head, i;
	int rc;

	if (!r->avail)
		return 0;
	if (r->resubmit_pos < r->nresubmit) {
		/* Taken by the back end before us, flagged in the log already. */
		head = r->resubmit[r->resubmit_pos++];
	} else {
		avail_idx = le16toh(__atomic_load_n(&r->avail->idx, __ATOMIC_ACQUIRE));
		if (avail_idx == r->last_avail)
			return 0;
		if ((uint16_t)(avail_idx - r->last_avail) > r->num)
			return -EBADMSG;   /* the guest claims more than the ring holds */
		head = le16toh(r->avail->ring[r->last_avail % r->num]);
		if (head >= r->num)
			return -EBADMSG;
		r->last_avail++;
		if (r->infl) {
			/* Flagged before anything else is done with it. */
			r->infl->desc[head].counter = r->counter++;
			__atomic_store_n(&r->infl->desc[head].inflight, 1, __ATOMIC_RELEASE);
		}
	}
	c->head = head;
	c->nout = c->nin = 0;
	i = head;
	for (unsigned hops = 0;; hops++) {
		struct vring_desc_le d;

		if (hops == r->num)
			return -EBADMSG;   /* a loop */
		memcpy(&d, &r->desc[i], sizeof(d));
		if (le16toh(d.flags) & VRING_DESC_F_INDIRECT) {
			if (hops || (le16toh(d.flags) & VRING_DESC_F_NEXT))
				return -EBADMSG;   /* an indirect table is the whole chain */
			rc = chain_indirect(c, mem, le64toh(d.addr), le32toh(d.len));
			break;
		}
		rc = chain_add(c, mem, &d);
		if (rc < 0 || !(le16toh(d.flags) & VRING_DESC_F_NEXT))
			break;
		i = le16toh(d.next);
		if (i >= r->num)
			return -EBADMSG;
	}
	if (rc < 0)
		return rc;
	r->inflight++;
	return 1;
}

void vu_ring_push(struct vu_ring *r, uint16_t head, uint32_t len)
{
	struct vring_used_elem_le *e;

	if (!r->used)
		return;
	if (r->infl)
		__atomic_store_n(&r->infl->last_batch_head, head, __ATOMIC_RELEASE);
	e = &r->used->ring[r->used_idx % r->num];
	e->id = htole32(head);
	e->len = htole32(len);
	if (r->log && (r->addr.flags & 1))   /* VHOST_VRING_F_LOG: addr.log is the used ring's GPA */
		vu_log_write(r->log, r->addr.log + 4 + 8ull * (r->used_idx % r->num), 8);
	r->used_idx++;
	__atomic_store_n(&r->used->idx, htole16(r->used_idx), __ATOMIC_RELEASE);
	if (r->log && (r->addr.flags & 1))
		vu_log_write(r->log, r->addr.log + 2, 2);
	if (r->infl && head < r->num) {
		__atomic_store_n(&r->infl->desc[head].inflight, 0, __ATOMIC_RELEASE);
		__atomic_store_n(&r->infl->used_idx, r->used_idx, __ATOMIC_RELEASE);
	}
	r->inflight--;
	r->notify = true;
}

void vu_ring_kick_guest(struct vu_ring *r)
{
	uint64_t one = 1;
	uint16_t flags;

	if (!r->notify || !r->avail)
		return;
	r->notify = false;
	/* Read the guest's wish after the used index is visible (a full fence). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	flags = le16toh(__atomic_load_n(&r->avail->flags, __ATOMIC_RELAXED));
	if (!(flags & VRING_AVAIL_F_NO_INTERRUPT) && r->call_fd >= 0)
		(void)!write(r->call_fd, &one, sizeof(one));
}
