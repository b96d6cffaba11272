/*
 * snapshotter: periodic and final snapshots of a running daemon
 * (snapshotter.h has the policy and the rules).
 *
 * Must never: read or write files on a loop, or write a snapshot of state
 * taken at another seq than the one it covers.
 */
#include "rollbackd/snapshotter.h"

#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "rollbackd/buf.h"
#include "rollbackd/engine.h"
#include "rollbackd/journal.h"
#include "rollbackd/log.h"
#include "rollbackd/notify.h"
#include "rollbackd/record.h"
#include "rollbackd/snapshot.h"
#include "rollbackd/timestamp.h"

#define CHECK_MS 1000	  /* how often the thread looks at the journal's seq */
#define DURABLE_POLL_MS 5 /* while waiting for the frozen seq's record */

/* One instant's state: what a snapshot up to seq is written from. */
struct job {
	struct engine_frozen *fz;
	uint64_t seq;
	char **pending; /* notify's undelivered ids, sorted */
	size_t n_pending;
	bool own_pending;
	int64_t freeze_ms;     /* how long the freeze held the engine (and the loop) */
	struct snapshotter *s; /* for job_commit */
};

enum ask { ASK_NONE, ASK_WAITING, ASK_READY };

struct snapshotter {
	struct snapshotter_options o;
	char *state_dir;
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	atomic_bool stop;	       /* set under lock (the cond's waiters), read anywhere */
	enum ask ask;		       /* under lock */
	struct job job;		       /* under lock while ask != ASK_NONE */
	struct event *freeze_ev;       /* on o.base: the loop's half of a freeze */
	uint64_t last_seq, last_lines; /* the thread's, then the stop's */
	struct job final;
	bool have_final;
};

static void job_release(struct job *j)
{
	engine_frozen_free(j->fz);
	if (j->own_pending)
		notify_pending_free(j->pending, j->n_pending);
	memset(j, 0, sizeof(*j));
}

static int freeze(struct snapshotter *s, struct job *j)
{
	memset(j, 0, sizeof(*j));
	int64_t t0 = timestamp_mono_ms();
	int rc = engine_snapshot_freeze(s->o.engine, s->o.journal, &j->seq, &j->fz);
	j->freeze_ms = timestamp_mono_ms() - t0;
	return rc;
}

/* On the main loop: the engine's state and notify's undelivered ids at
 * one instant (notify's outboxes are this loop's). */
static void on_freeze(evutil_socket_t fd, short what, void *arg)
{
	struct snapshotter *s = arg;
	(void)fd;
	(void)what;
	struct job j;
	int64_t t0 = timestamp_mono_ms();
	int rc = freeze(s, &j);
	if (rc == 0 && notify_pending_ids(s->o.notify, &j.pending, &j.n_pending) == 0)
		j.own_pending = true;
	else if (rc == 0)
		rc = -1;
	j.freeze_ms = timestamp_mono_ms() - t0; /* what the loop waited */
	pthread_mutex_lock(&s->lock);
	if (s->ask == ASK_WAITING) {
		if (rc == 0)
			s->job = j;
		else
			job_release(&j);
		s->ask = rc == 0 ? ASK_READY : ASK_NONE;
		pthread_cond_broadcast(&s->cond);
	} else {
		job_release(&j);
	}
	pthread_mutex_unlock(&s->lock);
}

static bool job_keep(const struct record *rec, void *arg)
{
	const struct job *j = arg;
	if (engine_frozen_keep(j->fz, rec))
		return true;
	char id[64];
	return rec->type == RECORD_NOTIFY_INTENT && record_str(rec, "id", id, sizeof(id)) &&
	       notify_pending_has(j->pending, j->n_pending, id);
}

static int job_state(struct buf *out, void *arg)
{
	const struct job *j = arg;
	return engine_frozen_state(j->fz, out);
}

/* Until record seq is durable, off every lock: 0, or -1 with err when the
 * journal is not being written, or (stoppable) the daemon stops. */
static int wait_durable(struct snapshotter *s, uint64_t seq, bool stoppable, struct error *err)
{
	char hash[JOURNAL_HASH_HEX + 1];
	while (journal_durable_head(s->o.journal, hash) < seq) {
		if (stoppable && atomic_load(&s->stop))
			return error_set(err, "rollbackd is stopping");
		if (!journal_available(s->o.journal)) {
			char why[256];
			journal_last_error(s->o.journal, why, sizeof(why));
			return error_set(err, "the journal is not being written: %s", why);
		}
		struct timespec ts = {0, DURABLE_POLL_MS * 1000000L};
		nanosleep(&ts, NULL);
	}
	return 0;
}

/* Until every record appended so far is durable: keep asked the store's
 * live state, which records after the frozen seq may have changed. */
static int job_commit(void *arg, struct error *err)
{
	const struct job *j = arg;
	return wait_durable(j->s, journal_seq(j->s->o.journal), false, err);
}

/* live: the daemon still appends (periodic); else the journal is closed,
 * everything written (the stop). 0, or -1 (logged). */
