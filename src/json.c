/*
 * json: a strict, allocation-free JSON tokenizer (see json.h).
 *
 * One forward pass with an explicit container stack; the lexer follows
 * jansson's (load.c) closely enough that accept/reject, the error's line and
 * most texts agree, because alert.c's "invalid JSON at line L, column C: ..."
 * messages were jansson's and reach Alertmanager's logs. It must never
 * allocate, never read past len, and never accept what jansson rejects
 * (tests/fuzz/fuzz_json_diff.c checks that).
 *
 * Over 800 lines because the lexer, the duplicate-name check and the parser
 * form one forward pass over the input and share the token layout; the lexer
 * alone is about 570 lines of grammar.
 */
#include "rollbackd/json.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "rollbackd/text.h"

/* ---- lexer ------------------------------------------------------------ */

enum lex_type {
	LT_EOF,
	LT_LBRACE,
	LT_RBRACE,
	LT_LBRACK,
	LT_RBRACK,
	LT_COLON,
	LT_COMMA,
	LT_STRING,
	LT_NUMBER,
	LT_TRUE,
	LT_FALSE,
	LT_NULL,
	LT_INVALID, /* no error yet: the parser says "invalid token" */
	LT_ERROR,   /* the lexer has set the error */
};

struct lexeme {
	enum lex_type type;
	size_t start;	/* first byte (the quote for strings) */
	size_t end;	/* one past the last byte of the token */
	size_t ctx_end; /* jansson's saved text is [start, ctx_end) */
	uint32_t size;	/* string: decoded bytes */
	uint32_t hash;	/* string in name position: hash of the decoded bytes */
	bool escaped;	/* string has escapes */
	bool has_nul;	/* string decodes to a NUL byte */
	bool is_int;	/* number without fraction or exponent */
};

struct parser {
	struct json_doc *doc;
	const unsigned char *s;
	size_t len;
	size_t pos;			/* next byte to lex */
	uint32_t stack[JSON_MAX_DEPTH]; /* open containers, as token indices */
	size_t depth;
	struct lexeme lx;
};

#define FNV32_OFFSET 2166136261u
#define FNV32_PRIME 16777619u

/* Bytes that may appear raw in a string with nothing to check. */
static const unsigned char plain_byte[256] = {
    [0x20 ... 0x21] = 1, /* all of 0x20-0x7f but '"' (0x22) and '\\' (0x5c) */
    [0x23 ... 0x5b] = 1,
    [0x5d ... 0x7f] = 1,
};

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* Skip plain string bytes from i, eight at a time while they last: a word
 * is plain when no byte is >= 0x80, < 0x20, '"' or '\\'. */
static size_t skip_plain(const unsigned char *s, size_t i, size_t n)
{
	while (i + 8 <= n) {
		uint64_t w, q, b;
		memcpy(&w, s + i, 8);
		q = w ^ (ONES * '"');
		b = w ^ (ONES * '\\');
		/* exact "any byte" tests (Hacker's Delight haszero / hasless) */
		uint64_t bad = (w & HIGHS) | ((w - ONES * 0x20) & ~w & HIGHS) |
			       ((q - ONES) & ~q & HIGHS) | ((b - ONES) & ~b & HIGHS);
		if (bad)
			break;
		i += 8;
	}
	while (i < n && plain_byte[s[i]])
		i++;
	return i;
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Length of the well-formed UTF-8 sequence at s (s[0] >= 0x80), or 0; the
 * same rules as jansson's utf8_check_first / utf8_check_full. */
static size_t utf8_len(const unsigned char *s, size_t avail)
{
	unsigned c = s[0];
	if (c < 0xc2 || c > 0xf4)
		return 0;
	size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
	if (avail < n)
		return 0;
	uint32_t v = c & (n == 2 ? 0x1f : n == 3 ? 0x0f : 0x07);
	for (size_t k = 1; k < n; k++) {
		if ((s[k] & 0xc0) != 0x80)
			return 0;
		v = (v << 6) | (s[k] & 0x3f);
	}
	if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff) || (n == 3 && v < 0x800) ||
	    (n == 4 && v < 0x10000))
		return 0;
	return n;
}

