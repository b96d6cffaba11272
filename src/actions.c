/*
 * actions: expanding a rule's action templates for an incident (argv, URL,
 * headers, JSON body) and redacting secrets from what is shown or
 * journaled.
 *
 * Must never: run anything, journal, or keep state; an expansion that
 * fails (a label the alert lacks, a line break in a header) fails before
 * anything runs. Lock rules: actions_plan_json and actions_template_ctx
 * read an incident and run under e->lock; actions_expand and
 * actions_redact touch only their arguments.
 */
#include "engine_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "rollbackd/config.h"

static const struct secret *lookup_secret(void *arg, const char *name)
{
	struct secret_ctx *sc = arg;
	return config_secret(sc->cfg, name);
}

int incident_target_name(const struct incident *inc, struct buf *out)
{
	if (incident_target(inc)) {
		buf_reset(out);
		return buf_adds(out, incident_target(inc));
	}
	struct inc_sets sets;
	if (incident_sets(inc, &sets) < 0)
		return -1;
	int rc = changes_default_target(sets.set[SET_GROUP].items, sets.set[SET_GROUP].n, out);
	inc_sets_release(&sets);
	return rc;
}

int actions_template_ctx(const struct incident *inc, struct secret_ctx *sc,
			 struct template_ctx *ctx, struct inc_sets *sets, struct change *chg)
{
	struct buf t = BUF_INIT;
	bool known = incident_target_name(inc, &t) == 0 &&
		     changes_latest(incident_engine(inc)->changes, t.data, chg);
	if (!known) {
		memset(chg, 0, sizeof(*chg));
		snprintf(chg->target, sizeof(chg->target), "%s", t.data ? t.data : "");
	}
	buf_release(&t);
	ctx->change = known ? chg : NULL;
	ctx->change_target = chg->target;
	int rc = incident_sets(inc, sets);
	ctx->labels = &sets->set[SET_LABELS];
	ctx->annotations = &sets->set[SET_ANNOTATIONS];
	ctx->incident_id = inc->id;
	ctx->rule_name = inc->rule_name;
	ctx->secret_lookup = lookup_secret;
	ctx->secret_arg = sc;
	return rc;
}

/* Expand a JSON body template: every string value (and key) is a template
 * whose expansion stays a JSON string. Returns a new reference or NULL. */
static json_t *actions_expand_json(const json_t *tpl, const struct template_ctx *ctx,
				   struct error *err)
{
	if (json_is_string(tpl)) {
		struct buf b = BUF_INIT;
		if (template_expand(json_string_value(tpl), ctx, TEMPLATE_RAW, &b, err) < 0) {
			buf_release(&b);
			return NULL;
		}
		json_t *s = json_stringn(b.data ? b.data : "", b.len);
		buf_release(&b);
		if (!s)
			error_set(err, "body: expanded value is not valid UTF-8");
		return s;
	}
	if (json_is_array(tpl)) {
		json_t *arr = json_array();
		size_t i;
		const json_t *v;
		json_array_foreach(tpl, i, v)
		{
			json_t *x = actions_expand_json(v, ctx, err);
			if (!x || json_array_append_new(arr, x) < 0) {
				json_decref(arr);
				return NULL;
			}
		}
		return arr;
	}
	if (json_is_object(tpl)) {
		json_t *obj = json_object();
		const char *k;
		const json_t *v;
		json_object_foreach((json_t *)tpl, k, v)
		{
			json_t *x = actions_expand_json(v, ctx, err);
			if (!x || json_object_set_new(obj, k, x) < 0) {
				json_decref(obj);
				return NULL;
			}
		}
		return obj;
	}
	return json_deep_copy(tpl);
}

/* The fully expanded form of one action, as test-rules prints it and as the
 * runner uses it. NULL with err when a template cannot be expanded. */
