/*
 * alert: parse an Alertmanager webhook (payload version "4") or a Grafana
 * alerting webhook (version "1" with Grafana's own fields) into structs.
 *
 * Pure: bytes in, a struct webhook or an error naming the field out. The body
 * is tokenized by json.c into a token array (on the stack for ordinary
 * payloads) and never pointed into after returning; everything a webhook owns
 * lives in one chunked bump arena that webhook_release frees in one go.
 * Error messages carry only the field path and a short, escaped excerpt of
 * the offending value, never the body.
 *
 * Over 800 lines because the two payload shapes (Alertmanager's and
 * Grafana's) share one arena, one set of field checkers and one error-message
 * style; the arena and the messages are the only parts that could move, and
 * both are used by every field.
 */
#include "rollbackd/alert.h"
#include "rollbackd/json.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
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
	const struct json_doc *doc;
	const struct alert_limits *lim;
	struct error *err;
	bool grafana; /* the payload is Grafana's: read its per-alert fields */
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

/* s (n bytes of valid UTF-8, as json.c guarantees) quoted JSON-style, cut
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

static const char *kind_name(const struct json_tok *v)
{
	switch (v->kind) {
	case JSON_KIND_OBJECT:
		return "an object";
	case JSON_KIND_ARRAY:
		return "an array";
	case JSON_KIND_STRING:
		return "a string";
	case JSON_KIND_NUMBER:
		return "a number";
	case JSON_KIND_TRUE:
	case JSON_KIND_FALSE:
		return "a boolean";
	case JSON_KIND_NULL:
		return "null";
	}
	return "a value";
}

static enum alert_parse_result fail_type(struct parser *p, const struct where *w,
					 const char *expected, size_t v)
{
	struct msgbuf m;
	msg_start(&m, w);
	msg_add(&m, "expected ");
	msg_add(&m, expected);
	msg_add(&m, ", got ");
	msg_add(&m, kind_name(&p->doc->toks[v]));
	return msg_fail(p, &m);
}

static enum alert_parse_result nomem(struct parser *p)
{
	error_set(p->err, "out of memory");
	return ALERT_PARSE_NOMEM;
}

/* ---- fields ----------------------------------------------------------- */

static const struct json_tok *tok(const struct parser *p, size_t v)
{
	return &p->doc->toks[v];
}

/* Token index of w->field in object obj, or 0 when absent. A JSON null
 * counts as absent for optional fields (Go writes nil maps and slices as
 * null). */
static size_t field(const struct parser *p, size_t obj, const struct where *w, bool required)
{
	size_t v = json_obj_get(p->doc, obj, w->field);
	if (v && !required && tok(p, v)->kind == JSON_KIND_NULL)
		return 0;
	return v;
}

/* The decoded bytes of string token v: a view into the body when it has no
 * escapes, else a copy in the arena (NULL on OOM). */
static const char *str_view(struct parser *p, size_t v)
{
	const struct json_tok *t = tok(p, v);
	if (!(t->flags & JSON_TOK_ESCAPED))
		return p->doc->text + t->start;
	char *d = arena_alloc(&p->arena, (size_t)t->size + 1, 1);
	if (d)
		json_str_decode(p->doc, t, d);
	return d;
}

/* String token v copied into the arena, NUL-terminated. */
static char *str_dup(struct parser *p, size_t v)
{
	const struct json_tok *t = tok(p, v);
	char *d = arena_alloc(&p->arena, (size_t)t->size + 1, 1);
	if (d)
		json_str_decode(p->doc, t, d);
	return d;
}

/* A string field, copied into the arena. Absent optional fields give def. */
static enum alert_parse_result get_string(struct parser *p, size_t obj, const struct where *w,
					  bool required, const char *def, const char **out,
					  size_t *out_len)
{
	size_t v = field(p, obj, w, required);
	if (!v) {
		if (required)
			return fail(p, w, "missing");
		*out = def;
		if (out_len)
			*out_len = def ? strlen(def) : 0;
		return ALERT_PARSE_OK;
	}
	if (tok(p, v)->kind != JSON_KIND_STRING)
		return fail_type(p, w, "a string", v);
	size_t n = tok(p, v)->size;
	char *s = str_dup(p, v);
	if (!s)
		return nomem(p);
	*out = s;
	if (out_len)
		*out_len = n;
	return ALERT_PARSE_OK;
}

