/*
 * text: small pure text helpers shared by the loaders (messages, "did you
 * mean"), the link and Slack form parsers, and everything that keeps
 * output valid UTF-8. No allocation.
 */
#ifndef ROLLBACKD_TEXT_H
#define ROLLBACKD_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Copy n bytes of s into buf (sz bytes) for quoting in a message: control
 * bytes become '?' so a message stays one line, and long strings are cut
 * with "...". Returns buf. */
const char *text_show(const char *s, size_t n, char *buf, size_t sz);
/* The same for a NUL-terminated s. */
const char *text_shows(const char *s, char *buf, size_t sz);

/* Optimal string alignment distance (Levenshtein plus adjacent swaps), so
 * "max_body_byte" and "max_bdoy_bytes" both find "max_body_bytes". SIZE_MAX
 * for words over TEXT_KEY_MAX bytes. */
#define TEXT_KEY_MAX 64
size_t text_edit_distance(const char *a, const char *b);

/* The closest word of known (NULL-terminated) within distance 2 of word,
 * for "did you mean '...'?", or NULL. */
const char *text_suggest(const char *word, const char *const *known);

/* UTF-8 (RFC 3629): the length (1..4) of the valid sequence at s[0..n),
 * n > 0, with its code point in *cp (cp may be NULL), or 0 when s does not
 * start with one (overlong forms, surrogates and values past U+10FFFF are
 * invalid). */
size_t text_utf8_next(const unsigned char *s, size_t n, uint32_t *cp);

/* The value of hex digit c (either case), or -1. */
int text_hex_value(unsigned char c);

/* A run of 1..len ASCII digits as a non-negative int64 (no sign, no
 * overflow). 0, or -1. */
int text_parse_digits(const char *s, size_t len, int64_t *out);

/* Decode one application/x-www-form-urlencoded component s[0..n) ('+' is a
 * space, %XX a byte) into dst (cap bytes, NUL-terminated; the decoded
 * length in *out_len when out_len is set). With dst NULL only checks the
 * syntax. BAD on a broken escape, or on a NUL byte unless allow_nul; LONG
 * when it does not fit (decoding goes on, so a later bad escape still wins). */
enum text_form { TEXT_FORM_OK, TEXT_FORM_LONG, TEXT_FORM_BAD };
enum text_form text_form_decode(const char *s, size_t n, char *dst, size_t cap,
				size_t *out_len, bool allow_nul);

#endif
