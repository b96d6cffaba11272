/*
 * timers: the engine's per-incident timers (firing_for, approve_timeout,
 * verify.within) on the engine's loop, armed and cancelled from any
 * thread.
 *
 * Why a mailbox: HTTP workers decide under e->lock, on their own loops.
 * libevent 2.1's event_del from a thread that is not the event's loop
 * waits for that event's running callback (EVENT_DEL_AUTOBLOCK), and the
 * callback waits for e->lock: a worker holding the lock in evtimer_del
 * and the main loop's timer callback deadlock (issue 11). So no thread
 * but the engine's loop ever adds, deletes or re-arms these events:
 * timers_arm and timers_cancel only change the slot (under e->lock),
 * queue it on e->timer_ops and make e->timer_kick active (event_active
 * from another thread only queues); timers_drain_cb, on the loop, applies
 * the queued slots with evtimer_del / evtimer_add on its own events.
 *
 * Stale callbacks: every arm and cancel bumps the slot's generation; the
 * loop records which generation (and episode) it armed. A callback acts
 * only when, under e->lock, the slot is still armed with that very
 * generation for the incident's current episode: a cancelled or replaced
 * timer, or one of an earlier episode, does nothing (a cancelled
 * firing_for never decides a new episode).
 *
 * Must never: touch an event from a thread other than the engine's loop,
 * or act for a generation it was not armed with. Lock rules: timers_arm,
 * timers_cancel and timers_armed run under e->lock; the drain and the
 * timer callbacks take it themselves, on the loop.
 */
#include "engine_internal.h"

#include <stdlib.h>
#include <string.h>

#include "rollbackd/log.h"

static void timer_fire_cb(evutil_socket_t fd, short what, void *arg);

/* e->timer_kick's callback: apply every queued slot (on the loop). */
static void timers_drain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct engine *e = arg;
	int64_t now = timestamp_mono_ms();
	pthread_mutex_lock(&e->lock);
	struct list_node *n;
	while ((n = list_pop_front(&e->timer_ops))) {
		struct inc_timer *t = CONTAINER_OF(n, struct inc_timer, op);
		if (!t->ev && t->armed && !(t->ev = evtimer_new(e->base, timer_fire_cb, t))) {
			log_error("engine: out of memory arming a timer", "incident", t->inc->id,
				  NULL);
			t->armed = false;
			continue;
		}
		if (t->ev)
			evtimer_del(t->ev); /* our own loop: never waits */
		if (!t->armed)
			continue;
		struct timeval tv = timestamp_tv(t->due_mono_ms - now);
		if (evtimer_add(t->ev, &tv) < 0) {
			log_error("engine: cannot arm a timer", "incident", t->inc->id, NULL);
			t->armed = false;
			continue;
		}
		t->armed_gen = t->gen;
	}
	pthread_mutex_unlock(&e->lock);
}

int timers_init(struct engine *e)
{
	list_init(&e->timer_ops);
	if (!e->base)
		return 0;
	e->timer_kick = event_new(e->base, -1, 0, timers_drain_cb, e);
	return e->timer_kick ? 0 : -1;
}

void timers_release(struct engine *e)
{
	if (e->timer_kick)
		event_free(e->timer_kick);
	e->timer_kick = NULL;
}

void timers_free_incident(struct incident *inc)
{
	struct incident_extra *x = inc->x;
	for (int k = 0; x && k < STORE_TIMER_KINDS; k++) {
		if (x->timers[k] && x->timers[k]->ev)
			event_free(x->timers[k]->ev);
		free(x->timers[k]);
		x->timers[k] = NULL;
	}
}

bool timers_forget_incident(struct engine *e, struct incident *inc)
{
	bool events = false;
	for (int k = 0; inc->x && k < STORE_TIMER_KINDS; k++) {
		struct inc_timer *t = inc->x->timers[k];
		if (!t)
			continue;
		if (t->armed) {
			t->gen++;
			t->armed = false;
			store_cancel_timer(e->store, inc->id, t->kind);
		}
		if (list_linked(&t->op)) /* the drain must not see it any more */
			list_remove(&t->op);
		events |= t->ev != NULL;
	}
	return events;
}

/* inc's timer of kind, made on first use (most incidents never arm one);
 * NULL on OOM. */
static struct inc_timer *slot(struct incident *inc, enum store_timer_kind kind)
{
	if (!incident_extra(inc))
		return NULL;
	struct inc_timer *t = inc->x->timers[kind];
	if (!t) {
		if (!(t = calloc(1, sizeof(*t))))
			return NULL;
		t->inc = inc;
		t->kind = kind;
		list_init(&t->op);
		inc->x->timers[kind] = t;
	}
	return t;
}

/* Hand t to the loop (once, however often it changes before the drain). */
static void post(struct engine *e, struct inc_timer *t)
{
	if (!list_linked(&t->op))
		list_push_back(&e->timer_ops, &t->op);
	event_active(e->timer_kick, EV_READ, 0);
}

void timers_arm(struct engine *e, struct incident *inc, enum store_timer_kind kind, int64_t ms)
{
	if (!e->base)
		return;
	struct inc_timer *t = slot(inc, kind);
	if (!t) {
		log_error("engine: out of memory arming a timer", "incident", inc->id, NULL);
		return;
	}
	t->gen++;
	t->armed = true;
	t->episode = inc->episode;
	t->due_mono_ms = timestamp_mono_ms() + (ms > 0 ? ms : 0);
	struct store_timer st = {.kind = kind,
				 .episode = inc->episode,
				 .due_ms = ts_ms(timestamp_now()) + (ms > 0 ? ms : 0)};
	snprintf(st.incident, sizeof(st.incident), "%s", inc->id);
	if (store_set_timer(e->store, &st) < 0)
		log_warn("engine: the store did not take a timer", "incident", inc->id, NULL);
	post(e, t);
}

void timers_cancel(struct engine *e, struct incident *inc, enum store_timer_kind kind)
{
	struct inc_timer *t = inc->x ? inc->x->timers[kind] : NULL;
	if (!t || !t->armed)
		return;
	t->gen++; /* whatever fires now is stale */
	t->armed = false;
	store_cancel_timer(e->store, inc->id, kind);
	post(e, t);
}

bool timers_armed(const struct incident *inc, enum store_timer_kind kind)
{
	return inc->x && inc->x->timers[kind] && inc->x->timers[kind]->armed;
}

static void timer_fire_cb(evutil_socket_t fd, short what, void *arg)
{
	struct inc_timer *t = arg;
	struct incident *inc = t->inc;
	struct engine *e = incident_engine(inc);
	pthread_mutex_lock(&e->lock);
	if (t->armed && t->armed_gen == t->gen && t->episode == inc->episode) {
		t->armed = false;
		store_cancel_timer(e->store, inc->id, t->kind);
		engine_timer_fired(e, inc, t->kind);
	}
	pthread_mutex_unlock(&e->lock);
}
