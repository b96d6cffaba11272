/*
 * json: a strict, allocation-free JSON (RFC 8259) tokenizer over a buffer.
 *
 * One pass turns the text into a flat array of tokens the caller provides
 * (jsmn style): each value gets its kind and byte span; containers know
 * their member count and where they end, so a reader can skip or look up
 * members without a tree. Nothing is allocated and nothing is copied; the
 * tokens point into the buffer, which must outlive them.
 *
 * It accepts exactly what jansson's json_loadb accepts with
 * JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL (the
 * differential fuzzer tests/fuzz/fuzz_json_diff.c holds it to that),
 * except for its own limits: JSON_MAX_DEPTH nested containers, the
 * caller's token array, 4 GiB of text. So, like jansson: strict UTF-8
 * everywhere, no control bytes in strings, \uXXXX surrogates in pairs only,
 * integers within int64, reals within double, no duplicate keys anywhere,
 * no "\u0000" in keys. Errors carry jansson's line, column and text.
 */
#ifndef ROLLBACKD_JSON_H
#define ROLLBACKD_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH 64 /* nested arrays and objects */
#define JSON_ERR_TEXT 160 /* like jansson's JSON_ERROR_TEXT_LENGTH */

enum json_kind {
	JSON_KIND_OBJECT = 1,
	JSON_KIND_ARRAY,
	JSON_KIND_STRING,
	JSON_KIND_NUMBER,
	JSON_KIND_TRUE,
	JSON_KIND_FALSE,
	JSON_KIND_NULL,
};

#define JSON_TOK_ESCAPED 0x01 /* string: has backslash escapes */
#define JSON_TOK_INT 0x02     /* number: no fraction, no exponent */
#define JSON_TOK_KEY 0x04     /* string: an object member's name */

/* One value (or member name). Object members are laid out as name token,
 * value token(s); array elements follow each other. */
struct json_tok {
	uint8_t kind;	/* enum json_kind */
	uint8_t flags;	/* JSON_TOK_* */
	uint32_t start; /* string: first byte after the quote; else first byte */
	uint32_t end;	/* string: the closing quote; else one past the last byte */
	uint32_t next;	/* index of the next sibling (past everything inside) */
	uint32_t size;	/* object: members; array: elements; string: decoded bytes */
	uint32_t hash;	/* private: names' hash */
	uint32_t aux;	/* private: scratch for the duplicate check */
};

enum json_status {
	JSON_OK = 0,
	JSON_ESYNTAX,  /* not JSON (jansson would say the same) */
	JSON_ELIMIT,   /* JSON, maybe, but deeper or longer than we take */
	JSON_ENOSPACE, /* the token array is too small: retry with more */
};

struct json_doc {
	const char *text; /* the buffer parsed, not owned */
	size_t len;
	struct json_tok *toks; /* the caller's array; toks[0] is the root */
	size_t cap;
	size_t n; /* tokens used */
	/* set when parsing fails */
	enum json_status status;
	int line;		      /* 1-based, as jansson counts */
	int column;		      /* 1-based characters (not bytes), as jansson counts */
	size_t position;	      /* byte offset of the error */
	char text_err[JSON_ERR_TEXT]; /* "string or '}' expected near '}'":
					 may quote raw input bytes */
};

/* Tokenize text[0..len) (need not be NUL-terminated) into toks[0..cap).
 * Returns JSON_OK with doc->n tokens, or an error with doc's line, column
 * and text set. JSON_ENOSPACE means "valid so far, give me more tokens";
 * JSON_TOKENS_ENOUGH(len) tokens always are (every value but the last in a
 * container is followed by a separator, so two bytes per token, plus what
 * closing up to JSON_MAX_DEPTH open containers would add). Never allocates;
 * doc and toks keep pointing into text. */
#define JSON_TOKENS_ENOUGH(len) ((len) / 2 + 2 * JSON_MAX_DEPTH + 4)

enum json_status json_doc_parse(struct json_doc *doc, const char *text, size_t len,
				struct json_tok *toks, size_t cap);

/* Value of member name (NUL-terminated, compared against the decoded
 * member name) of object token obj, or 0 when absent (0 is the root, never
 * a member). */
size_t json_obj_get(const struct json_doc *doc, size_t obj, const char *name);

/* Decode string token t into dst, which must have room for t->size + 1
 * bytes; dst gets a NUL after the t->size bytes (which may hold NULs). */
void json_str_decode(const struct json_doc *doc, const struct json_tok *t, char *dst);

/* Whether string token t decodes to exactly s[0..n). */
bool json_str_eq(const struct json_doc *doc, const struct json_tok *t, const char *s, size_t n);

/* The value of an integer token (JSON_TOK_INT), within int64 by
 * construction. */
int64_t json_int_value(const struct json_doc *doc, const struct json_tok *t);

/* Members of object token o: name token k, value token k + 1. */
#define json_obj_first(doc, o) ((o) + 1)
#define json_obj_end(doc, o) ((doc)->toks[o].next)
#define json_obj_nextkey(doc, k) ((doc)->toks[(k) + 1].next)
/* Elements of array token a. */
#define json_arr_first(doc, a) ((a) + 1)
#define json_arr_end(doc, a) ((doc)->toks[a].next)
#define json_arr_nextel(doc, e) ((doc)->toks[e].next)

#endif
