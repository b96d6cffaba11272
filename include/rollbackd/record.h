/*
 * record: the one module that knows the byte layout of a journal line's
 * members. Every record type has an enum value and a name; record_decode
 * tokenizes a line once and gives its type, seq, ts and incident, and its
 * other members by name; the typed builders (record_<type>) write the
 * members each type carries, as the journal has always held them (old
 * journals replay identically). journal.c frames a line (seq, ts, type,
 * incident first; prev and hash last) around what a builder wrote.
 *
 * Ownership: a decoded record points into the caller's text and into the
 * caller's struct record_toks; both must outlive it, and neither is
 * copied. Strings come out through record_str into the caller's buffer.
 * Threads: no global state; a struct record_toks and the records decoded
 * with it belong to one thread at a time.
 */
#ifndef ROLLBACKD_RECORD_H
#define ROLLBACKD_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollbackd/json.h"
#include "rollbackd/timestamp.h"

/* Every record type the daemon writes (docs/journal.md). */
enum record_type {
	RECORD_UNKNOWN = 0, /* a type this version does not know: readers skip it */
	RECORD_STARTED,
	RECORD_CONFIG_LOADED,
	RECORD_CONFIG_REJECTED,
	RECORD_NOTIFICATION,
	RECORD_DECISION,
	RECORD_ACTION_STARTED,
	RECORD_ACTION_FINISHED,
	RECORD_RESOLVED,
	RECORD_INCIDENT_STATE,
	RECORD_VERIFY_SAMPLE,
	RECORD_VERIFY_RESULT,
	RECORD_ACK,
	RECORD_APPROVE,
	RECORD_PAUSE,
	RECORD_RESUME,
	RECORD_NOTIFY_INTENT,
	RECORD_NOTIFY_SENT,
	RECORD_NOTIFY_FAILED,
	RECORD_TARGET_CLAIMED,
	RECORD_TARGET_RELEASED,
	RECORD_CHANGE,
	RECORD_CHECKPOINT,
	RECORD_JOURNAL_TRUNCATED,
	RECORD_JOURNAL_RECOVERED,
	/* only in snapshot.jsonl (snapshot.h): state that is not any kept
	 * record's, as the engine held it when the snapshot was written */
	RECORD_SNAPSHOT_TOMB,
	RECORD_SNAPSHOT_ROLLBACK,
	RECORD_SNAPSHOT_BLAST,
	RECORD_TYPE_COUNT
};

/* "decision", ...; "" for RECORD_UNKNOWN or out of range. Static. */
const char *record_type_name(enum record_type t);
/* The type named name[0..n), or RECORD_UNKNOWN. */
enum record_type record_type_of(const char *name, size_t n);

enum record_status {
	RECORD_OK = 0,
	RECORD_ENOTJSON,   /* not JSON (including duplicate keys), or deeper than JSON_MAX_DEPTH */
	RECORD_ENOTOBJECT, /* JSON, but not an object */
	RECORD_ENOTYPE,	   /* an object without a string "type" */
	RECORD_ENOMEM,
};

/* A growable token array, owned by the caller: zero-initialize, pass to
 * every record_decode, record_toks_release at the end. */
struct record_toks {
	struct json_tok *toks;
	size_t cap;
};
void record_toks_release(struct record_toks *t);

#define RECORD_INCIDENT_MAX 63 /* longer incident members read as absent */

/* One decoded line. text, len, where and offset are the caller's. */
struct record {
	const char *text; /* the line, no newline; not owned */
	size_t len;
	const char *where;	   /* segment path, table, ...: for messages; may be NULL */
	uint64_t offset;	   /* position there */
	struct json_doc doc;	   /* the tokens; member lookups go through it */
	enum record_status status; /* what record_decode returned */
	enum record_type type;
	bool has_seq, has_ts, has_incident;
	uint64_t seq;	     /* "seq", when a non-negative integer */
	struct timestamp ts; /* "ts", when it parses */
	/* "incident", when a string of at most RECORD_INCIDENT_MAX bytes; ""
	 * otherwise (and for records that concern none) */
	char incident[RECORD_INCIDENT_MAX + 1];
};

/* Tokenize text[0..len) once into toks (grown as needed) and fill out.
 * On an error out->type is RECORD_UNKNOWN and no member can be read. */
enum record_status record_decode(const char *text, size_t len, struct record *out,
				 struct record_toks *toks);

/* ---- members (top level, by name) --------------------------------------- */

/* Token index of member name's value, or 0 when absent. */
size_t record_member(const struct record *r, const char *name);
/* The string member decoded into dst (NUL-terminated; may hold NULs when
 * the JSON has \u0000), or NULL when absent, not a string, or longer than
 * dstsz - 1 bytes. */
const char *record_str(const struct record *r, const char *name, char *dst, size_t dstsz);
/* Whether the string member is exactly s. */
bool record_str_is(const struct record *r, const char *name, const char *s);
/* The integer member (no fraction or exponent), or dflt. */
int64_t record_int(const struct record *r, const char *name, int64_t dflt);
/* Whether the member is present and an integer; *out gets it. */
bool record_get_int(const struct record *r, const char *name, int64_t *out);
/* The boolean member, or dflt. */
bool record_bool(const struct record *r, const char *name, bool dflt);
/* Token index of the object member, or 0 when absent or not an object. */
size_t record_obj(const struct record *r, const char *name);
/* The raw JSON text of a member's value (an object's braces included),
 * or NULL when absent. */
const char *record_raw(const struct record *r, const char *name, size_t *len);

struct buf;

/* ---- snapshot state lines (snapshot.h) ----------------------------------- */

/* A whole line with its newline, appended to out: an evicted incident's
 * tombstone (id as the engine keys it), a rollback's start (the hourly
 * cap), a target rolled back (blast radius). 0, or -1 without memory. */
int record_snapshot_tomb(struct buf *out, uint64_t id, int episode, int64_t max_starts_ms);
int record_snapshot_rollback(struct buf *out, int64_t at_ms);
int record_snapshot_blast(struct buf *out, uint64_t target_hash, int64_t at_ms);
/* The id (tomb) or target hash (blast) member of such a line, or 0. */
uint64_t record_snapshot_key(const struct record *r);

#endif
