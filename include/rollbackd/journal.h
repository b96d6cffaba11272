/*
 * journal: the durable, tamper-evident audit log of SPEC §8.
 *
 * Files: state_dir/journal.jsonl is the segment being written; closed
 * segments are state_dir/journal.000001.jsonl, journal.000002.jsonl, ...
 * (six or more digits, increasing). The chain runs across segments: the
 * first record of a new segment has as "prev" the last hash of the one
 * before. Readers take the closed segments in numeric order, then
 * journal.jsonl.
 *
 * A line is B with its final '}' replaced by ,"hash":"<hex>"} where B is
 * {"seq":N,"ts":"RFC3339","type":"...","incident":"...",<members>,"prev":"<hex>"}
 * and hash = hex(BLAKE2b-256(B)).
 *
 * Writer: journal_append formats, chains and buffers a record (cheap, under
 * the journal's lock, callable from any thread) and returns a ticket. A
 * writer thread writes whatever is buffered with one write and one
 * fdatasync (group commit), then tells the waiters. journal_wait runs a
 * callback on the waiter's event base once its ticket is durable or its
 * write failed. On a failed write or sync the file is truncated back to the
 * last durable record, the journal reports itself unavailable, and the
 * records stay buffered and are retried every second until a write
 * succeeds; nothing already accepted is dropped and the chain stays whole.
 */
#ifndef ROLLBACKD_JOURNAL_H
#define ROLLBACKD_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollbackd/error.h"

#define JOURNAL_HASH_HEX 64
#define JOURNAL_FILE "journal.jsonl"
#define JOURNAL_MAX_LINE (1u << 20) /* a longer line is not a record */

struct event_base;
struct journal;

/* ---- reading (audit, replay) ------------------------------------------ */

/* One record as read: the line without its newline, where it is. */
struct journal_line {
	const char *text; /* valid until the next journal_reader_next */
	size_t len;
	const char *segment; /* file path */
	uint64_t offset;     /* byte offset of the line in that file */
};

struct journal_reader;

/* Open every segment of the journal whose current file is path (a
 * journal.jsonl path, or a directory holding one). 0, or -1 with err. A
 * journal with no files at all is empty, not an error. */
int journal_reader_open(const char *path, struct journal_reader **out, struct error *err);
void journal_reader_free(struct journal_reader *r);

/* Next line across segments: 1 with *line, 0 at the end, -1 with err on an
 * I/O error or a line over JOURNAL_MAX_LINE. A last line without a newline
 * is returned with *torn set (it may be a write cut short). */
int journal_reader_next(struct journal_reader *r, struct journal_line *line, bool *torn,
			struct error *err);

/* The i-th segment's path in reading order (closed ones by number, then
 * the current file), or NULL past the last. */
const char *journal_reader_segment(const struct journal_reader *r, size_t i);

/* Go on reading at byte offset of segment (a path journal_reader_segment
 * gave): the next line is the one starting there, then the rest of that
 * segment and the later ones. 0, or -1 with err. */
int journal_reader_seek(struct journal_reader *r, const char *segment, uint64_t offset,
			struct error *err);

/* Check one line: its hash, its prev against prev_hex (64 hex, or NULL to
 * skip), and its seq against want_seq (0 to skip). On success writes the
 * line's seq and hash (hex, NUL-terminated) and returns 0; else -1 with err
 * saying what is wrong. */
int journal_check_line(const char *text, size_t len, const char *prev_hex, uint64_t want_seq,
		       uint64_t *seq, char hash_hex[JOURNAL_HASH_HEX + 1], struct error *err);

/* ---- writing (the daemon) ---------------------------------------------- */

struct journal_options {
	const char *state_dir;
	uint64_t segment_bytes; /* start a new segment past this size; 0: never */
	/* Called for every intact record while opening, in order, before
	 * anything is written (replay). May be NULL. Return -1 to abort. */
	int (*replay)(const struct journal_line *line, void *arg);
	void *replay_arg;
	/* serve --recover: instead of refusing a bad record, replay up to it,
	 * move it and everything after it aside (journal_recovered says where)
	 * and go on from the last good record. */
	bool recover;
	/* Start after a snapshot (snapshot.h): from_segment (a path) holds,
	 * from from_offset on, the records after seq from_seq, whose hash is
	 * from_hash; the records before are neither read, checked nor
	 * replayed (audit verify checks them). NULL: from the first record. */
	const char *from_segment;
	uint64_t from_offset, from_seq;
	const char *from_hash;
};

