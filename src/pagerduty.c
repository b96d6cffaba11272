/*
 * pagerduty: Events API v2 bodies (SPEC §9).
 *
 * Pure functions; jansson builds everything but the routing key, which is
 * written straight into the caller's buffer after it was grown once, so the
 * key is never copied into memory we free without wiping. Text is repaired
 * to valid UTF-8 and cut on character boundaries: PagerDuty rejects
 * summaries over 1024 characters, and the journal must stay JSON.
 */
#include "rollbackd/pagerduty.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "rollbackd/text.h"

#define ELLIPSIS "\xe2\x80\xa6" /* U+2026 */
#define ELLIPSIS_LEN 3
#define REPLACEMENT "\xef\xbf\xbd" /* U+FFFD */
#define PD_URL_MAX 4096

/* Append s[0..n) as valid UTF-8 without NULs (bad bytes and NUL become
 * U+FFFD: readers of the journal need not accept "\u0000"); with oneline,
 * other control characters become spaces. */
static int add_clean(struct buf *b, const char *s, size_t n, bool oneline)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, k;

	while (i < n) {
		k = text_utf8_next(u + i, n - i, NULL);
		if (k == 0 || u[i] == '\0') {
			if (buf_add(b, REPLACEMENT, 3) < 0)
				return -1;
			i++;
			continue;
		}
		if (oneline && k == 1 && (u[i] < 0x20 || u[i] == 0x7f)) {
			if (buf_addc(b, ' ') < 0)
				return -1;
		} else if (buf_add(b, s + i, k) < 0) {
			return -1;
		}
		i += k;
	}
	return 0;
}

/* Cut valid UTF-8 in b to at most max bytes, "…" included, on a character
 * boundary. */
static void cut(struct buf *b, size_t max)
{
	size_t n;
	if (b->len <= max)
		return;
	if (max < ELLIPSIS_LEN) {
		buf_reset(b);
		return;
	}
	n = max - ELLIPSIS_LEN;
	while (n > 0 && ((unsigned char)b->data[n] & 0xc0) == 0x80)
		n--;
	memcpy(b->data + n, ELLIPSIS, ELLIPSIS_LEN);
	b->len = n + ELLIPSIS_LEN;
	b->data[b->len] = '\0';
}

/* A JSON string of s[0..n), repaired and cut to max bytes; NULL on OOM. */
static json_t *text(const char *s, size_t n, size_t max, bool oneline)
{
	struct buf b = BUF_INIT;
	json_t *j = NULL;

	if (add_clean(&b, s, n, oneline) == 0) {
		cut(&b, max);
		j = json_stringn(b.data ? b.data : "", b.len);
	}
	buf_release(&b);
	return j;
}

static bool is_set(const char *s)
{
	return s && *s;
}

/* Set key to a repaired, cut copy of s when s is set. */
static int set_text(json_t *o, const char *key, const char *s, size_t max)
{
	if (!is_set(s))
		return 0;
	return json_object_set_new(o, key, text(s, strlen(s), max, true));
}

