/*
 * alert: parse an Alertmanager webhook (payload version "4") into structs.
 *
 * Pure: bytes in, a struct webhook or an error naming the field out. It never
 * keeps a pointer into the body or into the jansson tree (freed before
 * returning); everything a webhook owns lives in one chunked bump arena that
 * webhook_release frees in one go. Error messages carry only the field path
 * and a short, escaped excerpt of the offending value, never the body.
 */
#include "rollbackd/alert.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena ------------------------------------------------------------ */

/* A chunk of the bump allocator. The webhook points at the newest chunk;
 * older ones hang off prev. */
struct arena_chunk {
	struct arena_chunk *prev;
	size_t used;	    /* bytes of data handed out */
	size_t cap;	    /* bytes of data */
	max_align_t data[]; /* aligned for any struct we put there */
};

/* Big bodies grow the arena by doubling instead of asking for all at once. */
#define ARENA_FIRST_MAX (64 * 1024)

static struct arena_chunk *arena_chunk_new(struct arena_chunk *prev, size_t cap)
{
	if (cap > SIZE_MAX - sizeof(struct arena_chunk))
		return NULL;
	struct arena_chunk *c = malloc(sizeof(*c) + cap);
	if (!c)
		return NULL;
	c->prev = prev;
	c->used = 0;
	c->cap = cap;
	return c;
}

static void arena_free(struct arena_chunk *c)
{
	while (c) {
		struct arena_chunk *prev = c->prev;
		free(c);
		c = prev;
	}
}

/* size bytes aligned to align (a power of two), or NULL on OOM. */
static void *arena_alloc(struct arena_chunk **ap, size_t size, size_t align)
{
	struct arena_chunk *c = *ap;
	size_t at = (c->used + align - 1) & ~(align - 1);
	if (at > c->cap || size > c->cap - at) {
		size_t cap = c->cap <= SIZE_MAX / 2 ? c->cap * 2 : SIZE_MAX;
		if (cap < size)
			cap = size;
		c = arena_chunk_new(c, cap);
		if (!c)
			return NULL;
		*ap = c;
		at = 0;
	}
	c->used = at + size;
	return (unsigned char *)c->data + at;
}

static void *arena_array(struct arena_chunk **ap, size_t n, size_t size, size_t align)
{
	if (n == 0)
		return NULL;
	if (n > SIZE_MAX / size)
		return NULL;
	return arena_alloc(ap, n * size, align);
}

static char *arena_strndup(struct arena_chunk **ap, const char *s, size_t n)
{
	if (n == SIZE_MAX)
		return NULL;
	char *d = arena_alloc(ap, n + 1, 1);
	if (!d)
		return NULL;
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

/* ---- error messages --------------------------------------------------- */

#define EXCERPT_MAX 64 /* bytes of a value or key echoed in a message */
#define NO_ALERT SIZE_MAX

/* Where a bad value sits; turned into `alerts[2].labels.severity` only when
 * something fails, so the happy path formats nothing. */
struct where {
	size_t alert;	   /* index in alerts, or NO_ALERT for the top level */
	const char *field; /* "labels", "startsAt", ...; NULL: the alert itself */
	const char *key;   /* entry of a label set, or NULL */
	size_t key_len;
};

struct parser {
	struct arena_chunk *arena; /* newest chunk */
	const struct alert_limits *lim;
	struct error *err;
};

/* Append to dst[*at..cap) without overflowing; always NUL-terminates. */
static void put(char *dst, size_t cap, size_t *at, const char *s, size_t n)
{
	if (*at >= cap)
		return;
	if (n > cap - 1 - *at)
		n = cap - 1 - *at;
	memcpy(dst + *at, s, n);
	*at += n;
	dst[*at] = '\0';
}

/* s (n bytes of valid UTF-8, as jansson hands out) quoted JSON-style, cut
 * on a character boundary after EXCERPT_MAX bytes with "..." after the
 * closing quote. */
static void put_excerpt(char *dst, size_t cap, size_t *at, const char *s, size_t n)
{
	size_t cut = n;
	if (cut > EXCERPT_MAX) {
		cut = EXCERPT_MAX;
		while (cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80)
			cut--;
	}
	put(dst, cap, at, "\"", 1);
	for (size_t i = 0; i < cut; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[8];
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			put(dst, cap, at, esc, 2);
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			put(dst, cap, at, esc, 6);
		} else {
			put(dst, cap, at, (const char *)&s[i], 1);
		}
	}
	put(dst, cap, at, "\"", 1);
	if (cut < n)
		put(dst, cap, at, "...", 3);
}

