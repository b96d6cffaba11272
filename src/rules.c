/*
 * rules: read rule files (SPEC §6) into an immutable struct ruleset, report
 * what is wrong with them, and match alerts against the result.
 *
 * Pure: reads files and builds structs, never runs an action, never expands
 * a template (it only checks their syntax). The same loader serves
 * rules_load (stop at the first bad file, hand back the first error) and
 * rules_check (keep going, print every error as one line). Messages are
 * "FILE:LINE:COL: text" for JSON syntax (jansson gives positions) and
 * "FILE: rules[3].actions[0].argv[1]: text" for content.
 *
 * Regexes are POSIX ERE (regcomp REG_EXTENDED|REG_NOSUB), fully anchored as
 * "^(" value ")$", whereas Alertmanager uses Go's RE2. The common subset
 * (literals, ., |, *, +, ?, {m,n}, [...], ^, $) means the same; what
 * differs:
 *   - no Perl classes: RE2 "\d" is a literal "d" in POSIX ERE, so "\d",
 *     "\D", "\p{..}", "\P{..}" are rejected here; write [[:digit:]],
 *     [^[:digit:]], [[:alpha:]] etc. (glibc happens to accept \w \s \b as
 *     GNU extensions; do not rely on them);
 *   - no flags or group syntax: "(?i)", "(?:...)", "(?P<name>...)" are
 *     rejected (regcomp fails on "(?"); write [Cc]heckout for
 *     case-insensitivity and plain (...) for groups;
 *   - non-greedy "*?" means "(x*)?" in ERE; with full anchoring and no
 *     captures this matches the same strings, so it is harmless;
 *   - matching is bytewise in the C locale, where RE2 works on UTF-8 runes:
 *     "." matches one byte, not one character.
 * The bare value is compiled on its own first, so a value such as
 * "a)|(b" cannot escape the anchoring group.
 *
 * Over 800 lines because reading rule files (typed getters, matchers,
 * actions, every error message naming file and rule) and matching share the
 * immutable ruleset layout; matching is its last section.
 */
#include "rollbackd/rules.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rollbackd/buf.h"
#include "rollbackd/channel.h"
#include "rollbackd/duration.h"
#include "rollbackd/template.h"
#include "rollbackd/text.h"

#define RULES_MAX_FILE_BYTES (64u << 20) /* 10 000 rules are a few MiB */
#define SHOW_MAX 80			 /* longest user string quoted back in a message */
#define PATH_LEN 256			 /* "rules[12].actions[3].body.a.b[2]" */
#define RETRIES_MAX 10
#define NUMBER_MAX 128 /* longest string rule_value_check reads as a number */

/* ---- messages ------------------------------------------------------------ */


/* Where errors go: the first into *first (rules_load), every one to stderr
 * when print (rules_check). */
struct diag {
	struct error *first;
	bool print;
	int count;
};

/* One file being parsed. */
struct fctx {
	struct diag *d;
	const char *file; /* as the user will recognise it */
};

__attribute__((format(printf, 2, 3))) static void diag_add(struct diag *d, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (d->count == 0 && d->first)
		error_set(d->first, "%s", line);
	d->count++;
	if (d->print)
		fprintf(stderr, "%s\n", line);
}

/* "FILE: PATH: message" (or "FILE: message" when path is NULL). */
__attribute__((format(printf, 3, 4))) static int perr(struct fctx *f, const char *path,
						      const char *fmt, ...)
{
	char what[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (path)
		diag_add(f->d, "%s: %s: %s", f->file, path, what);
	else
		diag_add(f->d, "%s: %s", f->file, what);
	return -1;
}

static void path_key(char out[PATH_LEN], const char *base, const char *key)
{
	char k[SHOW_MAX];
	if (snprintf(out, PATH_LEN, "%s%s%s", base, *base ? "." : "", text_shows(key, k, sizeof(k))) >=
	    PATH_LEN)
		memcpy(out + PATH_LEN - 4, "...", 4);
}

static void path_index(char out[PATH_LEN], const char *base, size_t i)
{
	if (snprintf(out, PATH_LEN, "%s[%zu]", base, i) >= PATH_LEN)
		memcpy(out + PATH_LEN - 4, "...", 4);
}

static const char *jtype(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
		break;
	}
	return "null";
}

static bool in_list(const char *word, const char *const *known)
{
	for (const char *const *k = known; *k; k++)
		if (strcmp(word, *k) == 0)
			return true;
	return false;
}

/* Report every key of obj that is not in known. */
static void check_keys(struct fctx *f, json_t *obj, const char *path, const char *const *known)
{
	const char *key;
	json_t *v;
	char p[PATH_LEN];

	json_object_foreach(obj, key, v)
	{
		if (in_list(key, known))
			continue;
		const char *best = text_suggest(key, known);
		path_key(p, path, key);
		if (best)
			perr(f, p, "unknown key (did you mean '%s'?)", best);
		else
			perr(f, p, "unknown key");
	}
}

/* ---- typed getters: 1 present and valid, 0 absent, -1 reported -------- */

static int get_string(struct fctx *f, json_t *obj, const char *path, const char *key,
		      const char **out)
{
	char p[PATH_LEN];
	json_t *v = json_object_get(obj, key);
	if (!v)
		return 0;
	if (!json_is_string(v)) {
		path_key(p, path, key);
		return perr(f, p, "expected a string, got %s", jtype(v));
	}
	*out = json_string_value(v);
	return 1;
}

static int get_duration(struct fctx *f, json_t *obj, const char *path, const char *key,
			bool positive, int64_t *out)
{
	char p[PATH_LEN], s[SHOW_MAX];
	const char *str = NULL;
	int rc = get_string(f, obj, path, key, &str);
	if (rc <= 0)
		return rc;
	path_key(p, path, key);
	if (duration_parse(str, out) != 0)
		return perr(f, p,
			    "invalid duration \"%s\" (expected e.g. \"30s\", \"5m\", \"1h30m\")",
			    text_shows(str, s, sizeof(s)));
	if (positive && *out <= 0)
		return perr(f, p, "must be more than 0");
	return 1;
}