static bool href_usable(const char *url)
{
	size_t n;
	if (!url)
		return false;
	n = strnlen(url, PD_URL_MAX + 1);
	if (n > PD_URL_MAX ||
	    !(strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7f)
			return false;
	return true;
}

static const struct {
	const char *label, *severity;
} severities[] = {
    {"critical", "critical"},  {"crit", "critical"},  {"page", "critical"},
    {"p1", "critical"},	       {"fatal", "critical"}, {"emergency", "critical"},
    {"error", "error"},	       {"err", "error"},      {"high", "error"},
    {"major", "error"},	       {"p2", "error"},	      {"warning", "warning"},
    {"warn", "warning"},       {"medium", "warning"}, {"minor", "warning"},
    {"p3", "warning"},	       {"info", "info"},      {"low", "info"},
    {"none", "info"},	       {"p4", "info"},	      {"p5", "info"},
    {"informational", "info"},
};

const char *pd_severity(const char *label, bool escalate)
{
	if (escalate)
		return "critical";
	if (!label)
		return "error";
	for (size_t i = 0; i < sizeof(severities) / sizeof(severities[0]); i++)
		if (strcasecmp(label, severities[i].label) == 0)
			return severities[i].severity;
	return "error";
}

const char *pd_action_name(enum pd_action a)
{
	switch (a) {
	case PD_TRIGGER:
		return "trigger";
	case PD_ACKNOWLEDGE:
		return "acknowledge";
	case PD_RESOLVE:
		return "resolve";
	}
	return NULL;
}

/* "<prefix><rule> on <service>: <state> - <extra>", state with '_' as spaces. */
static json_t *summary(const struct pd_view *v, const char *prefix)
{
	struct buf b = BUF_INIT;
	json_t *j = NULL;
	bool ok = buf_adds(&b, prefix) == 0;

	if (ok && is_set(v->rule)) {
		ok = add_clean(&b, v->rule, strlen(v->rule), true) == 0;
	} else if (ok) {
		ok = buf_adds(&b, "incident ") == 0 &&
		     add_clean(&b, v->id, strlen(v->id), true) == 0;
	}
	if (ok && is_set(v->service))
		ok = buf_adds(&b, " on ") == 0 &&
		     add_clean(&b, v->service, strlen(v->service), true) == 0;
	if (ok && is_set(v->state)) {
		size_t at = b.len + 2;
		ok =
		    buf_adds(&b, ": ") == 0 && add_clean(&b, v->state, strlen(v->state), true) == 0;
		for (size_t i = at; ok && i < b.len; i++)
			if (b.data[i] == '_')
				b.data[i] = ' ';
	}
	if (ok && is_set(v->summary_extra))
		ok = buf_adds(&b, " - ") == 0 &&
		     add_clean(&b, v->summary_extra, strlen(v->summary_extra), true) == 0;
	if (ok) {
		cut(&b, PD_SUMMARY_MAX);
		j = json_stringn(b.data ? b.data : "", b.len);
	}
	buf_release(&b);
	return j;
}

static json_t *labels_object(const struct pd_view *v)
{
	json_t *o = json_object();
	struct buf name = BUF_INIT;
	size_t n = v->n_labels < PD_LABELS_MAX ? v->n_labels : PD_LABELS_MAX;

	if (!o)
		return NULL;
	for (size_t i = 0; v->labels && i < n; i++) {
		const struct label *l = &v->labels[i];
		if (!is_set(l->name))
			continue;
		buf_reset(&name);
		if (add_clean(&name, l->name, strlen(l->name), true) < 0)
			goto fail;
		cut(&name, PD_LABEL_NAME_MAX);
		if (json_object_set_new(o, name.data,
					text(l->value ? l->value : "", l->value ? l->value_len : 0,
					     PD_LABEL_VALUE_MAX, false)) < 0)
			goto fail;
	}
	buf_release(&name);
	return o;
fail:
	buf_release(&name);
	json_decref(o);
	return NULL;
}

static json_t *link_obj(const char *href, const char *label)
{
	json_t *l = json_object();
	if (!l || json_object_set_new(l, "href", json_string(href)) < 0 ||
	    json_object_set_new(l, "text", json_string(label)) < 0) {
		json_decref(l);
		return NULL;
	}
	return l;
}

/* Everything after routing_key, as an object. */
static json_t *event_body(const struct pd_view *v, enum pd_action a)
{
	json_t *ev = json_object(), *payload = NULL, *details = NULL, *links = NULL;
	size_t idlen = strnlen(v->id, PD_DEDUP_KEY_MAX + 1);

	if (!ev || json_object_set_new(ev, "event_action", json_string(pd_action_name(a))) < 0 ||
	    json_object_set_new(ev, "dedup_key", json_stringn(v->id, idlen)) < 0)
		goto fail;
	if (a != PD_TRIGGER)
		return ev;

	payload = json_object();
	if (!payload || json_object_set_new(payload, "summary", summary(v, "")) < 0 ||
	    json_object_set_new(payload, "source",
				is_set(v->source)
				    ? text(v->source, strlen(v->source), PD_FIELD_MAX, true)
				    : json_string("rollbackd")) < 0 ||
	    json_object_set_new(payload, "severity",
				json_string(pd_severity(v->severity_label, v->escalate))) < 0 ||
	    set_text(payload, "component", v->service, PD_FIELD_MAX) < 0 ||
	    set_text(payload, "group", v->rule, PD_FIELD_MAX) < 0)
		goto fail;
	details = json_object();
	if (!details || json_object_set_new(details, "incident", json_stringn(v->id, idlen)) < 0 ||
	    set_text(details, "state", v->state, PD_FIELD_MAX) < 0 ||
	    set_text(details, "decision", v->decision, PD_FIELD_MAX) < 0 ||
	    json_object_set_new(details, "labels", labels_object(v)) < 0)
		goto fail;
	if (json_object_set_new(payload, "custom_details", details) < 0) {
		details = NULL; /* taken, and freed */
		goto fail;
	}
	details = NULL;
	if (json_object_set_new(ev, "payload", payload) < 0) {
		payload = NULL;
		goto fail;
	}
	payload = NULL;

	links = json_array();
	if (!links)
		goto fail;
	if (href_usable(v->ack_url) &&
	    json_array_append_new(links, link_obj(v->ack_url, "Acknowledge in rollbackd")) < 0)
		goto fail;
	if (href_usable(v->generator_url) &&
	    json_array_append_new(links, link_obj(v->generator_url, "Prometheus")) < 0)
		goto fail;
	if (json_array_size(links) > 0) {
		json_t *l = links;
		links = NULL;
		if (json_object_set_new(ev, "links", l) < 0)
			goto fail;
	}
	json_decref(links);
	return ev;
fail:
	json_decref(links);
	json_decref(details);
	json_decref(payload);
	json_decref(ev);
	return NULL;
}

static bool id_usable(const char *id)
{
	size_t n;
	if (!id)
		return false;
	n = strnlen(id, PD_DEDUP_KEY_MAX + 1);
	if (n == 0 || n > PD_DEDUP_KEY_MAX)
		return false;
	for (size_t i = 0, k; i < n; i += k)
		if ((k = text_utf8_next((const unsigned char *)id + i, n - i, NULL)) == 0)
			return false;
	return true;
}

/* A Change Event: {"payload": {"summary", "timestamp", "source",
 * "custom_details"}, "links"}, everything after routing_key. */
static json_t *change_body(const struct pd_view *v)
{
	json_t *ev = json_object(), *payload = json_object(), *details = json_object(), *links;
	size_t idlen = strnlen(v->id, PD_DEDUP_KEY_MAX + 1);

	if (!ev || !payload || !details ||
	    json_object_set_new(payload, "summary", summary(v, "Rollback: ")) < 0 ||
	    (is_set(v->timestamp) &&
	     set_text(payload, "timestamp", v->timestamp, PD_FIELD_MAX) < 0) ||
	    json_object_set_new(payload, "source",
				is_set(v->source)
				    ? text(v->source, strlen(v->source), PD_FIELD_MAX, true)
				    : json_string("rollbackd")) < 0 ||
	    json_object_set_new(details, "incident", json_stringn(v->id, idlen)) < 0 ||
	    set_text(details, "rule", v->rule, PD_FIELD_MAX) < 0 ||
	    set_text(details, "service", v->service, PD_FIELD_MAX) < 0 ||
	    set_text(details, "state", v->state, PD_FIELD_MAX) < 0 ||
	    json_object_set_new(details, "labels", labels_object(v)) < 0)
		goto fail;
	if (json_object_set_new(payload, "custom_details", details) < 0) {
		details = NULL;
		goto fail;
	}
	details = NULL;
	if (json_object_set_new(ev, "payload", payload) < 0) {
		payload = NULL;
		goto fail;
	}
	payload = NULL;
	if (!(links = json_array()))
		goto fail;
	if (href_usable(v->ack_url))
		json_array_append_new(links, link_obj(v->ack_url, "Incident in rollbackd"));
	if (href_usable(v->generator_url))
		json_array_append_new(links, link_obj(v->generator_url, "Prometheus"));
	if (json_array_size(links) == 0)
		json_decref(links);
	else if (json_object_set_new(ev, "links", links) < 0) /* steals links */
		goto fail;
	return ev;
fail:
	json_decref(details);
	json_decref(payload);
	json_decref(ev);
	return NULL;
}

/* Write {"routing_key": key, <rest of the event>} onto out. change: a
 * Change Event instead of event action a. */
static int build(const struct pd_view *v, enum pd_action a, bool change, const unsigned char *key,
		 size_t key_len, struct buf *out)
{
	static const char head[] = "{\"routing_key\":";
	size_t old = out->len, rest_len;
	json_t *ev;
	char *rest;
	int ret = -1;

	if (!v || !id_usable(v->id) || (a != PD_TRIGGER && a != PD_ACKNOWLEDGE && a != PD_RESOLVE))
		return -1;
	if (key_len == 0 || key_len > PD_ROUTING_KEY_MAX)
		return -1;
	for (size_t i = 0; i < key_len; i++)
		if (key[i] <= 0x20 || key[i] >= 0x7f)
			return -1;
	ev = change ? change_body(v) : event_body(v, a);
	if (!ev)
		return -1;
	rest = json_dumps(ev, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(ev);
	if (!rest)
		return -1;
	rest_len = strlen(rest); /* "{...}": at least the two members above */
	/* One grow for all of it: a key escapes to at most twice its length
	 * plus quotes, and the ',' replaces rest's '{'. */
	if (rest_len < 2 || buf_grow(out, sizeof(head) - 1 + 2 * key_len + 2 + rest_len) < 0)
		goto out;
	if (buf_adds(out, head) < 0 || buf_add_json_str(out, (const char *)key, key_len) < 0 ||
	    buf_addc(out, ',') < 0 || buf_add(out, rest + 1, rest_len - 1) < 0)
		goto out;
	ret = 0;
out:
	if (ret < 0 && out->data) {
		/* Do not leave a half-written key behind the NUL. */
		explicit_bzero(out->data + old, out->len - old);
		out->len = old;
	}
	free(rest);
	return ret;
}

int pd_event(const struct pd_view *v, enum pd_action a, const struct secret *routing_key,
	     struct buf *out)
{
	if (!routing_key || !secret_is_set(routing_key))
		return -1;
	return build(v, a, false, routing_key->data, routing_key->len, out);
}

int pd_event_redacted(const struct pd_view *v, enum pd_action a, struct buf *out)
{
	return build(v, a, false, (const unsigned char *)PD_REDACTED, sizeof(PD_REDACTED) - 1, out);
}

int pd_change_event(const struct pd_view *v, const struct secret *routing_key, struct buf *out)
{
	if (!routing_key || !secret_is_set(routing_key))
		return -1;
	return build(v, PD_TRIGGER, true, routing_key->data, routing_key->len, out);
}
