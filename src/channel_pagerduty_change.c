/*
 * channel_pagerduty_change: PagerDuty Change Events (SPEC §9 change_url)
 * behind channel.h: every rollback that runs is sent once, so it shows on
 * the service's change timeline, with payload.source = the incident's
 * target (or its group labels). Rules get it by naming "pagerduty"; it is
 * journaled and counted as "pagerduty_change". A few in flight, in order
 * per incident, retried like the alert events. Never: journal or log the
 * routing key.
 */
#include <string.h>

#include "rollbackd/channel.h"
#include "rollbackd/notice.h"
#include "rollbackd/pagerduty.h"
#include "rollbackd/timestamp.h"

#define PD_CHANGE_MAX_INFLIGHT 4

static bool change_configured(const struct config *c)
{
	return secret_is_set(&c->notify.pagerduty_routing_key) && c->notify.pagerduty_change_url &&
	       c->notify.pagerduty_change_url[0];
}

/* A rollback that runs: the "acting" trigger. */
static bool change_wants(const struct notify_event *ev)
{
	return ev->kind == NOTIFY_TRIGGER && ev->state && strcmp(ev->state, "acting") == 0;
}

static const struct secret *change_secret(const struct config *c, size_t i)
{
	return i == 0 ? &c->notify.pagerduty_routing_key : NULL;
}

static int change_build(struct channel_ctx *c, struct channel_send *s, struct channel_request *rq)
{
	struct notify_entry *e = s->e[0];
	struct notice nt;
	struct buf link = BUF_INIT;
	char ts[TIMESTAMP_STRLEN];
	int rc = 0;

	if (notice_parse(e->notice, e->notice_len, &nt) < 0) {
		s->k = 0;
		notify_entry_failed(c->n, e, 0, "the notice cannot be read back");
		return 0;
	}
	timestamp_format(timestamp_now(), ts, sizeof(ts));
	struct pd_view v = {
	    .id = nt.incident,
	    .rule = nt.rule,
	    .service = nt.service,
	    .state = nt.state,
	    .summary_extra = nt.reason,
	    .labels = nt.labels,
	    .n_labels = nt.n_labels,
	    .generator_url = nt.generator_url,
	    .source = nt.target,
	    .timestamp = ts,
	};
	v.ack_url = notify_link(c->n, "ack", nt.incident, nt.episode, &link);
	if (pd_change_event(&v, &c->cfg->notify.pagerduty_routing_key, &rq->body) < 0) {
		s->k = 0;
		notify_entry_failed(c->n, e, 0, "cannot build the PagerDuty change event");
		goto out;
	}
	rc = buf_adds(&rq->url, c->cfg->notify.pagerduty_change_url);
	rq->headers[0] = "Content-Type: application/json";
out:
	buf_release(&link);
	notice_release(&nt);
	return rc;
}

const struct channel channel_pagerduty_change = {
    .name = "pagerduty_change",
    .rule_name = "pagerduty",
    .configured = change_configured,
    .wants = change_wants,
    .max_inflight = PD_CHANGE_MAX_INFLIGHT,
    .ordered = true,
    .retries = true,
    .build = change_build,
    .secret = change_secret,
};
