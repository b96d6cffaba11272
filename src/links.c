/*
 * links: sign and verify acknowledge / approve links, parse their forms and
 * write their HTML pages (SPEC §9).
 *
 * Pure functions over strings. The MAC is compared with sodium_memcmp; the
 * expiry is looked at only after the MAC verified, so a forged link learns
 * nothing. Everything interpolated into HTML goes through html_escape; pages
 * carry no script and no external asset. Nothing here logs or returns a
 * secret.
 */
#include "rollbackd/links.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "rollbackd/auth.h"
#include "rollbackd/text.h"

#define MAC_LEN crypto_auth_hmacsha256_BYTES
/* "approve" ':' id ':' episode ':' 19 digits NUL */
#define MSG_MAX (7 + 1 + LINKS_ID_MAX + 1 + LINKS_EP_DIGITS + 1 + LINKS_EXP_DIGITS + 1)
#define BY_RAW_MAX (LINKS_FIELD_MAX * 4) /* `by` before trimming spaces */

static const char anonymous[] = "anonymous";

static bool valid_action(const char *action)
{
	return action && (strcmp(action, "ack") == 0 || strcmp(action, "approve") == 0);
}

static bool valid_id(const char *id)
{
	size_t n;
	if (!id)
		return false;
	n = strnlen(id, LINKS_ID_MAX + 1);
	return n > 0 && n <= LINKS_ID_MAX;
}

/* Undo a failed append: out is as it was when it held old bytes. */
static void buf_restore(struct buf *out, size_t old)
{
	if (out->data) {
		out->len = old;
		out->data[old] = '\0';
	}
}

/* HMAC-SHA256(key, msg) for keys of any length (RFC 2104). */
static void mac_of(const struct secret *key, const char *msg, size_t len,
		   unsigned char mac[MAC_LEN])
{
	crypto_auth_hmacsha256_state st;
	crypto_auth_hmacsha256_init(&st, key->data, key->len);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)msg, len);
	crypto_auth_hmacsha256_final(&st, mac);
	sodium_memzero(&st, sizeof(st));
}

/* "<action>:<id>:<episode>:<exp>" into msg; its length, or 0 when it does
 * not fit. */
static size_t link_message(char msg[MSG_MAX], const char *action, const char *id, const char *ep,
			   const char *exp)
{
	int n = snprintf(msg, MSG_MAX, "%s:%s:%s:%s", action, id, ep, exp);
	if (n < 0 || (size_t)n >= MSG_MAX)
		return 0;
	return (size_t)n;
}

int links_sign(const struct secret *key, const char *action, const char *id, int episode,
	       int64_t exp, char sig_hex[65])
{
	char msg[MSG_MAX], exp_text[24], ep_text[16];
	unsigned char mac[MAC_LEN];
	size_t n;

	sig_hex[0] = '\0';
	if (!key || !secret_is_set(key) || !valid_action(action) || !valid_id(id) || exp < 0 ||
	    episode < 1 || sodium_init() < 0)
		return -1;
	snprintf(exp_text, sizeof(exp_text), "%" PRId64, exp);
	snprintf(ep_text, sizeof(ep_text), "%d", episode);
	n = link_message(msg, action, id, ep_text, exp_text);
	if (n == 0)
		return -1;
	mac_of(key, msg, n, mac);
	sodium_bin2hex(sig_hex, LINKS_SIG_HEX + 1, mac, sizeof(mac));
	sodium_memzero(mac, sizeof(mac));
	return 0;
}

static bool unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

/* Append s percent-encoded: everything but RFC 3986 unreserved characters. */
static int add_pct(struct buf *out, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
		if (unreserved(*p) ? buf_addc(out, (char)*p) < 0 : buf_add(out, e, 3) < 0)
			return -1;
	}
	return 0;
}

int links_url(const char *public_url, const struct secret *key, const char *action, const char *id,
	      int episode, int64_t exp, struct buf *out)
{
	char sig[LINKS_SIG_HEX + 1];
	size_t old = out->len, base_len;

	if (!public_url)
		return -1;
	base_len = strlen(public_url);
	while (base_len > 0 && public_url[base_len - 1] == '/')
		base_len--;
	if (base_len == 0 || links_sign(key, action, id, episode, exp, sig) < 0)
		return -1;
	if (buf_add(out, public_url, base_len) < 0 || buf_adds(out, "/v1/ack/") < 0 ||
	    add_pct(out, id) < 0 ||
	    buf_addf(out, "?action=%s&ep=%d&exp=%" PRId64 "&sig=%s", action, episode, exp, sig) <
		    0) {
		buf_restore(out, old);
		return -1;
	}
	return 0;
}