static size_t utf8_encode(uint32_t v, unsigned char out[4])
{
	if (v < 0x80) {
		out[0] = (unsigned char)v;
		return 1;
	}
	if (v < 0x800) {
		out[0] = (unsigned char)(0xc0 | (v >> 6));
		out[1] = (unsigned char)(0x80 | (v & 0x3f));
		return 2;
	}
	if (v < 0x10000) {
		out[0] = (unsigned char)(0xe0 | (v >> 12));
		out[1] = (unsigned char)(0x80 | ((v >> 6) & 0x3f));
		out[2] = (unsigned char)(0x80 | (v & 0x3f));
		return 3;
	}
	out[0] = (unsigned char)(0xf0 | (v >> 18));
	out[1] = (unsigned char)(0x80 | ((v >> 12) & 0x3f));
	out[2] = (unsigned char)(0x80 | ((v >> 6) & 0x3f));
	out[3] = (unsigned char)(0x80 | (v & 0x3f));
	return 4;
}

static uint32_t hex4(const unsigned char *s)
{
	return (uint32_t)(text_hex_value(s[0]) << 12 | text_hex_value(s[1]) << 8 | text_hex_value(s[2]) << 4 |
			  text_hex_value(s[3]));
}

/* Decode the escape at s[*i] (a backslash) of an already validated string
 * into out; advances *i past it. */
static size_t decode_escape(const unsigned char *s, size_t *i, unsigned char out[4])
{
	unsigned char e = s[*i + 1];
	*i += 2;
	switch (e) {
	case 'b':
		out[0] = '\b';
		return 1;
	case 'f':
		out[0] = '\f';
		return 1;
	case 'n':
		out[0] = '\n';
		return 1;
	case 'r':
		out[0] = '\r';
		return 1;
	case 't':
		out[0] = '\t';
		return 1;
	case 'u':
		break;
	default: /* " \ / */
		out[0] = e;
		return 1;
	}
	uint32_t v = hex4(s + *i);
	*i += 4;
	if (v >= 0xd800 && v <= 0xdbff) { /* validated: a low surrogate follows */
		uint32_t lo = hex4(s + *i + 2);
		*i += 6;
		v = ((v - 0xd800) << 10) + (lo - 0xdc00) + 0x10000;
	}
	return utf8_encode(v, out);
}

/* Line and column of byte off as jansson counts them: columns are
 * characters (UTF-8 lead bytes) since the last newline. */
static void locate(struct json_doc *doc, const unsigned char *s, size_t off)
{
	int line = 1, col = 0;
	for (size_t i = 0; i < off; i++) {
		if (s[i] == '\n') {
			line++;
			col = 0;
		} else if (s[i] < 0x80 || (s[i] >= 0xc2 && s[i] <= 0xf4)) {
			col++;
		}
	}
	doc->line = line;
	doc->column = col;
	doc->position = off;
}

/* The error text: msg, then jansson's context: " near '<saved text>'"
 * when it has 1 to 20 bytes, " near end of file" when it is empty (but not
 * for UTF-8 errors), nothing when it is longer. */
static void set_error(struct parser *p, enum json_status st, size_t err_off, size_t ctx_start,
		      size_t ctx_end, bool utf8err, const char *msg)
{
	struct json_doc *doc = p->doc;
	size_t ctx_len = ctx_end > ctx_start ? ctx_end - ctx_start : 0;
	const char *ctx = (const char *)p->s + ctx_start;
	size_t shown = ctx_len ? strnlen(ctx, ctx_len) : 0; /* jansson's is a C string */

	doc->status = st;
	if (ctx_len > 0 && shown > 0) {
		if (ctx_len <= 20)
			snprintf(doc->text_err, sizeof(doc->text_err), "%s near '%.*s'", msg,
				 (int)shown, ctx);
		else
			snprintf(doc->text_err, sizeof(doc->text_err), "%s", msg);
	} else if (utf8err) {
		snprintf(doc->text_err, sizeof(doc->text_err), "%s", msg);
	} else {
		snprintf(doc->text_err, sizeof(doc->text_err), "%s near end of file", msg);
	}
	locate(doc, p->s, err_off);
}

