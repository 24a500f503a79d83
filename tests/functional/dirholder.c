// SPDX-License-Identifier: MIT
/*
 * disagg-dirholder: one holder of a section in mode strict, for the
 * functional tests (test_memnode_dir.py). It does with the coherence
 * directory what a compute node's pager does, through the client library
 * (mnclient.h): a recall channel that a thread of its own answers, requests
 * on another connection, and a local copy of every page it holds (none,
 * read, or owned and maybe written). A recall is acted on only once every
 * grant the node sent before it has been received (struct mnc_recall
 * .grants), and answered only once the copy is read-only or gone.
 *
 * Commands on stdin, one a line; an answer on stdout for each:
 *   inc PAGE N [US]  N times: own the page (DIR_WRITE when it does not),
 *                add one to its first 64-bit word, sleep US microseconds
 *                (another holder may take the page meanwhile) -> "inc PAGE VALUE"
 *   read PAGE    a read copy (DIR_READ when it has none) -> "read PAGE VALUE"
 *   quit         write back the written pages it owns (WRITE), detach, stop
 *                -> "quit RECALLS DIRTY WAITS": recalls answered, answered
 *                with the page, and acted on after waiting for a grant
 * Any failure: "error ..." on stderr and exit status 1.
 *
 * --quiet: recalls are answered with no reply (mnc_dir_recall_ack_quiet),
 * and a ping on the channel after every QUIET_BATCH answers with a page
 * (and at quit) confirms that the node took them, as the compute agent
 * does (vm_strict.c).
 *
 *   disagg-dirholder --addr HOST:PORT --key FILE --node-id ID --grant HEX [--quiet]
 *                    [--tls-ca F --tls-cert F --tls-key F | --fabric-plaintext]
 */
#include <endian.h>
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "grant.h"
#include "mnclient.h"
#include "tls.h"

enum { ST_NONE, ST_READ, ST_OWNED };

#define QUIET_BATCH 8

struct holder {
	pthread_mutex_t mu;
	pthread_cond_t cond;        /* a grant received */
	struct proto_grant g;
	uint32_t npages;
	uint32_t received;          /* DIR_READ/DIR_WRITE answered OK */
	uint8_t *state;
	bool *dirty;
	uint8_t *pages;             /* npages copies */
	struct mnc *chan, *io;
	atomic_bool stop;
	bool quiet;
	unsigned recalls, dirty_acks, waits, unconfirmed;
};

/* Answer a recall; quiet: confirmed by a ping every QUIET_BATCH pages. */
static int answer(struct holder *h, uint64_t seq, const void *dirty)
{
	int r;

	if (!h->quiet)
		return mnc_dir_recall_ack(h->chan, seq, dirty);
	r = mnc_dir_recall_ack_quiet(h->chan, seq, dirty);
	if (r == 0 && dirty && ++h->unconfirmed == QUIET_BATCH) {
		r = mnc_ping(h->chan);
		h->unconfirmed = 0;
	}
	return r;
}

static _Noreturn void die(const char *what, int r)
{
	fprintf(stderr, "error %s: %s\n", what, strerror(-r));
	exit(1);
}

static uint8_t *page_of(struct holder *h, uint32_t p)
{
	return h->pages + (size_t)p * PROTO_PAGE_SIZE;
}

static void *recall_main(void *arg)
{
	struct holder *h = arg;
	uint8_t buf[PROTO_PAGE_SIZE];

	while (!atomic_load(&h->stop)) {
		struct mnc_recall rc;
		bool dirty;
		int r = mnc_dir_next_recall(h->chan, 100, &rc);

		if (r == -ETIMEDOUT && h->unconfirmed) {
			r = mnc_ping(h->chan);
			h->unconfirmed = 0;
			if (r == 0)
				continue;
		}
		if (r == -ETIMEDOUT)
			continue;
		if (r < 0)
			die("recall", r);
		if (rc.page >= h->npages || rc.section != h->g.section)
			die("recall of a page not ours", -EBADMSG);
		pthread_mutex_lock(&h->mu);
		if ((int32_t)(h->received - rc.grants) < 0)
			h->waits++;
		while ((int32_t)(h->received - rc.grants) < 0)
			pthread_cond_wait(&h->cond, &h->mu);
		dirty = h->state[rc.page] == ST_OWNED && h->dirty[rc.page];
		if (dirty)
			memcpy(buf, page_of(h, rc.page), PROTO_PAGE_SIZE);
		if (rc.mode == MNC_RECALL_INVALIDATE)
			h->state[rc.page] = ST_NONE;
		else if (h->state[rc.page] == ST_OWNED)
			h->state[rc.page] = ST_READ;
		h->dirty[rc.page] = false;
		h->recalls++;
		h->dirty_acks += dirty;
		pthread_mutex_unlock(&h->mu);
		r = answer(h, rc.seq, dirty ? buf : NULL);
		if (r < 0)
			die("recall ack", r);
	}
	if (h->unconfirmed) {
		int r = mnc_ping(h->chan);

		if (r < 0)
			die("confirming the quiet answers", r);
	}
	return NULL;
}