enum link_status links_verify(const struct secret *key, const char *action, const char *id,
			      const char *ep_text, const char *exp_text, const char *sig_hex,
			      int64_t now)
{
	unsigned char want[MAC_LEN], got[MAC_LEN];
	char msg[MSG_MAX];
	size_t n;
	int64_t exp;
	bool match;

	int64_t ep;
	if (!key || !secret_is_set(key) || !valid_action(action) || !valid_id(id) || !exp_text ||
	    !sig_hex || !ep_text)
		return LINK_MALFORMED;
	n = strnlen(ep_text, LINKS_EP_DIGITS + 1); /* 1..9 digits, at least 1 */
	if (n > LINKS_EP_DIGITS || text_parse_digits(ep_text, n, &ep) < 0 || ep < 1 ||
	    ep_text[0] == '0')
		return LINK_MALFORMED;
	n = strnlen(exp_text, LINKS_EXP_DIGITS + 1); /* 1..19 digits, no sign, within int64 */
	if (n > LINKS_EXP_DIGITS || text_parse_digits(exp_text, n, &exp) < 0)
		return LINK_MALFORMED;
	if (auth_hex_decode(sig_hex, strnlen(sig_hex, LINKS_SIG_HEX + 1), got, sizeof(got)) < 0)
		return LINK_MALFORMED;
	if (sodium_init() < 0)
		return LINK_FORGED;
	n = link_message(msg, action, id, ep_text, exp_text);
	if (n == 0)
		return LINK_MALFORMED;
	mac_of(key, msg, n, want);
	match = sodium_memcmp(want, got, sizeof(want)) == 0;
	sodium_memzero(want, sizeof(want));
	if (!match)
		return LINK_FORGED;
	return now > exp ? LINK_EXPIRED : LINK_OK;
}

const char *links_status_message(enum link_status st)
{
	switch (st) {
	case LINK_OK:
		return "This link is valid.";
	case LINK_MALFORMED:
		return "This link is incomplete or damaged. Open it again from the original "
		       "message.";
	case LINK_FORGED:
		return "This link is not valid.";
	case LINK_EXPIRED:
		return "This link has expired.";
	}
	return "This link is not valid.";
}

int links_status_http(enum link_status st)
{
	switch (st) {
	case LINK_OK:
		return 200;
	case LINK_MALFORMED:
		return 400;
	case LINK_FORGED:
		return 401;
	case LINK_EXPIRED:
		return 403;
	}
	return 401;
}

/* Code points that must not appear in a name written to the journal and
 * shown on pages: controls, line separators, bidirectional overrides. */