static size_t find_dup(const struct json_doc *doc, size_t o, bool open);

/* Report an error, unless an open object already holds a duplicate name:
 * jansson checks names as it reads them, so that error came first. */
#if defined(__GNUC__)
__attribute__((format(printf, 7, 8)))
#endif
static enum lex_type
fail(struct parser *p, enum json_status st, size_t err_off, size_t ctx_start, size_t ctx_end,
     bool utf8err, const char *fmt, ...)
{
	char msg[JSON_ERR_TEXT];
	va_list ap;
	size_t dup = 0;

	for (size_t d = 0; d < p->depth; d++) {
		size_t o = p->stack[d];
		if (p->doc->toks[o].kind != JSON_KIND_OBJECT)
			continue;
		size_t j = find_dup(p->doc, o, true);
		if (j && (!dup || p->doc->toks[j].end < p->doc->toks[dup].end))
			dup = j;
	}
	if (dup) {
		const struct json_tok *k = &p->doc->toks[dup];
		set_error(p, JSON_ESYNTAX, k->end + 1, k->start - 1, k->end + 1, false,
			  "duplicate object key");
		return LT_ERROR;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	set_error(p, st, err_off, ctx_start, ctx_end, utf8err, msg);
	return LT_ERROR;
}

static enum lex_type lex_string(struct parser *p, size_t q, bool name)
{
	const unsigned char *s = p->s;
	size_t n = p->len, i = q + 1;
	uint32_t size = 0, h = FNV32_OFFSET;
	bool escaped = false, has_nul = false;
	char bad[40] = ""; /* first surrogate error: reported at the end, as jansson does */
	struct lexeme *lx = &p->lx;

	for (;;) {
		size_t run = i;
		i = skip_plain(s, i, n);
		if (name)
			for (size_t k = run; k < i; k++)
				h = (h ^ s[k]) * FNV32_PRIME;
		size += (uint32_t)(i - run);
		if (i >= n)
			return fail(p, JSON_ESYNTAX, n, q, n, false, "premature end of input");
		unsigned char c = s[i];
		if (c == '"')
			break;
		if (c < 0x20) {
			if (c == '\n')
				return fail(p, JSON_ESYNTAX, i, q, i, false, "unexpected newline");
			return fail(p, JSON_ESYNTAX, i, q, i, false, "control character 0x%x", c);
		}
		unsigned char out[4];
		size_t out_n = 0;
		if (c >= 0x80) {
			size_t u = utf8_len(s + i, n - i);
			if (!u)
				return fail(p, JSON_ESYNTAX, i, q, i, true,
					    "unable to decode byte 0x%x", c);
			memcpy(out, s + i, u);
			out_n = u;
			i += u;
		} else { /* backslash */
			escaped = true;
			if (i + 1 >= n)
				return fail(p, JSON_ESYNTAX, n, q, n, false, "invalid escape");
			unsigned char e = s[i + 1];
			if (e == 'u') {
				for (size_t k = i + 2; k < i + 6; k++) {
					if (k >= n)
						return fail(p, JSON_ESYNTAX, n, q, n, false,
							    "invalid escape");
					if (text_hex_value(s[k]) < 0)
						return fail(p, JSON_ESYNTAX, k + 1, q, k + 1, false,
							    "invalid escape");
				}
				uint32_t v = hex4(s + i + 2);
				if (v >= 0xd800 && v <= 0xdbff) {
					bool pair =
					    i + 12 <= n && s[i + 6] == '\\' && s[i + 7] == 'u' &&
					    text_hex_value(s[i + 8]) >= 0 && text_hex_value(s[i + 9]) >= 0 &&
					    text_hex_value(s[i + 10]) >= 0 && text_hex_value(s[i + 11]) >= 0;
					uint32_t lo = pair ? hex4(s + i + 8) : 0;
					if (pair && lo >= 0xdc00 && lo <= 0xdfff) {
						v = ((v - 0xd800) << 10) + (lo - 0xdc00) + 0x10000;
						out_n = utf8_encode(v, out);
						i += 12;
					} else {
						if (!bad[0] && pair)
							snprintf(bad, sizeof(bad),
								 "invalid Unicode '\\u%04X\\u%04X'",
								 (unsigned)v, (unsigned)lo);
						else if (!bad[0])
							snprintf(bad, sizeof(bad),
								 "invalid Unicode '\\u%04X'",
								 (unsigned)v);
						i += 6;
					}
				} else if (v >= 0xdc00 && v <= 0xdfff) {
					if (!bad[0])
						snprintf(bad, sizeof(bad),
							 "invalid Unicode '\\u%04X'", (unsigned)v);
					i += 6;
				} else {
					if (v == 0)
						has_nul = true;
					out_n = utf8_encode(v, out);
					i += 6;
				}
			} else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' ||
				   e == 'n' || e == 'r' || e == 't') {
				size_t k = i;
				out_n = decode_escape(s, &k, out);
				i += 2;
			} else {
				return fail(p, JSON_ESYNTAX, i + 2, q, i + 2, false,
					    "invalid escape");
			}
		}
		if (name)
			for (size_t k = 0; k < out_n; k++)
				h = (h ^ out[k]) * FNV32_PRIME;
		size += (uint32_t)out_n;
	}
	if (bad[0])
		return fail(p, JSON_ESYNTAX, i + 1, q, i + 1, false, "%s", bad);
	lx->start = q;
	lx->end = i + 1;
	lx->ctx_end = i + 1;
	lx->size = size;
	lx->hash = h;
	lx->escaped = escaped;
	lx->has_nul = has_nul;
	return LT_STRING;
}