json_t *actions_expand(const struct action_tpl *at, const struct template_ctx *ctx,
		       struct error *err)
{
	json_t *out = json_object();
	struct buf b = BUF_INIT;
	if (!out)
		return NULL;
	if (at->type == ACTION_EXEC) {
		json_t *argv = json_array();
		json_object_set_new(out, "type", json_string("exec"));
		json_object_set_new(out, "argv", argv);
		for (size_t i = 0; i < at->argc; i++) {
			buf_reset(&b);
			if (template_expand(at->argv[i], ctx, TEMPLATE_RAW, &b, err) < 0)
				goto fail;
			json_t *arg = json_stringn(b.data ? b.data : "", b.len);
			if (!arg) {
				error_set(err, "argv[%zu]: expanded value is not valid UTF-8", i);
				goto fail;
			}
			json_array_append_new(argv, arg);
		}
	} else {
		json_object_set_new(out, "type", json_string("http"));
		json_object_set_new(out, "method", json_string(at->method));
		buf_reset(&b);
		if (template_expand(at->url, ctx, TEMPLATE_URL, &b, err) < 0)
			goto fail;
		json_object_set_new(out, "url", json_stringn(b.data ? b.data : "", b.len));
		json_t *headers = json_object();
		json_object_set_new(out, "headers", headers);
		for (size_t i = 0; i < at->n_headers; i++) {
			buf_reset(&b);
			if (template_expand(at->headers[i].value, ctx, TEMPLATE_RAW, &b, err) < 0)
				goto fail;
			if (memchr(b.data ? b.data : "", '\n', b.len) ||
			    memchr(b.data ? b.data : "", '\r', b.len)) {
				error_set(err, "header '%s': expanded value contains a line break",
					  at->headers[i].name);
				goto fail;
			}
			json_object_set_new(headers, at->headers[i].name,
					    json_stringn(b.data ? b.data : "", b.len));
		}
		if (at->body) {
			json_t *body = actions_expand_json(at->body, ctx, err);
			if (!body)
				goto fail;
			json_object_set_new(out, "body", body);
		}
	}
	buf_release(&b);
	return out;
fail:
	buf_release(&b);
	json_decref(out);
	return NULL;
}

/* ---- redaction ---------------------------------------------------------
 *
 * Every secret rollbackd holds (config "secrets" and the auth and notify
 * secrets) is looked for in the forms it can take on its way out: as it is,
 * JSON-escaped (\u00xx in either case, "/" escaped or not), percent-encoded
 * (%2b and %2B) and form-encoded (space as '+'). One pass, longest match
 * first, so that one secret inside another is redacted as the longer. */

struct redact_form {
	const char *name;
	unsigned char *bytes;
	size_t len;
};

struct redactor {
	struct redact_form *f;
	size_t n, alloc;
	unsigned char first[256]; /* some form starts with this byte */
	char names[16][40];	  /* names of the auth.hmac.secrets[i] */
	bool oom;
};

static void redactor_free(struct redactor *r)
{
	for (size_t i = 0; i < r->n; i++) {
		sodium_memzero(r->f[i].bytes, r->f[i].len);
		free(r->f[i].bytes);
	}
	free(r->f);
	memset(r, 0, sizeof(*r));
}

/* Add one form unless it is empty or already there. Takes b's bytes. */
static void redactor_add_form(struct redactor *r, const char *name, struct buf *b)
{
	if (!b->data || b->len == 0) {
		buf_release(b);
		return;
	}
	for (size_t i = 0; i < r->n; i++)
		if (r->f[i].len == b->len && memcmp(r->f[i].bytes, b->data, b->len) == 0) {
			sodium_memzero(b->data, b->len);
			buf_release(b);
			return;
		}
	if (r->n == r->alloc) {
		size_t n = r->alloc ? r->alloc * 2 : 32;
		struct redact_form *f = realloc(r->f, n * sizeof(*f));
		if (!f) {
			r->oom = true;
			sodium_memzero(b->data, b->len);
			buf_release(b);
			return;
		}
		r->f = f;
		r->alloc = n;
	}
	size_t len = b->len;
	r->f[r->n++] = (struct redact_form){name, (unsigned char *)buf_detach(b, NULL), len};
	r->first[r->f[r->n - 1].bytes[0]] = 1;
}

enum {
	FORM_RAW,
	FORM_JSON_LOWER,
	FORM_JSON_UPPER,
	FORM_JSON_SLASH,
	FORM_PCT_UPPER,
	FORM_PCT_LOWER,
	FORM_PLUS_UPPER,
	FORM_PLUS_LOWER,
	FORM_COUNT
};

