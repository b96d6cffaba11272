/*
 * links: signed acknowledge / approve links and their HTML pages (SPEC §9).
 *
 * A link is public_url/v1/ack/{id}?action=ack|approve&ep=<episode>&exp=<unix s>&sig=<hex>
 * with sig = hex HMAC-SHA256(links secret, "<action>:<id>:<episode>:<exp>"):
 * the episode is signed, so a link seen for episode 1 of an incident never
 * acknowledges or approves its episode 2 (the engine answers 409). Pure
 * functions: no I/O, no clock (the caller passes now), no state. Whether a
 * link was already used is the engine's business, not this module's.
 *
 * Never: compare a MAC other than in constant time, tell the holder of a
 * forged link anything about its expiry, put a secret in a message, or
 * interpolate anything into HTML without escaping it.
 */
#ifndef ROLLBACKD_LINKS_H
#define ROLLBACKD_LINKS_H

#include <stddef.h>
#include <stdint.h>

#include "rollbackd/buf.h"
#include "rollbackd/secret.h"

#define LINKS_SIG_HEX 64    /* hex digits of a signature */
#define LINKS_ID_MAX 64	    /* longest incident id signed or verified */
#define LINKS_FIELD_MAX 128 /* longest decoded action / exp / sig field */
#define LINKS_BY_MAX 64	    /* longest `by`, in characters (code points) */
#define LINKS_FORM_MAX 4096 /* longest form body or query string parsed */
#define LINKS_EXP_DIGITS 19 /* most digits in exp */
#define LINKS_EP_DIGITS 9   /* most digits in ep (the episode, >= 1) */

/* Content-Security-Policy for every page below: no scripts, no external
 * assets, no framing (the confirm page is a button worth clickjacking),
 * forms post only back to us. Send it with Cache-Control: no-store and
 * Referrer-Policy: no-referrer (the page URL carries the signature). */
#define LINKS_PAGE_CSP                                                                             \
	"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "                      \
	"frame-ancestors 'none'; base-uri 'none'"

/* Write the hex signature of "<action>:<id>:<episode>:<exp>" into sig_hex
 * (64 lowercase hex digits + NUL). action must be "ack" or "approve", id
 * non-empty and at most LINKS_ID_MAX bytes, episode >= 1, exp >= 0, key set.
 * Returns 0, or -1 (sig_hex is then an empty string). */
int links_sign(const struct secret *key, const char *action, const char *id, int episode,
	       int64_t exp, char sig_hex[65]);

/* Append public_url (trailing '/' trimmed) + "/v1/ack/" + id + "?action=" +
 * action + "&ep=" + episode + "&exp=" + exp + "&sig=" + hex to out. id is percent-encoded
 * (everything but RFC 3986 unreserved characters). Same preconditions as
 * links_sign, plus a non-empty public_url. Returns 0, or -1 with out
 * unchanged. */
int links_url(const char *public_url, const struct secret *key, const char *action, const char *id,
	      int episode, int64_t exp, struct buf *out);

enum link_status {
	LINK_OK = 0,
	LINK_MALFORMED, /* missing part, bad action, exp not decimal, sig not 64 hex */
	LINK_FORGED,	/* well-formed but the signature does not verify */
	LINK_EXPIRED,	/* signature verifies and now > exp */
};

/* Verify a link's parts as received (decoded). Any NULL argument, an unset
 * key, an id that is empty or longer than LINKS_ID_MAX, an action other than
 * ack|approve, ep that is not 1..9 decimal digits without a leading zero,
 * exp that is not 1..19 decimal digits within int64, or sig that
 * is not exactly 64 hex digits (either case) is LINK_MALFORMED. The MAC
 * covers exp_text exactly as received, so "0" + exp is LINK_FORGED. Expiry
 * is looked at only once the signature verified: a forged link never learns
 * it is expired. The compare is constant-time. */
enum link_status links_verify(const struct secret *key, const char *action, const char *id,
			      const char *ep_text, const char *exp_text, const char *sig_hex,
			      int64_t now);

/* A short human sentence for a page ("This link has expired."). Static. */
const char *links_status_message(enum link_status st);
/* The HTTP status to answer with: OK 200, MALFORMED 400, FORGED 401,
 * EXPIRED 403. */
int links_status_http(enum link_status st);

/* The fields of an ack link's form body (POST) or query string (GET). */
struct link_form {
	char action[LINKS_FIELD_MAX + 1];
	char ep[LINKS_FIELD_MAX + 1]; /* the episode the link was signed for */
	char exp[LINKS_FIELD_MAX + 1];
	char sig[LINKS_FIELD_MAX + 1];
	char by[LINKS_BY_MAX * 4 + 1]; /* UTF-8, no control characters; "anonymous"
					  when absent or blank */
	const char *error;	       /* static text saying why parsing failed, else NULL */
};

/* Parse application/x-www-form-urlencoded text ('+' is a space, %XX a byte;
 * the same syntax as a query string, without the '?'). Fields: action, exp,
 * sig (each at most LINKS_FIELD_MAX bytes decoded, required) and by
 * (optional; surrounding spaces trimmed; valid UTF-8 of at most LINKS_BY_MAX
 * characters; no control characters, C0, DEL, C1 or bidirectional
 * overrides). Unknown fields are ignored; a repeated known field is an
 * error, as is a truncated or non-hex %-escape, a NUL, or a body over
 * LINKS_FORM_MAX bytes. ep is required too. body need not be NUL-terminated and may be NULL when
 * len is 0. Returns 0, or -1 with out->error set (the caller answers 400
 * with links_status_message(LINK_MALFORMED)). */
int links_parse_form(const char *body, size_t len, struct link_form *out);
/* The same for a NUL-terminated query string (NULL counts as empty). */
int links_parse_query(const char *query, struct link_form *out);

/* Append s HTML-escaped (& < > " ' become entities; bytes that are not valid
 * UTF-8 become U+FFFD; NUL-terminated; NULL appends nothing). Returns 0, or
 * -1 with out unchanged. */
int links_html_escape(struct buf *out, const char *s);

/* Append the confirmation page a GET on a valid link shows: what will happen
 * ("Acknowledge incident inc-… (summary)" or "Approve the rollback for
 * incident inc-… (summary)"), and a form that posts action, exp and sig
 * (hidden) and by ("Your name") to /v1/ack/<id>. It changes nothing; summary
 * may be NULL. action must be ack|approve. Returns 0, or -1 with out
 * unchanged. */
int links_page_confirm(struct buf *out, const char *id, const char *action, const char *ep,
		       const char *exp, const char *sig, const char *summary);
/* The same; an approve page also asks the approver to type target (the
 * field "target"), which the POST must repeat (NULL: no such field). */
int links_page_confirm_target(struct buf *out, const char *id, const char *action, const char *ep,
			      const char *exp, const char *sig, const char *summary,
			      const char *target);

/* Append a page with a title (also the <h1>) and one paragraph, for results
 * and errors ("Acknowledged by alice at …", "This link has expired.").
 * Returns 0, or -1 with out unchanged. */
int links_page_message(struct buf *out, const char *title, const char *message);

#endif