static int get_array(struct fctx *f, json_t *obj, const char *path, const char *key, json_t **out)
{
	char p[PATH_LEN];
	json_t *v = json_object_get(obj, key);
	if (!v)
		return 0;
	if (!json_is_array(v)) {
		path_key(p, path, key);
		return perr(f, p, "expected an array, got %s", jtype(v));
	}
	*out = v;
	return 1;
}

static int get_object(struct fctx *f, json_t *obj, const char *path, const char *key, json_t **out)
{
	char p[PATH_LEN];
	json_t *v = json_object_get(obj, key);
	if (!v)
		return 0;
	if (!json_is_object(v)) {
		path_key(p, path, key);
		return perr(f, p, "expected an object, got %s", jtype(v));
	}
	*out = v;
	return 1;
}

/* A string that must be one of choices; *index gets its position. */
static int get_choice(struct fctx *f, json_t *obj, const char *path, const char *key,
		      const char *const *choices, const char *expected, int *index)
{
	char p[PATH_LEN], s[SHOW_MAX];
	const char *str = NULL;
	int rc = get_string(f, obj, path, key, &str);
	if (rc <= 0)
		return rc;
	for (int i = 0; choices[i]; i++) {
		if (strcmp(str, choices[i]) == 0) {
			*index = i;
			return 1;
		}
	}
	path_key(p, path, key);
	const char *best = text_suggest(str, choices);
	if (best)
		return perr(f, p, "unknown value \"%s\" (did you mean '%s'?)",
			    text_shows(str, s, sizeof(s)), best);
	return perr(f, p, "unknown value \"%s\" (expected %s)", text_shows(str, s, sizeof(s)), expected);
}

static bool is_label_name(const char *s)
{
	if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
		return false;
	for (s++; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_' ||
		      (*s >= '0' && *s <= '9')))
			return false;
	return true;
}

/* A template string: syntax and roots checked, error prefixed with path. */
static int check_template(struct fctx *f, const char *path, const char *tpl)
{
	struct error e;
	if (template_validate(tpl, &e) != 0)
		return perr(f, path, "%s", e.msg);
	return 0;
}

/* ---- matchers --------------------------------------------------------- */

static const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* RE2 syntax that POSIX ERE would read differently instead of failing. */
static const char *re2_only(const char *re)
{
	for (const char *p = re; *p; p++) {
		if (*p != '\\')
			continue;
		p++;
		switch (*p) {
		case 'd':
			return "\\d";
		case 'D':
			return "\\D";
		case 'p':
			return "\\p";
		case 'P':
			return "\\P";
		case '\0':
			return NULL;
		default:
			break;
		}
	}
	return NULL;
}

int matcher_parse(const char *s, struct matcher *out, struct error *err)
{
	struct matcher m;
	struct buf val = BUF_INIT;
	char *anchored = NULL;
	char shown[SHOW_MAX], v[SHOW_MAX];
	const char *p = skip_ws(s);
	const char *name;
	int rc = -1;

	memset(&m, 0, sizeof(m));
	memset(out, 0, sizeof(*out));
	text_shows(s, shown, sizeof(shown));
	if (!*p) {
		error_set(err, "empty matcher");
		goto out;
	}
	name = p;
	if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_')) {
		error_set(err, "expected a label name at the start of '%s'", shown);
		goto out;
	}
	while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
	       (*p >= '0' && *p <= '9'))
		p++;
	m.name = strndup(name, (size_t)(p - name));
	if (!m.name) {
		error_set(err, "out of memory");
		goto out;
	}
	p = skip_ws(p);
	if (p[0] == '=' && p[1] == '~') {
		m.op = MATCH_RE;
		p += 2;
	} else if (p[0] == '!' && p[1] == '~') {
		m.op = MATCH_NRE;
		p += 2;
	} else if (p[0] == '!' && p[1] == '=') {
		m.op = MATCH_NE;
		p += 2;
	} else if (p[0] == '=') {
		m.op = MATCH_EQ;
		p += 1;
	} else {
		error_set(err, "expected =, !=, =~ or !~ after the label name in '%s'", shown);
		goto out;
	}
	p = skip_ws(p);
	if (*p == '"') {
		for (p++;; p++) {
			char c = *p;
			if (c == '\0') {
				error_set(err, "unterminated quoted value in '%s'", shown);
				goto out;
			}
			if (c == '"')
				break;
			if (c == '\\') {
				p++;
				switch (*p) {
				case '"':
				case '\\':
					c = *p;
					break;
				case 'n':
					c = '\n';
					break;
				case '\0':
					error_set(err, "unterminated quoted value in '%s'", shown);
					goto out;
				default:
					error_set(
					    err, "invalid escape in '%s' (only \\\", \\\\ and \\n)",
					    shown);
					goto out;
				}
			}
			if (buf_addc(&val, c) < 0) {
				error_set(err, "out of memory");
				goto out;
			}
		}
		p = skip_ws(p + 1);
		if (*p) {
			error_set(err, "unexpected text after the quoted value in '%s'", shown);
			goto out;
		}
	} else {
		size_t n = strlen(p);
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (buf_add(&val, p, n) < 0) {
			error_set(err, "out of memory");
			goto out;
		}
	}
	m.value = buf_detach(&val, NULL);
	if (!m.value) {
		error_set(err, "out of memory");
		goto out;
	}
	if (m.op == MATCH_RE || m.op == MATCH_NRE) {
		regex_t bare;
		char why[128];
		const char *re2 = re2_only(m.value);
		if (re2) {
			error_set(err,
				  "invalid regex \"%s\": '%s' is RE2 syntax, not POSIX ERE "
				  "(use [[:digit:]] and friends)",
				  text_shows(m.value, v, sizeof(v)), re2);
			goto out;
		}
		/* On its own first: "a)|(b" must not close our group early. */
		int rerr = regcomp(&bare, m.value, REG_EXTENDED | REG_NOSUB);
		if (rerr != 0) {
			regerror(rerr, &bare, why, sizeof(why));
			error_set(err, "invalid regex \"%s\": %s", text_shows(m.value, v, sizeof(v)),
				  why);
			goto out;
		}
		regfree(&bare);
		size_t n = strlen(m.value);
		anchored = malloc(n + 5);
		if (!anchored) {
			error_set(err, "out of memory");
			goto out;
		}
		memcpy(anchored, "^(", 2);
		memcpy(anchored + 2, m.value, n);
		memcpy(anchored + 2 + n, ")$", 3);
		rerr = regcomp(&m.re, anchored, REG_EXTENDED | REG_NOSUB);
		if (rerr != 0) {
			regerror(rerr, &m.re, why, sizeof(why));
			error_set(err, "invalid regex \"%s\": %s", text_shows(m.value, v, sizeof(v)),
				  why);
			goto out;
		}
		m.has_re = true;
	}
	*out = m;
	memset(&m, 0, sizeof(m));
	rc = 0;
