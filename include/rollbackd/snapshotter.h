/*
 * snapshotter: when a running daemon writes state_dir/snapshot.jsonl
 * (snapshot.h), so that a start after a crash replays a recent snapshot and
 * the records after it, not everything since the last clean stop.
 *
 * While running, its thread looks once a second at the journal's seq; once
 * the journal grew past the last snapshot by journal.snapshot_records
 * records and by at least as many as that snapshot holds (so that writing
 * snapshots costs at most about as much again as writing the journal), it
 * asks the main loop for one instant's state (engine_snapshot_freeze, and
 * notify's undelivered ids, which live on that loop: about 5 ms per 10 000
 * incidents), waits until the record at that seq is durable, and writes
 * the snapshot up to it from the files, on its own thread. At a clean stop
 * snapshotter_freeze_final and snapshotter_write_final write the last one,
 * of everything.
 *
 * Must never: write a snapshot of state other than the records up to its
 * seq (the freeze and that seq are one instant under the engine's lock),
 * run two writes at once, or hold a loop while it reads or writes files.
 * A write that fails is logged and tried again at the next threshold; the
 * old snapshot stays.
 *
 * Threads: every snapshotter_* on the main thread; stop after the loops
 * ended and before the engine, notify and journal are freed.
 */
#ifndef ROLLBACKD_SNAPSHOTTER_H
#define ROLLBACKD_SNAPSHOTTER_H

#include <stddef.h>
#include <stdint.h>

#include "rollbackd/error.h"

struct engine;
struct event_base;
struct journal;
struct notify;
struct snapshotter;

struct snapshotter_options {
	const char *state_dir;
	struct engine *engine;
	struct notify *notify;
	struct journal *journal;
	struct event_base *base; /* the main loop: notify's */
	uint64_t every_records;	 /* journal.snapshot_records; 0: only snapshotter_final */
	uint64_t last_seq;	 /* the snapshot the start replayed (0: none) */
	uint64_t last_lines;	 /* its body lines */
};

/* 0 with *out (its thread started when every_records > 0), or -1. */
int snapshotter_start(const struct snapshotter_options *o, struct snapshotter **out,
		      struct error *err);
/* Stop its thread (a write in progress finishes first). NULL is fine. */
void snapshotter_stop(struct snapshotter *s);
/* At a clean stop, after snapshotter_stop, with nothing appending any more
 * (loops, notify and checkpoints ended) and before the journal closes:
 * freeze now, with notify's undelivered ids (taken before notify_free;
 * the array stays the caller's). 0, or -1 on OOM (then no snapshot). */
int snapshotter_freeze_final(struct snapshotter *s, char **pending, size_t n_pending);
/* Once journal_close said everything was written: write that snapshot. */
void snapshotter_write_final(struct snapshotter *s);
/* NULL is fine; stops the thread if still running. */
void snapshotter_free(struct snapshotter *s);

#endif
