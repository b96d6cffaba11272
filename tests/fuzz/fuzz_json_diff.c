/*
 * fuzz_json_diff: differential libFuzzer harness, json.c against jansson.
 *
 * For any input, json_doc_parse must accept exactly what json_loadb accepts
 * with the flags alert.c used (JSON_REJECT_DUPLICATES | JSON_DECODE_ANY |
 * JSON_ALLOW_NUL), except when json.c stops at its own limits (nesting
 * depth). When both reject, the error line must match; when both accept,
 * the two trees must match: kinds, member names, decoded strings (NULs
 * included), integers and reals. Any disagreement aborts.
 */
#include <ctype.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollbackd/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond, what)                                                                          \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "fuzz_json_diff: %s\n", what);                             \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static void same_string(const struct json_doc *doc, size_t t, const json_t *j)
{
	const struct json_tok *tk = &doc->toks[t];
	CHECK(json_is_string(j), "string kind");
	CHECK(json_string_length(j) == tk->size, "string length");
	char *buf = malloc((size_t)tk->size + 1);
	CHECK(buf, "oom");
	json_str_decode(doc, tk, buf);
	CHECK(memcmp(buf, json_string_value(j), tk->size) == 0, "string bytes");
	CHECK(buf[tk->size] == '\0', "string terminator");
	CHECK(json_str_eq(doc, tk, json_string_value(j), json_string_length(j)), "json_str_eq");
	free(buf);
}

static void same_value(const struct json_doc *doc, size_t t, const json_t *j)
{
	const struct json_tok *tk = &doc->toks[t];
	switch (tk->kind) {
	case JSON_KIND_OBJECT: {
		CHECK(json_is_object(j), "object kind");
		CHECK(json_object_size(j) == tk->size, "object size");
		for (size_t k = json_obj_first(doc, t); k < json_obj_end(doc, t);
		     k = json_obj_nextkey(doc, k)) {
			const struct json_tok *key = &doc->toks[k];
			CHECK(key->kind == JSON_KIND_STRING && (key->flags & JSON_TOK_KEY), "key");
			char *name = malloc((size_t)key->size + 1);
			CHECK(name, "oom");
			json_str_decode(doc, key, name);
			json_t *v = json_object_getn(j, name, key->size);
			CHECK(v, "member missing in jansson");
			if (!memchr(name, '\0', key->size))
				CHECK(json_obj_get(doc, t, name) == k + 1, "json_obj_get");
			free(name);
			same_value(doc, k + 1, v);
		}
		break;
	}
	case JSON_KIND_ARRAY: {
		CHECK(json_is_array(j), "array kind");
		CHECK(json_array_size(j) == tk->size, "array size");
		size_t i = 0;
		for (size_t e = json_arr_first(doc, t); e < json_arr_end(doc, t);
		     e = json_arr_nextel(doc, e), i++)
			same_value(doc, e, json_array_get(j, i));
		CHECK(i == tk->size, "array walk");
		break;
	}
	case JSON_KIND_STRING:
		same_string(doc, t, j);
		break;
	case JSON_KIND_NUMBER:
		if (tk->flags & JSON_TOK_INT) {
			CHECK(json_is_integer(j), "integer kind");
			CHECK(json_integer_value(j) == json_int_value(doc, tk), "integer value");
		} else {
			CHECK(json_is_real(j), "real kind");
			char num[512];
			size_t n = tk->end - tk->start;
			if (n < sizeof(num)) {
				memcpy(num, doc->text + tk->start, n);
				num[n] = '\0';
				CHECK(strtod(num, NULL) == json_real_value(j), "real value");
			}
		}
		break;
	case JSON_KIND_TRUE:
		CHECK(json_is_true(j), "true");
		break;
	case JSON_KIND_FALSE:
		CHECK(json_is_false(j), "false");
		break;
	case JSON_KIND_NULL:
		CHECK(json_is_null(j), "null");
		break;
	default:
		CHECK(0, "token kind");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t je;
	struct json_doc doc;
	size_t cap = JSON_TOKENS_ENOUGH(size);
	struct json_tok *toks = malloc(cap * sizeof(*toks));
	CHECK(toks, "oom");

	json_t *root = json_loadb((const char *)data, size,
				  JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
	enum json_status st = json_doc_parse(&doc, (const char *)data, size, toks, cap);
	CHECK(st != JSON_ENOSPACE, "JSON_TOKENS_ENOUGH tokens were not enough");
	/* a valid text needs at most len / 2 + 2 */
	CHECK(st != JSON_OK || doc.n <= size / 2 + 2, "more than len / 2 + 2 tokens");
	if (st == JSON_ELIMIT)
		goto out; /* deeper than we take: jansson's limit is 2048 */
	/* jansson quirk, deliberately not copied: a NUL byte right after a
	 * number or literal is read as lookahead, pushed back, and then taken
	 * for the end of its buffer, so "1\0" and "[true\0]" load. json.c
	 * rejects a NUL outside strings, as RFC 8259 does (and so reports an
	 * earlier error position than jansson when both reject). */
	if (st == JSON_ESYNTAX && doc.position >= 2 && data[doc.position - 1] == 0 &&
	    isalnum(data[doc.position - 2]))
		goto out;
	if ((st == JSON_OK) != (root != NULL)) {
		fprintf(stderr,
			"jansson: %s (line %d, column %d)\njson.c: %s (line %d, column %d)\n",
			root ? "ok" : je.text, je.line, je.column,
			st == JSON_OK ? "ok" : doc.text_err, doc.line, doc.column);
		CHECK(0, "accept/reject disagree");
	}
	if (st != JSON_OK) {
		CHECK(doc.text_err[0] != '\0', "empty error text");
		if (doc.line != je.line)
			fprintf(
			    stderr,
			    "jansson: %s (line %d, column %d)\njson.c: %s (line %d, column %d)\n",
			    je.text, je.line, je.column, doc.text_err, doc.line, doc.column);
		CHECK(doc.line == je.line, "error line");
		goto out;
	}
	CHECK(doc.n > 0 && doc.toks[0].next == doc.n, "root spans all tokens");
	same_value(&doc, 0, root);
out:
	json_decref(root);
	free(toks);
	return 0;
}