out:
	free(anchored);
	buf_release(&val);
	matcher_release(&m);
	return rc;
}

void matcher_release(struct matcher *m)
{
	if (!m)
		return;
	free(m->name);
	free(m->value);
	if (m->has_re)
		regfree(&m->re);
	memset(m, 0, sizeof(*m));
}

bool matcher_matches(const struct matcher *m, const struct label_set *labels)
{
	/* As in Alertmanager, a missing label has the value "". */
	const struct label *l = label_set_get(labels, m->name);
	const char *v = l ? l->value : "";
	size_t vl = l ? l->value_len : 0;
	switch (m->op) {
	case MATCH_EQ:
		return strlen(m->value) == vl && memcmp(m->value, v, vl) == 0;
	case MATCH_NE:
		return !(strlen(m->value) == vl && memcmp(m->value, v, vl) == 0);
	case MATCH_RE:
		return m->has_re && regexec(&m->re, v, 0, NULL, 0) == 0;
	case MATCH_NRE:
		return m->has_re && regexec(&m->re, v, 0, NULL, 0) != 0;
	}
	return false;
}

/* ---- releasing -------------------------------------------------------- */

static void free_strv(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void action_release(struct action_tpl *a)
{
	free_strv(a->argv, a->argc);
	free(a->method);
	free(a->url);
	for (size_t i = 0; i < a->n_headers; i++) {
		free(a->headers[i].name);
		free(a->headers[i].value);
	}
	free(a->headers);
	json_decref(a->body);
	free(a->expect_status);
	memset(a, 0, sizeof(*a));
}

static void rule_release(struct rule *r)
{
	free(r->name);
	free(r->description);
	free(r->target);
	free(r->verify_query);
	free(r->file);
	for (size_t i = 0; i < r->n_matchers; i++)
		matcher_release(&r->matchers[i]);
	free(r->matchers);
	free(r->value.key);
	free_strv(r->group_by, r->n_group_by);
	for (size_t i = 0; i < r->n_actions; i++)
		action_release(&r->actions[i]);
	free(r->actions);
	free_strv(r->notify, r->n_notify);
	memset(r, 0, sizeof(*r));
}

void ruleset_release(struct ruleset *rs)
{
	if (!rs)
		return;
	for (size_t i = 0; i < rs->n_rules; i++)
		rule_release(&rs->rules[i]);
	free(rs->rules);
	memset(rs, 0, sizeof(*rs));
}

/* ---- actions ---------------------------------------------------------- */

static const char *const exec_keys[] = {"type", "argv", "timeout", NULL};
static const char *const http_keys[] = {"type",		 "method",  "url",     "headers", "body",
					"expect_status", "timeout", "retries", NULL};
static const char *const any_action_keys[] = {"type",	 "argv", "method",	  "url",
					      "headers", "body", "expect_status", "timeout",
					      "retries", NULL};
static const char *const action_types[] = {"exec", "http", NULL};
static const char *const http_methods[] = {"GET",   "HEAD",   "POST",	 "PUT",
					   "PATCH", "DELETE", "OPTIONS", NULL};

/* Every string in a JSON body template, keys excepted. */
static void check_body(struct fctx *f, json_t *v, const char *path)
{
	char p[PATH_LEN];
	const char *key;
	json_t *item;
	size_t i;

	if (json_is_string(v)) {
		check_template(f, path, json_string_value(v));
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, item)
		{
			path_index(p, path, i);
			check_body(f, item, p);
		}
	} else if (json_is_object(v)) {
		json_object_foreach(v, key, item)
		{
			path_key(p, path, key);
			check_body(f, item, p);
		}
	}
}

static bool is_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static void parse_exec(struct fctx *f, json_t *ja, const char *path, struct action_tpl *a)
{
	char p[PATH_LEN], q[PATH_LEN];
	json_t *argv = NULL, *item;
	size_t i;

	a->timeout_ms = 60 * 1000;
	int rc = get_array(f, ja, path, "argv", &argv);
	if (rc == 0)
		perr(f, path, "exec action needs 'argv'");
	if (rc <= 0)
		return;
	path_key(p, path, "argv");
	if (json_array_size(argv) == 0) {
		perr(f, p, "must not be empty");
		return;
	}
	a->argv = calloc(json_array_size(argv) + 1, sizeof(*a->argv));
	if (!a->argv) {
		perr(f, p, "out of memory");
		return;
	}
	json_array_foreach(argv, i, item)
	{
		path_index(q, p, i);
		if (!json_is_string(item)) {
			perr(f, q, "expected a string, got %s", jtype(item));
			continue;
		}
		const char *s = json_string_value(item);
		if (i == 0 && !*s)
			perr(f, q, "must not be empty");
		else
			check_template(f, q, s);
		a->argv[a->argc] = strdup(s);
		if (!a->argv[a->argc]) {
			perr(f, q, "out of memory");
			return;
		}
		a->argc++;
	}
}