/* 2^1024 - 2^970: the smallest magnitude strtod rounds to infinity. */
static const char dbl_overflow_digits[] =
    "17976931348623158079372897140530341507993413271003782693617377898044496829276475094664901"
    "79775872070963302864166928879109465555478519404026306574886715058206819089020007083836762"
    "73854845817711531764475730270069855571366959622842914819860834936475292719074168444365510"
    "704342711559699508093042880177904174497792";

/* Whether the real s[0..n) (grammar already checked) overflows a double,
 * i.e. jansson's "real number overflow", decided exactly on the digits. */
static bool real_overflows(const unsigned char *s, size_t n)
{
	size_t i = 0, int_digits = 0, lead_zeros = 0;
	size_t first = SIZE_MAX; /* first significant digit */
	if (s[i] == '-')
		i++;
	for (; i < n && is_digit(s[i]); i++, int_digits++) {
		if (first == SIZE_MAX && s[i] != '0')
			first = i;
		else if (first == SIZE_MAX)
			lead_zeros++;
	}
	size_t frac_start = i;
	if (i < n && s[i] == '.') {
		for (i++; i < n && is_digit(s[i]); i++) {
			if (first == SIZE_MAX && s[i] != '0')
				first = i;
			else if (first == SIZE_MAX)
				lead_zeros++;
		}
	}
	size_t mant_end = i;
	if (first == SIZE_MAX)
		return false; /* zero */
	int64_t exp = 0;
	bool neg_exp = false;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (s[i] == '+' || s[i] == '-')
			neg_exp = s[i++] == '-';
		for (; i < n && is_digit(s[i]); i++)
			if (exp < 1000000000)
				exp = exp * 10 + (s[i] - '0');
	}
	if (neg_exp)
		exp = -exp;
	/* value = 0.D * 10^e10 with D the significant digits */
	int64_t e10 = (int64_t)int_digits - (int64_t)lead_zeros + exp;
	int64_t limit = (int64_t)sizeof(dbl_overflow_digits) - 1;
	if (e10 != limit)
		return e10 > limit;
	size_t k = 0;
	for (size_t j = first; j < mant_end; j++) {
		if (j == frac_start)
			continue; /* the '.' */
		char d = (char)s[j];
		char t = k < (size_t)limit ? dbl_overflow_digits[k] : '0';
		k++;
		if (d != t)
			return d > t;
	}
	/* D is a prefix of the threshold (padded with zeros): equal or less */
	for (; k < (size_t)limit; k++)
		if (dbl_overflow_digits[k] != '0')
			return false;
	return true;
}

static enum lex_type lex_number(struct parser *p, size_t st)
{
	const unsigned char *s = p->s;
	size_t n = p->len, i = st;
	bool neg = false;
	struct lexeme *lx = &p->lx;