static enum alert_parse_result get_status(struct parser *p, size_t obj, const struct where *w,
					  enum alert_status *out)
{
	size_t v = json_obj_get(p->doc, obj, w->field);
	if (!v)
		return fail(p, w, "missing");
	if (tok(p, v)->kind != JSON_KIND_STRING)
		return fail_type(p, w, "a string", v);
	if (json_str_eq(p->doc, tok(p, v), "firing", 6)) {
		*out = ALERT_FIRING;
	} else if (json_str_eq(p->doc, tok(p, v), "resolved", 8)) {
		*out = ALERT_RESOLVED;
	} else {
		const char *s = str_view(p, v);
		if (!s)
			return nomem(p);
		return fail_value(p, w, "expected \"firing\" or \"resolved\", got ", s,
				  tok(p, v)->size);
	}
	return ALERT_PARSE_OK;
}

static enum alert_parse_result get_time(struct parser *p, size_t obj, const struct where *w,
					bool required, struct timestamp *out)
{
	size_t v = field(p, obj, w, required);
	if (!v) {
		if (required)
			return fail(p, w, "missing");
		out->sec = TIMESTAMP_GO_ZERO_SEC;
		out->nsec = 0;
		return ALERT_PARSE_OK;
	}
	if (tok(p, v)->kind != JSON_KIND_STRING)
		return fail_type(p, w, "a string", v);
	const char *s = str_view(p, v);
	size_t n = tok(p, v)->size;
	if (!s)
		return nomem(p);
	if (timestamp_parse(s, n, out) < 0)
		return fail_value(p, w, "not an RFC 3339 time: ", s, n);
	return ALERT_PARSE_OK;
}

static int label_cmp(const void *a, const void *b)
{
	return strcmp(((const struct label *)a)->name, ((const struct label *)b)->name);
}

/* A map of strings (labels, annotations). Names are unique (json.c rejects
 * duplicate names in every object, and names may not contain NUL), so
 * sorting by strcmp gives a strict order; equal neighbours after the sort
 * are still checked for, in case that ever changes. */
static enum alert_parse_result get_label_set(struct parser *p, size_t obj, struct where *w,
					     bool required, struct label_set *out)
{
	const struct json_doc *doc = p->doc;
	out->items = NULL;
	out->n = 0;
	size_t v = field(p, obj, w, required);
	if (!v) {
		if (required)
			return fail(p, w, "missing");
		return ALERT_PARSE_OK;
	}
	if (tok(p, v)->kind != JSON_KIND_OBJECT)
		return fail_type(p, w, "an object", v);
	size_t n = tok(p, v)->size;
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
	size_t i = 0;
	bool sorted = true;
	for (size_t k = json_obj_first(doc, v); k < json_obj_end(doc, v);
	     k = json_obj_nextkey(doc, k)) {
		const struct json_tok *key = tok(p, k), *val = tok(p, k + 1);
		if (key->size == 0)
			return fail(p, w, "empty name");
		char *name = str_dup(p, k);
		if (!name)
			return nomem(p);
		/* json.c refuses "\u0000" in names, as jansson did; a C-string
		 * name could not hold one, so check rather than trust that */
		if (memchr(name, '\0', key->size)) {
			w->key = name;
			w->key_len = key->size;
			return fail(p, w, "name contains a NUL byte");
		}
		if (val->kind != JSON_KIND_STRING) {
			w->key = name;
			w->key_len = key->size;
			return fail_type(p, w, "a string", k + 1);
		}
		struct label *l = &items[i];
		l->name = name;
		l->value = str_dup(p, k + 1);
		if (!l->value)
			return nomem(p);
		l->value_len = val->size;
		if (i > 0 && sorted && strcmp(items[i - 1].name, l->name) >= 0)
			sorted = false;
		i++;
	}
	/* Go writes map keys sorted, so this is the rare path */
	if (!sorted) {
		qsort(items, i, sizeof(*items), label_cmp);
		for (size_t j = 1; j < i; j++) {
			if (strcmp(items[j - 1].name, items[j].name) == 0) {
				w->key = items[j].name;
				w->key_len = strlen(items[j].name);
				return fail(p, w, "duplicate name");
			}
		}
	}
	out->items = items;
	out->n = i;
	return ALERT_PARSE_OK;
}

