/*
 * Unit tests for links: signing against vectors from Python's hmac module,
 * verification outcomes with their exact HTTP statuses (a forged link never
 * learns it expired), URL shape, form and query parsing, HTML escaping of
 * hostile input and the structure of both pages.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "rollbackd/links.h"

#define KEY "linkkey"
#define ID "inc-0123456789abcdef"
#define EXP 1700003600
#define EXP_S "1700003600"
/* python3: hmac.new(b"linkkey", b"ack:inc-0123456789abcdef:1:1700003600", sha256) */
#define ACK_HEX "e27d7b47353787b17db02a6bd4fe35f2fc4a37544786234a016338862123d2bb"
/* ... b"approve:inc-0123456789abcdef:1:1700003600" */
#define APPROVE_HEX "04fd87881330ee19822c21f4544300929aea49f8b53762785d52fd96d7fcd100"
#define ZERO_HEX "0000000000000000000000000000000000000000000000000000000000000000"

static struct secret key;

static void setup(void)
{
	cr_assert_geq(sodium_init(), 0);
	cr_assert_eq(secret_from_bytes(KEY, strlen(KEY), &key), 0);
}

static void teardown(void)
{
	secret_release(&key);
}

TestSuite(links, .init = setup, .fini = teardown);

/* ---- signing ---- */

Test(links, sign_matches_python_vectors)
{
	char sig[65];
	cr_assert_eq(links_sign(&key, "ack", ID, 1, EXP, sig), 0);
	cr_assert_str_eq(sig, ACK_HEX);
	cr_assert_eq(links_sign(&key, "approve", ID, 1, EXP, sig), 0);
	cr_assert_str_eq(sig, APPROVE_HEX);
}

Test(links, sign_matches_libsodium)
{
	/* The message layout "<action>:<id>:<episode>:<exp>", computed independently. */
	unsigned char mac[32];
	char want[65], sig[65];
	const char *msg = "ack:" ID ":1:42";
	crypto_auth_hmacsha256_state st;
	crypto_auth_hmacsha256_init(&st, (const unsigned char *)KEY, strlen(KEY));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)msg, strlen(msg));
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_bin2hex(want, sizeof(want), mac, sizeof(mac));
	cr_assert_eq(links_sign(&key, "ack", ID, 1, 42, sig), 0);
	cr_assert_str_eq(sig, want);
}