	lx->start = st;
	if (s[i] == '-') {
		neg = true;
		i++;
	}
	if (i < n && s[i] == '0') {
		i++;
		if (i < n && is_digit(s[i]))
			goto invalid;
	} else if (i < n && is_digit(s[i])) {
		while (i < n && is_digit(s[i]))
			i++;
	} else {
		goto invalid;
	}
	if (!(i < n && (s[i] == '.' || s[i] == 'e' || s[i] == 'E'))) {
		size_t d0 = st + neg, nd = i - d0;
		const char *max = neg ? "9223372036854775808" : "9223372036854775807";
		if (nd > 19 || (nd == 19 && memcmp(s + d0, max, 19) > 0))
			return fail(p, JSON_ESYNTAX, i, st, i, false, "%s",
				    neg ? "too big negative integer" : "too big integer");
		lx->end = lx->ctx_end = i;
		lx->is_int = true;
		return LT_NUMBER;
	}
	if (s[i] == '.') {
		i++;
		if (!(i < n && is_digit(s[i]))) {
			/* jansson consumes the '.' but does not save it */
			lx->end = i;
			lx->ctx_end = i - 1;
			return LT_INVALID;
		}
		while (i < n && is_digit(s[i]))
			i++;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		if (!(i < n && is_digit(s[i])))
			goto invalid;
		while (i < n && is_digit(s[i]))
			i++;
	}
	if (real_overflows(s + st, i - st))
		return fail(p, JSON_ESYNTAX, i, st, i, false, "real number overflow");
	lx->end = lx->ctx_end = i;
	lx->is_int = false;
	return LT_NUMBER;
invalid:
	lx->end = lx->ctx_end = i;
	return LT_INVALID;
}

/* The next token from p->pos; name: a string here would be a member name. */
static enum lex_type lex(struct parser *p, bool name)
{
	const unsigned char *s = p->s;
	size_t n = p->len, i = p->pos;
	struct lexeme *lx = &p->lx;
	enum lex_type t;

	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	lx->start = i;
	lx->end = lx->ctx_end = i + 1;
	if (i >= n) {
		lx->end = lx->ctx_end = n;
		t = LT_EOF;
		goto out;
	}
	switch (s[i]) {
	case '{':
		t = LT_LBRACE;
		goto out;
	case '}':
		t = LT_RBRACE;
		goto out;
	case '[':
		t = LT_LBRACK;
		goto out;
	case ']':
		t = LT_RBRACK;
		goto out;
	case ':':
		t = LT_COLON;
		goto out;
	case ',':
		t = LT_COMMA;
		goto out;
	case '"':
		t = lex_string(p, i, name);
		goto out;
	default:
		break;
	}
	if (s[i] == '-' || is_digit(s[i])) {
		t = lex_number(p, i);
		goto out;
	}
	if (is_alpha(s[i])) {
		size_t j = i;
		while (j < n && is_alpha(s[j]))
			j++;
		lx->end = lx->ctx_end = j;
		if (j - i == 4 && memcmp(s + i, "true", 4) == 0)
			t = LT_TRUE;
		else if (j - i == 5 && memcmp(s + i, "false", 5) == 0)
			t = LT_FALSE;
		else if (j - i == 4 && memcmp(s + i, "null", 4) == 0)
			t = LT_NULL;
		else
			t = LT_INVALID;
		goto out;
	}
	if (s[i] >= 0x80) {
		size_t u = utf8_len(s + i, n - i);
		if (!u) {
			t = fail(p, JSON_ESYNTAX, i, i, i, true, "unable to decode byte 0x%x",
				 s[i]);
			goto out;
		}
		lx->end = lx->ctx_end = i + u;
	}
	t = LT_INVALID;
out:
	lx->type = t;
	p->pos = lx->end;
	return t;
}

/* ---- duplicate names -------------------------------------------------- */