static bool is_identifier(const char *s, size_t n)
{
	if (n == 0 || n > EXCERPT_MAX || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9')))
			return false;
	}
	return true;
}

static void put_path(char *dst, size_t cap, size_t *at, const struct where *w)
{
	char idx[40];
	if (w->alert != NO_ALERT) {
		int n = snprintf(idx, sizeof(idx), "alerts[%zu]", w->alert);
		put(dst, cap, at, idx, (size_t)n);
		if (w->field)
			put(dst, cap, at, ".", 1);
	}
	if (w->field)
		put(dst, cap, at, w->field, strlen(w->field));
	if (w->key) {
		if (is_identifier(w->key, w->key_len)) {
			put(dst, cap, at, ".", 1);
			put(dst, cap, at, w->key, w->key_len);
		} else {
			put(dst, cap, at, "[", 1);
			put_excerpt(dst, cap, at, w->key, w->key_len);
			put(dst, cap, at, "]", 1);
		}
	}
}

/* Copy msg into err, cut on a UTF-8 boundary if it does not fit, so that a
 * JSON encoder downstream never sees half a character. */
static void set_message(struct error *err, char *msg, size_t len)
{
	if (!err)
		return;
	size_t cut = len;
	if (cut >= sizeof(err->msg)) {
		cut = sizeof(err->msg) - 1;
		while (cut > 0 && ((unsigned char)msg[cut] & 0xc0) == 0x80)
			cut--;
	}
	memcpy(err->msg, msg, cut);
	err->msg[cut] = '\0';
}

struct msgbuf {
	char s[1024];
	size_t len;
};

static void msg_start(struct msgbuf *m, const struct where *w)
{
	m->len = 0;
	m->s[0] = '\0';
	put_path(m->s, sizeof(m->s), &m->len, w);
	put(m->s, sizeof(m->s), &m->len, ": ", 2);
}

static void msg_add(struct msgbuf *m, const char *s)
{
	put(m->s, sizeof(m->s), &m->len, s, strlen(s));
}

static void msg_excerpt(struct msgbuf *m, const char *s, size_t n)
{
	put_excerpt(m->s, sizeof(m->s), &m->len, s, n);
}

static enum alert_parse_result msg_fail(struct parser *p, struct msgbuf *m)
{
	set_message(p->err, m->s, m->len);
	return ALERT_PARSE_INVALID;
}

/* "PATH: text" */
static enum alert_parse_result fail(struct parser *p, const struct where *w, const char *text)
{
	struct msgbuf m;
	msg_start(&m, w);
	msg_add(&m, text);
	return msg_fail(p, &m);
}

/* "PATH: text "value"" */
static enum alert_parse_result fail_value(struct parser *p, const struct where *w, const char *text,
					  const char *s, size_t n)
{
	struct msgbuf m;
	msg_start(&m, w);
	msg_add(&m, text);
	msg_excerpt(&m, s, n);
	return msg_fail(p, &m);
}

static const char *json_kind(const json_t *v)
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
		return "null";
	}
	return "a value";
}

static enum alert_parse_result fail_type(struct parser *p, const struct where *w,
					 const char *expected, const json_t *v)
{
	struct msgbuf m;
	msg_start(&m, w);
	msg_add(&m, "expected ");
	msg_add(&m, expected);
	msg_add(&m, ", got ");
	msg_add(&m, json_kind(v));
	return msg_fail(p, &m);
}

static enum alert_parse_result nomem(struct parser *p)
{
	error_set(p->err, "out of memory");
	return ALERT_PARSE_NOMEM;
}

/* ---- fields ----------------------------------------------------------- */

/* Look up w->field in obj. A JSON null counts as absent for optional
 * fields (Go writes nil maps and slices as null). */
static json_t *field(json_t *obj, const struct where *w, bool required)
{
	json_t *v = json_object_get(obj, w->field);
	if (v && !required && json_is_null(v))
		return NULL;
	return v;
}