static int redact_encode(struct buf *b, const unsigned char *v, size_t n, int form)
{
	const char *hex =
	    (form == FORM_JSON_UPPER || form == FORM_PCT_UPPER || form == FORM_PLUS_UPPER)
		? "0123456789ABCDEF"
		: "0123456789abcdef";
	int bad = 0;
	for (size_t i = 0; i < n && !bad; i++) {
		unsigned char c = v[i];
		if (form == FORM_RAW) {
			bad |= buf_addc(b, (char)c);
		} else if (form <= FORM_JSON_SLASH) {
			const char *esc = NULL;
			switch (c) {
			case '"':
				esc = "\\\"";
				break;
			case '\\':
				esc = "\\\\";
				break;
			case '\n':
				esc = "\\n";
				break;
			case '\r':
				esc = "\\r";
				break;
			case '\t':
				esc = "\\t";
				break;
			case '\b':
				esc = "\\b";
				break;
			case '\f':
				esc = "\\f";
				break;
			case '/':
				esc = form == FORM_JSON_SLASH ? "\\/" : NULL;
				break;
			default:
				break;
			}
			if (esc)
				bad |= buf_adds(b, esc);
			else if (c < 0x20)
				bad |= buf_addf(b, "\\u00%c%c", hex[c >> 4], hex[c & 15]);
			else
				bad |= buf_addc(b, (char)c);
		} else {
			bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
					  (c >= '0' && c <= '9') || c == '-' || c == '.' ||
					  c == '_' || c == '~';
			if (unreserved)
				bad |= buf_addc(b, (char)c);
			else if (c == ' ' && form >= FORM_PLUS_UPPER)
				bad |= buf_addc(b, '+');
			else
				bad |= buf_addf(b, "%%%c%c", hex[c >> 4], hex[c & 15]);
		}
	}
	return bad ? -1 : 0;
}

static void redactor_add(struct redactor *r, const char *name, const struct secret *s)
{
	if (!s || !secret_is_set(s) || s->len == 0)
		return;
	for (int form = 0; form < FORM_COUNT; form++) {
		struct buf b = BUF_INIT;
		if (redact_encode(&b, s->data, s->len, form) < 0) {
			r->oom = true;
			if (b.data)
				sodium_memzero(b.data, b.len);
			buf_release(&b);
			continue;
		}
		redactor_add_form(r, name, &b);
	}
}

/* Every secret cfg holds, each in every form. */
static int redactor_init(struct redactor *r, const struct config *cfg)
{
	memset(r, 0, sizeof(*r));
	for (size_t i = 0; i < cfg->n_secrets; i++)
		redactor_add(r, cfg->secrets[i].name, &cfg->secrets[i].value);
	for (size_t i = 0; i < cfg->auth.n_hmac_secrets; i++) {
		const char *name = "auth.hmac.secrets";
		if (i < sizeof(r->names) / sizeof(r->names[0])) {
			snprintf(r->names[i], sizeof(r->names[i]), "auth.hmac.secrets[%zu]", i);
			name = r->names[i];
		}
		redactor_add(r, name, &cfg->auth.hmac_secrets[i]);
	}
	redactor_add(r, "auth.bearer.token", &cfg->auth.bearer_token);
	redactor_add(r, "auth.basic.password", &cfg->auth.basic_password);
	redactor_add(r, "auth.api.token", &cfg->api_token);
	redactor_add(r, "auth.links.secret", &cfg->links_secret);
	redactor_add(r, "auth.slack_signing.secret", &cfg->slack_signing);
	redactor_add(r, "notify.slack.webhook_url", &cfg->notify.slack_webhook_url);
	redactor_add(r, "notify.slack.bot_token", &cfg->notify.slack_bot_token);
	redactor_add(r, "notify.pagerduty.routing_key", &cfg->notify.pagerduty_routing_key);
	if (r->oom) {
		redactor_free(r);
		return -1;
	}
	return 0;
}