/* Compare the decoded bytes of two names of equal decoded size. */
static bool name_eq(const struct json_doc *doc, const struct json_tok *a, const struct json_tok *b)
{
	const unsigned char *s = (const unsigned char *)doc->text;
	if (a->hash != b->hash || a->size != b->size)
		return false;
	if (!(a->flags & JSON_TOK_ESCAPED) && !(b->flags & JSON_TOK_ESCAPED))
		return memcmp(s + a->start, s + b->start, a->size) == 0;
	size_t i = a->start, j = b->start;
	unsigned char ab[4], bb[4];
	size_t an = 0, ai = 0, bn = 0, bi = 0;
	for (uint32_t k = 0; k < a->size; k++) {
		if (ai == an) {
			ai = 0;
			if (s[i] == '\\') {
				an = decode_escape(s, &i, ab);
			} else {
				ab[0] = s[i++];
				an = 1;
			}
		}
		if (bi == bn) {
			bi = 0;
			if (s[j] == '\\') {
				bn = decode_escape(s, &j, bb);
			} else {
				bb[0] = s[j++];
				bn = 1;
			}
		}
		if (ab[ai++] != bb[bi++])
			return false;
	}
	return true;
}

/* The first name of object o (in text order) that repeats an earlier one,
 * or 0. An open object is read up to the last token so far. Small objects
 * compare pairwise; big ones hash into the aux fields of the first tokens,
 * so the check stays linear without allocating. */
static size_t find_dup(const struct json_doc *doc, size_t o, bool open)
{
	struct json_tok *t = doc->toks;
	size_t limit = open ? doc->n : t[o].next;
	size_t count = t[o].size;
	if (count < 2)
		return 0;

	size_t slots = 0;
	if (count > 16) {
		size_t cap2 = 1;
		while (cap2 <= doc->cap / 2)
			cap2 *= 2;
		slots = 1;
		while (slots < 2 * count && slots < cap2)
			slots *= 2;
		for (size_t x = 0; x < slots; x++)
			t[x].aux = 0;
	}
	for (size_t j = o + 1; j < limit;) {
		if (slots == 0) {
			for (size_t i = o + 1; i != j; i = t[i + 1].next)
				if (t[i].hash == t[j].hash && name_eq(doc, &t[i], &t[j]))
					return j;
		} else {
			size_t h = t[j].hash & (slots - 1);
			while (t[h].aux) {
				if (name_eq(doc, &t[t[h].aux], &t[j]))
					return j;
				h = (h + 1) & (slots - 1);
			}
			t[h].aux = (uint32_t)j;
		}
		if (j + 1 >= limit)
			break;
		size_t nx = t[j + 1].next; /* 0 while that value is still open */
		if (nx <= j + 1)
			break;
		j = nx;
	}
	return 0;
}

/* ---- parser ----------------------------------------------------------- */

static const char *const expected_msg[] = {
    [JSON_KIND_OBJECT] = "'}' expected",
    [JSON_KIND_ARRAY] = "']' expected",
};

static size_t new_tok(struct parser *p, enum json_kind kind, size_t start, size_t end)
{
	struct json_doc *doc = p->doc;
	if (doc->n >= doc->cap) {
		fail(p, JSON_ENOSPACE, start, start, start, false, "more than %zu tokens",
		     doc->cap);
		return SIZE_MAX;
	}
	size_t idx = doc->n++;
	struct json_tok *t = &doc->toks[idx];
	t->kind = (uint8_t)kind;
	t->flags = 0;
	t->start = (uint32_t)start;
	t->end = (uint32_t)end;
	t->next = (uint32_t)(idx + 1);
	t->size = 0;
	t->hash = 0;
	t->aux = 0;
	return idx;
}

enum json_status json_doc_parse(struct json_doc *doc, const char *text, size_t len,
				struct json_tok *toks, size_t cap)
{
	struct parser p;
	enum lex_type t;
	size_t idx;

	memset(doc, 0, sizeof(*doc));
	doc->text = text;
	doc->len = len;
	doc->toks = toks;
	doc->cap = cap;
	p.doc = doc;
	p.s = (const unsigned char *)text;
	p.len = len;
	p.pos = 0;
	p.depth = 0;
	if (len > UINT32_MAX - 2) {
		fail(&p, JSON_ELIMIT, 0, 0, 0, true, "text longer than 4 GiB");
		return doc->status;
	}

