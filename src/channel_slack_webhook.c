/*
 * channel_slack_webhook: a Slack incoming webhook (SPEC §9) behind
 * channel.h. One post at a time and at most one per pacing interval; the
 * notices ready by then are coalesced into one Block Kit message (an
 * incident that has several is shown once, as its latest notice says).
 * Used when the bot API is not configured. Never: journal or log the
 * webhook URL (it is the secret).
 */
#include <string.h>

#include "rollbackd/channel.h"
#include "rollbackd/log.h"
#include "rollbackd/notice.h"
#include "rollbackd/slack.h"

static bool webhook_configured(const struct config *c)
{
	return secret_is_set(&c->notify.slack_webhook_url) && !channel_slack_bot.configured(c);
}

static size_t webhook_batch(const struct config *c)
{
	(void)c;
	return CHANNEL_BATCH_MAX;
}

static const struct secret *webhook_secret(const struct config *c, size_t i)
{
	return i == 0 ? &c->notify.slack_webhook_url : NULL;
}

static int webhook_build(struct channel_ctx *c, struct channel_send *s, struct channel_request *rq)
{
	const struct secret *url = &c->cfg->notify.slack_webhook_url;
	struct notice nts[CHANNEL_BATCH_MAX];
	struct slack_incident_view views[CHANNEL_BATCH_MAX];
	struct buf links[CHANNEL_BATCH_MAX][2];
	size_t nv = 0, good = 0;
	int rc = 0;

	memset(links, 0, sizeof(links));
	for (size_t i = 0; i < s->k; i++) {
		if (notice_parse(s->e[i]->notice, s->e[i]->notice_len, &nts[good]) < 0) {
			notify_entry_failed(c->n, s->e[i], 0, "the notice cannot be read back");
			continue;
		}
		s->e[good++] = s->e[i];
	}
	s->k = good;
	for (size_t i = 0; i < good; i++) {
		bool later = false;
		for (size_t j = i + 1; j < good && !later; j++)
			later = strcmp(s->e[j]->incident, s->e[i]->incident) == 0;
		if (!later) {
			notice_slack_view(c->n, &nts[i], links[nv], &views[nv]);
			nv++;
		}
	}
	if (good > 0 && slack_message(views, nv, &rq->body) < 0) {
		log_error("notify: cannot build the Slack message (out of memory?)", NULL);
		rc = -1;
	}
	rc |= buf_add(&rq->url, url->data, url->len);
	rq->headers[0] = "Content-Type: application/json";
	/* httpc's own retries keep Slack's pace too: jitter in [interval, 2 interval]. */
	rq->backoff_base_ms = 2 * c->interval_ms;
	for (size_t i = 0; i < good; i++)
		notice_release(&nts[i]);
	for (size_t i = 0; i < nv; i++) {
		buf_release(&links[i][0]);
		buf_release(&links[i][1]);
	}
	return rc ? -1 : 0;
}

const struct channel channel_slack_webhook = {
    .name = "slack",
    .configured = webhook_configured,
    .max_inflight = 1,
    .batch_max = webhook_batch,
    .paced = true,
    .ordered = true,
    .retries = true,
    .build = webhook_build,
    .secret = webhook_secret,
};
