/*
 * changes: what changed on which target, and when (SPEC §11).
 *
 * POST /v1/changes bodies are parsed and validated here (pure), journaled by
 * the caller as a "change" record, then kept in a store: the latest
 * CHANGES_PER_TARGET changes of each target, at most CHANGES_MAX_TARGETS
 * targets (the target changed least recently is dropped first). The engine
 * asks it whether a target changed in a window (when.changed_within) and
 * for the latest change ({{change.*}} templates). Replay rebuilds the store
 * from the journal's change records.
 *
 * Locking: one mutex per store guards everything in it. It is a leaf lock:
 * callers may hold their own lock (the engine's) while calling in; nothing
 * here calls out, allocates under another lock, or blocks. A second one,
 * changes_ingest_lock, is the callers' (see there).
 */
#ifndef ROLLBACKD_CHANGES_H
#define ROLLBACKD_CHANGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollbackd/alert.h"
#include "rollbackd/buf.h"
#include "rollbackd/error.h"
#include "rollbackd/timestamp.h"

#define CHANGES_PER_TARGET 8
#define CHANGES_MAX_TARGETS 4096
#define CHANGE_TARGET_MAX 512
#define CHANGE_REVISION_MAX 128
#define CHANGE_SOURCE_MAX 64
#define CHANGE_URL_MAX 2048
#define CHANGE_AUTHOR_MAX 256
#define CHANGE_MAX_FUTURE_MS (5 * 60 * 1000) /* an "at" later than now + this is refused */

/* One change; every string is NUL-terminated and owned by the struct. */
struct change {
	char target[CHANGE_TARGET_MAX + 1];
	char revision[CHANGE_REVISION_MAX + 1];
	char previous_revision[CHANGE_REVISION_MAX + 1]; /* "" when not given */
	char source[CHANGE_SOURCE_MAX + 1];		 /* "unknown" when not given */
	char url[CHANGE_URL_MAX + 1];			 /* "" when not given */
	char author[CHANGE_AUTHOR_MAX + 1];		 /* "" when not given */
	struct timestamp at;
};

enum change_format {
	CHANGE_FORMAT_ROLLBACKD, /* SPEC §11's body */
	CHANGE_FORMAT_FLUX,	 /* a Flux notification-controller event (Provider
				    type generic): involvedObject, metadata.revision */
	CHANGE_FORMAT_IGNORED,	 /* a Flux event that is not a new revision (an
				    error, no revision): err says why */
};

/* Parse and validate a POST /v1/changes body (len bytes): SPEC §11's
 * fields, or a Flux event (target = metadata.target, set with the Alert's
 * spec.eventMetadata, else "service=<involvedObject.name>"; revision =
 * metadata.revision; source "flux"; at = timestamp). `at` defaults to now.
 * 0 on success with *fmt saying which; -1 with err naming the field
 * ("revision: expected a non-empty string, got a number") and *json_error
 * true when the body is not JSON at all (err then says where). out is
 * written only on success (and not for CHANGE_FORMAT_IGNORED). */
int changes_parse(const char *body, size_t len, struct timestamp now, struct change *out,
		  enum change_format *fmt, bool *json_error, struct error *err);

/* The members of the journal's "change" record for c (",\"target\":..."),
 * appended to out. 0 or -1 on OOM. */
int changes_record_members(const struct change *c, struct buf *out);

/* The default target of an incident (SPEC §6): its group labels as
 * name=value pairs sorted by name, joined by ",". Appended to out (a C
 * string on success, "" for no labels). 0 or -1 on OOM. */
int changes_default_target(const struct label *group, size_t n, struct buf *out);

struct changes;

/* NULL on OOM. Free with changes_free. */
struct changes *changes_new(void);
void changes_free(struct changes *s);

/* Keep c (copied). An exact repeat of a kept change is not kept twice:
 * returns 1 then, else 0; -1 on OOM. changes_add_seq also remembers the
 * seq of c's journal record (changes_held_seqs). */
int changes_add(struct changes *s, const struct change *c);
int changes_add_seq(struct changes *s, const struct change *c, uint64_t seq);

/* Held around journaling one new change and adding it (the API), and by a
 * snapshot's freeze around taking the journal's seq and
 * changes_held_seqs: every change record up to that seq is then in the
 * store. Taken before the engine's lock, never under it. */
void changes_ingest_lock(struct changes *s);
void changes_ingest_unlock(struct changes *s);

/* The seqs of the change records the store holds (unsorted; those added
 * without a seq left out), in a new array. 0, or -1 on OOM. */
int changes_held_seqs(struct changes *s, uint64_t **seqs, size_t *n);

/* Whether c would be a repeat of a kept change (changes_add would give 1). */
bool changes_has(struct changes *s, const struct change *c);

/* The latest change (by `at`) of target, copied into *out: true, or false
 * when none is known. */
bool changes_latest(struct changes *s, const char *target, struct change *out);

/* The latest change of target with from <= at <= to, copied into *out
 * (out may be NULL): true, or false when none. */
bool changes_within(struct changes *s, const char *target, struct timestamp from,
		    struct timestamp to, struct change *out);

/* How many changes are kept (all targets). */
size_t changes_count(struct changes *s);

/* Journal replay: when rec (a decoded line, rollbackd/record.h) is a
 * "change" record, keep its change and return 1; 0 when it is another
 * record (or a change record that does not validate, logged); -1 on OOM. */
struct record;
int changes_replay_record(struct changes *s, const struct record *rec);

#endif
