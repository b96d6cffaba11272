/*
 * channel_pagerduty: PagerDuty Events API v2 (SPEC §9) behind channel.h.
 *
 * One event per notice, in order per incident (trigger before acknowledge
 * before resolve), a few in flight. The incident's alert is triggered when
 * it acts or is held, triggered again (an update of the same dedup_key)
 * when the rollback succeeded or was ineffective (critical), acknowledged
 * and resolved. Never: journal or log the routing key (the body holds it;
 * the core wipes it after the request started).
 */
#include <string.h>

#include "rollbackd/channel.h"
#include "rollbackd/notice.h"
#include "rollbackd/pagerduty.h"

#define PD_MAX_INFLIGHT 4 /* events in flight */

static bool pd_configured(const struct config *c)
{
	return secret_is_set(&c->notify.pagerduty_routing_key) && c->notify.pagerduty_url &&
	       c->notify.pagerduty_url[0];
}

static bool pd_wants(const struct notify_event *ev)
{
	return ev->kind != NOTIFY_UPDATE; /* only states PagerDuty has a use for */
}

static const struct secret *pd_secret(const struct config *c, size_t i)
{
	return i == 0 ? &c->notify.pagerduty_routing_key : NULL;
}

static enum pd_action pd_action_of(enum notify_kind k)
{
	switch (k) {
	case NOTIFY_ACK:
		return PD_ACKNOWLEDGE;
	case NOTIFY_RESOLVE:
		return PD_RESOLVE;
	default:
		return PD_TRIGGER;
	}
}

static int pd_build(struct channel_ctx *c, struct channel_send *s, struct channel_request *rq)
{
	struct notify_entry *e = s->e[0];
	struct notice nt;
	struct buf link = BUF_INIT;
	int rc = 0;

	if (notice_parse(e->notice, e->notice_len, &nt) < 0) {
		s->k = 0;
		notify_entry_failed(c->n, e, 0, "the notice cannot be read back");
		return 0;
	}
	struct pd_view v = {
	    .id = nt.incident,
	    .rule = nt.rule,
	    .service = nt.service,
	    .state = nt.state,
	    .severity_label = nt.severity,
	    .escalate = e->kind == NOTIFY_ESCALATE,
	    .summary_extra =
		e->kind == NOTIFY_ESCALATE && nt.note && nt.note[0] ? nt.note : nt.reason,
	    .labels = nt.labels,
	    .n_labels = nt.n_labels,
	    .generator_url = nt.generator_url,
	    .source = nt.target, /* the thing rolled back; "rollbackd" when unknown */
	};
	if (notice_wants_ack_link(&nt))
		v.ack_url = notify_link(c->n, "ack", nt.incident, nt.episode, &link);
	/* The intent's event decides, as journaled. */
	if (pd_event(&v, pd_action_of(e->kind), &c->cfg->notify.pagerduty_routing_key, &rq->body) <
	    0) {
		s->k = 0;
		notify_entry_failed(c->n, e, 0,
				    "cannot build the PagerDuty event (bad routing key?)");
		goto out;
	}
	rc = buf_adds(&rq->url, c->cfg->notify.pagerduty_url);
	rq->headers[0] = "Content-Type: application/json";
out:
	buf_release(&link);
	notice_release(&nt);
	return rc;
}

const struct channel channel_pagerduty = {
    .name = "pagerduty",
    .configured = pd_configured,
    .wants = pd_wants,
    .max_inflight = PD_MAX_INFLIGHT,
    .ordered = true,
    .retries = true,
    .build = pd_build,
    .secret = pd_secret,
};
