/*
 * Unit tests for target: the default name (group labels sorted by name,
 * "name=value" joined by ','), templates, the errors that hold an incident,
 * and the blast-radius window (distinct targets, sliding, bounded).
 */
#include <criterion/criterion.h>

#include <string.h>

#include "rollbackd/target.h"

/* sorted by name, as alert_parse_webhook leaves them */
static struct label L[] = {
    {"alertname", "RollbackErrorRate", 17}, {"namespace", "shop", 4}, {"service", "checkout", 8}};

static struct alert mk_alert(void)
{
	struct alert a;
	memset(&a, 0, sizeof(a));
	a.labels.items = L;
	a.labels.n = 3;
	return a;
}

Test(target, default_is_sorted_group_labels)
{
	struct rule r = {.name = "r"};
	struct alert a = mk_alert();
	struct buf b = BUF_INIT;
	struct error err = {{0}};
	struct label g1[] = {{"service", "checkout", 8}};
	cr_assert_eq(target_name(&r, &a, g1, 1, &b, &err), 0);
	cr_assert_str_eq(b.data, "service=checkout");
	struct label g2[] = {{"service", "checkout", 8}, {"namespace", "shop", 4}};
	cr_assert_eq(target_name(&r, &a, g2, 2, &b, &err), 0);
	cr_assert_str_eq(b.data, "namespace=shop,service=checkout");
	buf_release(&b);
}

Test(target, template_and_missing_label)
{
	struct rule r = {.name = "r", .target = "{{labels.namespace}}/{{labels.service}}"};
	struct alert a = mk_alert();
	struct buf b = BUF_INIT;
	struct error err = {{0}};
	cr_assert_eq(target_name(&r, &a, NULL, 0, &b, &err), 0, "%s", err.msg);
	cr_assert_str_eq(b.data, "shop/checkout");
	r.target = "{{labels.deployment}}";
	cr_assert_eq(target_name(&r, &a, NULL, 0, &b, &err), -1);
	cr_assert_str_eq(
	    err.msg,
	    "target: template '{{labels.deployment}}': the alert has no label 'deployment'");
	cr_assert_eq(b.len, 0);
	buf_release(&b);
}

Test(target, bad_names)
{
	struct label nl[] = {{"service", "a\nb", 3}};
	struct alert a = mk_alert();
	a.labels.items = nl;
	a.labels.n = 1;
	struct rule r = {.name = "r", .target = "{{labels.service}}"};
	struct buf b = BUF_INIT;
	struct error err = {{0}};
	cr_assert_eq(target_name(&r, &a, NULL, 0, &b, &err), -1);
	cr_assert_str_eq(err.msg, "target: contains a control character");
	static char big[700];
	memset(big, 'x', sizeof(big) - 1);
	struct label bl[] = {{"service", big, sizeof(big) - 1}};
	a.labels.items = bl;
	cr_assert_eq(target_name(&r, &a, NULL, 0, &b, &err), -1);
	cr_assert_str_eq(err.msg, "target: longer than 255 bytes");
	buf_release(&b);
}

Test(target, blast_window_counts_distinct_targets)
{
	static struct blast_window w;
	memset(&w, 0, sizeof(w));
	uint64_t a = target_hash("service=a"), b = target_hash("service=b"),
		 c = target_hash("service=c");
	cr_assert_neq(a, b);
	blast_note(&w, a, 1000);
	blast_note(&w, a, 2000);
	blast_note(&w, b, 3000);
	cr_assert_eq(blast_count(&w, 3000, 600000, 0, 100), 2);
	cr_assert_eq(blast_count(&w, 3000, 600000, a, 100), 1, "the incident's own target");
	cr_assert_eq(blast_count(&w, 3000, 600000, 0, 1), 1, "stops at the limit");
	/* sliding: at 602500 only what happened after 2500 counts */
	cr_assert_eq(blast_count(&w, 602500, 600000, 0, 100), 1);
	blast_note(&w, c, 602600);
	cr_assert_eq(blast_count(&w, 602600, 600000, 0, 100), 2);
}

Test(target, blast_window_is_bounded)
{
	static struct blast_window w;
	memset(&w, 0, sizeof(w));
	char name[32];
	for (int i = 0; i < 3 * BLAST_RING; i++) {
		snprintf(name, sizeof(name), "t%d", i);
		blast_note(&w, target_hash(name), i);
	}
	cr_assert_eq(w.n, BLAST_RING);
	cr_assert_eq(blast_count(&w, 3 * BLAST_RING, 1000000, 0, 5000), BLAST_RING);
}