/* Grafana's "values": {"B": 44.2, "C": 1}, kept as the numbers' text. */
static enum alert_parse_result get_values(struct parser *p, size_t obj, struct where *w,
					  struct label_set *out)
{
	const struct json_doc *doc = p->doc;
	out->items = NULL;
	out->n = 0;
	size_t v = field(p, obj, w, false);
	if (!v)
		return ALERT_PARSE_OK;
	if (tok(p, v)->kind != JSON_KIND_OBJECT)
		return fail_type(p, w, "an object", v);
	size_t n = tok(p, v)->size;
	if (n > p->lim->max_labels) {
		char text[96];
		snprintf(text, sizeof(text), "%zu entries exceed the limit of %zu", n,
			 p->lim->max_labels);
		return fail(p, w, text);
	}
	if (n == 0)
		return ALERT_PARSE_OK;
	struct label *items = arena_array(&p->arena, n, sizeof(*items), _Alignof(struct label));
	if (!items)
		return nomem(p);
	size_t i = 0;
	for (size_t k = json_obj_first(doc, v); k < json_obj_end(doc, v);
	     k = json_obj_nextkey(doc, k)) {
		const struct json_tok *key = tok(p, k), *val = tok(p, k + 1);
		char *name = str_dup(p, k);
		if (!name)
			return nomem(p);
		if (memchr(name, '\0', key->size)) {
			w->key = name;
			w->key_len = key->size;
			return fail(p, w, "name contains a NUL byte");
		}
		if (val->kind != JSON_KIND_NUMBER) {
			w->key = name;
			w->key_len = key->size;
			return fail_type(p, w, "a number", k + 1);
		}
		size_t len = val->end - val->start;
		char *num = arena_alloc(&p->arena, len + 1, 1);
		if (!num)
			return nomem(p);
		memcpy(num, doc->text + val->start, len);
		num[len] = '\0';
		items[i++] = (struct label){name, num, len};
	}
	qsort(items, i, sizeof(*items), label_cmp);
	out->items = items;
	out->n = i;
	return ALERT_PARSE_OK;
}

/* ---- the payload ------------------------------------------------------ */

static enum alert_parse_result parse_alert(struct parser *p, size_t v, size_t idx, struct alert *a)
{
	enum alert_parse_result rc;
	struct where w = {idx, NULL, NULL, 0};

	if (tok(p, v)->kind != JSON_KIND_OBJECT)
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
	if (p->grafana) {
		static const struct {
			const char *name;
			size_t off;
		} urls[] = {
		    {"silenceURL", offsetof(struct alert, silence_url)},
		    {"dashboardURL", offsetof(struct alert, dashboard_url)},
		    {"panelURL", offsetof(struct alert, panel_url)},
		    {"imageURL", offsetof(struct alert, image_url)},
		    {"valueString", offsetof(struct alert, value_string)},
		};
		for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
			w.field = urls[i].name;
			if ((rc = get_string(p, v, &w, false, "",
					     (const char **)((char *)a + urls[i].off), NULL)))
				return rc;
		}
		w.field = "values";
		if ((rc = get_values(p, v, &w, &a->values)))
			return rc;
	} else {
		a->silence_url = a->dashboard_url = a->panel_url = a->image_url = "";
		a->value_string = "";
	}
	if (!a->fingerprint) {
		char *fp = arena_alloc(&p->arena, 17, 1);
		if (!fp)
			return nomem(p);
		alert_fingerprint(&a->labels, fp);
		a->fingerprint = fp;
	}
	return ALERT_PARSE_OK;
}

/* Grafana's webhook: an integer orgId and at least one of its top-level
 * state / title / message strings, or a silenceURL on its first alert. */
static bool is_grafana(const struct parser *p, size_t root)
{
	size_t org = json_obj_get(p->doc, root, "orgId");
	if (!org || tok(p, org)->kind != JSON_KIND_NUMBER || !(tok(p, org)->flags & JSON_TOK_INT))
		return false;
	static const char *const own[] = {"state", "title", "message"};
	for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
		size_t v = json_obj_get(p->doc, root, own[i]);
		if (v && tok(p, v)->kind == JSON_KIND_STRING)
			return true;
	}
	size_t alerts = json_obj_get(p->doc, root, "alerts");
	if (alerts && tok(p, alerts)->kind == JSON_KIND_ARRAY && tok(p, alerts)->size > 0) {
		size_t first = json_arr_first(p->doc, alerts);
		size_t su = tok(p, first)->kind == JSON_KIND_OBJECT
				? json_obj_get(p->doc, first, "silenceURL")
				: 0;
		return su && tok(p, su)->kind == JSON_KIND_STRING;
	}
	return false;
}

static enum alert_parse_result parse_webhook(struct parser *p, size_t root, struct webhook *wh)
{
	enum alert_parse_result rc;
	struct where w = {NO_ALERT, "body", NULL, 0};
	size_t version_len = 0;

	if (tok(p, root)->kind != JSON_KIND_OBJECT)
		return fail_type(p, &w, "a JSON object", root);