	t = lex(&p, false);
value:
	if (p.depth > 0 && toks[p.stack[p.depth - 1]].kind == JSON_KIND_ARRAY)
		toks[p.stack[p.depth - 1]].size++;
	switch (t) {
	case LT_ERROR:
		return doc->status;
	case LT_LBRACE:
	case LT_LBRACK:
		if (p.depth == JSON_MAX_DEPTH) {
			fail(&p, JSON_ELIMIT, p.lx.end, p.lx.start, p.lx.end, false,
			     "nesting deeper than %d", JSON_MAX_DEPTH);
			return doc->status;
		}
		idx = new_tok(&p, t == LT_LBRACE ? JSON_KIND_OBJECT : JSON_KIND_ARRAY, p.lx.start,
			      p.lx.end);
		if (idx == SIZE_MAX)
			return doc->status;
		toks[idx].next = 0; /* open */
		p.stack[p.depth++] = (uint32_t)idx;
		if (t == LT_LBRACE) {
			t = lex(&p, true);
			if (t == LT_RBRACE)
				goto close;
			goto name;
		}
		t = lex(&p, false);
		if (t == LT_RBRACK)
			goto close;
		if (t == LT_EOF) {
			fail(&p, JSON_ESYNTAX, p.lx.end, p.lx.start, p.lx.ctx_end, false,
			     "']' expected");
			return doc->status;
		}
		goto value;
	case LT_STRING:
		idx = new_tok(&p, JSON_KIND_STRING, p.lx.start + 1, p.lx.end - 1);
		if (idx == SIZE_MAX)
			return doc->status;
		toks[idx].size = p.lx.size;
		toks[idx].flags = p.lx.escaped ? JSON_TOK_ESCAPED : 0;
		goto after_value;
	case LT_NUMBER:
	case LT_TRUE:
	case LT_FALSE:
	case LT_NULL:
		idx = new_tok(&p,
			      t == LT_NUMBER  ? JSON_KIND_NUMBER
			      : t == LT_TRUE  ? JSON_KIND_TRUE
			      : t == LT_FALSE ? JSON_KIND_FALSE
					      : JSON_KIND_NULL,
			      p.lx.start, p.lx.end);
		if (idx == SIZE_MAX)
			return doc->status;
		if (t == LT_NUMBER && p.lx.is_int)
			toks[idx].flags = JSON_TOK_INT;
		goto after_value;
	case LT_INVALID:
		fail(&p, JSON_ESYNTAX, p.lx.end, p.lx.start, p.lx.ctx_end, false, "invalid token");
		return doc->status;
	default:
		fail(&p, JSON_ESYNTAX, p.lx.end, p.lx.start, p.lx.ctx_end, false,
		     "unexpected token");
		return doc->status;
	}

name:
	/* t is the token where a member name belongs */
	if (t == LT_ERROR)
		return doc->status;
	if (t != LT_STRING) {
		fail(&p, JSON_ESYNTAX, p.lx.end, p.lx.start, p.lx.ctx_end, false,
		     "string or '}' expected");
		return doc->status;
	}
	if (p.lx.has_nul) {
		fail(&p, JSON_ESYNTAX, p.lx.end, p.lx.start, p.lx.ctx_end, false,
		     "NUL byte in object key not supported");
		return doc->status;
	}
	idx = new_tok(&p, JSON_KIND_STRING, p.lx.start + 1, p.lx.end - 1);
	if (idx == SIZE_MAX)
		return doc->status;
	toks[idx].size = p.lx.size;
	toks[idx].hash = p.lx.hash;
	toks[idx].flags = (uint8_t)(JSON_TOK_KEY | (p.lx.escaped ? JSON_TOK_ESCAPED : 0));
	toks[p.stack[p.depth - 1]].size++;
	t = lex(&p, false);
	if (t == LT_ERROR)
		return doc->status;
	if (t != LT_COLON) {
		fail(&p, JSON_ESYNTAX, p.lx.end, p.lx.start, p.lx.ctx_end, false, "':' expected");
		return doc->status;
	}
	t = lex(&p, false);
	goto value;

after_value:
	if (p.depth == 0) {
		t = lex(&p, false);
		if (t == LT_ERROR)
			return doc->status;
		if (t != LT_EOF) {
			fail(&p, JSON_ESYNTAX, p.lx.end, p.lx.start, p.lx.ctx_end, false,
			     "end of file expected");
			return doc->status;
		}
		return JSON_OK;
	}
	idx = p.stack[p.depth - 1];
	t = lex(&p, false);
	if (t == LT_ERROR)
		return doc->status;
	if (toks[idx].kind == JSON_KIND_OBJECT) {
		if (t == LT_COMMA) {
			t = lex(&p, true);
			goto name;
		}
		if (t == LT_RBRACE)
			goto close;
	} else {
		if (t == LT_COMMA) {
			t = lex(&p, false);
			if (t == LT_EOF) {
				fail(&p, JSON_ESYNTAX, p.lx.end, p.lx.start, p.lx.ctx_end, false,
				     "']' expected");
				return doc->status;
			}
			goto value;
		}
		if (t == LT_RBRACK)
			goto close;
	}
	fail(&p, JSON_ESYNTAX, p.lx.end, p.lx.start, p.lx.ctx_end, false, "%s",
	     expected_msg[toks[idx].kind]);
	return doc->status;

close:
	idx = p.stack[p.depth - 1];
	toks[idx].end = (uint32_t)p.lx.end;
	toks[idx].next = (uint32_t)doc->n;
	if (toks[idx].kind == JSON_KIND_OBJECT) {
		size_t j = find_dup(doc, idx, false);
		if (j) {
			const struct json_tok *k = &toks[j];
			fail(&p, JSON_ESYNTAX, k->end + 1, k->start - 1, k->end + 1, false,
			     "duplicate object key");
			return doc->status;
		}
	}
	p.depth--;
	goto after_value;
}

