/*
 * snapshot: state_dir/snapshot.jsonl, a compacted copy of the journal up to
 * one of its records, so that a start replays the snapshot and then only the
 * records after that one: start-up time and memory follow what the daemon
 * keeps (limits.max_incidents), not the journal's age. The journal itself is
 * never changed; `rollbackd audit verify` still checks its whole chain.
 *
 * File: body lines, then one trailer line
 *   {"snapshot":1,"seq":S,"hash":"H","segment":"journal.jsonl","offset":O,
 *    "len":L,"lines":N,"bytes":B,"digest":"D"}
 * S and H are the seq and hash of the last journal record it covers, whose
 * line (L bytes without its newline) starts at byte O of that segment (a
 * file name in state_dir; journal.jsonl may since have been closed and
 * renamed journal.NNNNNN.jsonl: loading looks for the record there too).
 * The body is N lines, B bytes, whose BLAKE2b-256 is D: the state lines
 * (record_snapshot_*: what no kept record carries) first, then byte-exact
 * copies of the journal lines still needed (snapshot_source.keep), in
 * journal order.
 *
 * The trailer also holds what the journal's files were (closed segments:
 * a digest of their names, sizes, mtimes and inodes; journal.jsonl: its
 * size, mtime and inode). While the daemon appends past upto (live), what
 * lies after the last covered record may not be durable: the size written
 * is then the end of that record (0 when it is in a closed segment) and the
 * mtime -1, so that a crash cutting the unsynced tail keeps it usable.
 *
 * Trust: a snapshot is used only when its digest matches, the journal
 * still holds its last record (seq and hash) where it says, the closed
 * segments are as they were and journal.jsonl is the same file, untouched
 * or only grown (a run that did not stop cleanly appended to it), or since
 * closed as the next segment (rotated) and only grown before that;
 * otherwise the start checks and replays the whole journal and logs why. It is written whole to
 * snapshot.jsonl.tmp, synced and renamed: a crash leaves the old one.
 *
 * Must never: be taken from state other than what the files hold up to
 * its last record (the caller freezes its state at a seq, waits until that
 * record is durable, and passes it as snapshot_source.upto; at a clean stop
 * only after journal_close said everything was written), or change the
 * journal. Threads: none of its own; one caller at a time (a running
 * daemon's snapshotter thread, then the stop).
 */
#ifndef ROLLBACKD_SNAPSHOT_H
#define ROLLBACKD_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollbackd/error.h"
#include "rollbackd/journal.h"

#define SNAPSHOT_FILE "snapshot.jsonl"

struct buf;
struct record;
struct snapshot;

/* Where the journal goes on after a snapshot (journal_options.from_*). */
struct snapshot_point {
	char *segment;	 /* path of the segment holding the last covered record */
	uint64_t offset; /* of the line after it */
	uint64_t record_offset, record_len; /* its own line */
	uint64_t seq;
	char hash[JOURNAL_HASH_HEX + 1];
	uint64_t lines; /* body lines */
};

/* Load state_dir's snapshot and check it (digest, and its last record in
 * the journal). 1 with *out; 0 when there is none; -1 with err saying why
 * it cannot be used (the caller replays the whole journal). */
int snapshot_load(const char *state_dir, struct snapshot **out, struct error *err);
const struct snapshot_point *snapshot_point(const struct snapshot *s);
/* Each body line in order through fn (segment: the snapshot's path,
 * offset: in it). 0, or -1 with err when fn failed or the file changed. */
int snapshot_replay(struct snapshot *s, int (*fn)(const struct journal_line *line, void *arg),
		    void *arg, struct error *err);
void snapshot_free(struct snapshot *s);

struct snapshot_source {
	/* Append the next state lines to out (a part of them: it is called
	 * again, out emptied, while it says more follow). 1: more follow, 0:
	 * that was the last, -1 on OOM. */
	int (*state)(struct buf *out, void *arg);
	/* Whether a decoded journal record is still needed. */
	bool (*keep)(const struct record *rec, void *arg);
	void *arg;
	/* The last record to cover: the seq state and keep describe, durable
	 * in the files (0: an empty journal); a running daemon appends past it
	 * while the snapshot is written. */
	uint64_t upto;
	/* Called once the file is written and synced, before it replaces the
	 * old one (NULL: none): 0 to go on, -1 with err to give it up. What
	 * keep asked of live state may have come from records after upto;
	 * the daemon waits here until those are durable too. */
	int (*commit)(void *arg, struct error *err);
	bool live; /* the journal is still written (a periodic snapshot) */
};

struct snapshot_stats {
	uint64_t seq;	      /* the last record covered */
	uint64_t read;	      /* journal records read: the tail since the last snapshot */
	uint64_t kept;	      /* journal lines in the new snapshot */
	uint64_t state_lines; /* state lines in it */
	uint64_t bytes;	      /* its body */
	bool from_previous;   /* built on the previous snapshot */
};

/* Write a new snapshot of state_dir: the state lines, then the lines keep
 * wants of the previous snapshot (when it loads) and of the journal after
 * it up to src->upto (checking the chain: a bad record refuses). 0
 * (nothing written when the journal is empty), or -1 with err (the old
 * snapshot stays). */
int snapshot_write(const char *state_dir, const struct snapshot_source *src,
		   struct snapshot_stats *st, struct error *err);

#endif