static bool url_prefix_ok(const char *url)
{
	if (strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0)
		return true;
	/* A base URL kept in a secret: checked again after expansion. */
	if (strncmp(url, "{{", 2) != 0)
		return false;
	const char *p = skip_ws(url + 2);
	return strncmp(p, "secret.", 7) == 0;
}

static void parse_http(struct fctx *f, json_t *ja, const char *path, struct action_tpl *a)
{
	char p[PATH_LEN], q[PATH_LEN], s[SHOW_MAX];
	const char *str = NULL;
	json_t *v = NULL, *item;
	const char *key;
	size_t i;
	int idx = 0, rc;

	a->timeout_ms = 10 * 1000;
	a->method = strdup("POST");
	if (!a->method) {
		perr(f, path, "out of memory");
		return;
	}
	if (get_choice(f, ja, path, "method", http_methods,
		       "GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS", &idx) > 0) {
		free(a->method);
		a->method = strdup(http_methods[idx]);
		if (!a->method)
			perr(f, path, "out of memory");
	}

	rc = get_string(f, ja, path, "url", &str);
	if (rc == 0)
		perr(f, path, "http action needs 'url'");
	if (rc > 0) {
		path_key(p, path, "url");
		if (!url_prefix_ok(str))
			perr(f, p, "\"%s\" must start with http:// or https://",
			     text_shows(str, s, sizeof(s)));
		else
			check_template(f, p, str);
		a->url = strdup(str);
		if (!a->url)
			perr(f, p, "out of memory");
	}

	if (get_object(f, ja, path, "headers", &v) > 0) {
		path_key(p, path, "headers");
		a->headers =
		    calloc(json_object_size(v) ? json_object_size(v) : 1, sizeof(*a->headers));
		if (!a->headers) {
			perr(f, p, "out of memory");
			return;
		}
		json_object_foreach(v, key, item)
		{
			path_key(q, p, key);
			bool ok = *key != '\0';
			for (const char *c = key; *c; c++)
				ok = ok && is_tchar(*c);
			if (!ok) {
				perr(f, q, "invalid header name");
				continue;
			}
			if (!json_is_string(item)) {
				perr(f, q, "expected a string, got %s", jtype(item));
				continue;
			}
			const char *hv = json_string_value(item);
			if (strpbrk(hv, "\r\n")) {
				perr(f, q, "header value must not contain CR or LF");
				continue;
			}
			check_template(f, q, hv);
			struct http_header_tpl *h = &a->headers[a->n_headers];
			h->name = strdup(key);
			h->value = strdup(hv);
			a->n_headers++;
			if (!h->name || !h->value) {
				perr(f, q, "out of memory");
				return;
			}
		}
	}

	v = json_object_get(ja, "body");
	if (v) {
		path_key(p, path, "body");
		check_body(f, v, p);
		a->body = json_incref(v);
	}

	if (get_array(f, ja, path, "expect_status", &v) > 0) {
		path_key(p, path, "expect_status");
		if (json_array_size(v) == 0) {
			perr(f, p, "must not be empty (omit it to accept any 2xx)");
		} else {
			a->expect_status = calloc(json_array_size(v), sizeof(int));
			if (!a->expect_status) {
				perr(f, p, "out of memory");
				return;
			}
			json_array_foreach(v, i, item)
			{
				path_index(q, p, i);
				if (!json_is_integer(item) || json_integer_value(item) < 100 ||
				    json_integer_value(item) > 599) {
					perr(f, q, "expected an HTTP status code (100-599)");
					continue;
				}
				a->expect_status[a->n_expect_status++] =
				    (int)json_integer_value(item);
			}
		}
	}

	v = json_object_get(ja, "retries");
	if (v) {
		path_key(p, path, "retries");
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > RETRIES_MAX)
			perr(f, p, "expected an integer from 0 to %d", RETRIES_MAX);
		else
			a->retries = (int)json_integer_value(v);
	}
}

static void parse_action(struct fctx *f, json_t *ja, const char *path, struct action_tpl *a)
{
	int type = -1;
	if (!json_is_object(ja)) {
		perr(f, path, "expected an object, got %s", jtype(ja));
		return;
	}
	int rc = get_choice(f, ja, path, "type", action_types, "\"exec\" or \"http\"", &type);
	if (rc == 0)
		perr(f, path, "action needs 'type'");
	if (rc <= 0) {
		check_keys(f, ja, path, any_action_keys);
		return;
	}
	a->type = type == 0 ? ACTION_EXEC : ACTION_HTTP;
	check_keys(f, ja, path, a->type == ACTION_EXEC ? exec_keys : http_keys);
	if (a->type == ACTION_EXEC)
		parse_exec(f, ja, path, a);
	else
		parse_http(f, ja, path, a);
	int64_t ms;
	if (get_duration(f, ja, path, "timeout", true, &ms) > 0)
		a->timeout_ms = ms;
}

/* ---- rules ------------------------------------------------------------ */

static const char *const rule_keys[] = {
    "name",    "description", "matchers", "when",   "group_by", "mode",	  "approve_timeout",
    "actions", "on_failure",  "cooldown", "verify", "dry_run",	"notify", "target", NULL};
static const char *const when_keys[] = {"firing_for", "value", "changed_within", NULL};
static const char *const value_keys[] = {"from", "above", "below", NULL};
static const char *const verify_keys[] = {"within", "query", "below", "above",
					   "for",    "interval", NULL};
