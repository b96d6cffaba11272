/*
 * checkpoint: Ed25519-signed checkpoints of the journal head (SPEC §8).
 *
 * A hash chain alone does not stop someone who can write the journal from
 * truncating it or rewriting it and re-chaining what follows. A checkpoint
 * signs {"seq":N,"hash":"<hex>","ts":"<RFC 3339>"} of the durable head with
 * crypto_sign_detached, is journaled as a "checkpoint" record and is
 * published outside the journal, as the line
 * {"seq":N,"hash":"…","ts":"…","key_id":"<16 hex>","sig":"<128 hex>"}:
 * appended (and fsync'd) to checkpoints.publish.file and/or POSTed to
 * checkpoints.publish.url. `audit verify --checkpoints --pubkey` checks a
 * journal against such lines.
 *
 * Key files (rollbackd keygen): the secret key is the 64-byte libsodium
 * Ed25519 secret key as 128 lowercase hex digits and a newline, mode 0600;
 * FILE.pub is the 32-byte public key as 64 hex digits and a newline. The
 * key id is the first 16 hex digits of the public key.
 *
 * The daemon part runs on a thread of its own with its own event base: the
 * timer, the signing, the file appends and fsyncs, and the POSTs (httpc on
 * libcurl multi, retried with backoff from a small queue of its own) never
 * run on the HTTP loops, so a slow disk or a dead witness never delays
 * intake. It only reads the journal head and appends records, both of
 * which are safe from any thread.
 */
#ifndef ROLLBACKD_CHECKPOINT_H
#define ROLLBACKD_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollbackd/buf.h"
#include "rollbackd/error.h"
#include "rollbackd/journal.h"

#define CHECKPOINT_SK_BYTES 64
#define CHECKPOINT_PK_BYTES 32
#define CHECKPOINT_SIG_BYTES 64
#define CHECKPOINT_KEY_ID_HEX 16
#define CHECKPOINT_TS_MAX 64	     /* longest "ts" accepted in a published line */
#define CHECKPOINT_LINE_MAX 1024     /* longest published line accepted */
#define CHECKPOINT_QUEUE_MAX 10000   /* lines waiting for publish.url; oldest dropped */
#define CHECKPOINT_STOP_WAIT_MS 3000 /* at exit: how long publishing may still take */

struct config;
struct checkpointer;

/* One published checkpoint, as parsed. */
struct checkpoint {
	uint64_t seq;
	char hash[JOURNAL_HASH_HEX + 1];
	char ts[CHECKPOINT_TS_MAX];
	char key_id[CHECKPOINT_KEY_ID_HEX + 1];
	unsigned char sig[CHECKPOINT_SIG_BYTES];
};

/* ---- pure helpers ---------------------------------------------------- */

/* Check a secret key as loaded from its file (data[0..len), the trailing
 * newline already dropped) and, when sk is not NULL, decode it there. 0, or
 * -1 with err saying what is wrong (never quoting the bytes). */
int checkpoint_key_parse(const unsigned char *data, size_t len,
			 unsigned char sk[CHECKPOINT_SK_BYTES], struct error *err);

/* Read a public key file (64 hex digits, one trailing newline allowed).
 * 0, or -1 with err naming the file. */
int checkpoint_pubkey_load(const char *path, unsigned char pk[CHECKPOINT_PK_BYTES],
			   struct error *err);

/* The first 16 hex digits of pk, NUL-terminated. */
void checkpoint_key_id(const unsigned char pk[CHECKPOINT_PK_BYTES],
		       char out[CHECKPOINT_KEY_ID_HEX + 1]);

/* Append the bytes that are signed: {"seq":N,"hash":"H","ts":"T"}. 0 or -1. */
int checkpoint_message(uint64_t seq, const char *hash, const char *ts, struct buf *out);

/* Sign (seq, hash, ts) with sk and append the published line (no newline)
 * to out; sig_hex, when not NULL, gets the signature's 128 hex digits and a
 * NUL. 0 or -1 (out of memory). */
int checkpoint_sign(uint64_t seq, const char *hash, const char *ts,
		    const unsigned char sk[CHECKPOINT_SK_BYTES], struct buf *out, char *sig_hex);

/* Parse one published line, strictly: an object with exactly seq (>= 1),
 * hash (64 lowercase hex), ts (RFC 3339), key_id (16 lowercase hex) and sig
 * (128 hex). 0, or -1 with err. */
int checkpoint_parse(const char *text, size_t len, struct checkpoint *c, struct error *err);

/* Whether c was signed by pk: its key_id is pk's and its signature holds
 * over checkpoint_message. 0, or -1 with err saying which of the two. */
int checkpoint_verify(const struct checkpoint *c, const unsigned char pk[CHECKPOINT_PK_BYTES],
		      struct error *err);

/* ---- commands (exit codes as in cmd.h) ------------------------------- */

/* rollbackd keygen --out FILE: write FILE (secret key, mode 0600) and
 * FILE.pub; refuses when either exists. Prints what it wrote and the key
 * id on stdout; errors on stderr. */
int checkpoint_cmd_keygen(const char *out_path);

/* ---- the daemon ------------------------------------------------------ */

/* Start checkpointing journal j as cfg->checkpoints says: a checkpoint of
 * the durable head every checkpoints.every (skipped when nothing but the
 * last checkpoint record was written since). *out is NULL (and 0 is
 * returned) when checkpoints are not configured. cfg and j must outlive the
 * checkpointer. 0, or -1 with err. */
int checkpoint_start(const struct config *cfg, struct journal *j, struct checkpointer **out,
		     struct error *err);

/* Call after the event loops have ended and everything else that journals
 * at exit (interrupted actions) has appended, and before journal_close:
 * waits for the journal to be durable, takes a last checkpoint, gives
 * publishing up to CHECKPOINT_STOP_WAIT_MS, logs what could not be
 * published, stops the thread and frees c. NULL is a no-op. */
void checkpoint_stop(struct checkpointer *c);

#endif
