/*
 * changes: parse POST /v1/changes bodies and keep the latest changes per
 * target (SPEC §11).
 *
 * The parser is pure. The store keeps, per target, only what decisions and
 * templates need (revision, previous revision, source, time): the url and
 * author live in the journal. Memory is bounded: CHANGES_PER_TARGET per
 * target, CHANGES_MAX_TARGETS targets. Never blocks, never calls out.
 */
#include "rollbackd/changes.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "rollbackd/log.h"
#include "rollbackd/record.h"
#include "rollbackd/text.h"

/* ---- parsing ------------------------------------------------------------ */

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
		return "null";
	}
	return "a value";
}

/* Printable text without control bytes (so it is safe in argv, URLs,
 * headers and logs), valid UTF-8 (jansson checked that). */
static bool no_controls(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

/* A revision: a string, or an integer (Argo CD history ids, Kubernetes
 * revisions) written in decimal. */
static int get_revision(json_t *root, const char *key, bool required, char *dst, size_t cap,
			struct error *err)
{
	json_t *v = json_object_get(root, key);
	dst[0] = '\0';
	if (!v) {
		if (required)
			return error_set(err, "%s: missing (a non-empty string is required)", key);
		return 0;
	}
	if (json_is_integer(v)) {
		if (json_integer_value(v) < 0)
			return error_set(err, "%s: expected a non-negative integer or a string",
					 key);
		snprintf(dst, cap, "%lld", (long long)json_integer_value(v));
		return 0;
	}
	if (!json_is_string(v))
		return error_set(err, "%s: expected a non-empty string, got %s", key, jtype(v));
	size_t n = json_string_length(v);
	if (n == 0)
		return error_set(err, "%s: expected a non-empty string, got \"\"", key);
	if (n > cap - 1)
		return error_set(err, "%s: longer than %zu bytes", key, cap - 1);
	if (!no_controls(json_string_value(v), n))
		return error_set(err, "%s: contains a control character", key);
	memcpy(dst, json_string_value(v), n + 1);
	return 0;
}

static int get_text(json_t *root, const char *key, char *dst, size_t cap, struct error *err)
{
	json_t *v = json_object_get(root, key);
	dst[0] = '\0';
	if (!v)
		return 0;
	if (!json_is_string(v))
		return error_set(err, "%s: expected a string, got %s", key, jtype(v));
	size_t n = json_string_length(v);
	if (n > cap - 1)
		return error_set(err, "%s: longer than %zu bytes", key, cap - 1);
	if (!no_controls(json_string_value(v), n))
		return error_set(err, "%s: contains a control character", key);
	memcpy(dst, json_string_value(v), n + 1);
	return 0;
}

/* A source becomes a metric label value: keep it a short token. */
static bool valid_source(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++) {
		char c = *s;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

static int validate(json_t *root, struct timestamp now, struct change *c, struct error *err)
{
	static const char *const known[] = {
	    "target", "revision", "previous_revision", "at", "source", "url", "author", NULL};
	const char *k;
	json_t *v;
	if (!json_is_object(root))
		return error_set(err, "body: expected a JSON object, got %s", jtype(root));
	json_object_foreach(root, k, v)
	{
		bool ok = false;
		for (size_t i = 0; known[i] && !ok; i++)
			ok = strcmp(k, known[i]) == 0;
		if (!ok) {
			char shown[80];
			const char *hint = text_suggest(k, known);
			text_shows(k, shown, sizeof(shown));
			if (hint)
				return error_set(err, "%s: unknown field (did you mean '%s'?)",
						 shown, hint);
			return error_set(err, "%s: unknown field", shown);
		}
	}
	if (get_revision(root, "target", true, c->target, sizeof(c->target), err) < 0 ||
	    get_revision(root, "revision", true, c->revision, sizeof(c->revision), err) < 0 ||
	    get_revision(root, "previous_revision", false, c->previous_revision,
			 sizeof(c->previous_revision), err) < 0 ||
	    get_text(root, "source", c->source, sizeof(c->source), err) < 0 ||
	    get_text(root, "url", c->url, sizeof(c->url), err) < 0 ||
	    get_text(root, "author", c->author, sizeof(c->author), err) < 0)
		return -1;
	if (json_is_integer(json_object_get(root, "target")))
		return error_set(err, "target: expected a non-empty string, got a number");
	if (json_object_get(root, "source") && !valid_source(c->source))
		return error_set(err, "source: expected 1-%d characters of A-Z a-z 0-9 . _ -",
				 CHANGE_SOURCE_MAX);
	if (!c->source[0])
		snprintf(c->source, sizeof(c->source), "unknown");
	if (c->url[0] && strncmp(c->url, "http://", 7) != 0 && strncmp(c->url, "https://", 8) != 0)
		return error_set(err, "url: expected an http:// or https:// URL");
	v = json_object_get(root, "at");
	c->at = now;
	if (v) {
		if (!json_is_string(v))
			return error_set(err, "at: expected an RFC 3339 time, got %s", jtype(v));
		if (timestamp_parse(json_string_value(v), json_string_length(v), &c->at) < 0) {
			char shown[80];
			text_show(json_string_value(v), json_string_length(v), shown,
				  sizeof(shown));
			return error_set(err, "at: not an RFC 3339 time: '%s'", shown);
		}
		if (timestamp_diff_ms(c->at, now) > CHANGE_MAX_FUTURE_MS)
			return error_set(err, "at: more than %ds in the future",
					 CHANGE_MAX_FUTURE_MS / 1000);
		if (c->at.sec < 0)
			return error_set(err, "at: before 1970");
	}
	return 0;
}

/* A Flux event: {"involvedObject":{"kind","namespace","name",...},
 * "severity","timestamp","message","reason","metadata":{"revision",...},
 * "reportingController",...}. 0, 1 ignored (err says why), -1 invalid. */
static int validate_flux(json_t *root, struct timestamp now, struct change *c, struct error *err)
{
	json_t *obj = json_object_get(root, "involvedObject");
	json_t *name = json_object_get(obj, "name");
	json_t *meta = json_object_get(root, "metadata");
	json_t *sev = json_object_get(root, "severity");
	json_t *ts = json_object_get(root, "timestamp");
	if (!json_is_object(obj))
		return error_set(err, "involvedObject: expected an object, got %s", jtype(obj));
	if (!json_is_string(name) || json_string_length(name) == 0)
		return error_set(err, "involvedObject.name: expected a non-empty string");
	if (meta && !json_is_object(meta))
		return error_set(err, "metadata: expected an object, got %s", jtype(meta));
	if (sev && !json_is_string(sev))
		return error_set(err, "severity: expected a string, got %s", jtype(sev));
	if (sev && strcmp(json_string_value(sev), "info") != 0) {
		error_set(err, "a Flux event of severity '%s' is not a change",
			  json_string_value(sev));
		return 1;
	}
	json_t *rev = json_object_get(meta, "revision");
	if (!rev) {
		error_set(err, "a Flux event without metadata.revision is not a change");
		return 1;
	}
	json_t *fake = json_object();
	if (!fake)
		return error_set(err, "out of memory");
	json_t *target = json_object_get(meta, "target");
	int rc = 0;
	if (target) {
		json_object_set(fake, "target", target);
	} else {
		char t[CHANGE_TARGET_MAX + 2];
		snprintf(t, sizeof(t), "service=%s", json_string_value(name));
		json_object_set_new(fake, "target", json_string(t));
	}
	json_object_set(fake, "revision", rev);
	if (get_revision(fake, "target", true, c->target, sizeof(c->target), err) < 0 ||
	    get_revision(fake, "revision", true, c->revision, sizeof(c->revision), err) < 0) {
		/* name the field as Flux sent it */
		struct error e2;
		error_set(&e2, "metadata.%s", err->msg);
		*err = e2;
		rc = -1;
	}
	json_decref(fake);
	if (rc < 0)
		return -1;
	snprintf(c->source, sizeof(c->source), "flux");
	c->at = now;
	if (ts) {
		if (!json_is_string(ts) ||
		    timestamp_parse(json_string_value(ts), json_string_length(ts), &c->at) < 0)
			return error_set(err, "timestamp: expected an RFC 3339 time");
		if (timestamp_diff_ms(c->at, now) > CHANGE_MAX_FUTURE_MS)
			return error_set(err, "timestamp: more than %ds in the future",
					 CHANGE_MAX_FUTURE_MS / 1000);
	}
	return 0;
}

int changes_parse(const char *body, size_t len, struct timestamp now, struct change *out,
		  enum change_format *fmt, bool *json_error, struct error *err)
{
	json_error_t je;
	*json_error = false;
	*fmt = CHANGE_FORMAT_ROLLBACKD;
	json_t *root = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		*json_error = true;
		return error_set(err, "invalid JSON at line %d, column %d: %s", je.line, je.column,
				 je.text);
	}
	struct change *c = calloc(1, sizeof(*c));
	int rc = -1;
	if (!c) {
		error_set(err, "out of memory");
	} else if (json_is_object(root) && json_object_get(root, "involvedObject")) {
		int v = validate_flux(root, now, c, err);
		if (v >= 0) {
			*fmt = v ? CHANGE_FORMAT_IGNORED : CHANGE_FORMAT_FLUX;
			if (v == 0)
				*out = *c;
			rc = 0;
		}
	} else if (validate(root, now, c, err) == 0) {
		*out = *c;
		rc = 0;
	}
	free(c);
	json_decref(root);
	return rc;
}

int changes_record_members(const struct change *c, struct buf *out)
{
	struct record_change v = {
	    .target = c->target,
	    .revision = c->revision,
	    .previous_revision = c->previous_revision,
	    .at = c->at,
	    .source = c->source,
	    .url = c->url,
	    .author = c->author,
	};
	return record_build_change(out, &v);
}

static int label_ptr_cmp(const void *a, const void *b)
{
	const struct label *x = *(const struct label *const *)a;
	const struct label *y = *(const struct label *const *)b;
	return strcmp(x->name, y->name);
}

int changes_default_target(const struct label *group, size_t n, struct buf *out)
{
	if (buf_grow(out, 0) < 0)
		return -1;
	if (n == 0)
		return 0;
	const struct label **sorted = malloc(n * sizeof(*sorted));
	if (!sorted)
		return -1;
	for (size_t i = 0; i < n; i++)
		sorted[i] = &group[i];
	qsort(sorted, n, sizeof(*sorted), label_ptr_cmp);
	int bad = 0;
	for (size_t i = 0; i < n; i++)
		bad |= buf_adds(out, i ? "," : "") | buf_adds(out, sorted[i]->name) |
		       buf_addc(out, '=') |
		       buf_add(out, sorted[i]->value, strlen(sorted[i]->value));
	free(sorted);
	return bad ? -1 : 0;
}

/* ---- the store ---------------------------------------------------------- */

struct kept {
	char *revision;
	char *previous_revision;
	char *source;
	struct timestamp at;
	uint64_t seq; /* of its change record (0: not known) */
};

struct target_changes {
	char *target;
	uint64_t hash;
	struct kept kept[CHANGES_PER_TARGET]; /* oldest first, by at */
	size_t n;
	uint64_t touched;	     /* store clock when a change was last added */
	struct target_changes *next; /* hash chain */
};

#define N_BUCKETS 1024

struct changes {
	pthread_mutex_t ingest; /* changes_ingest_lock: journal + add of one change */
	pthread_mutex_t lock;
	struct target_changes *buckets[N_BUCKETS];
	size_t n_targets;
	size_t n_changes;
	uint64_t clock;
};

static uint64_t fnv(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static void kept_release(struct kept *k)
{
	free(k->revision);
	free(k->previous_revision);
	free(k->source);
	memset(k, 0, sizeof(*k));
}

static void target_free(struct target_changes *t)
{
	for (size_t i = 0; i < t->n; i++)
		kept_release(&t->kept[i]);
	free(t->target);
	free(t);
}

struct changes *changes_new(void)
{
	struct changes *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	pthread_mutex_init(&s->ingest, NULL);
	pthread_mutex_init(&s->lock, NULL);
	return s;
}

void changes_free(struct changes *s)
{
	if (!s)
		return;
	for (size_t b = 0; b < N_BUCKETS; b++) {
		struct target_changes *t = s->buckets[b], *next;
		for (; t; t = next) {
			next = t->next;
			target_free(t);
		}
	}
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->ingest);
	free(s);
}

static struct target_changes *find(struct changes *s, const char *target, uint64_t h)
{
	for (struct target_changes *t = s->buckets[h % N_BUCKETS]; t; t = t->next)
		if (t->hash == h && strcmp(t->target, target) == 0)
			return t;
	return NULL;
}

/* Drop the target that changed least recently (the store is full). */
static void evict_one(struct changes *s)
{
	struct target_changes **victim = NULL;
	for (size_t b = 0; b < N_BUCKETS; b++)
		for (struct target_changes **p = &s->buckets[b]; *p; p = &(*p)->next)
			if (!victim || (*p)->touched < (*victim)->touched)
				victim = p;
	if (!victim)
		return;
	struct target_changes *t = *victim;
	*victim = t->next;
	s->n_targets--;
	s->n_changes -= t->n;
	target_free(t);
}

static int64_t at_ms(struct timestamp t)
{
	return t.sec * 1000 + t.nsec / 1000000;
}

static int kept_cmp_at(const struct kept *k, struct timestamp at)
{
	if (k->at.sec != at.sec)
		return k->at.sec < at.sec ? -1 : 1;
	if (k->at.nsec != at.nsec)
		return k->at.nsec < at.nsec ? -1 : 1;
	return 0;
}

static bool same(const struct kept *k, const struct change *c)
{
	return kept_cmp_at(k, c->at) == 0 && strcmp(k->revision, c->revision) == 0 &&
	       strcmp(k->previous_revision, c->previous_revision) == 0 &&
	       strcmp(k->source, c->source) == 0;
}

static bool has_locked(struct changes *s, const struct change *c)
{
	struct target_changes *t = find(s, c->target, fnv(c->target));
	for (size_t i = 0; t && i < t->n; i++)
		if (same(&t->kept[i], c))
			return true;
	return false;
}

bool changes_has(struct changes *s, const struct change *c)
{
	pthread_mutex_lock(&s->lock);
	bool r = has_locked(s, c);
	pthread_mutex_unlock(&s->lock);
	return r;
}

void changes_ingest_lock(struct changes *s)
{
	pthread_mutex_lock(&s->ingest);
}

void changes_ingest_unlock(struct changes *s)
{
	pthread_mutex_unlock(&s->ingest);
}

int changes_held_seqs(struct changes *s, uint64_t **out, size_t *n_out)
{
	/* no allocation under the lock: room for the count, again if it grew */
	for (;;) {
		size_t cap = changes_count(s);
		uint64_t *seqs = malloc((cap ? cap : 1) * sizeof(*seqs));
		if (!seqs)
			return -1;
		size_t n = 0;
		pthread_mutex_lock(&s->lock);
		bool fits = s->n_changes <= cap;
		for (size_t b = 0; fits && b < N_BUCKETS; b++)
			for (const struct target_changes *t = s->buckets[b]; t; t = t->next)
				for (size_t i = 0; i < t->n; i++)
					if (t->kept[i].seq)
						seqs[n++] = t->kept[i].seq;
		pthread_mutex_unlock(&s->lock);
		if (fits) {
			*out = seqs;
			*n_out = n;
			return 0;
		}
		free(seqs);
	}
}

int changes_add(struct changes *s, const struct change *c)
{
	return changes_add_seq(s, c, 0);
}

int changes_add_seq(struct changes *s, const struct change *c, uint64_t seq)
{
	struct kept k = {strdup(c->revision), strdup(c->previous_revision), strdup(c->source),
			 c->at, seq};
	char *name = NULL;
	struct target_changes *fresh = NULL;
	int rc = -1;
	if (!k.revision || !k.previous_revision || !k.source)
		goto out;
	uint64_t h = fnv(c->target);
	/* allocate outside the lock's critical work where we can */
	name = strdup(c->target);
	fresh = calloc(1, sizeof(*fresh));
	if (!name || !fresh)
		goto out;

	pthread_mutex_lock(&s->lock);
	if (has_locked(s, c)) {
		pthread_mutex_unlock(&s->lock);
		rc = 1;
		goto out;
	}
	struct target_changes *t = find(s, c->target, h);
	if (!t) {
		if (s->n_targets >= CHANGES_MAX_TARGETS)
			evict_one(s);
		t = fresh;
		fresh = NULL;
		t->target = name;
		name = NULL;
		t->hash = h;
		t->next = s->buckets[h % N_BUCKETS];
		s->buckets[h % N_BUCKETS] = t;
		s->n_targets++;
	}
	/* keep oldest first by at; the oldest falls out when full */
	size_t pos = t->n;
	while (pos > 0 && kept_cmp_at(&t->kept[pos - 1], c->at) > 0)
		pos--;
	if (t->n == CHANGES_PER_TARGET) {
		if (pos == 0) { /* older than all eight kept: not kept */
			pthread_mutex_unlock(&s->lock);
			rc = 0;
			goto out;
		}
		kept_release(&t->kept[0]);
		memmove(&t->kept[0], &t->kept[1], (pos - 1) * sizeof(t->kept[0]));
		pos--;
	} else {
		memmove(&t->kept[pos + 1], &t->kept[pos], (t->n - pos) * sizeof(t->kept[0]));
		t->n++;
		s->n_changes++;
	}
	t->kept[pos] = k;
	memset(&k, 0, sizeof(k));
	t->touched = ++s->clock;
	pthread_mutex_unlock(&s->lock);
	rc = 0;
out:
	kept_release(&k);
	free(name);
	free(fresh);
	return rc;
}

static void copy_out(const char *target, const struct kept *k, struct change *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->target, sizeof(out->target), "%s", target);
	snprintf(out->revision, sizeof(out->revision), "%s", k->revision);
	snprintf(out->previous_revision, sizeof(out->previous_revision), "%s",
		 k->previous_revision);
	snprintf(out->source, sizeof(out->source), "%s", k->source);
	out->at = k->at;
}

