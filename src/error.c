/*
 * error: fill a caller's struct error. Never allocates.
 */
#include "rollbackd/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int error_set(struct error *err, const char *fmt, ...)
{
	if (!err)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return -1;
}

int error_prefix(struct error *err, const char *fmt, ...)
{
	if (!err)
		return -1;
	char prefix[256];
	char old[sizeof(err->msg)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	size_t plen = strnlen(prefix, sizeof(prefix) - 1);
	size_t olen = strnlen(old, sizeof(old) - 1);
	size_t cap = sizeof(err->msg) - 1, at = 0;
	memcpy(err->msg, prefix, plen < cap ? plen : cap);
	at = plen < cap ? plen : cap;
	if (at + 2 <= cap) {
		memcpy(err->msg + at, ": ", 2);
		at += 2;
	}
	size_t rest = cap - at < olen ? cap - at : olen;
	memcpy(err->msg + at, old, rest);
	err->msg[at + rest] = '\0';
	return -1;
}
