// SPDX-License-Identifier: MIT
/*
 * RLITMUS mp|sb REGION ROLE ITERS: the message-passing and store-buffering
 * litmus tests between two guests that map the same region, run as a
 * background job (rjob.h); RJOB then shows
 *   result=ok test=mp role=R forbidden=N iters=M seen=K ms=T
 *
 *   mp  role 0: x = v; y = v            role 1: a = y; b = x
 *       forbidden: a == v && b != v (the flag without the data)
 *       seen: iterations in which role 1 saw the flag
 *   sb  role 0: x = v; a = y            role 1: y = v; b = x
 *       forbidden: a != v && b != v (each missed the other's store)
 *       seen: iterations in which both saw the other's store
 *
 * Every access is a seq_cst atomic (the stores are xchg on x86), so the
 * CPUs cannot produce a forbidden outcome: under a sequentially consistent
 * memory, forbidden is 0, and anything else is the memory's doing. x and y
 * are on pages of their own.
 *
 * The two roles stay in step through words in the region (page 1 and up;
 * RCOUNTER uses page 0), each written by one role only; docs/guest.md
 * ("How the litmus roles keep in step") describes the protocol.
 */
#include "litmus.h"

#include "rjob.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#define LIT_HELLO (1 * PAGE)        /* role 0: the run's nonce, 0 between runs */
#define LIT_KIND (1 * PAGE + 8)     /* role 0: 1 mp, 2 sb */
#define LIT_ITERS (1 * PAGE + 16)   /* role 0: ITERS */
#define LIT_SEQ(r) ((2 + (r)) * PAGE)       /* role r: nonce << 32 | step */
#define LIT_RES(r) ((2 + (r)) * PAGE + 64)  /* role r: nonce << 32 | iter << 2 | bits */
#define LIT_X (4 * PAGE)
#define LIT_Y (5 * PAGE)
#define LIT_BYTES (6 * PAGE)
#define LIT_MAX_ITERS 100000000ull  /* iter << 2 and 2 * iter fit 32 bits */
#define STEP_ABORT 0xffffffffu

enum { LIT_MP = 1, LIT_SB = 2 };

struct lit {
	struct rjob *j;
	int role, kind;
	uint64_t iters, nonce;
	uint64_t *hello, *seq[2], *res[2], *x, *y;
	uint64_t forbidden, seen, done;
};

static inline uint64_t ld(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

static inline void st(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, v, __ATOMIC_SEQ_CST);
}

static inline uint64_t tag(uint64_t nonce, uint64_t low)
{
	return nonce << 32 | low;
}

/*
 * Wait until the other role has reached STEP of this run: 0, -ETIMEDOUT,
 * -ECONNABORTED (it gave up), or for role 1 -ESTALE (role 0 left this run
 * or began another one).
 */
static int peer_at(const struct lit *L, uint64_t v, uint32_t step)
{
	if (v >> 32 != L->nonce)
		return 0;
	if ((uint32_t)v == STEP_ABORT)
		return -ECONNABORTED;
	return (uint32_t)v >= step;
}

static int wait_peer(struct lit *L, uint32_t step)
{
	const uint64_t *peer = L->seq[1 - L->role];
	uint64_t spins = 0, deadline = 0;
	int r;

	for (;;) {
		if ((r = peer_at(L, ld(peer), step)) != 0)
			return r < 0 ? r : 0;
		/*
		 * Role 0 stores its last step before it leaves the run (hello
		 * = 0): the step read above may predate both stores, so it is
		 * read again once hello has changed. Only a step still short
		 * then means that role 0 left without this one.
		 */
		if (L->role == 1 && ld(L->hello) != L->nonce) {
			r = peer_at(L, ld(peer), step);
			return r < 0 ? r : r ? 0 : -ESTALE;
		}
		if (rjob_spin(&spins, &deadline))
			return -ETIMEDOUT;
	}
}

/* Role 1: find role 0's run (a nonce whose step is still 0) and join it. */
static int join(struct lit *L)
{
	uint64_t spins = 0, deadline = 0;

	for (;;) {
		uint64_t h = ld(L->hello);

		if (h && ld(L->seq[0]) == tag(h, 0)) {
			L->nonce = h;
			if (ld(L->hello + 1) != (uint64_t)L->kind || ld(L->hello + 2) != L->iters)
				return -EPROTO;
			st(L->seq[1], tag(h, 0));
			return 0;
		}
		if (rjob_spin(&spins, &deadline))
			return -ETIMEDOUT;
	}
}

/* Role 0: a new run with a fresh nonce; role 1 joins it. */
static int lead(struct lit *L)
{
	uint64_t old = ld(L->hello);

	L->nonce = (guest_now_ns() * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid()) >> 32;
	while (L->nonce == 0 || L->nonce == old || L->nonce == ld(L->seq[1]) >> 32)
		L->nonce = (L->nonce + 1) & 0xffffffffu;
	st(L->seq[0], tag(L->nonce, 0));
	st(L->hello + 1, (uint64_t)L->kind);
	st(L->hello + 2, L->iters);
	st(L->hello, L->nonce);
	return wait_peer(L, 0);
}

