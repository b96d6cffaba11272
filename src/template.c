/*
 * template: parse and expand {{root.key}} references in action templates.
 *
 * Pure: a template string and a context in, bytes in a buf out. It never
 * runs anything and never decides what a missing value "should" be: a
 * reference to a label, annotation, secret, incident id or rule name that
 * the context lacks fails the whole expansion. Error messages quote the
 * reference ("{{labels.service}}"), never an expanded value, so a secret
 * cannot leak through one.
 */
#include "rollbackd/template.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include "rollbackd/text.h"

#define NAME_MAX_LEN 256 /* longest key a reference may name */
#define SHOW_MAX 80	 /* longest reference quoted back in a message */

enum tpl_root {
	ROOT_LABELS,
	ROOT_ANNOTATIONS,
	ROOT_SECRET,
	ROOT_INCIDENT_ID,
	ROOT_RULE_NAME,
	ROOT_CHANGE, /* key: revision | previous_revision | source */
};

struct tpl_ref {
	enum tpl_root root;
	char key[NAME_MAX_LEN + 1]; /* labels/annotations/secret only */
	const char *text;	    /* "{{" ... "}}" inside the template */
	size_t text_len;
};


static bool is_ident_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_ident(char c)
{
	return is_ident_start(c) || (c >= '0' && c <= '9');
}

/* Length of the identifier at s[0..n), 0 when there is none. */
static size_t ident_len(const char *s, size_t n)
{
	size_t i = 0;
	if (n == 0 || !is_ident_start(s[0]))
		return 0;
	while (i < n && is_ident(s[i]))
		i++;
	return i;
}

