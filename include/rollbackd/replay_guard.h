/*
 * replay_guard: the answers given to signed requests, kept for the skew
 * window, so that a captured request replayed verbatim answers as the
 * first one did and changes nothing (issue 11; SPEC §5 "Authentication").
 *
 * A signature (rollbackd's t=..,v1=.., GitHub's, Grafana's, Slack's v0=)
 * covers a timestamp and the body, and rollbackd accepts it for max_skew:
 * within that window the same bytes verify again. The caller keys an entry
 * on the BLAKE2b-256 of (scheme, signature header, body) — see
 * replay_guard_key — and stores the status and body it answered with;
 * a later request with the same key gets the stored answer back without
 * reaching the engine. Entries expire at the time the caller gives (the
 * end of the skew window) and the oldest go first when the guard is full,
 * so memory is bounded by max_entries and max_bytes.
 *
 * Across a restart the guard starts empty: a replayed webhook then reaches
 * the engine, whose episode records (journaled) make it a `repeat` of the
 * episode it belongs to, and a replayed Slack click finds its ack or
 * approval already used. The guard makes the answer identical; the journal
 * makes the outcome identical.
 *
 * Threads: every function may be called from any thread; one mutex guards
 * the table and nothing slow runs under it (no allocation larger than one
 * answer, no I/O). Never: keep a secret (keys are digests, bodies are the
 * answers rollbackd itself sent, which never hold secrets).
 */
#ifndef ROLLBACKD_REPLAY_GUARD_H
#define ROLLBACKD_REPLAY_GUARD_H

#include <stddef.h>
#include <stdint.h>

#include "rollbackd/buf.h"

#define REPLAY_GUARD_KEY_LEN 32
#define REPLAY_GUARD_ANSWER_MAX (64 * 1024) /* longer answers are not kept */

struct replay_guard;

/* A guard holding at most max_entries answers and max_bytes of answer
 * bodies (both >= 1). NULL on OOM. */
struct replay_guard *replay_guard_new(size_t max_entries, size_t max_bytes);
void replay_guard_free(struct replay_guard *g);

/* key = BLAKE2b-256(scheme NUL signature NUL body). scheme names the
 * header ("rollbackd", "github", "grafana", "slack") so that one value in
 * two headers never collides. */
void replay_guard_key(const char *scheme, const char *signature, const void *body, size_t len,
		      unsigned char key[REPLAY_GUARD_KEY_LEN]);

/* The stored answer for key if it has not expired at now_ms: *status and
 * the body appended to out (out untouched otherwise). 1 found, 0 not found
 * (or expired), -1 on OOM (treated by callers as not found). */
int replay_guard_get(struct replay_guard *g, const unsigned char key[REPLAY_GUARD_KEY_LEN],
		     int64_t now_ms, int *status, struct buf *out);

/* Remember the answer (status, body[0..len)) for key until expires_ms. An
 * existing entry for key is kept (the first answer wins). A body over
 * REPLAY_GUARD_ANSWER_MAX or max_bytes is not stored. 0 stored or already
 * present, 1 not stored (too long), -1 on OOM. */
int replay_guard_put(struct replay_guard *g, const unsigned char key[REPLAY_GUARD_KEY_LEN],
		     int64_t expires_ms, int status, const char *body, size_t len);

/* Entries held now (expired ones count until they are pushed out). */
size_t replay_guard_size(struct replay_guard *g);

#endif
