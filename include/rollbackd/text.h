/*
 * text: small helpers for error messages shared by the config, rules and
 * template loaders. Pure; no allocation.
 */
#ifndef ROLLBACKD_TEXT_H
#define ROLLBACKD_TEXT_H

#include <stddef.h>

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

#endif