	w.field = "version";
	if ((rc = get_string(p, root, &w, true, NULL, &wh->version, &version_len)))
		return rc;
	wh->sender = WEBHOOK_ALERTMANAGER;
	wh->state = wh->title = wh->message = "";
	if (version_len == 1 && wh->version[0] == '1' && is_grafana(p, root)) {
		/* Grafana-managed alerting: its own fields say so, not "1" alone */
		wh->sender = WEBHOOK_GRAFANA;
		p->grafana = true;
		wh->org_id = json_int_value(p->doc, tok(p, json_obj_get(p->doc, root, "orgId")));
		w.field = "state";
		if ((rc = get_string(p, root, &w, false, "", &wh->state, NULL)))
			return rc;
		w.field = "title";
		if ((rc = get_string(p, root, &w, false, "", &wh->title, NULL)))
			return rc;
		w.field = "message";
		if ((rc = get_string(p, root, &w, false, "", &wh->message, NULL)))
			return rc;
	} else if (version_len != 1 || wh->version[0] != '4') {
		return fail_value(p, &w, "expected \"4\", got ", wh->version, version_len);
	}
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
	size_t alerts = json_obj_get(p->doc, root, "alerts");
	if (!alerts)
		return fail(p, &w, "missing");
	if (tok(p, alerts)->kind != JSON_KIND_ARRAY)
		return fail_type(p, &w, "an array", alerts);
	size_t n = tok(p, alerts)->size;
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
	size_t t = field(p, root, &w, false);
	wh->truncated_alerts = 0;
	if (t) {
		/* json.c already refused integers beyond int64 ("too big
		 * integer"), as jansson did */
		if (tok(p, t)->kind != JSON_KIND_NUMBER || !(tok(p, t)->flags & JSON_TOK_INT))
			return fail_type(p, &w, "a non-negative integer", t);
		int64_t value = json_int_value(p->doc, tok(p, t));
		if (value < 0) {
			char text[64];
			snprintf(text, sizeof(text),
				 "expected a non-negative integer, got %" PRId64, value);
			return fail(p, &w, text);
		}
		wh->truncated_alerts = value;
	}

	wh->alerts = arena_array(&p->arena, n, sizeof(*wh->alerts), _Alignof(struct alert));
	if (n > 0 && !wh->alerts)
		return nomem(p);
	size_t e = json_arr_first(p->doc, alerts);
	for (size_t i = 0; i < n; i++, e = json_arr_nextel(p->doc, e)) {
		if ((rc = parse_alert(p, e, i, &wh->alerts[i])))
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

/* json.c's text may quote raw input bytes ("near '...'"): keep printable
 * ASCII only so the message is valid UTF-8 and free of control bytes. */
static void set_json_error(struct error *err, const struct json_doc *doc)
{
	struct msgbuf m;
	int n = snprintf(m.s, sizeof(m.s), "invalid JSON at line %d, column %d: ", doc->line,
			 doc->column);
	m.len = n > 0 ? (size_t)n : 0;
	for (const char *c = doc->text_err; *c && c < doc->text_err + sizeof(doc->text_err); c++) {
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

/* Tokens on the stack cover payloads of a few dozen alerts; bigger ones
 * retry with a heap array 8 times larger, up to the most a body of len
 * bytes can need (JSON_TOKENS_ENOUGH), so the work stays linear. */
#define STACK_TOKENS 768

enum alert_parse_result alert_parse_webhook(const char *body, size_t len,
					    const struct alert_limits *lim, struct webhook *out,
					    struct error *err)
{
	static const struct alert_limits default_limits = ALERT_LIMITS_DEFAULT;
	struct parser p = {NULL, NULL, lim ? lim : &default_limits, err, false};
	enum alert_parse_result rc;
	struct json_tok stack_toks[STACK_TOKENS];
	struct json_tok *toks = stack_toks, *heap = NULL;
	size_t cap = STACK_TOKENS;
	struct json_doc doc;
	enum json_status js;

	memset(out, 0, sizeof(*out));
	if (err)
		err->msg[0] = '\0';
	if (!body || is_blank(body, len)) {
		error_set(err, "body: empty");
		return ALERT_PARSE_EMPTY;
	}
	while ((js = json_doc_parse(&doc, body, len, toks, cap)) == JSON_ENOSPACE) {
		size_t most = JSON_TOKENS_ENOUGH(len);
		if (cap >= most) { /* cannot happen: json.c promises it */
			error_set(err, "body: too many JSON values");
			rc = ALERT_PARSE_INVALID;
			goto out;
		}
		cap = cap > most / 8 ? most : cap * 8;
		free(heap);
		toks = heap = malloc(cap * sizeof(*toks));
		if (!heap) {
			rc = nomem(&p);
			goto out;
		}
	}
	if (js != JSON_OK) {
		set_json_error(err, &doc);
		rc = ALERT_PARSE_JSON;
		goto out;
	}
	p.doc = &doc;
	/* decoded strings never outgrow the body; structs add a little */
	p.arena =
	    arena_chunk_new(NULL, len < ARENA_FIRST_MAX - 1024 ? len + 1024 : ARENA_FIRST_MAX);
	if (!p.arena) {
		rc = nomem(&p);
		goto out;
	}
	rc = parse_webhook(&p, 0, out);
out:
	free(heap);
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