/* Open (creating state_dir's journal when absent), verify the whole chain
 * and replay it. A torn or unreadable last line of the current segment is
 * truncated away and a "journal_truncated" record says so (buffered, like
 * any append). A bad record anywhere else refuses to open, naming its seq
 * and offset and how to recover (unless opt->recover). Starts the writer
 * thread. 0, or -1 with err. */
int journal_open(const struct journal_options *opt, struct journal **out, struct error *err);

/* True when journal_open (with recover) moved a damaged part aside; what
 * it did, in what[0..n): the bad record, the files it was moved to
 * (NAME.damaged-YYYYMMDDTHHMMSSZ next to each file; nothing is deleted)
 * and the last good seq and hash. The new segment's first record,
 * "journal_recovered", says the same (moved, segment, offset, bad_seq,
 * error, last_good_seq, last_good_hash). The caller starts paused. */
bool journal_recovered(struct journal *j, char *what, size_t n);

/* Write everything buffered (waiting up to timeout_ms for a failing disk),
 * stop the writer and free. Waiters not yet called are called with ok=false
 * only if their base still runs; do this after the loops have ended.
 * True when everything appended is in the files and they are still the
 * journal's (journal_healthy): what a snapshot may be taken from. */
bool journal_close(struct journal *j, int timeout_ms);

/* Append one record of type for incident ("" for none). members is either
 * empty or JSON object members starting with a comma (",\"k\":1,...");
 * the journal adds seq, ts, type, incident and prev. 0 with *ticket, or -1
 * when the journal is unavailable or out of memory. */
int journal_append(struct journal *j, const char *type, const char *incident, const char *members,
		   size_t members_len, uint64_t *ticket);

/* journal_append that also writes the seq the record got (may be NULL). */
int journal_append_seq(struct journal *j, const char *type, const char *incident,
		       const char *members, size_t members_len, uint64_t *ticket, uint64_t *seq);

/* The head of the chain on disk: the seq of the last durable record (0
 * when there is none) and, in hash_hex, its hash (64 zeros for none). What
 * a checkpoint signs: never a record that a crash could still take away. */
uint64_t journal_durable_head(struct journal *j, char hash_hex[JOURNAL_HASH_HEX + 1]);

/* The ticket of the last record appended so far (0 before any). */
uint64_t journal_last_ticket(struct journal *j);

/* Whether every record up to ticket is on disk. */
bool journal_durable(struct journal *j, uint64_t ticket);

/* False after a failed write or sync, until a write succeeds again; and
 * for good once the file was found damaged (see journal_healthy). */
bool journal_available(struct journal *j);

/* Whether the journal can be written and is still the file it writes:
 * the writer thread compares the open file with state_dir/journal.jsonl
 * (fstat against stat: link count, device and inode, size) before each
 * group commit and every 250 ms when idle. A file removed, moved away,
 * replaced, truncated or written by anything else makes the journal
 * unavailable for the rest of the process: nothing more is written (what
 * is appended stays buffered and is reported unwritten at exit), every
 * waiter gets ok=false, so intake answers 503 and no action starts (its
 * action_started never becomes durable). False with the reason (the same
 * text as journal_last_error) in reason[0..n) when not healthy. Callers:
 * /readyz and intake consult journal_available + journal_last_error (the
 * same state); anything that must not act without a journal waits for its
 * record through journal_wait, as the engine does. */
bool journal_healthy(struct journal *j, char *reason, size_t n);

/* Run cb(ok, arg) on base's loop once ticket is durable (ok) or its write
 * failed (!ok: answer 503). When it already is durable, cb runs from the
 * loop on its next iteration too. 0, or -1 (out of memory: cb never runs). */
int journal_wait(struct journal *j, uint64_t ticket, struct event_base *base,
		 void (*cb)(bool ok, void *arg), void *arg);

/* The last error (for logs and /readyz); "" when none. */
void journal_last_error(struct journal *j, char *out, size_t outsz);

/* Seq of the last record (written or buffered). */
uint64_t journal_seq(struct journal *j);

#endif