static const char *const modes[] = {"auto", "notify", "approve", NULL};
static const char *const on_failures[] = {"stop", "continue", NULL};

static int get_bound(struct fctx *f, json_t *obj, const char *path, const char *key, double *out)
{
	char p[PATH_LEN];
	json_t *v = json_object_get(obj, key);
	if (!v)
		return 0;
	if (!json_is_number(v)) {
		path_key(p, path, key);
		return perr(f, p, "expected a number, got %s", jtype(v));
	}
	*out = json_number_value(v);
	return 1;
}

/* verify.query with below/above, for, interval (SPEC §6). */
static void parse_verify_query(struct fctx *f, json_t *v, const char *p, struct rule *r)
{
	static const char *const needs_query[] = {"below", "above", "for", "interval", NULL};
	char q[PATH_LEN], a[32], b[32];
	const char *query = NULL;
	double bound;
	r->verify_for_ms = 60 * 1000;
	r->verify_interval_ms = 15 * 1000;
	int rc = get_string(f, v, p, "query", &query);
	if (rc == 0) {
		for (const char *const *k = needs_query; *k; k++)
			if (json_object_get(v, *k)) {
				path_key(q, p, *k);
				perr(f, q, "needs 'query'");
			}
		return;
	}
	path_key(q, p, "query");
	if (rc > 0 && !*query)
		perr(f, q, "must not be empty");
	else if (rc > 0 && (strstr(query, "{{secret.") || strstr(query, "{{ secret.")))
		perr(f, q, "must not name a secret: the query is journaled and shown");
	else if (rc > 0 && check_template(f, q, query) == 0 && !(r->verify_query = strdup(query)))
		perr(f, q, "out of memory");
	int has_below = get_bound(f, v, p, "below", &bound);
	if (has_below > 0) {
		r->verify_below = true;
		r->verify_threshold = bound;
	}
	int has_above = get_bound(f, v, p, "above", &bound);
	if (has_above > 0)
		r->verify_threshold = bound;
	if (json_object_get(v, "below") && json_object_get(v, "above"))
		perr(f, p, "takes 'below' or 'above', not both");
	else if (!json_object_get(v, "below") && !json_object_get(v, "above"))
		perr(f, p, "needs 'below' or 'above' with 'query'");
	get_duration(f, v, p, "for", false, &r->verify_for_ms);
	get_duration(f, v, p, "interval", true, &r->verify_interval_ms);
	if (r->verify_within_ms > 0 && r->verify_for_ms >= r->verify_within_ms) {
		duration_format(r->verify_for_ms, a, sizeof(a));
		duration_format(r->verify_within_ms, b, sizeof(b));
		path_key(q, p, "for");
		perr(f, q, "%s is not less than 'within' %s: it could never be effective", a, b);
	}
	if (r->verify_within_ms > 0 && r->verify_interval_ms >= r->verify_within_ms) {
		duration_format(r->verify_interval_ms, a, sizeof(a));
		duration_format(r->verify_within_ms, b, sizeof(b));
		path_key(q, p, "interval");
		perr(f, q, "%s is not less than 'within' %s", a, b);
	}
}

static void parse_when(struct fctx *f, json_t *jr, const char *path, struct rule *r)
{
	char p[PATH_LEN], q[PATH_LEN], s[SHOW_MAX];
	json_t *when = NULL, *value = NULL;
	const char *from = NULL;

	if (get_object(f, jr, path, "when", &when) <= 0)
		return;
	path_key(p, path, "when");
	check_keys(f, when, p, when_keys);
	get_duration(f, when, p, "firing_for", false, &r->firing_for_ms);
	get_duration(f, when, p, "changed_within", true, &r->changed_within_ms);
	if (get_object(f, when, p, "value", &value) <= 0)
		return;
	path_key(q, p, "value");
	check_keys(f, value, q, value_keys);
	r->has_value = true;
	int rc = get_string(f, value, q, "from", &from);
	if (rc == 0)
		perr(f, q, "needs 'from'");
	if (rc > 0) {
		const char *key = NULL;
		if (strncmp(from, "labels.", 7) == 0) {
			key = from + 7;
		} else if (strncmp(from, "annotations.", 12) == 0) {
			key = from + 12;
			r->value.from_annotations = true;
		}
		if (!key || !is_label_name(key)) {
			char fp[PATH_LEN];
			path_key(fp, q, "from");
			perr(f, fp, "\"%s\" must be labels.NAME or annotations.NAME",
			     text_shows(from, s, sizeof(s)));
		} else {
			r->value.key = strdup(key);
			if (!r->value.key)
				perr(f, q, "out of memory");
		}
	}
	r->value.has_above = get_bound(f, value, q, "above", &r->value.above) > 0;
	r->value.has_below = get_bound(f, value, q, "below", &r->value.below) > 0;
	if (!json_object_get(value, "above") && !json_object_get(value, "below"))
		perr(f, q, "needs 'above' or 'below'");
	if (r->value.has_above && r->value.has_below && r->value.above >= r->value.below)
		perr(f, q, "'above' %g is not less than 'below' %g: nothing could match",
		     r->value.above, r->value.below);
}

/* A non-empty array of strings; check(f, path_of_item, s) may report. */
static void parse_strv(struct fctx *f, json_t *arr, const char *path, char ***out, size_t *n,
		       void (*check)(struct fctx *, const char *, const char *))
{
	char p[PATH_LEN];
	json_t *item;
	size_t i;

	if (json_array_size(arr) == 0) {
		perr(f, path, "must not be empty");
		return;
	}
	*out = calloc(json_array_size(arr), sizeof(**out));
	if (!*out) {
		perr(f, path, "out of memory");
		return;
	}
	json_array_foreach(arr, i, item)
	{
		path_index(p, path, i);
		if (!json_is_string(item)) {
			perr(f, p, "expected a string, got %s", jtype(item));
			continue;
		}
		const char *s = json_string_value(item);
		for (size_t j = 0; j < *n; j++) {
			if (strcmp((*out)[j], s) == 0) {
				perr(f, p, "listed twice");
				goto next;
			}
		}
		if (check)
			check(f, p, s);
		(*out)[*n] = strdup(s);
		if (!(*out)[*n]) {
			perr(f, p, "out of memory");
			return;
		}
		(*n)++;
	next:;
	}
}

