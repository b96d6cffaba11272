/*
 * Unit tests for json: the token layout, lookups and string decoding, the
 * RFC 8259 edges (UTF-8, escapes, surrogates, number range), duplicate
 * names, limits, and errors checked against jansson itself (same line and,
 * for these cases, the same column and text).
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollbackd/json.h"

#define CAP 4096
static struct json_tok toks[CAP];

static enum json_status parse_n(struct json_doc *doc, const char *s, size_t n)
{
	return json_doc_parse(doc, s, n, toks, CAP);
}

static enum json_status parse(struct json_doc *doc, const char *s)
{
	return parse_n(doc, s, strlen(s));
}

static bool jansson_ok(const char *s, size_t n)
{
	json_error_t je;
	json_t *r =
	    json_loadb(s, n, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
	json_decref(r);
	return r != NULL;
}

Test(json, token_layout)
{
	struct json_doc doc;
	const char *s = "{\"a\":[1,true,null],\"b\":{\"c\":\"x\"},\"d\":-1.5e3}";
	cr_assert_eq(parse(&doc, s), JSON_OK, "%s", doc.text_err);
	cr_assert_eq(doc.n, 12);
	cr_assert_eq(toks[0].kind, JSON_KIND_OBJECT);
	cr_assert_eq(toks[0].size, 3);
	cr_assert_eq(toks[0].start, 0);
	cr_assert_eq(toks[0].end, strlen(s));
	cr_assert_eq(toks[0].next, 12);
	/* "a": [1, true, null] */
	cr_assert_eq(toks[1].kind, JSON_KIND_STRING);
	cr_assert(toks[1].flags & JSON_TOK_KEY);
	cr_assert_eq(toks[2].kind, JSON_KIND_ARRAY);
	cr_assert_eq(toks[2].size, 3);
	cr_assert_eq(toks[2].next, 6);
	cr_assert_eq(toks[3].kind, JSON_KIND_NUMBER);
	cr_assert(toks[3].flags & JSON_TOK_INT);
	cr_assert_eq(toks[4].kind, JSON_KIND_TRUE);
	cr_assert_eq(toks[5].kind, JSON_KIND_NULL);
	/* "b": {"c": "x"} */
	cr_assert_eq(toks[7].kind, JSON_KIND_OBJECT);
	cr_assert_eq(toks[7].size, 1);
	cr_assert_eq(toks[9].kind, JSON_KIND_STRING);
	cr_assert_eq(toks[9].size, 1);
	cr_assert_eq(s[toks[9].start], 'x');
	cr_assert_eq(s[toks[9].end], '"');
	/* "d": -1.5e3 */
	cr_assert_eq(toks[11].kind, JSON_KIND_NUMBER);
	cr_assert_not(toks[11].flags & JSON_TOK_INT);
	cr_assert_eq(toks[11].end - toks[11].start, 6);

	cr_assert_eq(json_obj_get(&doc, 0, "a"), 2);
	cr_assert_eq(json_obj_get(&doc, 0, "b"), 7);
	cr_assert_eq(json_obj_get(&doc, 0, "d"), 11);
	cr_assert_eq(json_obj_get(&doc, 0, "c"), 0); /* only at the top level */
	cr_assert_eq(json_obj_get(&doc, 7, "c"), 9);

	size_t seen = 0;
	for (size_t e = json_arr_first(&doc, 2); e < json_arr_end(&doc, 2);
	     e = json_arr_nextel(&doc, e))
		seen++;
	cr_assert_eq(seen, 3);
}

Test(json, scalars_at_top_level)
{
	struct json_doc doc;
	cr_assert_eq(parse(&doc, " 42 \n"), JSON_OK);
	cr_assert_eq(doc.n, 1);
	cr_assert_eq(json_int_value(&doc, &toks[0]), 42);
	cr_assert_eq(parse(&doc, "\"s\""), JSON_OK);
	cr_assert_eq(parse(&doc, "null"), JSON_OK);
	cr_assert_eq(toks[0].kind, JSON_KIND_NULL);
	cr_assert_eq(parse(&doc, "[]"), JSON_OK);
	cr_assert_eq(toks[0].size, 0);
	cr_assert_eq(toks[0].next, 1);
}