/* ---- reading ---------------------------------------------------------- */

bool json_str_eq(const struct json_doc *doc, const struct json_tok *t, const char *s, size_t n)
{
	if (t->size != n)
		return false;
	if (!(t->flags & JSON_TOK_ESCAPED))
		return memcmp(doc->text + t->start, s, n) == 0;
	const unsigned char *b = (const unsigned char *)doc->text;
	size_t i = t->start, k = 0;
	while (i < t->end) {
		unsigned char out[4];
		size_t m;
		if (b[i] == '\\') {
			m = decode_escape(b, &i, out);
		} else {
			out[0] = b[i++];
			m = 1;
		}
		if (k + m > n || memcmp(s + k, out, m) != 0)
			return false;
		k += m;
	}
	return k == n;
}

void json_str_decode(const struct json_doc *doc, const struct json_tok *t, char *dst)
{
	const unsigned char *b = (const unsigned char *)doc->text;
	if (!(t->flags & JSON_TOK_ESCAPED)) {
		memcpy(dst, b + t->start, t->size);
		dst[t->size] = '\0';
		return;
	}
	size_t i = t->start, k = 0;
	while (i < t->end) {
		const unsigned char *bs = memchr(b + i, '\\', t->end - i);
		size_t plain_n = bs ? (size_t)(bs - (b + i)) : t->end - i;
		memcpy(dst + k, b + i, plain_n);
		k += plain_n;
		i += plain_n;
		if (i < t->end)
			k += decode_escape(b, &i, (unsigned char *)dst + k);
	}
	dst[k] = '\0';
}

size_t json_obj_get(const struct json_doc *doc, size_t obj, const char *name)
{
	size_t n = strlen(name);
	const struct json_tok *t = doc->toks;
	for (size_t k = json_obj_first(doc, obj); k < json_obj_end(doc, obj);
	     k = json_obj_nextkey(doc, k))
		if (t[k].size == n && json_str_eq(doc, &t[k], name, n))
			return k + 1;
	return 0;
}

int64_t json_int_value(const struct json_doc *doc, const struct json_tok *t)
{
	const char *s = doc->text + t->start;
	size_t n = t->end - t->start, i = 0;
	bool neg = s[0] == '-';
	uint64_t v = 0;
	for (i = neg; i < n; i++)
		v = v * 10 + (uint64_t)(s[i] - '0');
	return neg ? (int64_t)(0 - v) : (int64_t)v;
}
