/*
 * Unit tests for ui's pure parts: the target (SPEC §6 default and the
 * "target" member), what an approver must type, form fields, and the
 * incident page: escaping of hostile record text, the forms only when
 * signed in (with the CSRF token), the verification chart, and the
 * self-contained variant.
 */
#include <criterion/criterion.h>

#include <string.h>

#include "rollbackd/ui.h"

static char *target_of(const char *json)
{
	json_t *inc = json_loads(json, 0, NULL);
	struct buf b = BUF_INIT;
	cr_assert(inc);
	cr_assert_eq(ui_incident_target(inc, &b), 0);
	json_decref(inc);
	char *s = strdup(b.data ? b.data : "");
	buf_release(&b);
	return s;
}

Test(ui, target_default_is_sorted_group_labels)
{
	char *t = target_of("{\"labels\":{\"service\":\"checkout\",\"namespace\":\"prod\"}}");
	cr_assert_str_eq(t, "namespace=prod,service=checkout");
	free(t);
	t = target_of("{\"labels\":{\"service\":\"checkout\"}}");
	cr_assert_str_eq(t, "service=checkout");
	free(t);
	t = target_of("{\"labels\":{}}");
	cr_assert_str_eq(t, "");
	free(t);
}

Test(ui, target_member_wins)
{
	char *t = target_of("{\"target\":\"prod/checkout\",\"labels\":{\"service\":\"checkout\"}}");
	cr_assert_str_eq(t, "prod/checkout");
	free(t);
}

Test(ui, target_matches)
{
	cr_assert(ui_target_matches("service=checkout", "service=checkout"));
	cr_assert(ui_target_matches("  service=checkout\t", "service=checkout"));
	cr_assert_not(ui_target_matches("service=Checkout", "service=checkout"));
	cr_assert_not(ui_target_matches("service=checkou", "service=checkout"));
	cr_assert_not(ui_target_matches("", "service=checkout"));
	cr_assert_not(ui_target_matches(NULL, "service=checkout"));
	cr_assert_not(ui_target_matches("", ""));
}

Test(ui, form_field)
{
	static const char body[] = "csrf=ab%20c&by=al+ice&target=service%3Dcheckout&bad=%zz";
	char out[32];
	cr_assert_eq(ui_form_field(body, strlen(body), "by", out, sizeof(out)), 1);
	cr_assert_str_eq(out, "al ice");
	cr_assert_eq(ui_form_field(body, strlen(body), "target", out, sizeof(out)), 1);
	cr_assert_str_eq(out, "service=checkout");
	cr_assert_eq(ui_form_field(body, strlen(body), "csrf", out, sizeof(out)), 1);
	cr_assert_str_eq(out, "ab c");
	cr_assert_eq(ui_form_field(body, strlen(body), "nope", out, sizeof(out)), 0);
	cr_assert_str_eq(out, "");
	cr_assert_eq(ui_form_field(body, strlen(body), "bad", out, sizeof(out)), -1);
	cr_assert_eq(ui_form_field(body, strlen(body), "by", out, 3), -1);
	cr_assert_eq(ui_form_field("a=%00", 5, "a", out, sizeof(out)), -1);
	cr_assert_eq(ui_form_field(NULL, 0, "a", out, sizeof(out)), 0);
}

