/*
 * text: helpers for error messages (quoting, "did you mean"), UTF-8, hex
 * digits, decimal runs and form components.
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

size_t text_utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
	unsigned char c = s[0];
	uint32_t v, min;
	size_t len;

	if (c < 0x80) {
		if (cp)
			*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2, v = c & 0x1f, min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3, v = c & 0x0f, min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4, v = c & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = (v << 6) | (s[i] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	if (cp)
		*cp = v;
	return len;
}

int text_hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int text_parse_digits(const char *s, size_t len, int64_t *out)
{
	int64_t v = 0;
	if (len == 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		int d = s[i] - '0';
		if (v > (INT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

enum text_form text_form_decode(const char *s, size_t n, char *dst, size_t cap,
				size_t *out_len, bool allow_nul)
{
	size_t o = 0;
	enum text_form r = TEXT_FORM_OK;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '+') {
			c = ' ';
		} else if (c == '%') {
			int hi, lo;
			if (n - i < 3 || (hi = text_hex_value((unsigned char)s[i + 1])) < 0 ||
			    (lo = text_hex_value((unsigned char)s[i + 2])) < 0)
				return TEXT_FORM_BAD;
			c = (unsigned char)(hi << 4 | lo);
			i += 2;
		}
		if (c == '\0' && !allow_nul)
			return TEXT_FORM_BAD;
		if (!dst)
			continue;
		if (o + 1 >= cap)
			r = TEXT_FORM_LONG;
		else
			dst[o++] = (char)c;
	}
	if (dst) {
		dst[o] = '\0';
		if (out_len)
			*out_len = o;
	}
	return r;
}