static int write_job(struct snapshotter *s, struct job *j, bool live)
{
	const char *why = live ? "periodic" : "stop";
	engine_frozen_finish(j->fz);
	j->s = s;
	struct snapshot_source src = {.state = job_state,
				      .keep = job_keep,
				      .arg = j,
				      .upto = j->seq,
				      .commit = live ? job_commit : NULL,
				      .live = live};
	struct snapshot_stats st;
	struct error err = {{0}};
	int64_t t0 = timestamp_mono_ms();
	if (snapshot_write(s->state_dir, &src, &st, &err) < 0) {
		log_error("snapshot not written; the next start replays more of the journal", "why",
			  why, "error", err.msg, NULL);
		return -1;
	}
	s->last_seq = st.seq;
	s->last_lines = st.kept + st.state_lines;
	char seq[24], read[24], kept[24], state[24], bytes[24], ms[24], fms[24];
	snprintf(seq, sizeof(seq), "%" PRIu64, st.seq);
	snprintf(read, sizeof(read), "%" PRIu64, st.read);
	snprintf(kept, sizeof(kept), "%" PRIu64, st.kept);
	snprintf(state, sizeof(state), "%" PRIu64, st.state_lines);
	snprintf(bytes, sizeof(bytes), "%" PRIu64, st.bytes);
	snprintf(ms, sizeof(ms), "%lld", (long long)(timestamp_mono_ms() - t0));
	snprintf(fms, sizeof(fms), "%lld", (long long)j->freeze_ms);
	log_info("snapshot written", "why", why, "seq", seq, "records_read", read, "records_kept",
		 kept, "state_lines", state, "bytes", bytes, "ms", ms, "freeze_ms", fms, NULL);
	return 0;
}

/* Under s->lock: wait up to ms, or until stopped. */
static void nap(struct snapshotter *s, int ms)
{
	struct timespec ts = timestamp_deadline(CLOCK_MONOTONIC, ms);
	if (!s->stop)
		pthread_cond_timedwait(&s->cond, &s->lock, &ts);
}

static bool due(const struct snapshotter *s)
{
	uint64_t need = s->o.every_records > s->last_lines ? s->o.every_records : s->last_lines;
	return journal_seq(s->o.journal) >= s->last_seq + need;
}

static void *run(void *arg)
{
	struct snapshotter *s = arg;
	pthread_mutex_lock(&s->lock);
	while (!s->stop) {
		nap(s, CHECK_MS);
		if (s->stop || !due(s))
			continue;
		s->ask = ASK_WAITING;
		pthread_mutex_unlock(&s->lock);
		event_active(s->freeze_ev, EV_READ, 0);
		pthread_mutex_lock(&s->lock);
		while (!s->stop && s->ask == ASK_WAITING)
			pthread_cond_wait(&s->cond, &s->lock);
		if (s->ask != ASK_READY) { /* stopped, or out of memory */
			s->ask = ASK_NONE;
			continue;
		}
		struct job j = s->job;
		memset(&s->job, 0, sizeof(s->job));
		s->ask = ASK_NONE;
		pthread_mutex_unlock(&s->lock);
		/* its record durable: the files hold everything it covers */
		struct error err = {{0}};
		bool ready = wait_durable(s, j.seq, true, &err) == 0;
		/* after a failure (or a journal that stopped being written), the
		 * next try waits for the next threshold, not the next second */
		if (!ready || write_job(s, &j, true) < 0)
			s->last_seq = j.seq;
		job_release(&j);
		/* this thread's arena held the copies and the write's buffers
		 * (megabytes per 10 000 incidents): give them back, here, off
		 * every loop, once per snapshot */
		malloc_trim(0);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int snapshotter_start(const struct snapshotter_options *o, struct snapshotter **out,
		      struct error *err)
{
	struct snapshotter *s = calloc(1, sizeof(*s));
	if (!s || !(s->state_dir = strdup(o->state_dir))) {
		free(s);
		return error_set(err, "out of memory");
	}
	s->o = *o;
	s->o.state_dir = s->state_dir;
	s->last_seq = o->last_seq;
	s->last_lines = o->last_lines;
	pthread_mutex_init(&s->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* naps survive a clock step */
	pthread_cond_init(&s->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (o->every_records) {
		if (!(s->freeze_ev = event_new(o->base, -1, 0, on_freeze, s))) {
			snapshotter_free(s);
			return error_set(err, "out of memory");
		}
		int rc = pthread_create(&s->thread, NULL, run, s);
		if (rc != 0) {
			snapshotter_free(s);
			return error_set(err, "cannot start the snapshot thread: %s", strerror(rc));
		}
		s->started = true;
	}
	*out = s;
	return 0;
}

void snapshotter_stop(struct snapshotter *s)
{
	if (!s || !s->started)
		return;
	pthread_mutex_lock(&s->lock);
	s->stop = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	s->started = false;
	job_release(&s->job); /* a freeze the thread no longer waited for */
}

int snapshotter_freeze_final(struct snapshotter *s, char **pending, size_t n_pending)
{
	if (!s || freeze(s, &s->final) < 0)
		return -1;
	s->final.pending = pending;
	s->final.n_pending = n_pending;
	s->have_final = true;
	return 0;
}

void snapshotter_write_final(struct snapshotter *s)
{
	if (s && s->have_final)
		(void)write_job(s, &s->final, false);
}

void snapshotter_free(struct snapshotter *s)
{
	if (!s)
		return;
	snapshotter_stop(s);
	job_release(&s->final);
	if (s->freeze_ev)
		event_free(s->freeze_ev);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	free(s->state_dir);
	free(s);
}