static int redactor_run(const struct redactor *r, const char *s, size_t len, bool cut,
			struct buf *out)
{
	size_t run = 0, i = 0; /* s[i - run .. i) is copied as it is */
	int bad = 0;
	while (i < len && !bad) {
		unsigned char c = (unsigned char)s[i];
		const struct redact_form *hit = NULL;
		bool tail = false;
		for (size_t k = 0; r->first[c] && k < r->n; k++) {
			const struct redact_form *f = &r->f[k];
			if (f->len <= len - i && (!hit || f->len > hit->len) &&
			    memcmp(s + i, f->bytes, f->len) == 0)
				hit = f;
		}
		/* Output cut inside a secret: its head goes too. */
		for (size_t k = 0; cut && !hit && r->first[c] && k < r->n; k++) {
			const struct redact_form *f = &r->f[k];
			if (f->len > len - i && memcmp(s + i, f->bytes, len - i) == 0) {
				hit = f;
				tail = true;
			}
		}
		if (!hit) {
			run++;
			i++;
			continue;
		}
		bad |= buf_add(out, s + i - run, run) | buf_addf(out, "<redacted:%s>", hit->name);
		run = 0;
		i = tail ? len : i + hit->len;
	}
	bad |= buf_add(out, s + i - run, run);
	if (!bad && buf_grow(out, 0) < 0)
		bad = 1;
	return bad ? -1 : 0;
}

int actions_redact_text(const struct config *cfg, const char *s, size_t len, bool cut,
			struct buf *out)
{
	struct redactor r;
	if (redactor_init(&r, cfg) < 0)
		return -1;
	int rc = redactor_run(&r, s ? s : "", s ? len : 0, cut, out);
	redactor_free(&r);
	return rc;
}

char *actions_redact(const struct config *cfg, const char *s)
{
	struct buf out = BUF_INIT;
	if (actions_redact_text(cfg, s, strlen(s), false, &out) < 0) {
		buf_release(&out);
		return NULL;
	}
	return buf_detach(&out, NULL);
}

static json_t *redact_json(const struct redactor *r, const json_t *x)
{
	if (json_is_string(x)) {
		struct buf b = BUF_INIT;
		json_t *s = NULL;
		if (redactor_run(r, json_string_value(x), json_string_length(x), false, &b) == 0)
			s = json_stringn_nocheck(b.data ? b.data : "", b.len);
		buf_release(&b);
		return s;
	}
	if (json_is_array(x)) {
		json_t *arr = json_array();
		size_t i;
		const json_t *v;
		json_array_foreach(x, i, v)
		{
			json_t *y = redact_json(r, v);
			if (!arr || !y || json_array_append_new(arr, y) < 0) {
				json_decref(arr);
				return NULL;
			}
		}
		return arr;
	}
	if (json_is_object(x)) {
		json_t *obj = json_object();
		const char *k;
		const json_t *v;
		json_object_foreach((json_t *)x, k, v)
		{
			struct buf kb = BUF_INIT;
			json_t *y = redact_json(r, v);
			int bad = !obj || !y || redactor_run(r, k, strlen(k), false, &kb) < 0 ||
				  json_object_set_new(obj, kb.data ? kb.data : "", y) < 0;
			buf_release(&kb);
			if (bad) {
				json_decref(obj);
				return NULL;
			}
		}
		return obj;
	}
	return json_deep_copy(x);
}

json_t *actions_redact_json(const struct config *cfg, const json_t *x)
{
	struct redactor r;
	if (redactor_init(&r, cfg) < 0)
		return NULL;
	json_t *y = redact_json(&r, x);
	redactor_free(&r);
	return y;
}

/* Append ,"actions":[...] with every action of r expanded for inc. */
int actions_plan_json(struct engine *e, const struct rule *r, const struct incident *inc,
		      struct buf *out)
{
	struct secret_ctx sc = {e->cfg};
	struct template_ctx ctx;
	struct inc_sets sets;
	struct change chg;
	json_t *actions = NULL;
	if (actions_template_ctx(inc, &sc, &ctx, &sets, &chg) < 0 || !(actions = json_array())) {
		inc_sets_release(&sets);
		return -1;
	}
	for (size_t i = 0; i < r->n_actions; i++) {
		struct error err = {{0}};
		json_t *a = actions_expand(&r->actions[i], &ctx, &err);
		if (!a) {
			a = json_pack("{s:s, s:s}", "type",
				      r->actions[i].type == ACTION_EXEC ? "exec" : "http", "error",
				      err.msg);
		}
		json_array_append_new(actions, a);
	}
	inc_sets_release(&sets);
	/* What is shown is redacted where it was expanded. */
	json_t *shown = actions_redact_json(e->cfg, actions);
	json_decref(actions);
	char *text = shown ? json_dumps(shown, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(shown);
	int rc = text ? buf_adds(out, ",\"actions\":") | buf_adds(out, text) : -1;
	free(text);
	return rc ? -1 : 0;
}