/* A string field, copied into the arena. Absent optional fields give def. */
static enum alert_parse_result get_string(struct parser *p, json_t *obj, const struct where *w,
					  bool required, const char *def, const char **out,
					  size_t *out_len)
{
	json_t *v = field(obj, w, required);
	if (!v) {
		if (required)
			return fail(p, w, "missing");
		*out = def;
		if (out_len)
			*out_len = def ? strlen(def) : 0;
		return ALERT_PARSE_OK;
	}
	if (!json_is_string(v))
		return fail_type(p, w, "a string", v);
	size_t n = json_string_length(v);
	char *s = arena_strndup(&p->arena, json_string_value(v), n);
	if (!s)
		return nomem(p);
	*out = s;
	if (out_len)
		*out_len = n;
	return ALERT_PARSE_OK;
}

static enum alert_parse_result get_status(struct parser *p, json_t *obj, const struct where *w,
					  enum alert_status *out)
{
	json_t *v = json_object_get(obj, w->field);
	if (!v)
		return fail(p, w, "missing");
	if (!json_is_string(v))
		return fail_type(p, w, "a string", v);
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);
	if (n == 6 && memcmp(s, "firing", 6) == 0) {
		*out = ALERT_FIRING;
	} else if (n == 8 && memcmp(s, "resolved", 8) == 0) {
		*out = ALERT_RESOLVED;
	} else {
		return fail_value(p, w, "expected \"firing\" or \"resolved\", got ", s, n);
	}
	return ALERT_PARSE_OK;
}

static enum alert_parse_result get_time(struct parser *p, json_t *obj, const struct where *w,
					bool required, struct timestamp *out)
{
	json_t *v = field(obj, w, required);
	if (!v) {
		if (required)
			return fail(p, w, "missing");
		out->sec = TIMESTAMP_GO_ZERO_SEC;
		out->nsec = 0;
		return ALERT_PARSE_OK;
	}
	if (!json_is_string(v))
		return fail_type(p, w, "a string", v);
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);
	if (timestamp_parse(s, n, out) < 0)
		return fail_value(p, w, "not an RFC 3339 time: ", s, n);
	return ALERT_PARSE_OK;
}

static int label_cmp(const void *a, const void *b)
{
	return strcmp(((const struct label *)a)->name, ((const struct label *)b)->name);
}

/* A map of strings (labels, annotations). Names are unique (the JSON
 * decoder rejects duplicate keys and names may not contain NUL), so sorting
 * by strcmp gives a strict order. */
static enum alert_parse_result get_label_set(struct parser *p, json_t *obj, struct where *w,
					     bool required, struct label_set *out)
{
	out->items = NULL;
	out->n = 0;
	json_t *v = field(obj, w, required);
	if (!v) {
		if (required)
			return fail(p, w, "missing");
		return ALERT_PARSE_OK;
	}
	if (!json_is_object(v))
		return fail_type(p, w, "an object", v);
	size_t n = json_object_size(v);
	if (n > p->lim->max_labels) {
		char text[96];
		snprintf(text, sizeof(text), "%zu entries exceed the limit of %zu", n,
			 p->lim->max_labels);
		return fail(p, w, text);
	}
	if (required && n == 0)
		return fail(p, w, "expected at least one label");
	if (n == 0)
		return ALERT_PARSE_OK;

	struct label *items = arena_array(&p->arena, n, sizeof(*items), _Alignof(struct label));
	if (!items)
		return nomem(p);
	const char *key;
	size_t key_len, i = 0;
	json_t *val;
	bool sorted = true;
	json_object_keylen_foreach(v, key, key_len, val)
	{
		if (key_len == 0)
			return fail(p, w, "empty name");
		/* jansson 2.14 already refuses "\u0000" in keys; a C-string
		 * name could not hold one, so check rather than trust that */
		if (memchr(key, '\0', key_len)) {
			w->key = key;
			w->key_len = key_len;
			return fail(p, w, "name contains a NUL byte");
		}
		if (!json_is_string(val)) {
			w->key = key;
			w->key_len = key_len;
			return fail_type(p, w, "a string", val);
		}
		struct label *l = &items[i];
		size_t vlen = json_string_length(val);
		l->name = arena_strndup(&p->arena, key, key_len);
		l->value = arena_strndup(&p->arena, json_string_value(val), vlen);
		if (!l->name || !l->value)
			return nomem(p);
		l->value_len = vlen;
		if (i > 0 && sorted && strcmp(items[i - 1].name, l->name) > 0)
			sorted = false;
		i++;
	}
	/* Go writes map keys sorted, so this is the rare path */
	if (!sorted)
		qsort(items, i, sizeof(*items), label_cmp);
	out->items = items;
	out->n = i;
	return ALERT_PARSE_OK;
}

