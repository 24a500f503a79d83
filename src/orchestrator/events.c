// SPDX-License-Identifier: MIT
/*
 * GET /v1/events (docs/api.md#events): the orchestrator's event log, read
 * from a sequence number on, and its long poll (`wait=SECONDS`, up to 30):
 * when nothing is newer than `since`, the request waits until an event is
 * recorded or the time is up.
 *
 * events_start() wraps the store's ops table so that every event_add,
 * wherever in the orchestrator it is called, wakes the waiting requests.
 * A waiter wakes at least every EVENTS_SLICE_MS anyway: it reads the log
 * again (an event added by a transaction that rolled back leaves nothing
 * to answer) and gives up when the orchestrator is stopping, so that a
 * shutdown never waits for a long poll.
 */
#include "events.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "macro.h"
#include "net.h"
#include "slotpager.h"
#include "ui.h"

#define EVENTS_WAIT_MAX_S 30
#define EVENTS_SLICE_MS 500

static pthread_mutex_t ev_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ev_cv;
static bool ev_cv_ready;
static uint64_t ev_gen;                 /* events recorded since start (under ev_mu) */
static const struct store_ops *ev_inner;
static struct store_ops ev_ops;

static int ev_event_add(struct store *s, const char *kind, uint64_t node, const char *slot,
			const char *message)
{
	int r = ev_inner->event_add(s, kind, node, slot, message);

	if (r == 0) {
		pthread_mutex_lock(&ev_mu);
		ev_gen++;
		if (ev_cv_ready)
			pthread_cond_broadcast(&ev_cv);
		pthread_mutex_unlock(&ev_mu);
	}
	return r;
}

static void events_watch(struct store *s)
{
	pthread_condattr_t ca;

	pthread_mutex_lock(&ev_mu);
	if (!ev_cv_ready) {
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&ev_cv, &ca);
		pthread_condattr_destroy(&ca);
		ev_cv_ready = true;
	}
	pthread_mutex_unlock(&ev_mu);
	if (s->ops == &ev_ops)
		return;
	ev_inner = s->ops;
	ev_ops = *s->ops;
	ev_ops.event_add = ev_event_add;
	s->ops = &ev_ops;
}

static uint64_t ev_generation(void)
{
	uint64_t g;

	pthread_mutex_lock(&ev_mu);
	g = ev_gen;
	pthread_mutex_unlock(&ev_mu);
	return g;
}

/* Wait until an event after generation `seen` or for up to ms milliseconds. */
static void ev_wait(uint64_t seen, int64_t ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&ev_mu);
	if (!ev_cv_ready) {
		pthread_mutex_unlock(&ev_mu);
		nanosleep(&(struct timespec){ .tv_sec = ms / 1000,
					      .tv_nsec = (ms % 1000) * 1000000 }, NULL);
		return;
	}
	while (ev_gen == seen)
		if (pthread_cond_timedwait(&ev_cv, &ev_mu, &ts) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&ev_mu);
}

static json_t *event_json(const struct event_rec *e)
{
	char t[32];

	orch_fmt_time(e->time, t, sizeof(t));
	return json_pack("{s:I, s:s, s:s, s:o, s:o, s:s}", "seq", (json_int_t)e->seq, "time", t,
			 "kind", e->kind, "node",
			 e->node ? json_integer((json_int_t)e->node) : json_null(), "slot",
			 e->slot[0] ? json_string(e->slot) : json_null(), "message", e->message);
}

static void events_get(struct orch *o, const struct http_req *req, struct http_resp *resp)
{
	_cleanup_free_ struct event_rec *ev = NULL;
	int64_t since, limit, wait, left_ms;
	uint64_t deadline;
	size_t n = 0;
	json_t *arr;
	int r;

	if (http_req_query_num(req, "since", 0, INT64_MAX, &since) < 0 ||
	    http_req_query_num(req, "limit", 100, 10000, &limit) < 0 || limit < 1) {
		http_resp_error(resp, 400, "bad_request",
				"since must be a sequence number, limit 1 to 10000");
		return;
	}
	if (http_req_query_num(req, "wait", 0, EVENTS_WAIT_MAX_S, &wait) < 0) {
		http_resp_error(resp, 400, "bad_request", "wait must be 0 to %d seconds",
				EVENTS_WAIT_MAX_S);
		return;
	}
	if (o->events_no_wait)
		wait = 0;
	deadline = now_ns() + (uint64_t)wait * 1000000000ull;
	for (;;) {
		uint64_t gen = ev_generation();

		free(ev);
		ev = NULL;
		r = o->store->ops->event_list(o->store, since, limit, &ev, &n);
		if (r < 0) {
			http_resp_error(resp, 500, "internal", "store: %s", strerror(-r));
			return;
		}
		left_ms = (int64_t)(deadline - now_ns()) / 1000000;
		if (n > 0 || now_ns() >= deadline || atomic_load(&o->stopping))
			break;
		ev_wait(gen, left_ms < EVENTS_SLICE_MS ? left_ms + 1 : EVENTS_SLICE_MS);
	}
	arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, event_json(&ev[i]));
	http_resp_json(resp, 200, json_pack("{s:o}", "events", arr));
}

static const struct orch_web hooks = {
	.events = events_get,
	.is_ui = ui_path,
	.ui = ui_serve,
	.pager = slots_pager,
};

void events_start(struct orch *o)
{
	events_watch(o->store);
	o->web = &hooks;
}
