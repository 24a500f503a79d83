// SPDX-License-Identifier: MIT
/*
 * Inside the memory node's network side: the connection (server.c) and
 * the worker thread that owns it (worker.c).
 */
#ifndef DISAGG_MEMNODE_SERVER_INT_H
#define DISAGG_MEMNODE_SERVER_INT_H

#include "memnode.h"

#include <pthread.h>

#include "fio.h"
#include "obuf.h"

#define MN_RBUF_SIZE (64u << 10)

struct mn_worker {
	struct mn_node *node;
	unsigned idx;
	pthread_t thread;
	bool started;
	int epfd;
	int pipe_rd, pipe_wr;    /* new connection fds from the acceptor */
	struct mn_postq posts;   /* frames from other threads; its eventfd also wakes for stop */
	struct mn_obuf *local, **local_tail;   /* posts made on this worker's own thread */
	bool delivering;         /* in mn_worker_deliver_local() */
	char pipe_tag, wake_tag; /* epoll data markers (their addresses) */
	struct mn_conn *conns;
	_Atomic unsigned nconns; /* in conns (the metrics read it) */
	struct mn_conn *closed;  /* closed in this round of events: freed after it */
	uint64_t next_sweep_ns;
	uint64_t revoke_gen;     /* the revocation list last applied */
};

/* A connection handed to a worker: a new one from the acceptor, or one moved from another worker. */
struct mn_handoff {
	int fd;
	struct mn_peer *peer;
	struct mn_conn *conn;    /* moved (mn_conn_move), else NULL: a new fd */
};

struct mn_conn {
	int fd;
	struct fio io;           /* plain or TLS (fio.h) */
	bool tls_hs;             /* TLS handshake not finished yet */
	uint32_t hs_want;        /* events the handshake waits for */
	struct mn_worker *w;
	struct mn_conn *prev, *next;
	_Atomic int refs;
	bool dead;
	bool closing;            /* stop reading; close once the queue is written */
	uint32_t ev;             /* epoll events registered */
	bool to_dir;             /* move to the directory's worker (mn_conn_move_to_dir) */
	bool dir_conn;           /* counted in stats.dir_conns (mn_conn_dir_worker) */
	struct mn_conn_auth auth;
	struct mn_peer *peer;    /* its address's admission counts */
	bool unauth;             /* still counted as unauthenticated */
	uint64_t born_ns, active_ns;
	/* input */
	uint8_t *rbuf;
	size_t rcap;             /* MN_PREAUTH_BUF until authenticated, then MN_RBUF_SIZE */
	size_t rlen, rpos;
	struct proto_hdr bighdr;
	uint8_t *big;
	size_t big_have;
	/* output */
	struct mn_outq out;
	unsigned async;          /* requests answered later (COPY) */
};

/* Close c now (its worker's thread); its memory goes after the round of events. */
void mn_conn_close(struct mn_conn *c);
/* Process buffered frames, write what is queued, and register the events it needs next. */
void mn_conn_pump(struct mn_conn *c);
/* Handle epoll events on c (its worker's thread). */
void mn_conn_event(struct mn_conn *c, uint32_t events);

/* Add c to w's list, and take it off (w's thread). */
void mn_worker_link(struct mn_worker *w, struct mn_conn *c);
void mn_worker_unlink(struct mn_worker *w, struct mn_conn *c);
/*
 * Send the posts made on w's own thread (a reply the directory finished,
 * a recall) now, in a connection's pump: before its own replies go out,
 * and with no round of epoll_wait in between. Those for conn hold are only
 * queued: its pump writes them next.
 */
void mn_worker_deliver_local(struct mn_worker *w, struct mn_conn *hold);
/*
 * Hand c (to_dir set) over to the directory's worker: from c's worker's
 * thread, at the end of its events, before AUTH (nothing else knows c).
 * 1: moved, and the caller must not touch c any more; 0: c is there
 * already, or could not move (logged) and stays.
 */
int mn_conn_move_to_dir(struct mn_conn *c);

#endif /* DISAGG_MEMNODE_SERVER_INT_H */