/* ---- the payload ------------------------------------------------------ */

static enum alert_parse_result parse_alert(struct parser *p, json_t *v, size_t idx, struct alert *a)
{
	enum alert_parse_result rc;
	struct where w = {idx, NULL, NULL, 0};

	if (!json_is_object(v))
		return fail_type(p, &w, "an object", v);
	w.field = "status";
	if ((rc = get_status(p, v, &w, &a->status)))
		return rc;
	w.field = "labels";
	if ((rc = get_label_set(p, v, &w, true, &a->labels)))
		return rc;
	w.field = "annotations";
	if ((rc = get_label_set(p, v, &w, false, &a->annotations)))
		return rc;
	w.field = "startsAt";
	if ((rc = get_time(p, v, &w, true, &a->starts_at)))
		return rc;
	w.field = "endsAt";
	if ((rc = get_time(p, v, &w, false, &a->ends_at)))
		return rc;
	w.field = "generatorURL";
	if ((rc = get_string(p, v, &w, false, "", &a->generator_url, NULL)))
		return rc;
	w.field = "fingerprint";
	if ((rc = get_string(p, v, &w, false, NULL, &a->fingerprint, NULL)))
		return rc;
	if (!a->fingerprint) {
		char *fp = arena_alloc(&p->arena, 17, 1);
		if (!fp)
			return nomem(p);
		alert_fingerprint(&a->labels, fp);
		a->fingerprint = fp;
	}
	return ALERT_PARSE_OK;
}

static enum alert_parse_result parse_webhook(struct parser *p, json_t *root, struct webhook *wh)
{
	enum alert_parse_result rc;
	struct where w = {NO_ALERT, "body", NULL, 0};
	size_t version_len;

	if (!json_is_object(root))
		return fail_type(p, &w, "a JSON object", root);

	w.field = "version";
	if ((rc = get_string(p, root, &w, true, NULL, &wh->version, &version_len)))
		return rc;
	if (version_len != 1 || wh->version[0] != '4')
		return fail_value(p, &w, "expected \"4\", got ", wh->version, version_len);
	w.field = "status";
	if ((rc = get_status(p, root, &w, &wh->status)))
		return rc;
	w.field = "receiver";
	if ((rc = get_string(p, root, &w, true, NULL, &wh->receiver, NULL)))
		return rc;
	w.field = "groupKey";
	if ((rc = get_string(p, root, &w, true, NULL, &wh->group_key, NULL)))
		return rc;

	w.field = "alerts";
	json_t *alerts = json_object_get(root, "alerts");
	if (!alerts)
		return fail(p, &w, "missing");
	if (!json_is_array(alerts))
		return fail_type(p, &w, "an array", alerts);
	size_t n = json_array_size(alerts);
	if (n > p->lim->max_alerts) {
		char text[96];
		snprintf(text, sizeof(text), "%zu alerts exceed the limit of %zu", n,
			 p->lim->max_alerts);
		return fail(p, &w, text);
	}

	w.field = "groupLabels";
	if ((rc = get_label_set(p, root, &w, false, &wh->group_labels)))
		return rc;
	w.field = "commonLabels";
	if ((rc = get_label_set(p, root, &w, false, &wh->common_labels)))
		return rc;
	w.field = "commonAnnotations";
	if ((rc = get_label_set(p, root, &w, false, &wh->common_annotations)))
		return rc;
	w.field = "externalURL";
	if ((rc = get_string(p, root, &w, false, "", &wh->external_url, NULL)))
		return rc;

	w.field = "truncatedAlerts";
	json_t *t = field(root, &w, false);
	wh->truncated_alerts = 0;
	if (t) {
		if (!json_is_integer(t))
			return fail_type(p, &w, "a non-negative integer", t);
		if (json_integer_value(t) < 0) {
			char text[64];
			snprintf(text, sizeof(text),
				 "expected a non-negative integer, got %" JSON_INTEGER_FORMAT,
				 json_integer_value(t));
			return fail(p, &w, text);
		}
		wh->truncated_alerts = json_integer_value(t);
	}