static void check_group_label(struct fctx *f, const char *path, const char *s)
{
	char v[SHOW_MAX];
	if (!is_label_name(s))
		perr(f, path, "\"%s\" is not a label name", text_shows(s, v, sizeof(v)));
}

static void check_notifier(struct fctx *f, const char *path, const char *s)
{
	/* The registered channels decide (channel.h): a new one is known here too. */
	const char *const *notifiers = channel_rule_names();
	char v[SHOW_MAX], known[256] = "";
	if (in_list(s, notifiers))
		return;
	const char *best = text_suggest(s, notifiers);
	if (best) {
		perr(f, path, "unknown notifier \"%s\" (did you mean '%s'?)", text_shows(s, v, sizeof(v)),
		     best);
		return;
	}
	for (size_t i = 0, at = 0; notifiers[i] && at < sizeof(known); i++)
		at += (size_t)snprintf(known + at, sizeof(known) - at, "%s\"%s\"",
				       i == 0 ? "" : notifiers[i + 1] ? ", " : " or ", notifiers[i]);
	perr(f, path, "unknown notifier \"%s\" (expected %s)", text_shows(s, v, sizeof(v)), known);
}

/* Parse rules[i] into r (zeroed by the caller); errors are reported and
 * parsing goes on so that rules_check sees them all. 0 when clean. */
static int parse_rule(struct fctx *f, json_t *jr, const char *path, struct rule *r)
{
	char p[PATH_LEN], q[PATH_LEN], s[SHOW_MAX];
	int before = f->d->count;
	const char *str = NULL;
	json_t *v = NULL, *item;
	size_t i;
	int idx = 0, rc;

	r->mode = RULE_MODE_AUTO;
	r->dry_run = -1;
	if (!json_is_object(jr))
		return perr(f, path, "expected an object, got %s", jtype(jr));
	check_keys(f, jr, path, rule_keys);

	rc = get_string(f, jr, path, "name", &str);
	if (rc == 0)
		perr(f, path, "needs 'name'");
	if (rc > 0) {
		bool ok = *str != '\0';
		for (const char *c = str; *c; c++)
			ok = ok && (unsigned char)*c >= 0x20 && *c != 0x7f;
		path_key(p, path, "name");
		if (!ok)
			perr(f, p, "\"%s\" must be non-empty, without control characters",
			     text_shows(str, s, sizeof(s)));
		else if (!(r->name = strdup(str)))
			perr(f, p, "out of memory");
	}
	if (get_string(f, jr, path, "description", &str) > 0 && !(r->description = strdup(str)))
		perr(f, path, "out of memory");

	rc = get_array(f, jr, path, "matchers", &v);
	if (rc == 0)
		perr(f, path, "needs 'matchers'");
	if (rc > 0) {
		path_key(p, path, "matchers");
		if (json_array_size(v) == 0)
			perr(f, p, "must not be empty");
		else if (!(r->matchers = calloc(json_array_size(v), sizeof(*r->matchers))))
			perr(f, p, "out of memory");
		else
			r->n_matchers = json_array_size(v);
		for (i = 0; i < r->n_matchers; i++) {
			struct error e;
			item = json_array_get(v, i);
			path_index(q, p, i);
			if (!json_is_string(item))
				perr(f, q, "expected a string, got %s", jtype(item));
			else if (matcher_parse(json_string_value(item), &r->matchers[i], &e) != 0)
				perr(f, q, "%s", e.msg);
		}
	}

	parse_when(f, jr, path, r);

	if (get_array(f, jr, path, "group_by", &v) > 0) {
		path_key(p, path, "group_by");
		if (json_array_size(v) == 0)
			perr(f, p, "must not be empty (omit it to group by every label)");
		else
			parse_strv(f, v, p, &r->group_by, &r->n_group_by, check_group_label);
	}

	const char *target;
	if (get_string(f, jr, path, "target", &target) > 0) {
		path_key(p, path, "target");
		if (!*target)
			perr(f, p, "must not be empty (omit it for the group labels)");
		else if (strstr(target, "{{secret.") || strstr(target, "{{ secret."))
			perr(f, p, "must not name a secret: the target is journaled and shown");
		else if (check_template(f, p, target) == 0 && !(r->target = strdup(target)))
			perr(f, p, "out of memory");
	}

	if (get_choice(f, jr, path, "mode", modes, "\"auto\", \"notify\" or \"approve\"", &idx) > 0)
		r->mode = idx == 0   ? RULE_MODE_AUTO
			  : idx == 1 ? RULE_MODE_NOTIFY
				     : RULE_MODE_APPROVE;
	get_duration(f, jr, path, "approve_timeout", true, &r->approve_timeout_ms);

	rc = get_array(f, jr, path, "actions", &v);
	if (rc == 0 && r->mode != RULE_MODE_NOTIFY)
		perr(f, path, "needs 'actions' (or \"mode\": \"notify\")");
	if (rc > 0) {
		path_key(p, path, "actions");
		if (json_array_size(v) == 0 && r->mode != RULE_MODE_NOTIFY)
			perr(f, p, "must not be empty unless mode is 'notify'");
		else if (json_array_size(v) > 0 &&
			 !(r->actions = calloc(json_array_size(v), sizeof(*r->actions))))
			perr(f, p, "out of memory");
		else
			r->n_actions = json_array_size(v);
		for (i = 0; i < r->n_actions; i++) {
			path_index(q, p, i);
			parse_action(f, json_array_get(v, i), q, &r->actions[i]);
		}
	}

	if (get_choice(f, jr, path, "on_failure", on_failures, "\"stop\" or \"continue\"", &idx) >
	    0)
		r->on_failure_continue = idx == 1;
	get_duration(f, jr, path, "cooldown", false, &r->cooldown_ms);

	if (get_object(f, jr, path, "verify", &v) > 0) {
		path_key(p, path, "verify");
		check_keys(f, v, p, verify_keys);
		rc = get_duration(f, v, p, "within", true, &r->verify_within_ms);
		if (rc == 0)
			perr(f, p, "needs 'within'");
		parse_verify_query(f, v, p, r);
	}

	v = json_object_get(jr, "dry_run");
	if (v) {
		path_key(p, path, "dry_run");
		if (!json_is_boolean(v))
			perr(f, p, "expected a boolean, got %s", jtype(v));
		else
			r->dry_run = json_is_true(v) ? 1 : 0;
	}

	if (get_array(f, jr, path, "notify", &v) > 0) {
		path_key(p, path, "notify");
		if (json_array_size(v) > 0)
			parse_strv(f, v, p, &r->notify, &r->n_notify, check_notifier);
	}
	return f->d->count == before ? 0 : -1;
}

