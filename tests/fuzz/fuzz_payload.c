/*
 * fuzz_payload: libFuzzer harness for alert_parse_webhook.
 *
 * Parses arbitrary bytes with small limits (so the limit paths are reached)
 * and, when the parse succeeds, checks what the rest of rollbackd relies on:
 * sorted unique label names, limits held, NUL-terminated values of the
 * stated length, valid times, a fingerprint, and a message-free success.
 * On failure the webhook must be zeroed and the message non-empty, valid
 * UTF-8 without control bytes. Any violation aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rollbackd/alert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			abort();                                                                   \
	} while (0)

static void check_utf8_text(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		CHECK(*p >= 0x20 && *p != 0x7f);
		if (*p < 0x80) {
			p++;
			continue;
		}
		int n = *p >= 0xf0 ? 3 : *p >= 0xe0 ? 2 : 1;
		CHECK(*p >= 0xc2 && *p <= 0xf4);
		p++;
		for (int i = 0; i < n; i++, p++)
			CHECK((*p & 0xc0) == 0x80);
	}
}

static void check_time(struct timestamp t)
{
	CHECK(t.nsec >= 0 && t.nsec < 1000000000);
	/* years 0000-9999 give or take a day of offset */
	CHECK(t.sec >= TIMESTAMP_GO_ZERO_SEC - 367 * 86400LL);
	CHECK(t.sec <= 253402300799LL + 86400);
	char s[TIMESTAMP_STRLEN];
	struct timestamp u;
	size_t n = timestamp_format(t, s, sizeof(s));
	CHECK(n > 0 && n < sizeof(s));
	if (t.sec >= TIMESTAMP_GO_ZERO_SEC - 366 * 86400LL && t.sec <= 253402300799LL) {
		CHECK(timestamp_parse(s, n, &u) == 0);
		CHECK(u.sec == t.sec && u.nsec == t.nsec);
	}
}

static void check_set(const struct label_set *set, size_t max, bool nonempty)
{
	CHECK(set->n <= max);
	CHECK(!nonempty || set->n > 0);
	CHECK((set->n == 0) == (set->items == NULL));
	for (size_t i = 0; i < set->n; i++) {
		const struct label *l = &set->items[i];
		CHECK(l->name && l->name[0] != '\0');
		CHECK(l->value && l->value[l->value_len] == '\0');
		CHECK(strlen(l->value) <= l->value_len);
		if (i > 0)
			CHECK(strcmp(set->items[i - 1].name, l->name) < 0);
		CHECK(label_set_get(set, l->name) == l);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct alert_limits lim = {64, 16};
	struct webhook wh;
	struct error err;

	enum alert_parse_result rc = alert_parse_webhook((const char *)data, size, &lim, &wh, &err);
	if (rc != ALERT_PARSE_OK) {
		CHECK(rc == ALERT_PARSE_EMPTY || rc == ALERT_PARSE_JSON ||
		      rc == ALERT_PARSE_INVALID || rc == ALERT_PARSE_NOMEM);
		CHECK(wh.arena_ == NULL && wh.alerts == NULL && wh.n_alerts == 0 &&
		      wh.version == NULL);
		CHECK(err.msg[0] != '\0');
		check_utf8_text(err.msg);
		return 0;
	}
	CHECK(err.msg[0] == '\0');
	CHECK(wh.arena_ != NULL);
	CHECK(wh.version && strcmp(wh.version, "4") == 0);
	CHECK(wh.group_key && wh.receiver && wh.external_url);
	CHECK(wh.status == ALERT_FIRING || wh.status == ALERT_RESOLVED);
	CHECK(wh.truncated_alerts >= 0);
	CHECK(wh.n_alerts <= lim.max_alerts);
	CHECK((wh.n_alerts == 0) == (wh.alerts == NULL));
	check_set(&wh.group_labels, lim.max_labels, false);
	check_set(&wh.common_labels, lim.max_labels, false);
	check_set(&wh.common_annotations, lim.max_labels, false);
	for (size_t i = 0; i < wh.n_alerts; i++) {
		const struct alert *a = &wh.alerts[i];
		CHECK(a->status == ALERT_FIRING || a->status == ALERT_RESOLVED);
		check_set(&a->labels, lim.max_labels, true);
		check_set(&a->annotations, lim.max_labels, false);
		check_time(a->starts_at);
		check_time(a->ends_at);
		CHECK(a->generator_url && a->fingerprint);
	}
	webhook_release(&wh);
	CHECK(wh.arena_ == NULL && wh.n_alerts == 0);
	return 0;
}