/* Get a copy of page p in state `want` (ST_READ: any copy); returns with h->mu held. */
static void hold(struct holder *h, uint32_t p, int want)
{
	uint8_t buf[PROTO_PAGE_SIZE];

	pthread_mutex_lock(&h->mu);
	while (h->state[p] == ST_NONE || (want == ST_OWNED && h->state[p] != ST_OWNED)) {
		bool had = false;
		int r;

		pthread_mutex_unlock(&h->mu);      /* recalls go on while we wait */
		r = want == ST_OWNED ? mnc_dir_write(h->io, &h->g, 0, p, buf, &had)
				     : mnc_dir_read(h->io, &h->g, 0, p, buf, NULL);
		if (r < 0)
			die(want == ST_OWNED ? "dir write" : "dir read", r);
		pthread_mutex_lock(&h->mu);
		if (had && h->state[p] == ST_NONE)
			die("had_copy for a page this holder does not hold", -EBADMSG);
		if (!had)
			memcpy(page_of(h, p), buf, PROTO_PAGE_SIZE);
		h->state[p] = want == ST_OWNED ? ST_OWNED : ST_READ;
		h->received++;
		pthread_cond_broadcast(&h->cond);
	}
}

static uint64_t word(struct holder *h, uint32_t p)
{
	uint64_t v;

	memcpy(&v, page_of(h, p), sizeof(v));
	return le64toh(v);
}

/* Write back every written page it owns. */
static void publish(struct holder *h)
{
	pthread_mutex_lock(&h->mu);
	for (uint32_t p = 0; p < h->npages; p++) {
		struct proto_extent e = { p, 1 };
		int r;

		if (h->state[p] != ST_OWNED || !h->dirty[p])
			continue;
		r = mnc_write(h->io, &h->g, &e, 1, page_of(h, p));
		if (r < 0)
			die("write back", r);
		h->dirty[p] = false;
	}
	pthread_mutex_unlock(&h->mu);
}

static int run(struct holder *h)
{
	char line[128];
	pthread_t t;
	int r;

	r = -pthread_create(&t, NULL, recall_main, h);
	if (r < 0)
		die("thread", r);
	while (fgets(line, sizeof(line), stdin)) {
		unsigned page = 0, n = 0, us = 0;
		char cmd[16];

		if (sscanf(line, "%15s %u %u %u", cmd, &page, &n, &us) < 1)
			continue;
		if (strcmp(cmd, "quit") == 0)
			break;
		if (page >= h->npages)
			die(cmd, -ERANGE);
		if (strcmp(cmd, "inc") == 0) {
			for (unsigned i = 0; i < n; i++) {
				uint64_t v;

				hold(h, page, ST_OWNED);
				v = htole64(word(h, page) + 1);
				memcpy(page_of(h, page), &v, sizeof(v));
				h->dirty[page] = true;
				pthread_mutex_unlock(&h->mu);
				if (us)
					usleep(us);
			}
		} else if (strcmp(cmd, "read") != 0) {
			die(cmd, -EINVAL);
		}
		hold(h, page, ST_READ);
		printf("%s %u %llu\n", cmd, page, (unsigned long long)word(h, page));
		pthread_mutex_unlock(&h->mu);
		fflush(stdout);
	}
	publish(h);                    /* while the recall thread still answers */
	r = mnc_dir_detach(h->io, &h->g, 0);
	if (r < 0)
		die("detach", r);
	atomic_store(&h->stop, true);
	pthread_join(t, NULL);
	printf("quit %u %u %u\n", h->recalls, h->dirty_acks, h->waits);
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "addr", required_argument, NULL, 'a' },
		{ "key", required_argument, NULL, 'k' },
		{ "node-id", required_argument, NULL, 'n' },
		{ "grant", required_argument, NULL, 'g' },
		{ "quiet", no_argument, NULL, 'q' },
		FABRIC_LONG_OPTIONS,
		{},
	};
	struct holder h = { .mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
	struct fabric_conf fabric = { 0 };
	struct mnc_opts o = { .timeout_ms = 5000 };
	const char *keyfile = NULL, *grant = NULL;
	struct auth_key key;
	struct tls_ctx *tls = NULL;
	int c, r;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (fabric_opt(c, optarg, &fabric))
			continue;
		switch (c) {
		case 'a': o.addr = optarg; break;
		case 'k': keyfile = optarg; break;
		case 'n': o.node_id = strtoull(optarg, NULL, 10); break;
		case 'g': grant = optarg; break;
		case 'q': h.quiet = true; break;
		default: return 2;
		}
	}
	if (!o.addr || !keyfile || !grant || !o.node_id)
		return 2;
	if ((r = auth_key_load(keyfile, &key)) < 0)
		die("key", r);
	if ((r = grant_from_hex(grant, &h.g)) < 0)
		die("grant", r);
	if (fabric_conf_check(&fabric) < 0 || tls_ctx_new(&fabric, CERT_ROLE_NONE, o.node_id, &tls) < 0)
		die("fabric", -EINVAL);
	o.key = &key;
	o.tls = tls;
	if ((r = mnc_connect(&o, &h.chan)) < 0 || (r = mnc_connect(&o, &h.io)) < 0)
		die("connect", r);
	h.npages = (uint32_t)(mnc_info(h.io)->section_size / PROTO_PAGE_SIZE);
	h.state = calloc(h.npages, 1);
	h.dirty = calloc(h.npages, sizeof(*h.dirty));
	h.pages = calloc(h.npages, PROTO_PAGE_SIZE);
	if (!h.state || !h.dirty || !h.pages)
		die("memory", -ENOMEM);
	if ((r = mnc_dir_attach(h.chan, &h.g, 0)) < 0)
		die("attach", r);
	r = run(&h);
	mnc_close(h.chan);
	mnc_close(h.io);
	tls_ctx_free(tls);
	free(h.state);
	free(h.dirty);
	free(h.pages);
	return r;
}
