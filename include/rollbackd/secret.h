/*
 * secret: a key, token or password loaded from a file or the environment.
 *
 * Config never holds a secret inline: `{"file": PATH}` or `{"env": NAME}`.
 * The bytes live in memory we wipe on release. A secret's value never goes
 * into a log line, an error message, a metric or the journal; error
 * messages name where it came from (the file path or the variable name).
 */
#ifndef ROLLBACKD_SECRET_H
#define ROLLBACKD_SECRET_H

#include <stdbool.h>
#include <stddef.h>

#include "rollbackd/error.h"

struct secret {
	unsigned char *data; /* NULL when not configured; NUL-terminated */
	size_t len;
};

#define SECRET_MAX_BYTES 65536

/* Read a secret from a file; one trailing "\n" or "\r\n" is dropped. An
 * empty secret is an error. On failure out is untouched and err says which
 * file and why. */
int secret_from_file(const char *path, struct secret *out, struct error *err);
/* Same from an environment variable. */
int secret_from_env(const char *name, struct secret *out, struct error *err);
/* Copy bytes (used by tests and the CLI). */
int secret_from_bytes(const void *p, size_t n, struct secret *out);
static inline bool secret_is_set(const struct secret *s) { return s->data != NULL; }
/* Wipe and free; s is unset afterwards. Safe on an unset secret. */
void secret_release(struct secret *s);

#endif
