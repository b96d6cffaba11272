/*
 * buf: a growable byte buffer (after git's strbuf and curl's dynbuf).
 *
 * data is always NUL-terminated once anything was added, so it can be used
 * as a C string when the content has no NULs. A buffer may have a cap
 * (max > 0): an append that would pass it fails with -1 and leaves the
 * buffer unchanged, which is how every input we read stays bounded.
 */
#ifndef ROLLBACKD_BUF_H
#define ROLLBACKD_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data;   /* NULL until the first append */
	size_t len;   /* bytes used, excluding the NUL */
	size_t alloc; /* bytes allocated */
	size_t max;   /* 0 = unbounded, else the most len may reach */
};

#define BUF_INIT {NULL, 0, 0, 0}

/* Set up an empty buffer with a cap (0 = none). */
void buf_init(struct buf *b, size_t max);
/* Free the contents; the buffer is empty and reusable afterwards. */
void buf_release(struct buf *b);
/* Forget the contents but keep the allocation. */
void buf_reset(struct buf *b);
/* Hand the allocation to the caller (who frees it); the buffer is empty.
 * Returns an empty malloc'd string when nothing was added, NULL on OOM. */
char *buf_detach(struct buf *b, size_t *len);

/* Appends: 0 on success, -1 on OOM or when the cap would be passed (the
 * buffer is then unchanged, except buf_addf which may leave a prefix). */
int buf_grow(struct buf *b, size_t extra);
int buf_add(struct buf *b, const void *p, size_t n);
int buf_adds(struct buf *b, const char *s);
int buf_addc(struct buf *b, char c);
int buf_addf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int buf_vaddf(struct buf *b, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
/* Append s (n bytes) as a quoted JSON string, escaping as RFC 8259 asks. */
int buf_add_json_str(struct buf *b, const char *s, size_t n);
/* Append lowercase hex of n bytes. */
int buf_add_hex(struct buf *b, const unsigned char *p, size_t n);

#endif