Test(links, sign_rejects_bad_input)
{
	char sig[65];
	struct secret unset = {NULL, 0};
	char long_id[LINKS_ID_MAX + 2];
	memset(long_id, 'a', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';

	cr_assert_eq(links_sign(&key, "delete", ID, 1, EXP, sig), -1);
	cr_assert_str_eq(sig, "");
	cr_assert_eq(links_sign(&key, NULL, ID, 1, EXP, sig), -1);
	cr_assert_eq(links_sign(&key, "ack", "", 1, EXP, sig), -1);
	cr_assert_eq(links_sign(&key, "ack", NULL, 1, EXP, sig), -1);
	cr_assert_eq(links_sign(&key, "ack", long_id, 1, EXP, sig), -1);
	cr_assert_eq(links_sign(&key, "ack", ID, 1, -1, sig), -1);
	cr_assert_eq(links_sign(&unset, "ack", ID, 1, EXP, sig), -1);
}

/* ---- URLs ---- */

Test(links, url_shape)
{
	struct buf b = BUF_INIT;
	cr_assert_eq(links_url("https://rb.example.com", &key, "ack", ID, 1, EXP, &b), 0);
	cr_assert_str_eq(b.data, "https://rb.example.com/v1/ack/" ID "?action=ack&ep=1&exp=" EXP_S
				 "&sig=" ACK_HEX);
	buf_release(&b);
}

Test(links, url_trims_slashes_and_appends)
{
	struct buf b = BUF_INIT;
	cr_assert_eq(buf_adds(&b, "x "), 0);
	cr_assert_eq(links_url("https://rb.example.com/base//", &key, "approve", ID, 1, EXP, &b),
		     0);
	cr_assert_str_eq(b.data, "x https://rb.example.com/base/v1/ack/" ID
				 "?action=approve&ep=1&exp=" EXP_S "&sig=" APPROVE_HEX);
	buf_release(&b);
}

Test(links, url_percent_encodes_id)
{
	struct buf b = BUF_INIT;
	char sig[65];
	cr_assert_eq(links_sign(&key, "ack", "a b/c?&é~", 1, 5, sig), 0);
	cr_assert_eq(links_url("http://h", &key, "ack", "a b/c?&é~", 1, 5, &b), 0);
	char want[256];
	snprintf(want, sizeof(want),
		 "http://h/v1/ack/a%%20b%%2Fc%%3F%%26%%C3%%A9~?action=ack&ep=1&exp=5"
		 "&sig=%s",
		 sig);
	cr_assert_str_eq(b.data, want);
	buf_release(&b);
}

Test(links, url_failure_leaves_buffer)
{
	struct buf b = BUF_INIT;
	cr_assert_eq(buf_adds(&b, "keep"), 0);
	cr_assert_eq(links_url("https://h", &key, "nope", ID, 1, EXP, &b), -1);
	cr_assert_eq(links_url("///", &key, "ack", ID, 1, EXP, &b), -1);
	cr_assert_eq(links_url(NULL, &key, "ack", ID, 1, EXP, &b), -1);
	cr_assert_str_eq(b.data, "keep");
	cr_assert_eq(b.len, 4);
	/* A cap that the URL would pass. */
	b.max = 20;
	cr_assert_eq(links_url("https://h", &key, "ack", ID, 1, EXP, &b), -1);
	cr_assert_str_eq(b.data, "keep");
	buf_release(&b);
}

/* ---- verification ---- */

Test(links, verify_good)
{
	cr_assert_eq(links_verify(&key, "ack", ID, "1", EXP_S, ACK_HEX, EXP - 10), LINK_OK);
	cr_assert_eq(links_verify(&key, "approve", ID, "1", EXP_S, APPROVE_HEX, EXP), LINK_OK);
	cr_assert_eq(links_status_http(LINK_OK), 200);
}

Test(links, verify_uppercase_hex)
{
	char up[65];
	for (int i = 0; i < 64; i++)
		up[i] =
		    (ACK_HEX[i] >= 'a' && ACK_HEX[i] <= 'f') ? (char)(ACK_HEX[i] - 32) : ACK_HEX[i];
	up[64] = '\0';
	cr_assert_eq(links_verify(&key, "ack", ID, "1", EXP_S, up, EXP), LINK_OK);
}

Test(links, verify_round_trip)
{
	char sig[65];
	cr_assert_eq(links_sign(&key, "approve", "inc-ffffffffffffffff", 1, 0, sig), 0);
	cr_assert_eq(links_verify(&key, "approve", "inc-ffffffffffffffff", "1", "0", sig, 0),
		     LINK_OK);
	cr_assert_eq(links_verify(&key, "approve", "inc-ffffffffffffffff", "1", "0", sig, 1),
		     LINK_EXPIRED);
}

Test(links, verify_forged)
{
	struct secret other;
	cr_assert_eq(secret_from_bytes("otherkey", 8, &other), 0);
	enum link_status st = links_verify(&other, "ack", ID, "1", EXP_S, ACK_HEX, EXP);
	cr_assert_eq(st, LINK_FORGED);
	cr_assert_eq(links_status_http(st), 401);
	cr_assert_eq(links_verify(&key, "ack", ID, "1", EXP_S, ZERO_HEX, EXP), LINK_FORGED);
	secret_release(&other);
}

Test(links, verify_altered_parts)
{
	/* Another id, the other action, another exp: each breaks the MAC. */
	cr_assert_eq(links_verify(&key, "ack", "inc-0123456789abcdee", "1", EXP_S, ACK_HEX, EXP),
		     LINK_FORGED);
	cr_assert_eq(links_verify(&key, "approve", ID, "1", EXP_S, ACK_HEX, EXP), LINK_FORGED);
	cr_assert_eq(links_verify(&key, "ack", ID, "1", "1700003601", ACK_HEX, EXP), LINK_FORGED);
	/* The MAC covers exp as sent: a leading zero is another message. */
	cr_assert_eq(links_verify(&key, "ack", ID, "1", "0" EXP_S, ACK_HEX, EXP), LINK_FORGED);
	/* One flipped hex digit. */
	char sig[65];
	memcpy(sig, ACK_HEX, sizeof(sig));
	sig[63] = sig[63] == '8' ? '9' : '8';
	cr_assert_eq(links_verify(&key, "ack", ID, "1", EXP_S, sig, EXP), LINK_FORGED);
}

Test(links, verify_expired_only_when_genuine)
{
	enum link_status st = links_verify(&key, "ack", ID, "1", EXP_S, ACK_HEX, EXP + 1);
	cr_assert_eq(st, LINK_EXPIRED);
	cr_assert_eq(links_status_http(st), 403);
	cr_assert_str_eq(links_status_message(st), "This link has expired.");
	/* A forged link past its exp is still just forged. */
	cr_assert_eq(links_verify(&key, "ack", ID, "1", EXP_S, ZERO_HEX, EXP + 1000000),
		     LINK_FORGED);
	cr_assert_eq(links_verify(&key, "ack", ID, "1", "1", ZERO_HEX, EXP), LINK_FORGED);
	cr_assert_str_eq(links_status_message(LINK_FORGED), "This link is not valid.");
}

Test(links, verify_malformed)
{
	struct secret unset = {NULL, 0};
	const char *bad_exp[] = {"",
				 "+1700003600",
				 "-1",
				 " 1700003600",
				 "1700003600 ",
				 "17e9",
				 "0x10",
				 "12345678901234567890",
				 "9223372036854775808",
				 "1.5"};
	for (size_t i = 0; i < sizeof(bad_exp) / sizeof(bad_exp[0]); i++)
		cr_assert_eq(links_verify(&key, "ack", ID, "1", bad_exp[i], ACK_HEX, 0),
			     LINK_MALFORMED, "exp '%s'", bad_exp[i]);
	/* 19 digits within int64 is fine (the MAC then fails). */
	cr_assert_eq(links_verify(&key, "ack", ID, "1", "9223372036854775807", ACK_HEX, 0),
		     LINK_FORGED);
	const char *bad_sig[] = {
	    "", ACK_HEX "0",
	    ("35e2156a1ccb55b20a520a331e76242f9b2a867e23b1181ac"
	     "954642c79e4b98"),
	    "g5e2156a1ccb55b20a520a331e76242f9b2a867e23b1181ac954642c79e4b988",
	    " 5e2156a1ccb55b20a520a331e76242f9b2a867e23b1181ac954642c79e4b988"};
	for (size_t i = 0; i < sizeof(bad_sig) / sizeof(bad_sig[0]); i++)
		cr_assert_eq(links_verify(&key, "ack", ID, "1", EXP_S, bad_sig[i], 0),
			     LINK_MALFORMED, "sig %zu", i);
	cr_assert_eq(links_verify(&key, "ACK", ID, "1", EXP_S, ACK_HEX, 0), LINK_MALFORMED);
	cr_assert_eq(links_verify(&key, "delete", ID, "1", EXP_S, ACK_HEX, 0), LINK_MALFORMED);
	cr_assert_eq(links_verify(&key, NULL, ID, "1", EXP_S, ACK_HEX, 0), LINK_MALFORMED);
	cr_assert_eq(links_verify(&key, "ack", "", "1", EXP_S, ACK_HEX, 0), LINK_MALFORMED);
	cr_assert_eq(links_verify(&key, "ack", NULL, "1", EXP_S, ACK_HEX, 0), LINK_MALFORMED);
	cr_assert_eq(links_verify(&key, "ack", ID, "1", NULL, ACK_HEX, 0), LINK_MALFORMED);
	cr_assert_eq(links_verify(&key, "ack", ID, "1", EXP_S, NULL, 0), LINK_MALFORMED);
	cr_assert_eq(links_verify(&unset, "ack", ID, "1", EXP_S, ACK_HEX, 0), LINK_MALFORMED);
	char long_id[LINKS_ID_MAX + 2];
	memset(long_id, 'a', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	cr_assert_eq(links_verify(&key, "ack", long_id, "1", EXP_S, ACK_HEX, 0), LINK_MALFORMED);
	/* A malformed link, even an old one, is malformed, not expired. */
	cr_assert_eq(links_verify(&key, "ack", ID, "1", EXP_S, "zz", EXP + 5), LINK_MALFORMED);
	cr_assert_eq(links_status_http(LINK_MALFORMED), 400);
}

/* ---- forms ---- */

Test(links, form_basic)
{
	struct link_form f;
	const char *body = "action=ack&ep=1&exp=" EXP_S "&sig=" ACK_HEX "&by=alice";
	cr_assert_eq(links_parse_form(body, strlen(body), &f), 0);
	cr_assert_null(f.error);
	cr_assert_str_eq(f.action, "ack");
	cr_assert_str_eq(f.exp, EXP_S);
	cr_assert_str_eq(f.sig, ACK_HEX);
	cr_assert_str_eq(f.by, "alice");
}

Test(links, form_plus_and_percent)
{
	struct link_form f;
	const char *body = "by=Ren%C3%A9e+O%27Brien&sig=s&exp=1&ep=1&action=%61%63%6B&extra=%20";
	cr_assert_eq(links_parse_form(body, strlen(body), &f), 0);
	cr_assert_str_eq(f.by, "Renée O'Brien");
	cr_assert_str_eq(f.action, "ack");
	/* An encoded '+' is a plus, an encoded '&' does not split. */
	body = "action=ack&ep=1&exp=1&sig=s&by=a%2Bb%26c%3Dd";
	cr_assert_eq(links_parse_form(body, strlen(body), &f), 0);
	cr_assert_str_eq(f.by, "a+b&c=d");
}

Test(links, form_by_defaults_and_trims)
{
	struct link_form f;
	const char *cases[][2] = {
	    {"action=ack&ep=1&exp=1&sig=s", "anonymous"},
	    {"action=ack&ep=1&exp=1&sig=s&by=", "anonymous"},
	    {"action=ack&ep=1&exp=1&sig=s&by", "anonymous"},
	    {"action=ack&ep=1&exp=1&sig=s&by=+++", "anonymous"},
	    {"action=ack&ep=1&exp=1&sig=s&by=++bob+", "bob"},
	    {"&&action=ack&exp=1&&sig=s&ep=1", "anonymous"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cr_assert_eq(links_parse_form(cases[i][0], strlen(cases[i][0]), &f), 0, "%s",
			     cases[i][0]);
		cr_assert_str_eq(f.by, cases[i][1], "%s", cases[i][0]);
	}
}

Test(links, form_errors)
{
	struct link_form f;
	const struct {
		const char *body, *error;
	} cases[] = {
	    {"action=ack&ep=1&exp=1&sig=s&by=a%2", "malformed %-escape or NUL byte in form"},
	    {"action=ack&ep=1&exp=1&sig=s&by=a%", "malformed %-escape or NUL byte in form"},
	    {"action=ack&ep=1&exp=1&sig=s&by=a%zz", "malformed %-escape or NUL byte in form"},
	    {"action=ack&ep=1&exp=1&sig=s&utm=%g0", "malformed %-escape or NUL byte in form"},
	    {"action=ack&ep=1&exp=1&sig=s&by=a%00b", "malformed %-escape or NUL byte in form"},
	    {"exp=1&sig=s", "missing form field 'action'"},
	    {"action=ack&sig=s", "missing form field 'exp'"},
	    {"action=ack&ep=1&exp=1", "missing form field 'sig'"},
	    {"", "missing form field 'action'"},
	    {"action=ack&action=approve&exp=1&sig=s", "form field 'action' given more than once"},
	    {"action=ack&ep=1&exp=1&sig=s&by=a&by=b", "form field 'by' given more than once"},
	    {"action=ack&ep=1&exp=1&sig=s&by=a%0Ab",
	     "form field 'by' contains a control character"},
	    {"action=ack&ep=1&exp=1&sig=s&by=a%09b",
	     "form field 'by' contains a control character"},
	    {"action=ack&ep=1&exp=1&sig=s&by=a%7Fb",
	     "form field 'by' contains a control character"},
	    {"action=ack&ep=1&exp=1&sig=s&by=a%C2%85b",
	     "form field 'by' contains a control character"},
	    {"action=ack&ep=1&exp=1&sig=s&by=%E2%80%AEevil", "form field 'by' contains a control "
							     "character"},
	    {"action=ack&ep=1&exp=1&sig=s&by=%FF", "form field 'by' is not valid UTF-8"},
	    {"action=ack&ep=1&exp=1&sig=s&by=%C3", "form field 'by' is not valid UTF-8"},
	    {"action=ack&ep=1&exp=1&sig=s&by=%C0%AF", "form field 'by' is not valid UTF-8"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cr_assert_eq(links_parse_form(cases[i].body, strlen(cases[i].body), &f), -1, "%s",
			     cases[i].body);
		cr_assert_not_null(f.error, "%s", cases[i].body);
		cr_assert_str_eq(f.error, cases[i].error, "%s", cases[i].body);
	}
}

Test(links, form_overlong)
{
	struct link_form f;
	char body[LINKS_FORM_MAX + 64];
	char by[80];

	/* by: 64 characters pass (multi-byte ones too), 65 do not. */
	memset(by, 'x', 64);
	by[64] = '\0';
	snprintf(body, sizeof(body), "action=ack&ep=1&exp=1&sig=s&by=%s", by);
	cr_assert_eq(links_parse_form(body, strlen(body), &f), 0);
	cr_assert_eq(strlen(f.by), 64);
	snprintf(body, sizeof(body), "action=ack&ep=1&exp=1&sig=s&by=%sy", by);
	cr_assert_eq(links_parse_form(body, strlen(body), &f), -1);
	cr_assert_str_eq(f.error, "form field 'by' is longer than 64 characters");

	size_t n = (size_t)snprintf(body, sizeof(body), "action=ack&ep=1&exp=1&sig=s&by=");
	for (int i = 0; i < 64; i++)
		n += (size_t)snprintf(body + n, sizeof(body) - n, "%%F0%%9F%%98%%80");
	cr_assert_eq(links_parse_form(body, n, &f), 0);
	cr_assert_eq(strlen(f.by), 256);
	snprintf(body + n, sizeof(body) - n, "a");
	cr_assert_eq(links_parse_form(body, n + 1, &f), -1);

	/* sig of 129 bytes. */
	n = (size_t)snprintf(body, sizeof(body), "action=ack&ep=1&exp=1&sig=");
	memset(body + n, 'a', LINKS_FIELD_MAX + 1);
	n += LINKS_FIELD_MAX + 1;
	cr_assert_eq(links_parse_form(body, n, &f), -1);
	cr_assert_str_eq(f.error, "form field 'sig' is too long");
	/* 128 is fine. */
	cr_assert_eq(links_parse_form(body, n - 1, &f), 0);
	cr_assert_eq(strlen(f.sig), LINKS_FIELD_MAX);

	/* The whole body. */
	memset(body, 'a', LINKS_FORM_MAX + 1);
	cr_assert_eq(links_parse_form(body, LINKS_FORM_MAX + 1, &f), -1);
	cr_assert_str_eq(f.error, "form too long");
}

Test(links, form_not_nul_terminated)
{
	struct link_form f;
	const char *body = "action=ack&ep=1&exp=1&sig=s&by=alicebob";
	/* Stop in the middle of "alicebob". */
	cr_assert_eq(links_parse_form(body, strlen(body) - 3, &f), 0);
	cr_assert_str_eq(f.by, "alice");
}

Test(links, query_parser)
{
	struct link_form f;
	cr_assert_eq(links_parse_query("action=approve&ep=1&exp=" EXP_S "&sig=" APPROVE_HEX, &f),
		     0);
	cr_assert_str_eq(f.action, "approve");
	cr_assert_str_eq(f.exp, EXP_S);
	cr_assert_str_eq(f.sig, APPROVE_HEX);
	cr_assert_str_eq(f.by, "anonymous");
	cr_assert_eq(links_verify(&key, f.action, ID, "1", f.exp, f.sig, EXP), LINK_OK);
	cr_assert_eq(links_parse_query(NULL, &f), -1);
	cr_assert_str_eq(f.error, "missing form field 'action'");
}

/* ---- HTML ---- */

Test(links, html_escape_all_five)
{
	struct buf b = BUF_INIT;
	cr_assert_eq(links_html_escape(&b, "<script>alert(\"x\" & 'y')</script>"), 0);
	cr_assert_str_eq(b.data,
			 "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;");
	buf_release(&b);
}

Test(links, html_escape_invalid_utf8)
{
	struct buf b = BUF_INIT;
	cr_assert_eq(links_html_escape(&b, "a\xff"
					   "b\xc3\xa9\x01"),
		     0);
	cr_assert_str_eq(b.data, "a\xef\xbf\xbd"
				 "b\xc3\xa9\xef\xbf\xbd");
	buf_reset(&b);
	cr_assert_eq(links_html_escape(&b, NULL), 0);
	cr_assert_eq(b.len, 0);
	buf_release(&b);
}

/* The structural requirements every page meets. */
static void assert_page(const char *html)
{
	cr_assert(strncmp(html, "<!DOCTYPE html>\n<html lang=\"en\">", 31) == 0);
	cr_assert_not_null(strstr(html, "<meta charset=\"utf-8\">"));
	cr_assert_not_null(strstr(html, "<title>"));
	cr_assert_not_null(strstr(html, "<main>"));
	cr_assert_not_null(strstr(html, "</main>"));
	cr_assert_null(strstr(html, "<script"));
	cr_assert_null(strstr(html, "src="));
	cr_assert_null(strstr(html, "<link"));
	cr_assert_null(strstr(html, "http://"));
	cr_assert_null(strstr(html, "https://"));
	size_t n = strlen(html);
	cr_assert_str_eq(html + n - 8, "</html>\n");
}

Test(links, page_confirm_ack)
{
	struct buf b = BUF_INIT;
	cr_assert_eq(
	    links_page_confirm(&b, ID, "ack", "1", EXP_S, ACK_HEX, "HighErrorRate on checkout"), 0);
	assert_page(b.data);
	cr_assert_not_null(
	    strstr(b.data, "<title>Acknowledge incident " ID " - rollbackd</title>"));
	cr_assert_not_null(
	    strstr(b.data, "<p>Acknowledge incident " ID " (HighErrorRate on checkout).</p>"));
	cr_assert_not_null(strstr(b.data, "<form method=\"post\" action=\"/v1/ack/" ID "\">"));
	cr_assert_not_null(strstr(b.data, "<input type=\"hidden\" name=\"action\" value=\"ack\">"));
	cr_assert_not_null(
	    strstr(b.data, "<input type=\"hidden\" name=\"exp\" value=\"" EXP_S "\">"));
	cr_assert_not_null(
	    strstr(b.data, "<input type=\"hidden\" name=\"sig\" value=\"" ACK_HEX "\">"));
	cr_assert_not_null(strstr(b.data, "<label for=\"by\">Your name</label>"));
	cr_assert_not_null(strstr(b.data, "id=\"by\" name=\"by\""));
	cr_assert_not_null(strstr(b.data, "<button type=\"submit\">Acknowledge</button>"));
	buf_release(&b);
}

Test(links, page_confirm_approve_without_summary)
{
	struct buf b = BUF_INIT;
	cr_assert_eq(links_page_confirm(&b, ID, "approve", "1", EXP_S, APPROVE_HEX, NULL), 0);
	assert_page(b.data);
	cr_assert_not_null(strstr(b.data, "<p>Approve the rollback for incident " ID ".</p>"));
	cr_assert_not_null(
	    strstr(b.data, "<input type=\"hidden\" name=\"action\" value=\"approve\">"));
	cr_assert_not_null(strstr(b.data, "<button type=\"submit\">Approve rollback</button>"));
	buf_release(&b);
}

Test(links, page_confirm_escapes_everything)
{
	struct buf b = BUF_INIT;
	cr_assert_eq(links_page_confirm(&b, "inc-\"><script>", "ack", "1", "1\"><script>x",
					"'><script>y", "<script>alert(1)</script> & \"q\""),
		     0);
	assert_page(b.data);
	cr_assert_not_null(strstr(b.data, "(&lt;script&gt;alert(1)&lt;/script&gt; &amp; "
					  "&quot;q&quot;)"));
	cr_assert_not_null(strstr(b.data, "value=\"1&quot;&gt;&lt;script&gt;x\""));
	cr_assert_not_null(strstr(b.data, "value=\"&#39;&gt;&lt;script&gt;y\""));
	cr_assert_not_null(strstr(b.data, "action=\"/v1/ack/inc-%22%3E%3Cscript%3E\""));
	buf_release(&b);
}

Test(links, page_confirm_rejects)
{
	struct buf b = BUF_INIT;
	cr_assert_eq(buf_adds(&b, "keep"), 0);
	cr_assert_eq(links_page_confirm(&b, ID, "delete", "1", EXP_S, ACK_HEX, NULL), -1);
	cr_assert_eq(links_page_confirm(&b, "", "ack", "1", EXP_S, ACK_HEX, NULL), -1);
	cr_assert_eq(links_page_confirm(&b, ID, "ack", "1", NULL, ACK_HEX, NULL), -1);
	cr_assert_str_eq(b.data, "keep");
	/* A cap hit half-way leaves the buffer as it was. */
	b.max = 200;
	cr_assert_eq(links_page_confirm(&b, ID, "ack", "1", EXP_S, ACK_HEX, NULL), -1);
	cr_assert_str_eq(b.data, "keep");
	buf_release(&b);
}

Test(links, page_message_escapes_hostile_by)
{
	struct buf b = BUF_INIT;
	cr_assert_eq(links_page_message(&b, "Acknowledged",
					"Acknowledged by <script>alert('x')</script> at "
					"2026-01-02T03:04:05Z"),
		     0);
	assert_page(b.data);
	cr_assert_not_null(strstr(b.data, "<title>Acknowledged - rollbackd</title>"));
	cr_assert_not_null(strstr(b.data, "<h1>Acknowledged</h1>"));
	cr_assert_not_null(strstr(b.data, "<p>Acknowledged by &lt;script&gt;alert(&#39;x&#39;)"
					  "&lt;/script&gt; at 2026-01-02T03:04:05Z</p>"));
	buf_release(&b);

	cr_assert_eq(links_page_message(&b, "<b>t</b>", links_status_message(LINK_EXPIRED)), 0);
	cr_assert_not_null(strstr(b.data, "<h1>&lt;b&gt;t&lt;/b&gt;</h1>"));
	cr_assert_not_null(strstr(b.data, "<p>This link has expired.</p>"));
	cr_assert_eq(links_page_message(&b, NULL, "x"), -1);
	buf_release(&b);
}

/* ---- arbitrary input ---- */

static uint64_t rng_state = 0x853c49e6748fea9bULL;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

Test(links, random_forms_and_html)
{
	static const char alphabet[] = "action=exp=sig=by=&%+0123456789abcdefABCDEF\xc3\xa9\xe2\x80"
				       "\xae<>\"'\x01\x7f";
	char body[600];
	struct link_form f;
	struct buf b = BUF_INIT;

	for (int round = 0; round < 2000; round++) {
		size_t n = (size_t)(rng() % sizeof(body));
		for (size_t i = 0; i < n; i++)
			body[i] = alphabet[rng() % (sizeof(alphabet) - 1)];
		if (links_parse_form(body, n, &f) == 0) {
			cr_assert_null(f.error);
			cr_assert_gt(strlen(f.by), 0);
			for (const unsigned char *p = (const unsigned char *)f.by; *p; p++)
				cr_assert(*p >= 0x20 && *p != 0x7f);
			cr_assert_null(strstr(f.by, "\xe2\x80\xae"));
		} else {
			cr_assert_not_null(f.error);
		}
		/* Whatever the text, escaped HTML has no markup characters. */
		body[n] = '\0';
		buf_reset(&b);
		cr_assert_eq(links_html_escape(&b, body), 0);
		if (b.data)
			cr_assert_eq(strcspn(b.data, "<>\"'"), b.len);
	}
	buf_release(&b);
}

/* ---- episodes: a link is bound to the episode it was signed for ---- */

Test(links, episode_is_signed)
{
	char sig[65];
	cr_assert_eq(links_sign(&key, "approve", ID, 2, EXP, sig), 0);
	cr_assert_eq(links_verify(&key, "approve", ID, "2", EXP_S, sig, EXP), LINK_OK);
	cr_assert_eq(links_verify(&key, "approve", ID, "1", EXP_S, sig, EXP), LINK_FORGED);
	cr_assert_eq(links_verify(&key, "approve", ID, "3", EXP_S, sig, EXP), LINK_FORGED);
	cr_assert_eq(links_verify(&key, "approve", ID, "2", EXP_S, APPROVE_HEX, EXP), LINK_FORGED);
	const char *bad_ep[] = {"", "0", "02", "-1", "+2", "1234567890", "2x", " 2"};
	for (size_t i = 0; i < sizeof(bad_ep) / sizeof(bad_ep[0]); i++)
		cr_assert_eq(links_verify(&key, "approve", ID, bad_ep[i], EXP_S, sig, EXP),
			     LINK_MALFORMED, "ep %s", bad_ep[i]);
	cr_assert_eq(links_verify(&key, "approve", ID, NULL, EXP_S, sig, EXP), LINK_MALFORMED);
	cr_assert_eq(links_sign(&key, "approve", ID, 0, EXP, sig), -1);
	cr_assert_str_eq(sig, "");
}

Test(links, episode_in_url_form_and_page)
{
	struct buf b = BUF_INIT;
	struct link_form f;
	char sig[65];
	cr_assert_eq(links_sign(&key, "ack", ID, 7, EXP, sig), 0);
	cr_assert_eq(links_url("https://h", &key, "ack", ID, 7, EXP, &b), 0);
	cr_assert_not_null(strstr(b.data, "?action=ack&ep=7&exp=" EXP_S "&sig="));
	cr_assert_eq(links_parse_query(strchr(b.data, '?') + 1, &f), 0);
	cr_assert_str_eq(f.ep, "7");
	cr_assert_eq(links_verify(&key, f.action, ID, f.ep, f.exp, f.sig, EXP), LINK_OK);
	buf_release(&b);
	cr_assert_eq(links_parse_form("action=ack&exp=1&sig=s", 22, &f), -1);
	cr_assert_str_eq(f.error, "missing form field 'ep'");
	cr_assert_eq(links_parse_form("action=ack&ep=1&ep=2&exp=1&sig=s", 32, &f), -1);
	cr_assert_str_eq(f.error, "form field 'ep' given more than once");
	cr_assert_eq(links_page_confirm(&b, ID, "ack", "7", EXP_S, sig, NULL), 0);
	cr_assert_not_null(strstr(b.data, "<input type=\"hidden\" name=\"ep\" value=\"7\">"));
	buf_release(&b);
}