Test(json, strings_decode)
{
	struct json_doc doc;
	const char *s =
	    "[\"plain\",\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\",\"\\u00e9\\u20ac\\ud83d\\ude00\","
	    "\"x\\u0000y\",\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"]";
	cr_assert_eq(parse(&doc, s), JSON_OK, "%s", doc.text_err);
	char buf[64];
	json_str_decode(&doc, &toks[1], buf);
	cr_assert_str_eq(buf, "plain");
	cr_assert_not(toks[1].flags & JSON_TOK_ESCAPED);
	json_str_decode(&doc, &toks[2], buf);
	cr_assert_str_eq(buf, "a\"b\\c/d\b\f\n\r\t");
	cr_assert_eq(toks[2].size, strlen("a\"b\\c/d\b\f\n\r\t"));
	cr_assert(toks[2].flags & JSON_TOK_ESCAPED);
	json_str_decode(&doc, &toks[3], buf);
	cr_assert_str_eq(buf, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
	cr_assert_eq(toks[3].size, 9);
	cr_assert(json_str_eq(&doc, &toks[3], "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9));
	cr_assert_not(json_str_eq(&doc, &toks[3], "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98", 8));
	json_str_decode(&doc, &toks[4], buf);
	cr_assert_eq(toks[4].size, 3);
	cr_assert_eq(memcmp(buf, "x\0y", 4), 0);
	cr_assert(json_str_eq(&doc, &toks[4], "x\0y", 3));
	json_str_decode(&doc, &toks[5], buf);
	cr_assert_str_eq(buf, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
}

Test(json, escaped_names_are_found)
{
	struct json_doc doc;
	cr_assert_eq(parse(&doc, "{\"st\\u0061tus\":1,\"\\/x\":2}"), JSON_OK);
	cr_assert_eq(json_obj_get(&doc, 0, "status"), 2);
	cr_assert_eq(json_obj_get(&doc, 0, "/x"), 4);
	cr_assert_eq(json_obj_get(&doc, 0, "statu"), 0);
}

Test(json, numbers)
{
	struct json_doc doc;
	cr_assert_eq(parse(&doc, "[9223372036854775807,-9223372036854775808,-0,0]"), JSON_OK);
	cr_assert_eq(json_int_value(&doc, &toks[1]), INT64_MAX);
	cr_assert_eq(json_int_value(&doc, &toks[2]), INT64_MIN);
	cr_assert_eq(json_int_value(&doc, &toks[3]), 0);
	static const char *ok[] = {"0.5",
				   "-0.0e+0",
				   "1E5",
				   "1e-400",
				   "1.7976931348623157e308",
				   "-1e308",
				   "0e999999999999999999999"};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		cr_assert_eq(parse(&doc, ok[i]), JSON_OK, "%s: %s", ok[i], doc.text_err);
		cr_assert(jansson_ok(ok[i], strlen(ok[i])), "%s", ok[i]);
	}
	static const char *bad[] = {"9223372036854775808",
				    "-9223372036854775809",
				    "1e309",
				    "-1.8e308",
				    "1.7976931348623159e308",
				    "01",
				    "1.",
				    ".5",
				    "1e",
				    "1e+",
				    "+1",
				    "-",
				    "0x10",
				    "1.5.5",
				    "Infinity",
				    "NaN"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(parse(&doc, bad[i]), JSON_ESYNTAX, "%s", bad[i]);
		cr_assert_not(jansson_ok(bad[i], strlen(bad[i])), "%s", bad[i]);
	}
	cr_assert_eq(parse(&doc, "[9223372036854775808]"), JSON_ESYNTAX);
	cr_assert_str_eq(doc.text_err, "too big integer near '9223372036854775808'");
	cr_assert_eq(parse(&doc, "-9223372036854775809"), JSON_ESYNTAX);
	cr_assert_str_eq(doc.text_err, "too big negative integer near '-9223372036854775809'");
	cr_assert_eq(parse(&doc, "1e309"), JSON_ESYNTAX);
	cr_assert_str_eq(doc.text_err, "real number overflow near '1e309'");
}

Test(json, strict_strings)
{
	struct json_doc doc;
	static const struct {
		const char *s;
		size_t n;
	} bad[] = {
	    {"\"\\ud800\"", 8},		 /* lone high surrogate */
	    {"\"\\udc00\"", 8},		 /* lone low surrogate */
	    {"\"\\ud800\\u0041\"", 14},	 /* high, then not a low one */
	    {"\"\\ud800\\ud800\"", 14},	 /* high, high */
	    {"\"\\u12\"", 6},		 /* short escape */
	    {"\"\\x\"", 4},		 /* unknown escape */
	    {"\"a\nb\"", 5},		 /* raw newline */
	    {"\"a\x01\"", 4},		 /* raw control byte */
	    {"\"a\0\"", 4},		 /* raw NUL */
	    {"\"\xff\"", 3},		 /* never UTF-8 */
	    {"\"\xc0\xaf\"", 4},	 /* overlong */
	    {"\"\xed\xa0\x80\"", 5},	 /* encoded surrogate */
	    {"\"\xf4\x90\x80\x80\"", 6}, /* beyond U+10FFFF */
	    {"\"\xe2\x82\"", 4},	 /* cut short */
	    {"\"\xe2\x82", 3},		 /* cut short at the end */
	    {"\"abc", 4},		 /* unterminated */
	    {"{\"a\\u0000\":1}", 13},	 /* NUL in a name */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(parse_n(&doc, bad[i].s, bad[i].n), JSON_ESYNTAX, "case %zu", i);
		cr_assert_not(jansson_ok(bad[i].s, bad[i].n), "case %zu", i);
	}
	cr_assert_eq(parse(&doc, "\"\\ud800\\u0041\""), JSON_ESYNTAX);
	cr_assert_str_eq(doc.text_err,
			 "invalid Unicode '\\uD800\\u0041' near '\"\\ud800\\u0041\"'");
	cr_assert_eq(parse(&doc, "\"\\udc00\""), JSON_ESYNTAX);
	cr_assert_str_eq(doc.text_err, "invalid Unicode '\\uDC00' near '\"\\udc00\"'");
	/* raw DEL and valid multi-byte UTF-8 are fine */
	cr_assert_eq(parse(&doc, "\"\x7f\xf4\x8f\xbf\xbf\""), JSON_OK);
}

Test(json, duplicate_names)
{
	struct json_doc doc;
	cr_assert_eq(parse(&doc, "{\"a\":1,\"a\":2}"), JSON_ESYNTAX);
	cr_assert_str_eq(doc.text_err, "duplicate object key near '\"a\"'");
	/* equal once decoded */
	cr_assert_eq(parse(&doc, "{\"ab\":1,\"a\\u0062\":2}"), JSON_ESYNTAX);
	cr_assert_eq(parse(&doc, "{\"\\u00e9\":1,\"\xc3\xa9\":2}"), JSON_ESYNTAX);
	/* the same name in different objects is fine */
	cr_assert_eq(parse(&doc, "{\"a\":{\"a\":{\"a\":1}},\"b\":[{\"a\":1},{\"a\":2}]}"), JSON_OK);
	/* reported where jansson stops: the first repeat in text order, before
	 * any later error */
	cr_assert_eq(parse(&doc, "{\"a\":1,\"a\":{\"b\":1,\"b\":2}}"), JSON_ESYNTAX);
	cr_assert_eq(doc.column, 10); /* the second "a" */
	cr_assert_eq(parse(&doc, "{\"a\":1,\"a\":2,"), JSON_ESYNTAX);
	cr_assert_str_eq(doc.text_err, "duplicate object key near '\"a\"'");

	/* big objects take the hashed path: 300 names, a repeat at the end */
	char big[8192];
	size_t at = 0;
	at += (size_t)snprintf(big + at, sizeof(big) - at, "{");
	for (int i = 0; i < 300; i++)
		at += (size_t)snprintf(big + at, sizeof(big) - at, "%s\"k%d\":%d", i ? "," : "", i,
				       i);
	snprintf(big + at, sizeof(big) - at, "}");
	cr_assert_eq(parse(&doc, big), JSON_OK, "%s", doc.text_err);
	cr_assert_eq(toks[0].size, 300);
	cr_assert_eq(json_obj_get(&doc, 0, "k299"), 600);
	snprintf(big + at, sizeof(big) - at, ",\"k\\u0031\\u00357\":1}");
	cr_assert_eq(parse(&doc, big), JSON_ESYNTAX);
	cr_assert_eq(strncmp(doc.text_err, "duplicate object key", 20), 0, "%s", doc.text_err);
	cr_assert_not(jansson_ok(big, strlen(big)));
}

/* line, column and text as jansson reports them */
Test(json, errors_match_jansson)
{
	static const char *cases[] = {
	    "{",
	    "{\"version\":\"4\",}",
	    "{\"a\":1,\n\"a\":2}",
	    "{}\n{}",
	    "nul",
	    "{\"a\":\xc3\xa9}",
	    "{\"a\":\"\xff\"}",
	    "{\"a\\u0000b\":1}",
	    "[1,2",
	    "[1,]",
	    "[1 2]",
	    "{\"a\" 1}",
	    "{\"a\":}",
	    "{\n\"a\":\n\"b\nc\"}",
	    "[\"\\q\"]",
	    "[\"\\u12x4\"]",
	    "[\n\n  truex]",
	    "[-]",
	    "[01]",
	    "[1e+]",
	    "]",
	    "[\"\x01\"]",
	    "[\"abc",
	    "\"this string is far longer than twenty bytes\\z\"",
	    "[9223372036854775808]",
	    "{\"x\":1e400}",
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *s = cases[i];
		struct json_doc doc;
		json_error_t je;
		json_t *r = json_loadb(
		    s, strlen(s), JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
		cr_assert_null(r, "%s", s);
		cr_assert_eq(parse(&doc, s), JSON_ESYNTAX, "%s", s);
		cr_assert_str_eq(doc.text_err, je.text, "%s", s);
		cr_assert_eq(doc.line, je.line, "%s: %s", s, je.text);
		cr_assert_eq(doc.column, je.column, "%s: %s", s, je.text);
	}
}

Test(json, limits)
{
	struct json_doc doc;
	char deep[2 * JSON_MAX_DEPTH + 3];
	memset(deep, '[', JSON_MAX_DEPTH);
	memset(deep + JSON_MAX_DEPTH, ']', JSON_MAX_DEPTH);
	deep[2 * JSON_MAX_DEPTH] = '\0';
	cr_assert_eq(parse(&doc, deep), JSON_OK, "%s", doc.text_err);
	memset(deep, '[', JSON_MAX_DEPTH + 1);
	memset(deep + JSON_MAX_DEPTH + 1, ']', JSON_MAX_DEPTH + 1);
	deep[2 * JSON_MAX_DEPTH + 2] = '\0';
	cr_assert_eq(parse(&doc, deep), JSON_ELIMIT);
	cr_assert_eq(doc.column, JSON_MAX_DEPTH + 1);

	/* too few tokens: ENOSPACE, and the promised number is enough */
	const char *s = "[1,2,3,4,5,6,7,8]";
	cr_assert_eq(json_doc_parse(&doc, s, strlen(s), toks, 4), JSON_ENOSPACE);
	cr_assert_eq(json_doc_parse(&doc, s, strlen(s), toks, JSON_TOKENS_ENOUGH(strlen(s))),
		     JSON_OK);
	cr_assert_eq(doc.n, 9);
	cr_assert_leq(doc.n, strlen(s) / 2 + 2);
	/* an error before the array fills up is still an error */
	cr_assert_eq(json_doc_parse(&doc, "[1,x", 4, toks, 2), JSON_ESYNTAX);
}

Test(json, never_reads_past_len)
{
	const char *s = "{\"a\":[1.5e3,\"x\\u00e9\",true]}";
	size_t n = strlen(s);
	for (size_t cut = 0; cut <= n; cut++) {
		char *exact = malloc(cut ? cut : 1);
		memcpy(exact, s, cut);
		struct json_doc doc;
		enum json_status st = parse_n(&doc, exact, cut);
		cr_assert_eq(st == JSON_OK, cut == n, "cut %zu", cut);
		cr_assert_eq(st == JSON_OK, jansson_ok(exact, cut), "cut %zu", cut);
		free(exact);
	}
	/* what follows len is not read */
	struct json_doc doc;
	cr_assert_eq(parse_n(&doc, "[1]]]]", 3), JSON_OK);
	cr_assert_eq(parse_n(&doc, "12345", 2), JSON_OK);
	cr_assert_eq(json_int_value(&doc, &toks[0]), 12);
}
