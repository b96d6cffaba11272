/*
 * text: helpers for error messages (quoting, "did you mean").
 */
#include "rollbackd/text.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

const char *text_show(const char *s, size_t n, char *buf, size_t sz)
{
	size_t at = 0, room = sz - 1;
	bool cut = n > room;
	if (cut)
		room -= 3;
	for (; at < n && at < room; at++) {
		unsigned char c = (unsigned char)s[at];
		buf[at] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	if (cut) {
		memcpy(buf + at, "...", 3);
		at += 3;
	}
	buf[at] = '\0';
	return buf;
}

const char *text_shows(const char *s, char *buf, size_t sz)
{
	return text_show(s, strlen(s), buf, sz);
}

size_t text_edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t rows[3][TEXT_KEY_MAX + 1];
	size_t *pp = rows[0], *prev = rows[1], *cur = rows[2];

	if (la > TEXT_KEY_MAX || lb > TEXT_KEY_MAX)
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		prev[j] = j;
	for (size_t i = 1; i <= la; i++) {
		cur[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
			size_t d = prev[j] + 1;
			if (cur[j - 1] + 1 < d)
				d = cur[j - 1] + 1;
			if (prev[j - 1] + cost < d)
				d = prev[j - 1] + cost;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    pp[j - 2] + 1 < d)
				d = pp[j - 2] + 1;
			cur[j] = d;
		}
		size_t *t = pp;
		pp = prev;
		prev = cur;
		cur = t;
	}
	return prev[lb];
}

const char *text_suggest(const char *word, const char *const *known)
{
	const char *best = NULL;
	size_t best_d = 3; /* suggest only within distance 2 */
	for (const char *const *k = known; *k; k++) {
		size_t d = text_edit_distance(word, *k);
		if (d < best_d) {
			best_d = d;
			best = *k;
		}
	}
	return best;
}