static bool span_eq(const char *s, size_t n, const char *lit)
{
	return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

/* Parse the reference at open (which points at "{{") of tpl. On success
 * fills ref and returns 0; -1 with err naming the reference. */
static int parse_ref(const char *tpl, const char *open, struct tpl_ref *ref, struct error *err)
{
	char shown[SHOW_MAX], what[SHOW_MAX];
	const char *close = strstr(open + 2, "}}");
	if (!close)
		return error_set(err, "unclosed '{{' in '%s'",
				 text_show(tpl, strlen(tpl), shown, sizeof(shown)));
	ref->text = open;
	ref->text_len = (size_t)(close + 2 - open);
	text_show(ref->text, ref->text_len, shown, sizeof(shown));

	const char *s = open + 2;
	size_t n = (size_t)(close - s);
	while (n > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		n--;
	}
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	if (n == 0)
		return error_set(err, "empty template reference '%s'", shown);

	size_t rl = ident_len(s, n);
	if (rl == 0)
		return error_set(err,
				 "invalid template reference '%s' (expected labels.NAME, "
				 "annotations.NAME, secret.NAME, incident.id or rule.name)",
				 shown);
	const char *root = s;
	if (span_eq(root, rl, "labels"))
		ref->root = ROOT_LABELS;
	else if (span_eq(root, rl, "annotations"))
		ref->root = ROOT_ANNOTATIONS;
	else if (span_eq(root, rl, "secret"))
		ref->root = ROOT_SECRET;
	else if (span_eq(root, rl, "incident"))
		ref->root = ROOT_INCIDENT_ID;
	else if (span_eq(root, rl, "rule"))
		ref->root = ROOT_RULE_NAME;
	else if (span_eq(root, rl, "change"))
		ref->root = ROOT_CHANGE;
	else
		return error_set(err, "unknown template root '%s' in '%s'",
				 text_show(root, rl, what, sizeof(what)), shown);

	if (rl == n)
		return error_set(err, "template root '%s' needs a name in '%s'",
				 text_show(root, rl, what, sizeof(what)), shown);
	if (s[rl] != '.')
		return error_set(err, "invalid template reference '%s'", shown);
	const char *key = s + rl + 1;
	size_t kn = n - rl - 1;
	size_t kl = ident_len(key, kn);
	if (kl == 0 || kl != kn)
		return error_set(err, "invalid name after '%s.' in '%s'",
				 text_show(root, rl, what, sizeof(what)), shown);

	if (ref->root == ROOT_INCIDENT_ID || ref->root == ROOT_RULE_NAME) {
		const char *only = ref->root == ROOT_INCIDENT_ID ? "id" : "name";
		if (!span_eq(key, kl, only))
			return error_set(err, "unknown field '%s' in '%s' (only '%s.%s')",
					 text_show(key, kl, what, sizeof(what)), shown,
					 ref->root == ROOT_INCIDENT_ID ? "incident" : "rule", only);
		ref->key[0] = '\0';
		return 0;
	}
	if (ref->root == ROOT_CHANGE && !span_eq(key, kl, "revision") &&
	    !span_eq(key, kl, "previous_revision") && !span_eq(key, kl, "source"))
		return error_set(err,
				 "unknown field '%s' in '%s' (only 'change.revision', "
				 "'change.previous_revision' or 'change.source')",
				 text_show(key, kl, what, sizeof(what)), shown);
	if (kl > NAME_MAX_LEN)
		return error_set(err, "name too long in '%s'", shown);
	memcpy(ref->key, key, kl);
	ref->key[kl] = '\0';
	return 0;
}

int template_validate(const char *tpl, struct error *err)
{
	struct tpl_ref ref;
	const char *p = tpl;
	const char *open;
	while ((open = strstr(p, "{{")) != NULL) {
		if (parse_ref(tpl, open, &ref, err) != 0)
			return -1;
		p = ref.text + ref.text_len;
	}
	return 0;
}

/* RFC 3986 unreserved characters pass; everything else becomes %XX. */
static int add_url(struct buf *out, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	if (buf_grow(out, n) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
				  (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
				  c == '~';
		if (unreserved) {
			if (buf_addc(out, (char)c) < 0)
				return -1;
		} else {
			char e[3] = {'%', hex[c >> 4], hex[c & 15]};
			if (buf_add(out, e, 3) < 0)
				return -1;
		}
	}
	return 0;
}

/* buf_add_json_str without the surrounding quotes. */
static int add_json(struct buf *out, const char *s, size_t n)
{
	size_t start = out->len;
	if (buf_add_json_str(out, s, n) < 0)
		return -1;
	size_t inner = out->len - start - 2;
	memmove(out->data + start, out->data + start + 1, inner);
	out->len = start + inner;
	out->data[out->len] = '\0';
	return 0;
}

static int add_escaped(struct buf *out, enum template_escape esc, const char *s, size_t n)
{
	switch (esc) {
	case TEMPLATE_URL:
		return add_url(out, s, n);
	case TEMPLATE_JSON:
		return add_json(out, s, n);
	case TEMPLATE_RAW:
		break;
	}
	return buf_add(out, s, n);
}

/* The literal text around references: as it is, except that JSON string
 * content must be escaped as a whole, not just the expanded parts. A URL's
 * literal text is the operator's own URL and is kept as written. */
static int add_literal(struct buf *out, enum template_escape esc, const char *s, size_t n)
{
	if (n == 0)
		return 0;
	if (esc == TEMPLATE_JSON)
		return add_json(out, s, n);
	return buf_add(out, s, n);
}

static bool url_scheme_ok(const char *s, size_t n)
{
	return (n >= 7 && memcmp(s, "http://", 7) == 0) ||
	       (n >= 8 && memcmp(s, "https://", 8) == 0);
}

int template_expand(const char *tpl, const struct template_ctx *ctx, enum template_escape esc,
		    struct buf *out, struct error *err)
{
	char shown[SHOW_MAX];
	struct tpl_ref ref;
	const char *p = tpl;
	const char *open;
	size_t start = out->len;

	/* out->data is a C string on success even when the result is "". */
	if (buf_grow(out, 0) < 0)
		goto toolong;
	while ((open = strstr(p, "{{")) != NULL) {
		if (add_literal(out, esc, p, (size_t)(open - p)) < 0)
			goto toolong;
		if (parse_ref(tpl, open, &ref, err) != 0)
			return -1;
		p = ref.text + ref.text_len;
		text_show(ref.text, ref.text_len, shown, sizeof(shown));

		const char *val = NULL;
		size_t len = 0;
		const struct label *l;
		const struct secret *sec;
		bool raw_base = false;
		switch (ref.root) {
		case ROOT_LABELS:
			l = label_set_get(ctx->labels, ref.key);
			if (!l)
				return error_set(err, "template '%s': the alert has no label '%s'",
						 shown, ref.key);
			val = l->value;
			len = l->value_len;
			if (memchr(val, '\0', len))
				return error_set(err,
						 "template '%s': the label '%s' contains a NUL byte",
						 shown, ref.key);
			break;
		case ROOT_ANNOTATIONS:
			l = label_set_get(ctx->annotations, ref.key);
			if (!l)
				return error_set(err,
						 "template '%s': the alert has no annotation '%s'",
						 shown, ref.key);
			val = l->value;
			len = l->value_len;
			if (memchr(val, '\0', len))
				return error_set(err,
						 "template '%s': the annotation '%s' contains a NUL "
						 "byte",
						 shown, ref.key);
			break;
		case ROOT_SECRET:
			sec = ctx->secret_lookup ? ctx->secret_lookup(ctx->secret_arg, ref.key)
						 : NULL;
			if (!sec || !secret_is_set(sec))
				return error_set(err, "template '%s': no secret '%s' is configured",
						 shown, ref.key);
			val = (const char *)sec->data;
			len = sec->len;
			/* A secret that opens a URL is its base ("https://host/api"),
			 * operator config rather than alert data: kept as written. */
			raw_base = esc == TEMPLATE_URL && open == tpl;
			break;
		case ROOT_INCIDENT_ID:
			if (!ctx->incident_id)
				return error_set(err, "template '%s': no incident id here", shown);
			val = ctx->incident_id;
			len = strlen(val);
			break;
		case ROOT_RULE_NAME:
			if (!ctx->rule_name)
				return error_set(err, "template '%s': no rule name here", shown);
			val = ctx->rule_name;
			len = strlen(val);
			break;
		case ROOT_CHANGE:
			if (!ctx->change)
				return error_set(err,
						 "template '%s': no change to '%s' is known "
						 "(POST /v1/changes)",
						 shown, ctx->change_target ? ctx->change_target : "");
			val = strcmp(ref.key, "revision") == 0	 ? ctx->change->revision
			      : strcmp(ref.key, "source") == 0 ? ctx->change->source
							       : ctx->change->previous_revision;
			if (!*val)
				return error_set(err,
						 "template '%s': the latest change to '%s' "
						 "(revision '%s') has no previous_revision",
						 shown, ctx->change->target, ctx->change->revision);
			len = strlen(val);
			break;
		}
		if (raw_base ? buf_add(out, val, len) < 0 : add_escaped(out, esc, val, len) < 0)
			goto toolong;
	}
	if (add_literal(out, esc, p, strlen(p)) < 0)
		goto toolong;
	if (esc == TEMPLATE_URL && !url_scheme_ok(out->data + start, out->len - start))
		return error_set(err,
				 "template '%s': the URL does not start with http:// or "
				 "https://",
				 text_show(tpl, strlen(tpl), shown, sizeof(shown)));
	return 0;
toolong:
	return error_set(err, "template '%s': out of memory or too long",
			 text_show(tpl, strlen(tpl), shown, sizeof(shown)));
}
