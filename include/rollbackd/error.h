/*
 * error: a caller-owned message buffer that internals fill when they fail.
 *
 * Internal functions return 0 / -1 and describe the failure in a struct error
 * ("what, where", lowercase, subject quoted). Callers decide what to do with
 * it: an HTTP status, an exit code, a log line. Never put a secret in one.
 */
#ifndef ROLLBACKD_ERROR_H
#define ROLLBACKD_ERROR_H

#include <stddef.h>

struct error {
	char msg[512]; /* NUL-terminated; empty when nothing was set */
};

/* Format a message into err (truncated to fit). err may be NULL. Returns -1
 * so that callers can write `return error_set(err, ...);`. */
int error_set(struct error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Prepend "prefix: " to the message already in err. Returns -1. */
int error_prefix(struct error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