	wh->alerts = arena_array(&p->arena, n, sizeof(*wh->alerts), _Alignof(struct alert));
	if (n > 0 && !wh->alerts)
		return nomem(p);
	for (size_t i = 0; i < n; i++) {
		if ((rc = parse_alert(p, json_array_get(alerts, i), i, &wh->alerts[i])))
			return rc;
		wh->n_alerts = i + 1;
	}
	return ALERT_PARSE_OK;
}

static bool is_blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
			return false;
	return true;
}

/* jansson's text may quote raw input bytes ("near '...'"): keep printable
 * ASCII only so the message is valid UTF-8 and free of control bytes. */
static void set_json_error(struct error *err, const json_error_t *je)
{
	struct msgbuf m;
	int n = snprintf(m.s, sizeof(m.s), "invalid JSON at line %d, column %d: ", je->line,
			 je->column);
	m.len = n > 0 ? (size_t)n : 0;
	for (const char *c = je->text; *c && c < je->text + sizeof(je->text); c++) {
		unsigned char u = (unsigned char)*c;
		if (u >= 0x20 && u < 0x7f) {
			put(m.s, sizeof(m.s), &m.len, c, 1);
		} else {
			char esc[8];
			snprintf(esc, sizeof(esc), "\\x%02x", u);
			put(m.s, sizeof(m.s), &m.len, esc, 4);
		}
	}
	set_message(err, m.s, m.len);
}

enum alert_parse_result alert_parse_webhook(const char *body, size_t len,
					    const struct alert_limits *lim, struct webhook *out,
					    struct error *err)
{
	static const struct alert_limits default_limits = ALERT_LIMITS_DEFAULT;
	struct parser p = {NULL, lim ? lim : &default_limits, err};
	enum alert_parse_result rc;
	json_t *root = NULL;
	json_error_t je;

	memset(out, 0, sizeof(*out));
	if (err)
		err->msg[0] = '\0';
	if (!body || is_blank(body, len)) {
		error_set(err, "body: empty");
		return ALERT_PARSE_EMPTY;
	}
	/* DECODE_ANY so a bare scalar is "not a webhook" rather than bad
	 * JSON; ALLOW_NUL because label values may carry \u0000. */
	root =
	    json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
	if (!root) {
		if (json_error_code(&je) == json_error_out_of_memory) {
			rc = nomem(&p);
		} else {
			set_json_error(err, &je);
			rc = ALERT_PARSE_JSON;
		}
		goto out;
	}
	/* decoded strings never outgrow the body; structs add a little */
	p.arena =
	    arena_chunk_new(NULL, len < ARENA_FIRST_MAX - 1024 ? len + 1024 : ARENA_FIRST_MAX);
	if (!p.arena) {
		rc = nomem(&p);
		goto out;
	}
	rc = parse_webhook(&p, root, out);
out:
	json_decref(root);
	if (rc != ALERT_PARSE_OK) {
		arena_free(p.arena);
		memset(out, 0, sizeof(*out));
	} else {
		out->arena_ = p.arena;
	}
	return rc;
}

void webhook_release(struct webhook *wh)
{
	if (!wh)
		return;
	arena_free(wh->arena_);
	memset(wh, 0, sizeof(*wh));
}

const struct label *label_set_get(const struct label_set *set, const char *name)
{
	if (!set || !name)
		return NULL;
	size_t lo = 0, hi = set->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, set->items[mid].name);
		if (c == 0)
			return &set->items[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

#define FNV64_OFFSET 14695981039346656037ULL
#define FNV64_PRIME 1099511628211ULL

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= FNV64_PRIME;
	}
	return h;
}

void alert_fingerprint(const struct label_set *labels, char out[17])
{
	static const char hex[] = "0123456789abcdef";
	static const unsigned char sep = 0xff; /* model.SeparatorByte */
	uint64_t h = FNV64_OFFSET;
	for (size_t i = 0; labels && i < labels->n; i++) {
		const struct label *l = &labels->items[i];
		h = fnv1a(h, l->name, strlen(l->name));
		h = fnv1a(h, &sep, 1);
		h = fnv1a(h, l->value, l->value_len);
		h = fnv1a(h, &sep, 1);
	}
	for (int i = 15; i >= 0; i--, h >>= 4)
		out[i] = hex[h & 0xf];
	out[16] = '\0';
}

const char *alert_status_name(enum alert_status s)
{
	switch (s) {
	case ALERT_FIRING:
		return "firing";
	case ALERT_RESOLVED:
		return "resolved";
	}
	return "unknown";
}