/* ---- files and directories -------------------------------------------- */

struct loader {
	struct diag d;
	json_t *names; /* rule name -> file that defined it first */
	struct rule *rules;
	size_t n, alloc;
	crypto_generichash_state hash;
};

static int read_file(struct fctx *f, const char *path, struct buf *out)
{
	char chunk[65536];
	struct stat st;
	size_t n;
	int rc = -1;
	FILE *fp = fopen(path, "rb");

	if (!fp)
		return perr(f, NULL, "cannot open: %s", strerror(errno));
	if (fstat(fileno(fp), &st) != 0) {
		perr(f, NULL, "cannot stat: %s", strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		perr(f, NULL, "not a regular file");
		goto out;
	}
	buf_init(out, RULES_MAX_FILE_BYTES);
	while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0) {
		if (buf_add(out, chunk, n) < 0) {
			perr(f, NULL, "larger than %u bytes", RULES_MAX_FILE_BYTES);
			goto out;
		}
	}
	if (ferror(fp)) {
		perr(f, NULL, "read error: %s", strerror(errno));
		goto out;
	}
	rc = 0;
out:
	fclose(fp);
	return rc;
}

/* The digest covers each file's base name and bytes, framed so that no two
 * different file sets hash alike: name, NUL, 8-byte little-endian length,
 * bytes. Moving the directory does not change it; renaming a file does. */
static void hash_file(struct loader *ld, const char *path, const struct buf *b)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	unsigned char len[8];
	uint64_t n = b->len;
	for (int i = 0; i < 8; i++)
		len[i] = (unsigned char)(n >> (8 * i));
	crypto_generichash_update(&ld->hash, (const unsigned char *)base, strlen(base) + 1);
	crypto_generichash_update(&ld->hash, len, sizeof(len));
	if (b->len)
		crypto_generichash_update(&ld->hash, (const unsigned char *)b->data, b->len);
}

static int add_rule(struct loader *ld, struct rule *r)
{
	if (ld->n == ld->alloc) {
		size_t na = ld->alloc ? ld->alloc * 2 : 16;
		struct rule *nr = realloc(ld->rules, na * sizeof(*nr));
		if (!nr)
			return -1;
		ld->rules = nr;
		ld->alloc = na;
	}
	ld->rules[ld->n++] = *r;
	memset(r, 0, sizeof(*r));
	return 0;
}