bool changes_within(struct changes *s, const char *target, struct timestamp from,
		    struct timestamp to, struct change *out)
{
	bool found = false;
	int64_t lo = at_ms(from), hi = at_ms(to);
	pthread_mutex_lock(&s->lock);
	struct target_changes *t = find(s, target, fnv(target));
	for (size_t i = t ? t->n : 0; i > 0 && !found; i--) {
		int64_t ms = at_ms(t->kept[i - 1].at);
		if (ms >= lo && ms <= hi) {
			found = true;
			if (out)
				copy_out(target, &t->kept[i - 1], out);
		}
	}
	pthread_mutex_unlock(&s->lock);
	return found;
}

bool changes_latest(struct changes *s, const char *target, struct change *out)
{
	bool found = false;
	pthread_mutex_lock(&s->lock);
	struct target_changes *t = find(s, target, fnv(target));
	if (t && t->n > 0) {
		copy_out(target, &t->kept[t->n - 1], out);
		found = true;
	}
	pthread_mutex_unlock(&s->lock);
	return found;
}

size_t changes_count(struct changes *s)
{
	pthread_mutex_lock(&s->lock);
	size_t n = s->n_changes;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* ---- replay ------------------------------------------------------------- */

int changes_replay_record(struct changes *s, const struct record *rec)
{
	if (rec->type != RECORD_CHANGE)
		return 0;
	int rc = 0;
	struct change *c = calloc(1, sizeof(*c));
	char at[128];
	bool has_prev = record_member(rec, "previous_revision") != 0;
	if (!c) {
		rc = -1;
	} else if (record_str(rec, "target", c->target, sizeof(c->target)) &&
		   record_str(rec, "revision", c->revision, sizeof(c->revision)) &&
		   record_str(rec, "source", c->source, sizeof(c->source)) &&
		   record_str(rec, "at", at, sizeof(at)) &&
		   (!has_prev || record_str(rec, "previous_revision", c->previous_revision,
					    sizeof(c->previous_revision))) &&
		   timestamp_parse(at, strlen(at), &c->at) == 0) {
		rc = changes_add_seq(s, c, rec->seq) < 0 ? -1 : 1;
	} else {
		log_warn("journal: a change record does not validate; skipped on replay", NULL);
	}
	free(c);
	return rc;
}