/* One iteration's test step: this role's outcome bits. */
static uint64_t step(struct lit *L, uint64_t v)
{
	if (L->kind == LIT_MP) {
		uint64_t a, b;

		if (L->role == 0) {
			st(L->x, v);
			st(L->y, v);
			return 0;
		}
		a = ld(L->y);
		b = ld(L->x);
		return (a == v) | (uint64_t)(b == v) << 1;
	}
	if (L->role == 0) {
		st(L->x, v);
		return ld(L->y) == v;
	}
	st(L->y, v);
	return ld(L->x) == v;
}

static void count(struct lit *L, uint64_t mine, uint64_t theirs)
{
	uint64_t b0 = L->role == 0 ? mine : theirs, b1 = L->role == 1 ? mine : theirs;

	if (L->kind == LIT_MP) {
		L->forbidden += (b1 & 1) && !(b1 & 2);
		L->seen += b1 & 1;
	} else {
		L->forbidden += !(b0 & 1) && !(b1 & 1);
		L->seen += (b0 & 1) && (b1 & 1);
	}
}

static int iterate(struct lit *L)
{
	int me = L->role, r;

	for (uint64_t i = 1; i <= L->iters; i++) {
		uint64_t mine, theirs;

		st(L->seq[me], tag(L->nonce, 2 * i - 1));
		if ((r = wait_peer(L, (uint32_t)(2 * i - 1))) < 0)
			return r;
		mine = step(L, tag(L->nonce, i));
		st(L->res[me], tag(L->nonce, i << 2 | mine));
		st(L->seq[me], tag(L->nonce, 2 * i));
		if ((r = wait_peer(L, (uint32_t)(2 * i))) < 0)
			return r;
		theirs = ld(L->res[1 - me]);
		if (theirs >> 32 != L->nonce || (uint32_t)theirs >> 2 != i)
			return -EBADMSG;
		count(L, mine, theirs & 3);
		L->done = i;
		atomic_store_explicit(&L->j->progress, i, memory_order_relaxed);
	}
	return 0;
}

static const char *reason(int r)
{
	switch (r) {
	case -ETIMEDOUT: return "peer_timeout";
	case -ECONNABORTED: return "peer_aborted";
	case -ESTALE: return "peer_left";
	case -EPROTO: return "mismatch";
	case -EBADMSG: return "protocol";
	default: return "error";
	}
}

static void litmus_run(struct rjob *j)
{
	struct lit L = {
		.j = j, .kind = (int)j->arg[0], .role = (int)j->arg[1], .iters = j->arg[2],
		.hello = rmap_word(&j->map, LIT_HELLO), .x = rmap_word(&j->map, LIT_X),
		.y = rmap_word(&j->map, LIT_Y),
	};
	int r;

	for (int k = 0; k < 2; k++) {
		L.seq[k] = rmap_word(&j->map, LIT_SEQ(k));
		L.res[k] = rmap_word(&j->map, LIT_RES(k));
	}
	if (L.role == 0) {
		r = lead(&L);
		if (r == 0)
			r = iterate(&L);
	} else {
		/* Role 0 changed runs before the first iteration ended: join the new one. */
		do {
			L.forbidden = L.seen = 0;
			r = join(&L);
			if (r == 0)
				r = iterate(&L);
		} while (r == -ESTALE && L.done == 0);
	}
	if (r < 0 && L.nonce)
		st(L.seq[L.role], tag(L.nonce, STEP_ABORT));
	if (L.role == 0)
		st(L.hello, 0);
	if (r < 0)
		return rjob_result(j, "error reason=%s iter=%" PRIu64 " forbidden=%" PRIu64,
				   reason(r), L.done, L.forbidden);
	rjob_result(j,
		    "ok test=%s role=%d forbidden=%" PRIu64 " iters=%" PRIu64 " seen=%" PRIu64
		    " ms=%llu",
		    L.kind == LIT_MP ? "mp" : "sb", L.role, L.forbidden, L.done, L.seen,
		    guest_ms_since(j->t0));
}

static void cmd_rlitmus(char **av, int ac)
{
	struct rjob *j;
	uint64_t role, iters;
	int kind = ac == 5 ? (!strcmp(av[1], "mp") ? LIT_MP : !strcmp(av[1], "sb") ? LIT_SB : 0) : 0;

	if (!kind || guest_parse_u64(av[3], 0, 1, &role) < 0 ||
	    guest_parse_u64(av[4], 1, LIT_MAX_ITERS, &iters) < 0)
		return guest_reply("ERR usage: RLITMUS mp|sb REGION ROLE ITERS (ROLE 0 or 1, "
				   "ITERS 1..%llu)", LIT_MAX_ITERS);
	if (!(j = rjob_claim()) || rmap_open(av[2], &j->map) < 0)
		return;
	if (j->map.bytes < LIT_BYTES)
		return guest_reply("ERR region %s is smaller than %u bytes", j->map.addr, LIT_BYTES);
	j->arg[0] = (uint64_t)kind;
	j->arg[1] = role;
	j->arg[2] = iters;
	rjob_launch(j, "litmus", litmus_run);
}

const struct guest_cmd litmus_cmds[] = {
	{ "RLITMUS", cmd_rlitmus },
	{ NULL, NULL },
};
