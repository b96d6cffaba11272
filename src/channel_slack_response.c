/*
 * channel_slack_response: posts to a Slack response_url (interactivity,
 * SPEC §9) behind channel.h: best effort, retried inside one round only,
 * journaled as notify_sent / notify_failed with channel "slack_response"
 * and no incident. Rules cannot name it: notify_slack_response feeds it.
 * Never: journal or log the URL (the core redacts it from error texts).
 */
#include "rollbackd/channel.h"

#define RESPONSE_MAX_INFLIGHT 4 /* posts in flight */

static bool response_configured(const struct config *c)
{
	(void)c;
	return true; /* the URL comes with each click */
}

static int response_build(struct channel_ctx *c, struct channel_send *s, struct channel_request *rq)
{
	const struct notify_entry *e = s->e[0];
	(void)c;
	rq->headers[0] = "Content-Type: application/json";
	return buf_adds(&rq->url, e->url) | buf_add(&rq->body, e->body, e->body_len) ? -1 : 0;
}

const struct channel channel_slack_response = {
    .name = "slack_response",
    .internal = true,
    .configured = response_configured,
    .max_inflight = RESPONSE_MAX_INFLIGHT,
    .build = response_build,
};
