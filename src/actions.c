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

#include <stdlib.h>
#include <string.h>

#include "rollbackd/config.h"

static const struct secret *lookup_secret(void *arg, const char *name)
{
	struct secret_ctx *sc = arg;
	return config_secret(sc->cfg, name);
}

int incident_target_name(const struct incident *inc, struct buf *out)
{
	if (inc->target) {
		buf_reset(out);
		return buf_adds(out, inc->target);
	}
	return changes_default_target(inc->group.items, inc->group.n, out);
}

void actions_template_ctx(const struct incident *inc, struct secret_ctx *sc,
			     struct template_ctx *ctx, struct label_set *labels,
			     struct label_set *annotations, struct change *chg)
{
	struct buf t = BUF_INIT;
	bool known = incident_target_name(inc, &t) == 0 &&
		     changes_latest(inc->engine->changes, t.data, chg);
	if (!known) {
		memset(chg, 0, sizeof(*chg));
		snprintf(chg->target, sizeof(chg->target), "%s", t.data ? t.data : "");
	}
	buf_release(&t);
	ctx->change = known ? chg : NULL;
	ctx->change_target = chg->target;
	labels->items = inc->trigger_labels.items;
	labels->n = inc->trigger_labels.n;
	annotations->items = inc->trigger_annotations.items;
	annotations->n = inc->trigger_annotations.n;
	ctx->labels = labels;
	ctx->annotations = annotations;
	ctx->incident_id = inc->id;
	ctx->rule_name = inc->rule_name;
	ctx->secret_lookup = lookup_secret;
	ctx->secret_arg = sc;
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
		json_array_foreach(tpl, i, v) {
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
		json_object_foreach((json_t *)tpl, k, v) {
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

/* Replace every occurrence of each configured secret's value in s (a JSON
 * text) by <redacted:NAME>, so test-rules shows real expansions without
 * printing a secret. Returns a new string or NULL. */
char *actions_redact(const struct config *cfg, const char *s)
{
	struct buf out = BUF_INIT;
	char *cur = strdup(s);
	for (size_t i = 0; cur && i < cfg->n_secrets; i++) {
		const char *v = (const char *)cfg->secrets[i].value.data;
		size_t vlen = cfg->secrets[i].value.len;
		if (!v || vlen == 0)
			continue;
		buf_reset(&out);
		const char *p = cur, *hit;
		int bad = 0;
		while ((hit = memmem(p, strlen(p), v, vlen)) != NULL) {
			bad |= buf_add(&out, p, (size_t)(hit - p)) |
			       buf_addf(&out, "<redacted:%s>", cfg->secrets[i].name);
			p = hit + vlen;
		}
		bad |= buf_adds(&out, p);
		free(cur);
		cur = bad ? NULL : buf_detach(&out, NULL);
	}
	buf_release(&out);
	return cur;
}

/* Append ,"actions":[...] with every action of r expanded for inc. */
int actions_plan_json(struct engine *e, const struct rule *r, const struct incident *inc,
			     struct buf *out)
{
	struct secret_ctx sc = {e->cfg};
	struct template_ctx ctx;
	struct label_set labels, annotations;
	struct change chg;
	actions_template_ctx(inc, &sc, &ctx, &labels, &annotations, &chg);
	json_t *actions = json_array();
	if (!actions)
		return -1;
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
	char *text = json_dumps(actions, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(actions);
	char *clean = text ? actions_redact(e->cfg, text) : NULL;
	free(text);
	int rc = clean ? buf_adds(out, ",\"actions\":") | buf_adds(out, clean) : -1;
	free(clean);
	return rc ? -1 : 0;
}