static void load_file(struct loader *ld, const char *path)
{
	struct fctx f = {&ld->d, path};
	struct buf b = BUF_INIT;
	json_t *root = NULL, *rules = NULL, *jr;
	json_error_t jerr;
	char p[PATH_LEN], np[PATH_LEN], s[SHOW_MAX];
	size_t i;

	if (read_file(&f, path, &b) != 0)
		goto out;
	hash_file(ld, path, &b);
	root = json_loadb(b.data ? b.data : "", b.len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		diag_add(&ld->d, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
		goto out;
	}
	if (!json_is_object(root)) {
		perr(&f, NULL, "expected a JSON object with \"rules\" at the top level");
		goto out;
	}
	static const char *const top_keys[] = {"rules", NULL};
	check_keys(&f, root, "", top_keys);
	rules = json_object_get(root, "rules");
	if (!rules) {
		perr(&f, NULL, "needs 'rules'");
		goto out;
	}
	if (!json_is_array(rules)) {
		perr(&f, "rules", "expected an array, got %s", jtype(rules));
		goto out;
	}
	json_array_foreach(rules, i, jr)
	{
		struct rule r;
		memset(&r, 0, sizeof(r));
		path_index(p, "rules", i);
		int rc = parse_rule(&f, jr, p, &r);
		if (r.name) {
			json_t *first = json_object_get(ld->names, r.name);
			path_key(np, p, "name");
			if (first) {
				perr(&f, np, "duplicate rule name '%s' (first defined in %s)",
				     text_shows(r.name, s, sizeof(s)), json_string_value(first));
				rc = -1;
			} else if (json_object_set_new_nocheck(ld->names, r.name,
							       json_string_nocheck(path)) != 0) {
				perr(&f, np, "out of memory");
				rc = -1;
			}
		}
		if (rc == 0 && !(r.file = strdup(path)))
			rc = perr(&f, p, "out of memory");
		if (rc == 0 && add_rule(ld, &r) != 0)
			rc = perr(&f, p, "out of memory");
		rule_release(&r);
		/* rules_load wants only the first error: stop early. */
		if (ld->d.count && !ld->d.print)
			break;
	}
out:
	json_decref(root);
	buf_release(&b);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_rule_file(const char *name)
{
	size_t n = strlen(name);
	/* Dot files are editor leftovers and Kubernetes' "..data" links. */
	return name[0] != '.' && n > 5 && strcmp(name + n - 5, ".json") == 0;
}

static void load_dir(struct loader *ld, const char *dir)
{
	struct fctx f = {&ld->d, dir};
	char **names = NULL;
	size_t n = 0, alloc = 0;
	struct dirent *de;
	DIR *dp = opendir(dir);
	bool slash = *dir && dir[strlen(dir) - 1] == '/';

	if (!dp) {
		perr(&f, NULL, "cannot open directory: %s", strerror(errno));
		return;
	}
	while ((de = readdir(dp)) != NULL) {
		if (!is_rule_file(de->d_name))
			continue;
		if (n == alloc) {
			size_t na = alloc ? alloc * 2 : 16;
			char **nn = realloc(names, na * sizeof(*nn));
			if (!nn)
				goto oom;
			names = nn;
			alloc = na;
		}
		if (asprintf(&names[n], slash ? "%s%s" : "%s/%s", dir, de->d_name) < 0)
			goto oom;
		n++;
	}
	if (n > 1)
		qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		/* Follow links (ConfigMaps are links); skip "x.json/" dirs. */
		if (stat(names[i], &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		load_file(ld, names[i]);
		if (ld->d.count && !ld->d.print)
			break;
	}
	goto out;
oom:
	perr(&f, NULL, "out of memory");
out:
	closedir(dp);
	free_strv(names, n);
}

static void load_path(struct loader *ld, const char *path)
{
	struct stat st;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		load_dir(ld, path);
	else
		load_file(ld, path);
}

static int loader_init(struct loader *ld, struct error *first, bool print)
{
	memset(ld, 0, sizeof(*ld));
	ld->d.first = first;
	ld->d.print = print;
	ld->names = json_object();
	if (!ld->names)
		return -1;
	crypto_generichash_init(&ld->hash, NULL, 0, 32);
	return 0;
}

static void loader_release(struct loader *ld)
{
	for (size_t i = 0; i < ld->n; i++)
		rule_release(&ld->rules[i]);
	free(ld->rules);
	json_decref(ld->names);
	memset(ld, 0, sizeof(*ld));
}

int rules_load(const char *path, struct ruleset *out, struct error *err)
{
	struct loader ld;
	unsigned char digest[32];

	memset(out, 0, sizeof(*out));
	if (loader_init(&ld, err, false) != 0)
		return error_set(err, "%s: out of memory", path);
	load_path(&ld, path);
	if (ld.d.count) {
		loader_release(&ld);
		return -1;
	}
	crypto_generichash_final(&ld.hash, digest, sizeof(digest));
	sodium_bin2hex(out->digest, sizeof(out->digest), digest, sizeof(digest));
	out->rules = ld.rules;
	out->n_rules = ld.n;
	ld.rules = NULL;
	ld.n = 0;
	loader_release(&ld);
	return 0;
}

int rules_check(const char *const *paths, size_t n_paths)
{
	struct loader ld;
	if (loader_init(&ld, NULL, true) != 0) {
		fprintf(stderr, "out of memory\n");
		return 1;
	}
	for (size_t i = 0; i < n_paths; i++)
		load_path(&ld, paths[i]);
	int n = ld.d.count;
	loader_release(&ld);
	return n;
}

/* ---- matching --------------------------------------------------------- */

bool rule_matches(const struct rule *r, const struct alert *a)
{
	for (size_t i = 0; i < r->n_matchers; i++)
		if (!matcher_matches(&r->matchers[i], &a->labels))
			return false;
	return true;
}

/* A label or annotation value as a finite number: surrounding spaces
 * allowed, nothing else (no hex, inf or nan, which strtod would take). */
static bool parse_number(const char *s, size_t n, double *out)
{
	char tmp[NUMBER_MAX + 1];
	while (n > 0 && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')) {
		s++;
		n--;
	}
	while (n > 0 &&
	       (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
		n--;
	if (n == 0 || n > NUMBER_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!strchr("0123456789+-.eE", s[i]) || s[i] == '\0')
			return false;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	char *end;
	errno = 0;
	double d = strtod(tmp, &end);
	if (end != tmp + n || !isfinite(d))
		return false;
	*out = d;
	return true;
}

int rule_value_check(const struct rule *r, const struct alert *a, char *reasonbuf, size_t reasonsz)
{
	const struct rule_value *rv = &r->value;
	const char *kind = rv->from_annotations ? "annotation" : "label";
	char shown[40];
	double v;

	if (reasonsz)
		reasonbuf[0] = '\0';
	if (!r->has_value)
		return 1;
	const struct label *l =
	    label_set_get(rv->from_annotations ? &a->annotations : &a->labels, rv->key);
	if (!l) {
		snprintf(reasonbuf, reasonsz, "%s '%s' missing", kind, rv->key);
		return 0;
	}
	if (!parse_number(l->value, l->value_len, &v)) {
		snprintf(reasonbuf, reasonsz, "%s '%s' is not a number: \"%s\"", kind, rv->key,
			 text_shows(l->value, shown, sizeof(shown)));
		return 0;
	}
	if (rv->has_above && !(v > rv->above)) {
		snprintf(reasonbuf, reasonsz, "value %g not above %g", v, rv->above);
		return 0;
	}
	if (rv->has_below && !(v < rv->below)) {
		snprintf(reasonbuf, reasonsz, "value %g not below %g", v, rv->below);
		return 0;
	}
	if (rv->has_above && rv->has_below)
		snprintf(reasonbuf, reasonsz, "value %g above %g and below %g", v, rv->above,
			 rv->below);
	else if (rv->has_above)
		snprintf(reasonbuf, reasonsz, "value %g above %g", v, rv->above);
	else
		snprintf(reasonbuf, reasonsz, "value %g below %g", v, rv->below);
	return 1;
}