static const char records_json[] =
    "[{\"seq\":1,\"ts\":\"2026-11-21T10:00:00Z\",\"type\":\"decision\",\"incident\":\"inc-1\","
    "\"rule\":\"r<script>\",\"outcome\":\"acting\",\"reason\":\"<b>why</b>\",\"state\":"
    "\"acting\",\"group\":{\"service\":\"a&b\"},\"value\":{\"value\":2,\"above\":1}},"
    "{\"seq\":2,\"ts\":\"2026-11-21T10:00:01Z\",\"type\":\"action_started\",\"incident\":"
    "\"inc-1\",\"index\":0,\"action\":\"exec\",\"argv\":[\"echo\",\"it's <x>\"]},"
    "{\"seq\":3,\"ts\":\"2026-11-21T10:00:02Z\",\"type\":\"action_finished\",\"incident\":"
    "\"inc-1\",\"index\":0,\"action\":\"exec\",\"result\":\"ok\",\"exit_code\":0,"
    "\"duration_ms\":5,\"output\":\"</pre><script>alert(1)</script>\","
    "\"incident_state\":\"awaiting_approval\"},"
    "{\"seq\":4,\"ts\":\"2026-11-21T10:01:00Z\",\"type\":\"verify_sample\",\"incident\":"
    "\"inc-1\",\"value\":0.5,\"below\":1},"
    "{\"seq\":5,\"ts\":\"2026-11-21T10:02:00Z\",\"type\":\"verify_sample\",\"incident\":"
    "\"inc-1\",\"value\":0.25,\"below\":1}]";

static char *render(const struct ui_page *page)
{
	json_t *recs = json_loads(records_json, 0, NULL);
	struct buf b = BUF_INIT;
	cr_assert(recs);
	cr_assert_eq(ui_render_incident(&b, "inc-1", NULL, recs, page), 0);
	json_decref(recs);
	char *s = strdup(b.data);
	buf_release(&b);
	return s;
}

Test(ui, page_escapes_everything)
{
	struct ui_page page = {.standalone = false};
	char *html = render(&page);
	cr_assert_null(strstr(html, "<script"));
	cr_assert_null(strstr(html, "<b>"));
	cr_assert_not_null(strstr(html, "r&lt;script&gt;"));
	cr_assert_not_null(strstr(html, "&lt;b&gt;why&lt;/b&gt;"));
	cr_assert_not_null(strstr(html, "service=a&amp;b"));
	cr_assert_not_null(strstr(html, "&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));
	cr_assert_not_null(
	    strstr(html, "<pre class=\"cmd\">echo &#39;it&#39;\\&#39;&#39;s &lt;x&gt;&#39;</pre>"));
	cr_assert_not_null(strstr(html, "<dt>Value vs threshold</dt><dd>2 &gt; 1</dd>"));
	cr_assert_not_null(strstr(html, "<link rel=\"stylesheet\" href=\"/ui/style.css\">"));
	cr_assert_null(strstr(html, "<form"), "no forms when not signed in");
	free(html);
}

Test(ui, forms_carry_the_csrf_token)
{
	struct ui_page page = {.can_act = true, .csrf = "c0ffee"};
	char *html = render(&page);
	cr_assert_not_null(strstr(html, "action=\"/ui/incidents/inc-1/ack\"><input type=\"hidden\" "
					"name=\"csrf\" value=\"c0ffee\">"));
	cr_assert_not_null(strstr(html, "action=\"/ui/incidents/inc-1/approve\"><input "
					"type=\"hidden\" name=\"csrf\" value=\"c0ffee\">"));
	cr_assert_not_null(
	    strstr(html, "Type the target, <code>service=a&amp;b</code>, to approve"));
	free(html);
}

Test(ui, chart_and_standalone)
{
	struct ui_page page = {.standalone = true, .can_act = true, .csrf = "x", .footer = "f<"};
	char *html = render(&page);
	cr_assert_not_null(strstr(html, "<svg class=\"chart\""));
	cr_assert_eq(strstr(html, "<circle ") != NULL, 1);
	cr_assert_not_null(strstr(html, "2 sample(s) over 60s; dashed: the threshold"));
	cr_assert_not_null(strstr(html, "value 0.25 (below 1)"));
	cr_assert_not_null(strstr(html, "<style>"));
	cr_assert_null(strstr(html, "<link"));
	cr_assert_null(strstr(html, "<form"), "a report has no forms");
	cr_assert_not_null(strstr(html, "<p class=\"mute\">f&lt;</p>"));
	free(html);
}