static bool forbidden_in_name(uint32_t cp)
{
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 ||
	       (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

/* Trim, validate and store the decoded `by` into out->by. */
static int store_by(const char *raw, size_t len, struct link_form *out)
{
	const unsigned char *p = (const unsigned char *)raw;
	size_t start = 0, end = len, chars = 0;

	while (start < end && p[start] == ' ')
		start++;
	while (end > start && p[end - 1] == ' ')
		end--;
	for (size_t i = start; i < end;) {
		uint32_t cp;
		size_t k = text_utf8_next(p + i, end - i, &cp);
		if (k == 0) {
			out->error = "form field 'by' is not valid UTF-8";
			return -1;
		}
		if (forbidden_in_name(cp)) {
			out->error = "form field 'by' contains a control character";
			return -1;
		}
		if (++chars > LINKS_BY_MAX) {
			out->error = "form field 'by' is longer than 64 characters";
			return -1;
		}
		i += k;
	}
	if (start == end) {
		memcpy(out->by, anonymous, sizeof(anonymous));
		return 0;
	}
	/* At most LINKS_BY_MAX characters of at most 4 bytes each fit. */
	memcpy(out->by, raw + start, end - start);
	out->by[end - start] = '\0';
	return 0;
}

enum { F_ACTION, F_EXP, F_SIG, F_BY, F_EP, F_COUNT };

static const struct {
	const char *name;
	const char *missing, *twice, *too_long;
} fields[F_COUNT] = {
    [F_ACTION] = {"action", "missing form field 'action'",
		  "form field 'action' given more than once", "form field 'action' is too long"},
    [F_EXP] = {"exp", "missing form field 'exp'", "form field 'exp' given more than once",
	       "form field 'exp' is too long"},
    [F_SIG] = {"sig", "missing form field 'sig'", "form field 'sig' given more than once",
	       "form field 'sig' is too long"},
    [F_BY] = {"by", NULL, "form field 'by' given more than once",
	      "form field 'by' is longer than 64 characters"},
    [F_EP] = {"ep", "missing form field 'ep'", "form field 'ep' given more than once",
	      "form field 'ep' is too long"},
};

int links_parse_form(const char *body, size_t len, struct link_form *out)
{
	char by_raw[BY_RAW_MAX + 1];
	char *dst[F_COUNT] = {out->action, out->exp, out->sig, by_raw, out->ep};
	const size_t cap[F_COUNT] = {sizeof(out->action), sizeof(out->exp), sizeof(out->sig),
				     sizeof(by_raw), sizeof(out->ep)};
	size_t by_len = 0, i = 0;
	bool seen[F_COUNT] = {false};

	memset(out, 0, sizeof(*out));
	if (len > LINKS_FORM_MAX) {
		out->error = "form too long";
		return -1;
	}
	if (len > 0 && !body) {
		out->error = "missing form";
		return -1;
	}
	while (i < len) {
		/* One "name[=value]" up to '&'; empty ones ("a&&b", a final '&')
		 * are skipped as browsers do. */
		size_t start = i, end, eq;
		char name[8];
		int f;

		while (i < len && body[i] != '&')
			i++;
		end = i++;
		if (start == end)
			continue;
		for (eq = start; eq < end && body[eq] != '='; eq++)
			;
		enum text_form r = text_form_decode(body + start, eq - start, name, sizeof(name),
						    NULL, false);
		if (r == TEXT_FORM_BAD)
			goto bad_escape;
		for (f = 0; f < F_COUNT; f++)
			if (r == TEXT_FORM_OK && strcmp(name, fields[f].name) == 0)
				break;
		const char *val = eq < end ? body + eq + 1 : body + end;
		size_t vlen = (size_t)(body + end - val);
		if (f == F_COUNT) {
			/* Unknown field: ignored, but its syntax must hold. */
			if (text_form_decode(val, vlen, NULL, 0, NULL, false) != TEXT_FORM_OK)
				goto bad_escape;
			continue;
		}
		if (seen[f]) {
			out->error = fields[f].twice;
			return -1;
		}
		seen[f] = true;
		r = text_form_decode(val, vlen, dst[f], cap[f], f == F_BY ? &by_len : NULL, false);
		if (r == TEXT_FORM_BAD)
			goto bad_escape;
		if (r == TEXT_FORM_LONG) {
			out->error = fields[f].too_long;
			return -1;
		}
	}
	for (int f = 0; f < F_COUNT; f++) {
		if (!seen[f] && fields[f].missing) {
			out->error = fields[f].missing;
			return -1;
		}
	}
	if (!seen[F_BY]) {
		memcpy(out->by, anonymous, sizeof(anonymous));
		return 0;
	}
	return store_by(by_raw, by_len, out);
bad_escape:
	out->error = "malformed %-escape or NUL byte in form";
	return -1;
}

int links_parse_query(const char *query, struct link_form *out)
{
	if (!query)
		return links_parse_form(NULL, 0, out);
	return links_parse_form(query, strnlen(query, LINKS_FORM_MAX + 1), out);
}

int links_html_escape(struct buf *out, const char *s)
{
	static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */
	size_t old = out->len, n, run = 0, i = 0;
	const unsigned char *p = (const unsigned char *)s;

	if (!s)
		return 0;
	n = strlen(s);
	/* Copy runs of plain text at once; entities and replacements one by
	 * one. */
	while (i < n) {
		const char *ent = NULL;
		uint32_t cp;
		size_t k = text_utf8_next(p + i, n - i, &cp);

		if (k == 0 || (cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r') || cp == 0x7f)
			ent = replacement;
		else if (cp == '&')
			ent = "&amp;";
		else if (cp == '<')
			ent = "&lt;";
		else if (cp == '>')
			ent = "&gt;";
		else if (cp == '"')
			ent = "&quot;";
		else if (cp == '\'')
			ent = "&#39;";
		if (!ent) {
			run += k;
			i += k;
			continue;
		}
		if (buf_add(out, s + i - run, run) < 0 || buf_adds(out, ent) < 0)
			goto fail;
		run = 0;
		i += k ? k : 1;
	}
	if (buf_add(out, s + n - run, run) < 0)
		goto fail;
	return 0;
fail:
	buf_restore(out, old);
	return -1;
}

static const char page_css[] =
    "body{font-family:system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif;"
    "max-width:40rem;margin:2rem auto;padding:0 1rem;line-height:1.5;color:#111;"
    "background:#fff}"
    "h1{font-size:1.5rem}"
    "label{display:block;font-weight:600;margin-top:1rem}"
    "input[type=text]{font:inherit;padding:.4rem;width:100%;max-width:20rem;"
    "box-sizing:border-box;border:1px solid #555}"
    "button{font:inherit;margin-top:1rem;padding:.5rem 1.2rem;border:1px solid #111;"
    "background:#1a5fb4;color:#fff;cursor:pointer}"
    ":focus{outline:3px solid #e66100;outline-offset:2px}";

static int page_start(struct buf *out, const char *title)
{
	if (buf_adds(out, "<!DOCTYPE html>\n"
			  "<html lang=\"en\">\n"
			  "<head>\n"
			  "<meta charset=\"utf-8\">\n"
			  "<meta name=\"viewport\" content=\"width=device-width, "
			  "initial-scale=1\">\n"
			  "<meta name=\"robots\" content=\"noindex, nofollow\">\n"
			  "<meta name=\"referrer\" content=\"no-referrer\">\n"
			  "<title>") < 0 ||
	    links_html_escape(out, title) < 0 ||
	    buf_addf(out, " - rollbackd</title>\n<style>%s</style>\n</head>\n<body>\n<main>\n<h1>",
		     page_css) < 0 ||
	    links_html_escape(out, title) < 0 || buf_adds(out, "</h1>\n") < 0)
		return -1;
	return 0;
}

static int page_end(struct buf *out)
{
	return buf_adds(out, "</main>\n</body>\n</html>\n");
}

int links_page_message(struct buf *out, const char *title, const char *message)
{
	size_t old = out->len;

	if (!title || !message)
		return -1;
	if (page_start(out, title) < 0 || buf_adds(out, "<p>") < 0 ||
	    links_html_escape(out, message) < 0 || buf_adds(out, "</p>\n") < 0 ||
	    page_end(out) < 0) {
		buf_restore(out, old);
		return -1;
	}
	return 0;
}

/* A hidden form field; value is HTML-escaped. */
static int add_hidden(struct buf *out, const char *name, const char *value)
{
	if (buf_addf(out, "<input type=\"hidden\" name=\"%s\" value=\"", name) < 0 ||
	    links_html_escape(out, value) < 0 || buf_adds(out, "\">\n") < 0)
		return -1;
	return 0;
}

int links_page_confirm(struct buf *out, const char *id, const char *action, const char *ep,
		       const char *exp, const char *sig, const char *summary)
{
	return links_page_confirm_target(out, id, action, ep, exp, sig, summary, NULL);
}

int links_page_confirm_target(struct buf *out, const char *id, const char *action,
			      const char *ep, const char *exp, const char *sig, const char *summary,
			      const char *target)
{
	struct buf title = BUF_INIT, path = BUF_INIT;
	size_t old = out->len;
	bool approve;
	int ret = -1;

	if (!valid_id(id) || !valid_action(action) || !ep || !exp || !sig)
		return -1;
	approve = strcmp(action, "approve") == 0;
	if (buf_addf(&title, "%s incident %s", approve ? "Approve the rollback for" : "Acknowledge",
		     id) < 0 ||
	    buf_adds(&path, "/v1/ack/") < 0 || add_pct(&path, id) < 0)
		goto out;
	if (page_start(out, title.data) < 0 || buf_adds(out, "<p>") < 0 ||
	    links_html_escape(out, title.data) < 0)
		goto out;
	if (summary && *summary &&
	    (buf_adds(out, " (") < 0 || links_html_escape(out, summary) < 0 ||
	     buf_addc(out, ')') < 0))
		goto out;
	if (buf_adds(out, ".</p>\n<p>") < 0 ||
	    buf_adds(out, approve ? "Approving lets the rule's rollback actions run now. "
				  : "Acknowledging tells the team that you are on it. ") < 0 ||
	    buf_adds(out, "Nothing has changed yet: your answer is recorded, with your name, "
			  "in the audit journal only when you submit this form.</p>\n") < 0)
		goto out;
	if (buf_adds(out, "<form method=\"post\" action=\"") < 0 ||
	    links_html_escape(out, path.data) < 0 || buf_adds(out, "\">\n") < 0 ||
	    add_hidden(out, "action", action) < 0 || add_hidden(out, "ep", ep) < 0 ||
	    add_hidden(out, "exp", exp) < 0 ||
	    add_hidden(out, "sig", sig) < 0 ||
	    (approve && target &&
	     (buf_adds(out, "<label for=\"target\">Type the target, <code>") < 0 ||
	      links_html_escape(out, target) < 0 ||
	      buf_adds(out, "</code>, to approve</label>\n<input type=\"text\" id=\"target\" "
			    "name=\"target\" autocomplete=\"off\" spellcheck=\"false\">\n") < 0)) ||
	    buf_addf(out,
		     "<label for=\"by\">Your name</label>\n"
		     "<input type=\"text\" id=\"by\" name=\"by\" maxlength=\"%d\" "
		     "autocomplete=\"name\">\n"
		     "<button type=\"submit\">%s</button>\n"
		     "</form>\n",
		     LINKS_BY_MAX, approve ? "Approve rollback" : "Acknowledge") < 0 ||
	    page_end(out) < 0)
		goto out;
	ret = 0;
out:
	if (ret < 0)
		buf_restore(out, old);
	buf_release(&title);
	buf_release(&path);
	return ret;
}
