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
/* Whether t is one of snapshot.jsonl's state lines (RECORD_SNAPSHOT_*). */
bool record_is_snapshot_state(enum record_type t);
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

/* ---- builders ------------------------------------------------------------- */

/*
 * record_build_<type>(members, v) appends the members that type carries,
 * each as ,"name":value, in the order the journal has always held them
 * (journal.c frames them: seq, ts, type, incident first; prev, hash last).
 * Strings are JSON-escaped; numbers as integers or %.17g. A const char *
 * member that is NULL (or, where said, "") is left out. 0, or -1 without
 * memory (members then holds a partial write: release it).
 */
struct buf;
struct label;

struct record_started {
	const char *version;
	int pid;
};
struct record_config_loaded {
	const char *rules_path;
	size_t rules;
	const char *rules_digest;
	bool dry_run, reload;
};
struct record_config_rejected {
	const char *error;
};
/* pause and resume: who (the API route or "signal") */
struct record_pause {
	const char *by;
};
/* ack and approve: who, and through what */
struct record_use {
	const char *by, *via;
};
struct record_change {
	const char *target, *revision;
	const char *previous_revision; /* NULL or "": absent */
	struct timestamp at;
	const char *source;
	const char *url, *author; /* NULL or "": absent */
};
struct record_checkpoint {
	uint64_t seq; /* the signed head */
	const char *hash, *ts;
	const char *key_id, *sig;
};
struct record_journal_truncated {
	const char *segment;
	uint64_t offset, bytes;
};
struct record_journal_recovered {
	const char *moved; /* a JSON array of the moved names, moved_len bytes */
	size_t moved_len;
	const char *segment;
	uint64_t offset, bad_seq;
	const char *error;
	uint64_t last_good_seq;
	const char *last_good_hash;
};
struct record_target_claimed {
	const char *target;
	uint64_t epoch;
	int64_t held_until_ms;
};
struct record_target_released {
	const char *target;
	uint64_t epoch;
};
struct record_verify_sample {
	const char *rule;
	int episode;
	const char *query;
	bool has_value; /* a non-finite value is written as "+Inf" / "-Inf" */
	double value;
	bool below; /* the threshold is "below" (else "above") */
	double threshold;
	int64_t for_s;
	size_t series;
	bool holds;
	const char *error; /* NULL: absent */
};
struct record_verify_result {
	const char *rule;
	int episode;
	const char *result, *reason;
};
struct record_incident_state {
	const char *rule;
	int episode;
	const char *state, *reason;
};
struct record_resolved {
	const char *rule;
	int episode;
};
struct record_action_started {
	const char *rule;
	int episode;
	size_t index;
	bool exec; /* "exec", else "http" */
	/* the (redacted) action as a compact JSON object whose first member is
	 * "type":"exec" or "type":"http"; its other members follow "action" */
	const char *action_json;
};
struct record_action_finished {
	const char *rule;
	int episode;
	size_t index;
	bool exec; /* "exec" with exit_code, else "http" with status_code */
	const char *result;
	int exit_code, status_code;
	int64_t duration_ms;
	const char *output;
	const char *incident_state; /* NULL: absent */
};
/* ,"value":{"from":...,"value":number or null[,"above":..][,"below":..]} */
struct record_value {
	const char *from; /* "labels.x" or "annotations.x" */
	bool has_number;  /* else null */
	double number;
	bool has_above, has_below;
	double above, below;
};
struct record_decision {
	const char *rule, *fingerprint, *outcome, *reason;
	bool has_starts_at;
	struct timestamp starts_at;
	bool has_incident; /* episode, state and group are written */
	int episode;
	const char *state;
	const char *target;	    /* NULL: absent */
	const char *coalesced_into; /* NULL or "": absent */
	const struct label *group;
	size_t n_group;
	bool has_alert; /* labels and annotations (and value) are written */
	const struct label *labels, *annotations;
	size_t n_labels, n_annotations;
	const struct record_value *value; /* NULL: absent (only with has_alert) */
	const char *trigger;		  /* NULL: absent */
};
struct record_notification {
	const char *receiver, *group_key, *external_url;
	const char *status, *fingerprint;
	struct timestamp starts_at, ends_at;
	const struct label *labels, *annotations;
	size_t n_labels, n_annotations;
	const char *generator_url;
	int64_t truncated_alerts; /* > 0: written */
	/* alert members longer than this are cut to status, fingerprint,
	 * startsAt, endsAt and "truncated":true; 0: never cut */
	size_t alert_max;
	const char *digest;
};
struct record_notify_intent {
	const char *id, *channel, *event;
	const char *notice; /* the notice's JSON object, notice_len bytes */
	size_t notice_len;
};
struct record_notify_sent {
	const char *id, *channel;
	int status_code, attempts;
	const char *extra; /* a channel's own members (",\"ts\":..."), or NULL */
};
struct record_notify_failed {
	const char *id, *channel;
	int status_code;
	const char *error; /* cleaned to UTF-8 and cut to error_max bytes */
	size_t error_max;
	int attempts;
	const char *event; /* NULL: absent */
};

int record_build_started(struct buf *m, const struct record_started *v);
int record_build_config_loaded(struct buf *m, const struct record_config_loaded *v);
int record_build_config_rejected(struct buf *m, const struct record_config_rejected *v);
int record_build_pause(struct buf *m, const struct record_pause *v);
int record_build_resume(struct buf *m, const struct record_pause *v);
int record_build_ack(struct buf *m, const struct record_use *v);
int record_build_approve(struct buf *m, const struct record_use *v);
int record_build_change(struct buf *m, const struct record_change *v);
int record_build_checkpoint(struct buf *m, const struct record_checkpoint *v);
/* {"seq":N,"hash":"..","ts":".."}: what a checkpoint signs, and its
 * "signed" member (checkpoint_message is this). 0 or -1. */
int record_checkpoint_signed(struct buf *m, uint64_t seq, const char *hash, const char *ts);
int record_build_journal_truncated(struct buf *m, const struct record_journal_truncated *v);
int record_build_journal_recovered(struct buf *m, const struct record_journal_recovered *v);
int record_build_target_claimed(struct buf *m, const struct record_target_claimed *v);
int record_build_target_released(struct buf *m, const struct record_target_released *v);
int record_build_verify_sample(struct buf *m, const struct record_verify_sample *v);
int record_build_verify_result(struct buf *m, const struct record_verify_result *v);
int record_build_incident_state(struct buf *m, const struct record_incident_state *v);
int record_build_resolved(struct buf *m, const struct record_resolved *v);
int record_build_action_started(struct buf *m, const struct record_action_started *v);
int record_build_action_finished(struct buf *m, const struct record_action_finished *v);
int record_build_decision(struct buf *m, const struct record_decision *v);
int record_build_notification(struct buf *m, const struct record_notification *v);
int record_build_notify_intent(struct buf *m, const struct record_notify_intent *v);
int record_build_notify_sent(struct buf *m, const struct record_notify_sent *v);
int record_build_notify_failed(struct buf *m, const struct record_notify_failed *v);
/* notify_sent or notify_failed through a store's outbox (store.h
 * outbox_done): the id, then the members the store was given (len bytes,
 * each ,"name":value) as they are. */
int record_build_notify_done(struct buf *m, const char *id, const char *members, size_t len);

/* Shared pieces: ,"name":"escaped" ("" for NULL); ,"name":"<RFC 3339>";
 * {"name":"value",...}. */
int record_member_str(struct buf *m, const char *name, const char *s);
int record_member_ts(struct buf *m, const char *name, struct timestamp t);
int record_labels_json(struct buf *m, const struct label *items, size_t n);

#endif
