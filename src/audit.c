/*
 * audit: verify, show and report on the journal after the fact (SPEC §3).
 *
 * A walk reads every segment through journal_reader, checks each line with
 * journal_check_line against the previous hash and seq, and parses it with
 * jansson. Past the first bad record the walk goes on without checking, so
 * show and report can print what is left, marked unverified; verify stops
 * there. It must never write to the journal, and never print record text
 * (which comes from alerts and commands, i.e. from anyone) without making
 * it safe for a terminal or for Markdown first.
 *
 * Over 800 lines (about 2 100): verify, show, report and the checkpoint check
 * share the chain walk, the record readers and the text helpers; the report
 * (the largest part) would be the first to move to its own file, with those
 * helpers behind an internal header.
 */
#include "rollbackd/audit.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rollbackd/checkpoint.h"
#include "rollbackd/cmd.h"
#include "rollbackd/error.h"
#include "rollbackd/journal.h"
#include "rollbackd/text.h"
#include "rollbackd/ui.h"

#define WHAT_MAX 600     /* what is wrong with a record: room for a struct error and more */
#define PROBLEM_MAX 1024 /* and where: file, offset, seq */
#define MAX_EPISODES 1024 /* distinct episodes counted in a report */

static const char zero_hash[JOURNAL_HASH_HEX + 1] =
    "0000000000000000000000000000000000000000000000000000000000000000";

/* ---- small text helpers ------------------------------------------------ */

/* snprintf's result as what was written (never more than outsz - 1). */
static size_t clamp_len(int n, size_t outsz)
{
	if (n < 0 || outsz == 0)
		return 0;
	return (size_t)n < outsz ? (size_t)n : outsz - 1;
}

/* C0, DEL, or (as a 2-byte sequence) a C1 control: 0 when p is none. */
static size_t control_len(const unsigned char *p, size_t left)
{
	if (p[0] < 0x20 || p[0] == 0x7f)
		return 1;
	if (left >= 2 && p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
		return 2;
	return 0;
}

/* Append s[0..n) for a terminal: controls and invalid UTF-8 become '?';
 * at most max (> 3) bytes, cut on a character boundary and ending in "...".
 * Nothing grows (one '?' per control), so n <= max always fits. */
static int add_safe(struct buf *out, const char *s, size_t n, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t room = n <= max ? n : max - 3, used = 0, i = 0;
	while (i < n) {
		size_t c = control_len(p + i, n - i), u = c ? 0 : text_utf8_next(p + i, n - i, NULL);
		size_t width = u ? u : 1;
		if (used + width > room)
			return buf_adds(out, "...");
		if (u ? buf_add(out, p + i, u) : buf_addc(out, '?'))
			return -1;
		used += width;
		i += c ? c : u ? u : 1;
	}
	return 0;
}

/* Longest run of backticks in s[0..n). */
static size_t backtick_run(const char *s, size_t n)
{
	size_t best = 0, run = 0;
	for (size_t i = 0; i < n; i++) {
		run = s[i] == '`' ? run + 1 : 0;
		if (run > best)
			best = run;
	}
	return best;
}

static int add_repeat(struct buf *out, char c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (buf_addc(out, c) < 0)
			return -1;
	return 0;
}

/* A control byte (or C1 sequence) as visible text: \x1b, \u0085. */
static int add_escaped_control(struct buf *out, const unsigned char *p, size_t len)
{
	if (len == 2)
		return buf_addf(out, "\\u%04x", (unsigned)p[1]);
	return buf_addf(out, "\\x%02x", (unsigned)p[0]);
}

/* ---- durations and numbers --------------------------------------------- */

static size_t format_hms(uint64_t s, const char *sign, char *out, size_t outsz)
{
	uint64_t d = s / 86400, h = s / 3600 % 24, m = s / 60 % 60, sec = s % 60;
	int n;
	if (d)
		n = snprintf(out, outsz, "%s%" PRIu64 "d%02" PRIu64 "h%02" PRIu64 "m%02" PRIu64 "s",
			     sign, d, h, m, sec);
	else if (h)
		n = snprintf(out, outsz, "%s%" PRIu64 "h%02" PRIu64 "m%02" PRIu64 "s", sign, h, m,
			     sec);
	else if (m)
		n = snprintf(out, outsz, "%s%" PRIu64 "m%02" PRIu64 "s", sign, m, sec);
	else
		n = snprintf(out, outsz, "%s%" PRIu64 "s", sign, sec);
	return clamp_len(n, outsz);
}

static uint64_t abs_ms(int64_t ms)
{
	return ms < 0 ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
}

size_t audit_format_rel(int64_t ms, char *out, size_t outsz)
{
	uint64_t a = abs_ms(ms);
	return format_hms(a / 1000, ms < 0 && a >= 1000 ? "-" : "+", out, outsz);
}

size_t audit_format_duration(int64_t ms, char *out, size_t outsz)
{
	uint64_t a = abs_ms(ms);
	const char *sign = ms < 0 ? "-" : "";
	if (a >= 60000)
		return format_hms(a / 1000, sign, out, outsz);
	if (a < 1000)
		return clamp_len(snprintf(out, outsz, "%s%" PRIu64 "ms", sign, a), outsz);
	char frac[4];
	snprintf(frac, sizeof(frac), "%03u", (unsigned)(a % 1000));
	for (int i = 2; i >= 0 && frac[i] == '0'; i--)
		frac[i] = '\0';
	return clamp_len(
	    snprintf(out, outsz, "%s%" PRIu64 "%s%ss", sign, a / 1000, frac[0] ? "." : "", frac),
	    outsz);
}

size_t audit_format_number(const json_t *v, char *out, size_t outsz)
{
	char tmp[40];
	if (json_is_integer(v))
		snprintf(tmp, sizeof(tmp), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else if (json_is_real(v)) {
		double d = json_real_value(v);
		for (int prec = 1; prec <= 17; prec++) {
			snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
			if (strtod(tmp, NULL) == d)
				break;
		}
	} else {
		snprintf(tmp, sizeof(tmp), "?");
	}
	return clamp_len(snprintf(out, outsz, "%s", tmp), outsz);
}

/* ---- Markdown ------------------------------------------------------------ */

/* The text of a fenced block: newlines and tabs stay, other controls and
 * invalid UTF-8 are escaped; stops before passing max output bytes. */
static int fence_body(const char *s, size_t n, size_t max, size_t *shown, struct buf *out)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t used = 0, i = 0;
	while (i < n) {
		size_t c = p[i] == '\n' || p[i] == '\t' ? 0 : control_len(p + i, n - i);
		size_t u = c ? 0 : text_utf8_next(p + i, n - i, NULL);
		size_t width = c == 2 ? 6 : c || !u ? 4 : u; /* \u0085, \x1b */
		if (used + width > max)
			break;
		int r = c   ? add_escaped_control(out, p + i, c)
			: u ? buf_add(out, p + i, u)
			    : buf_addf(out, "\\x%02x", (unsigned)p[i]);
		if (r < 0)
			return -1;
		used += width;
		i += c ? c : u ? u : 1;
	}
	*shown = i;
	if (used && out->data[out->len - 1] != '\n')
		return buf_addc(out, '\n');
	return 0;
}

int audit_md_fence(const char *s, size_t n, size_t max, size_t *shown, struct buf *out)
{
	size_t run = backtick_run(s, n);
	size_t fence = run >= 3 ? run + 1 : 3;
	if (add_repeat(out, '`', fence) || buf_adds(out, "text\n") ||
	    fence_body(s, n, max, shown, out) || add_repeat(out, '`', fence) || buf_addc(out, '\n'))
		return -1;
	return 0;
}

int audit_md_code(const char *s, size_t n, struct buf *out)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t delim = backtick_run(s, n) + 1;
	/* One space each side is stripped by the renderer: it keeps a
	 * backtick or a space at either end (and an empty span) literal. */
	bool pad = n > 0 && (s[0] == '`' || s[0] == ' ' || s[n - 1] == '`' || s[n - 1] == ' ');
	if (add_repeat(out, '`', delim) || ((pad || n == 0) && buf_addc(out, ' ')))
		return -1;
	for (size_t i = 0; i < n;) {
		size_t c = control_len(p + i, n - i), u = c ? 0 : text_utf8_next(p + i, n - i, NULL);
		int r = c   ? add_escaped_control(out, p + i, c)
			: u ? buf_add(out, p + i, u)
			    : buf_addf(out, "\\x%02x", (unsigned)p[i]);
		if (r < 0)
			return -1;
		i += c ? c : u ? u : 1;
	}
	if ((pad && buf_addc(out, ' ')) || add_repeat(out, '`', delim))
		return -1;
	return 0;
}

static bool is_alnum(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Whether byte i of s must be backslash-escaped in Markdown text. An '_'
 * between two letters or digits cannot start or end emphasis, so
 * "rolled_back" stays readable; '>' only matters at the start of a line,
 * where this text never goes. */
static bool md_special(const unsigned char *p, size_t i, size_t n)
{
	static const char special[] = "\\`*[]<|~&";
	if (p[i] == '_')
		return i == 0 || i + 1 == n || !is_alnum(p[i - 1]) || !is_alnum(p[i + 1]);
	return p[i] && strchr(special, p[i]) != NULL;
}

int audit_md_text(const char *s, size_t n, struct buf *out)
{
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		size_t c = control_len(p + i, n - i), u = c ? 0 : text_utf8_next(p + i, n - i, NULL);
		int r;
		if (c)
			r = buf_addc(out, ' ');
		else if (!u)
			r = buf_addc(out, '?');
		else if (u == 1 && md_special(p, i, n))
			r = buf_addc(out, '\\') | buf_addc(out, (char)p[i]);
		else
			r = buf_add(out, p + i, u);
		if (r < 0)
			return -1;
		i += c ? c : u ? u : 1;
	}
	return 0;
}

static int md_texts(struct buf *out, const char *s)
{
	return audit_md_text(s, strlen(s), out);
}

static int md_codes(struct buf *out, const char *s)
{
	return audit_md_code(s, strlen(s), out);
}

/* ---- record members -------------------------------------------------------- */

static const char *mstr(const json_t *rec, const char *key)
{
	return json_string_value(json_object_get(rec, key));
}

/* A string member, or def when it is absent or empty. */
static const char *mstr_or(const json_t *rec, const char *key, const char *def)
{
	const char *s = mstr(rec, key);
	return s && *s ? s : def;
}

static bool mint(const json_t *rec, const char *key, json_int_t *v)
{
	json_t *m = json_object_get(rec, key);
	if (!json_is_integer(m))
		return false;
	*v = json_integer_value(m);
	return true;
}

static bool is_type(const json_t *rec, const char *type)
{
	const char *t = mstr(rec, "type");
	return t && strcmp(t, type) == 0;
}

static bool rec_time(const json_t *rec, const char *key, struct timestamp *t)
{
	json_t *m = json_object_get(rec, key);
	return json_is_string(m) &&
	       timestamp_parse(json_string_value(m), json_string_length(m), t) == 0;
}

static int ts_cmp(struct timestamp a, struct timestamp b)
{
	if (a.sec != b.sec)
		return a.sec < b.sec ? -1 : 1;
	return a.nsec < b.nsec ? -1 : a.nsec > b.nsec;
}

/* ---- one-line summaries ------------------------------------------------------ */

/* {k="v", ...} without the label skip (NULL: none); "" when empty. */
static int add_labels(struct buf *out, const json_t *labels, const char *skip)
{
	const char *k;
	json_t *v;
	int bad = 0;
	bool first = true;
	if (!json_is_object(labels))
		return 0;
	json_object_foreach((json_t *)labels, k, v) {
		if ((skip && strcmp(k, skip) == 0) || !json_is_string(v))
			continue;
		bad |= buf_adds(out, first ? "{" : ", ") | buf_adds(out, k) | buf_addc(out, '=') |
		       buf_add_json_str(out, json_string_value(v), json_string_length(v));
		first = false;
	}
	if (!first)
		bad |= buf_addc(out, '}');
	return bad ? -1 : 0;
}

/* One argument as a shell would need it to stay one argument. */
static int add_shell_word(struct buf *out, const char *s)
{
	static const char plain[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				    "0123456789_@%+=:,./-";
	if (*s && strspn(s, plain) == strlen(s))
		return buf_adds(out, s);
	int bad = buf_addc(out, '\'');
	for (; *s; s++)
		bad |= *s == '\'' ? buf_adds(out, "'\\''") : buf_addc(out, *s);
	return bad | buf_addc(out, '\'');
}

/* The action as a command line or "METHOD URL"; nothing when unknown. */
static int add_action_target(struct buf *out, const json_t *rec)
{
	json_t *argv = json_object_get(rec, "argv");
	if (json_is_array(argv)) {
		size_t i;
		json_t *a;
		int bad = 0;
		json_array_foreach(argv, i, a) {
			if (i)
				bad |= buf_addc(out, ' ');
			bad |= add_shell_word(out, json_is_string(a) ? json_string_value(a) : "?");
		}
		return bad ? -1 : 0;
	}
	const char *url = mstr(rec, "url");
	if (!url)
		return 0;
	return buf_addf(out, "%s %s", mstr_or(rec, "method", "?"), url);
}

static int sum_started(const json_t *rec, struct buf *out)
{
	json_int_t pid;
	int bad = buf_addf(out, "rollbackd %s started", mstr_or(rec, "version", "?"));
	if (mint(rec, "pid", &pid))
		bad |= buf_addf(out, " (pid %" JSON_INTEGER_FORMAT ")", pid);
	return bad;
}

static int sum_config_loaded(const json_t *rec, struct buf *out)
{
	json_int_t n;
	const char *digest = mstr(rec, "rules_digest");
	int bad =
	    buf_adds(out, json_is_true(json_object_get(rec, "reload")) ? "reloaded" : "loaded");
	if (mint(rec, "rules", &n))
		bad |= buf_addf(out, " %" JSON_INTEGER_FORMAT " rule(s)", n);
	else
		bad |= buf_adds(out, " rules");
	if (mstr(rec, "rules_path"))
		bad |= buf_addf(out, " from %s", mstr(rec, "rules_path"));
	if (digest && *digest)
		bad |= buf_addf(out, " (digest %.12s)", digest);
	if (json_is_true(json_object_get(rec, "dry_run")))
		bad |= buf_adds(out, ", dry-run");
	return bad;
}

static int sum_config_rejected(const json_t *rec, struct buf *out)
{
	return buf_addf(out, "configuration rejected: %s", mstr_or(rec, "error", "?"));
}

static int sum_journal_truncated(const json_t *rec, struct buf *out)
{
	json_int_t off = 0, bytes = 0;
	mint(rec, "offset", &off);
	mint(rec, "bytes", &bytes);
	return buf_addf(out,
			"truncated a torn last line of %s: %" JSON_INTEGER_FORMAT
			" bytes at offset %" JSON_INTEGER_FORMAT,
			mstr_or(rec, "segment", "?"), bytes, off);
}

static int sum_notification(const json_t *rec, struct buf *out)
{
	const json_t *labels = json_object_get(rec, "labels");
	const char *name = mstr(json_object_get(rec, "labels"), "alertname");
	int bad = buf_addf(out, "%s %s", name ? name : "alert", mstr_or(rec, "status", "?"));
	if (json_object_size(labels) > (name ? 1u : 0u))
		bad |= buf_addc(out, ' ') | add_labels(out, labels, "alertname");
	if (mstr(rec, "fingerprint"))
		bad |= buf_addf(out, " (fingerprint %s)", mstr(rec, "fingerprint"));
	return bad;
}

/* "0.052 > 0.01" from a decision's value member; "" when there is none. */
static int add_value_relation(struct buf *out, const json_t *val)
{
	char v[40], t[40];
	json_t *x = json_object_get(val, "value"), *above = json_object_get(val, "above");
	json_t *thr = above ? above : json_object_get(val, "below");
	const char *op;
	if (!json_is_number(x))
		return buf_addf(out, "no numeric value%s%s", mstr(val, "from") ? " in " : "",
				mstr_or(val, "from", ""));
	audit_format_number(x, v, sizeof(v));
	if (!json_is_number(thr))
		return buf_adds(out, v);
	audit_format_number(thr, t, sizeof(t));
	if (above)
		op = json_number_value(x) > json_number_value(thr) ? ">" : "<=";
	else
		op = json_number_value(x) < json_number_value(thr) ? "<" : ">=";
	return buf_addf(out, "%s %s %s", v, op, t);
}

static int sum_decision(const json_t *rec, struct buf *out)
{
	const char *name = mstr(json_object_get(rec, "labels"), "alertname");
	const json_t *val = json_object_get(rec, "value");
	int bad = buf_addf(out, "%s: %s", name ? name : mstr_or(rec, "rule", "?"),
			   mstr_or(rec, "outcome", "?"));
	if (mstr(rec, "reason") && *mstr(rec, "reason"))
		bad |= buf_addf(out, " — %s", mstr(rec, "reason"));
	if (json_is_object(val))
		bad |=
		    buf_adds(out, " (value ") | add_value_relation(out, val) | buf_addc(out, ')');
	if (mstr(rec, "trigger"))
		bad |= buf_addf(out, " (trigger: %s)", mstr(rec, "trigger"));
	return bad;
}

/* "action 2 (exec)" from index 1. */
static int add_action_name(struct buf *out, const json_t *rec)
{
	json_int_t i;
	int bad = buf_adds(out, "action");
	if (mint(rec, "index", &i) && i >= 0 && i < INT32_MAX)
		bad |= buf_addf(out, " %" JSON_INTEGER_FORMAT, i + 1);
	return bad | buf_addf(out, " (%s)", mstr_or(rec, "action", "?"));
}

static int sum_action_started(const json_t *rec, struct buf *out)
{
	struct buf target = BUF_INIT;
	int bad =
	    add_action_name(out, rec) | buf_adds(out, " started") | add_action_target(&target, rec);
	if (!bad && target.len)
		bad |= buf_adds(out, ": ") | buf_add(out, target.data, target.len);
	buf_release(&target);
	return bad;
}

static int sum_action_finished(const json_t *rec, struct buf *out)
{
	json_int_t code, ms;
	char d[AUDIT_DURATION_STRLEN];
	int bad = add_action_name(out, rec) | buf_addf(out, " %s", mstr_or(rec, "result", "?"));
	const char *sep = ": ";
	if (mint(rec, "exit_code", &code)) {
		bad |= buf_addf(out, "%sexit code %" JSON_INTEGER_FORMAT, sep, code);
		sep = ", ";
	}
	if (mint(rec, "status_code", &code)) {
		bad |= buf_addf(out, "%sHTTP %" JSON_INTEGER_FORMAT, sep, code);
		sep = ", ";
	}
	if (mint(rec, "duration_ms", &ms)) {
		audit_format_duration(ms, d, sizeof(d));
		bad |= buf_addf(out, "%s%s", sep, d);
	}
	if (mstr(rec, "error") && *mstr(rec, "error"))
		bad |= buf_addf(out, "; error: %s", mstr(rec, "error"));
	if (mstr(rec, "incident_state"))
		bad |= buf_addf(out, "; incident %s", mstr(rec, "incident_state"));
	return bad;
}

static int sum_resolved(const json_t *rec, struct buf *out)
{
	json_int_t ep;
	int bad = buf_addf(out, "%s: resolved", mstr_or(rec, "rule", "?"));
	if (mint(rec, "episode", &ep))
		bad |= buf_addf(out, " (episode %" JSON_INTEGER_FORMAT ")", ep);
	return bad;
}

static int sum_incident_state(const json_t *rec, struct buf *out)
{
	int bad = buf_addf(out, "state %s", mstr_or(rec, "state", "?"));
	if (mstr(rec, "reason") && *mstr(rec, "reason"))
		bad |= buf_addf(out, ": %s", mstr(rec, "reason"));
	return bad;
}

static int sum_pause(const json_t *rec, struct buf *out)
{
	return buf_addf(out, "automatic actions %s by %s",
			is_type(rec, "pause") ? "paused" : "resumed", mstr_or(rec, "by", "?"));
}

/* notify_intent, notify_sent, notify_failed */
static int sum_notify(const json_t *rec, struct buf *out)
{
	json_int_t code, attempts;
	const char *what = is_type(rec, "notify_intent") ? "queued"
			   : is_type(rec, "notify_sent") ? "sent"
							 : "failed";
	int bad = buf_addf(out, "%s", mstr_or(rec, "channel", "?"));
	if (mstr(rec, "event"))
		bad |= buf_addf(out, " %s", mstr(rec, "event"));
	bad |= buf_addf(out, " %s (id %s", what, mstr_or(rec, "id", "?"));
	if (mint(rec, "status_code", &code))
		bad |= buf_addf(out, ", HTTP %" JSON_INTEGER_FORMAT, code);
	if (mint(rec, "attempts", &attempts))
		bad |= buf_addf(out, ", %" JSON_INTEGER_FORMAT " attempt(s)", attempts);
	bad |= buf_addc(out, ')');
	if (mstr(rec, "error") && *mstr(rec, "error"))
		bad |= buf_addf(out, ": %s", mstr(rec, "error"));
	return bad;
}

static int sum_ack(const json_t *rec, struct buf *out)
{
	int bad = buf_addf(out, "%s by %s", is_type(rec, "ack") ? "acknowledged" : "approved",
			   mstr_or(rec, "by", "?"));
	if (mstr(rec, "via"))
		bad |= buf_addf(out, " via %s", mstr(rec, "via"));
	return bad;
}

/* A target claim of the store (SPEC §7): who holds what, until when. */
static int sum_target(const json_t *rec, struct buf *out)
{
	json_int_t epoch = json_integer_value(json_object_get(rec, "epoch"));
	if (is_type(rec, "target_released"))
		return buf_addf(out, "target %s released (epoch %" JSON_INTEGER_FORMAT ")",
				mstr_or(rec, "target", "?"), epoch);
	json_int_t until = json_integer_value(json_object_get(rec, "held_until_ms"));
	char when[TIMESTAMP_STRLEN];
	struct timestamp t = {until / 1000, (int32_t)((until % 1000) * 1000000)};
	timestamp_format(t, when, sizeof(when));
	return buf_addf(out, "target %s held until %s (epoch %" JSON_INTEGER_FORMAT ")",
			mstr_or(rec, "target", "?"), when, epoch);
}

/* Unknown types: their own members, as compact JSON. */
static int sum_other(const json_t *rec, struct buf *out)
{
	static const char *const known[] = {"seq", "ts", "type", "incident", "prev", "hash"};
	json_t *copy = json_copy((json_t *)rec);
	if (!copy)
		return -1;
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		json_object_del(copy, known[i]);
	char *s = json_object_size(copy) ? json_dumps(copy, JSON_COMPACT) : NULL;
	int bad = json_object_size(copy) && !s ? -1 : s ? buf_adds(out, s) : 0;
	free(s);
	json_decref(copy);
	return bad;
}

struct summarizer {
	const char *type;
	int (*fn)(const json_t *rec, struct buf *out);
};

static const struct summarizer summarizers[] = {
    {"started", sum_started},
    {"config_loaded", sum_config_loaded},
    {"config_rejected", sum_config_rejected},
    {"journal_truncated", sum_journal_truncated},
    {"notification", sum_notification},
    {"decision", sum_decision},
    {"action_started", sum_action_started},
    {"action_finished", sum_action_finished},
    {"resolved", sum_resolved},
    {"incident_state", sum_incident_state},
    {"pause", sum_pause},
    {"resume", sum_pause},
    {"notify_intent", sum_notify},
    {"notify_sent", sum_notify},
    {"notify_failed", sum_notify},
    {"ack", sum_ack},
    {"approve", sum_ack},
    {"target_claimed", sum_target},
    {"target_released", sum_target},
};

int audit_summary(const json_t *rec, struct buf *out)
{
	const char *type = mstr(rec, "type");
	for (size_t i = 0; type && i < sizeof(summarizers) / sizeof(summarizers[0]); i++)
		if (strcmp(type, summarizers[i].type) == 0)
			return summarizers[i].fn(rec, out) ? -1 : 0;
	return sum_other(rec, out) ? -1 : 0;
}

int audit_format_line(const json_t *rec, struct buf *out)
{
	struct buf raw = BUF_INIT;
	json_int_t seq = 0;
	mint(rec, "seq", &seq);
	int bad = buf_addf(&raw, "%s  #%" JSON_INTEGER_FORMAT "  %s  %s", mstr_or(rec, "ts", "?"),
			   seq, mstr_or(rec, "type", "?"), mstr_or(rec, "incident", "-"));
	size_t head = raw.len;
	bad |= buf_adds(&raw, "  ") | audit_summary(rec, &raw);
	if (!bad && raw.len == head + 2)
		raw.len = head; /* no summary: no trailing blanks */
	if (!bad)
		bad = add_safe(out, raw.data, raw.len, AUDIT_LINE_MAX);
	buf_release(&raw);
	return bad ? -1 : 0;
}

/* ---- filter ---------------------------------------------------------------- */

int audit_filter_learn(struct audit_filter *f, const json_t *rec)
{
	const char *inc = mstr(rec, "incident"), *fp = mstr(rec, "fingerprint");
	if (!f->incident || !inc || strcmp(inc, f->incident) != 0 || !is_type(rec, "decision") ||
	    !fp || !*fp)
		return 0;
	if (!f->fingerprints && !(f->fingerprints = json_object()))
		return -1;
	if (json_object_get(f->fingerprints, fp))
		return 0;
	if (json_object_size(f->fingerprints) >= AUDIT_MAX_FINGERPRINTS) {
		f->fingerprints_full = true;
		return 0;
	}
	return json_object_set_new(f->fingerprints, fp, json_true());
}

bool audit_filter_match(const struct audit_filter *f, const json_t *rec)
{
	struct timestamp t;
	if (f->has_since && (!rec_time(rec, "ts", &t) || ts_cmp(t, f->since) < 0))
		return false;
	if (!f->incident)
		return true;
	const char *inc = mstr(rec, "incident"), *fp = mstr(rec, "fingerprint");
	if (inc && strcmp(inc, f->incident) == 0)
		return true;
	return is_type(rec, "notification") && f->fingerprints && fp &&
	       json_object_get(f->fingerprints, fp) != NULL;
}

void audit_filter_release(struct audit_filter *f)
{
	json_decref(f->fingerprints);
	f->fingerprints = NULL;
}

/* ---- which files ------------------------------------------------------------ */

/* journal.jsonl or journal.NNNNNN.jsonl, as journal.c names them. */
static bool is_journal_name(const char *name)
{
	if (strcmp(name, JOURNAL_FILE) == 0)
		return true;
	if (strncmp(name, "journal.", 8) != 0)
		return false;
	size_t digits = strspn(name + 8, "0123456789");
	return digits >= 6 && digits <= 18 && strcmp(name + 8 + digits, ".jsonl") == 0;
}

static int dir_has_journal(const char *dir, struct error *err)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	bool found = false;
	if (!d)
		return error_set(err, "cannot open %s: %s", dir, strerror(errno));
	while (!found && (de = readdir(d)) != NULL)
		found = is_journal_name(de->d_name);
	closedir(d);
	if (!found)
		return error_set(err,
				 "cannot open %s: no journal in it (no %s or journal.NNNNNN.jsonl)",
				 dir, JOURNAL_FILE);
	return 0;
}

/* journal_reader reads the directory of whatever path it is given: make
 * sure that is the journal the user named, and that it exists. */
static int check_journal_path(const char *path, struct error *err)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return error_set(err, "cannot open %s: %s", path, strerror(errno));
	if (S_ISDIR(st.st_mode))
		return dir_has_journal(path, err);
	if (!S_ISREG(st.st_mode))
		return error_set(err, "cannot open %s: not a file or directory", path);
	const char *slash = strrchr(path, '/');
	if (!is_journal_name(slash ? slash + 1 : path))
		return error_set(err,
				 "cannot open %s: not a journal file name (want %s, "
				 "journal.NNNNNN.jsonl or the state directory)",
				 path, JOURNAL_FILE);
	return 0;
}

/* ---- walking the chain ------------------------------------------------------ */

struct walk {
	struct journal_reader *r;
	struct journal_line line;	 /* the line just read */
	uint64_t seq;			 /* last verified record */
	char prev[JOURNAL_HASH_HEX + 1]; /* and its hash */
	uint64_t records;		 /* lines read */
	bool broken;			 /* a bad record was met: the rest is unverified */
	bool failed;			 /* could not open or read on */
	char problem[PROBLEM_MAX];	 /* what went wrong, one line */
};

static int walk_open(struct walk *w, const char *path)
{
	struct error err = {{0}};
	memset(w, 0, sizeof(*w));
	memcpy(w->prev, zero_hash, sizeof(w->prev));
	if (check_journal_path(path, &err) == 0 && journal_reader_open(path, &w->r, &err) == 0)
		return 0;
	w->failed = true;
	snprintf(w->problem, sizeof(w->problem), "%s", err.msg);
	return -1;
}

static void walk_close(struct walk *w)
{
	journal_reader_free(w->r);
	w->r = NULL;
}

/* Any JSON object, unchecked: for what follows a bad record. */
static json_t *parse_loose(const struct journal_line *l)
{
	json_t *o = json_loadb(l->text, l->len, JSON_ALLOW_NUL, NULL);
	if (o && !json_is_object(o)) {
		json_decref(o);
		o = NULL;
	}
	return o;
}

/* A line whose chain holds must also be a record: an object with a ts,
 * a type and an incident. */
static json_t *parse_record(const struct journal_line *l, char *what, size_t sz)
{
	json_error_t je;
	struct timestamp t;
	json_t *o = json_loadb(l->text, l->len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
	if (!o) {
		snprintf(what, sz, "not a record: not JSON (%s, column %d)", je.text, je.column);
		return NULL;
	}
	if (!json_is_object(o))
		snprintf(what, sz, "not a record: not a JSON object");
	else if (!rec_time(o, "ts", &t))
		snprintf(what, sz, "not a record: \"ts\" is not an RFC 3339 time");
	else if (!mstr(o, "type") || !*mstr(o, "type"))
		snprintf(what, sz, "not a record: no \"type\"");
	else if (!mstr(o, "incident"))
		snprintf(what, sz, "not a record: no \"incident\" string");
	else
		return o;
	json_decref(o);
	return NULL;
}

/* Why journal_check_line refused the line that should have been seq want. */
static void diagnose(const struct journal_line *l, uint64_t want, char *what, size_t sz)
{
	struct error err = {{0}};
	uint64_t seq = 0;
	char hash[JOURNAL_HASH_HEX + 1];
	if (journal_check_line(l->text, l->len, NULL, 0, &seq, hash, &err) < 0) {
		/* journal_check_line says "hash does not match" only once the
		 * line has the shape of a record. */
		if (strstr(err.msg, "hash does not match"))
			snprintf(what, sz,
				 "hash mismatch: the line does not hash to its \"hash\" "
				 "(changed after it was written)");
		else
			snprintf(what, sz, "not a record: %s", err.msg);
	} else if (seq != want) {
		snprintf(what, sz, "seq gap: the line has seq %" PRIu64 ", expected %" PRIu64, seq,
			 want);
	} else if (want == 1) {
		snprintf(what, sz, "prev mismatch: \"prev\" of the first record is not 64 zeros");
	} else {
		snprintf(what, sz, "prev mismatch: \"prev\" is not the hash of seq %" PRIu64,
			 want - 1);
	}
}

/* Check w->line as the next record; on success *obj is the record. */
static int walk_check(struct walk *w, bool torn, json_t **obj)
{
	const struct journal_line *l = &w->line;
	struct error err = {{0}};
	char what[WHAT_MAX], hash[JOURNAL_HASH_HEX + 1];
	uint64_t want = w->seq + 1, seq;
	if (torn)
		snprintf(what, sizeof(what),
			 "torn last line without newline (%zu bytes; a write cut short)", l->len);
	else if (journal_check_line(l->text, l->len, w->prev, want, &seq, hash, &err) < 0)
		diagnose(l, want, what, sizeof(what));
	else if ((*obj = parse_record(l, what, sizeof(what))) != NULL) {
		w->seq = seq;
		memcpy(w->prev, hash, sizeof(w->prev));
		return 0;
	}
	snprintf(w->problem, sizeof(w->problem),
		 "%s: offset %" PRIu64 ": record seq %" PRIu64 ": %s", l->segment, l->offset, want,
		 what);
	return -1;
}

/* Next line: 1 with *obj (a record, or NULL when the line is no JSON object
 * past a break) and *verified, 0 at the end, -1 when reading failed. */
static int walk_next(struct walk *w, json_t **obj, bool *verified)
{
	struct error err = {{0}};
	bool torn;
	*obj = NULL;
	*verified = false;
	int got = journal_reader_next(w->r, &w->line, &torn, &err);
	if (got < 0) {
		w->failed = true;
		snprintf(w->problem, sizeof(w->problem), "cannot read %s (after seq %" PRIu64 ")",
			 err.msg, w->seq);
		return -1;
	}
	if (got == 0)
		return 0;
	w->records++;
	if (!w->broken && walk_check(w, torn, obj) == 0) {
		*verified = true;
		return 1;
	}
	w->broken = true;
	*obj = parse_loose(&w->line);
	return 1;
}

static bool walk_ok(const struct walk *w)
{
	return !w->broken && !w->failed;
}

static void print_problem(const char *problem)
{
	struct buf b = BUF_INIT;
	if (add_safe(&b, problem, strlen(problem), PROBLEM_MAX) == 0 && b.data)
		fprintf(stderr, "rollbackd: audit: %s\n", b.data);
	else
		fprintf(stderr, "rollbackd: audit: out of memory\n");
	buf_release(&b);
}

static int finish_stdout(void)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "rollbackd: audit: cannot write to stdout: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- verify -------------------------------------------------------------------- */

int audit_verify(const char *journal)
{
	struct walk w;
	json_t *obj;
	bool verified;
	if (walk_open(&w, journal) < 0) {
		print_problem(w.problem);
		return EXIT_INVALID;
	}
	while (walk_next(&w, &obj, &verified) > 0 && !w.broken)
		json_decref(obj);
	json_decref(obj);
	walk_close(&w);
	if (!walk_ok(&w)) {
		print_problem(w.problem);
		return EXIT_INVALID;
	}
	if (w.records == 0)
		printf("ok: 0 records\n");
	else
		printf("ok: %" PRIu64 " records, last seq %" PRIu64 ", last hash %s\n", w.records,
		       w.seq, w.prev);
	return finish_stdout() < 0 ? EXIT_INVALID : EXIT_OK;
}

/* ---- verify against checkpoints ---------------------------------------------------- */

struct ckpt_entry {
	uint64_t seq;
	size_t line; /* in the checkpoints file, from 1 */
	char hash[JOURNAL_HASH_HEX + 1];
};

struct ckpt_set {
	const char *path;
	struct ckpt_entry *e;
	size_t n, alloc;
	size_t refused; /* lines that are no checkpoint or not signed by the key */
	size_t failed;	/* checkpoints the journal does not match */
	size_t printed;
};

#define CKPT_PRINT_MAX 20 /* problems printed one by one; the rest are counted */

__attribute__((format(printf, 2, 3))) static void ckpt_problem(struct ckpt_set *cs,
							       const char *fmt, ...)
{
	char msg[PROBLEM_MAX];
	va_list ap;
	if (cs->printed++ >= CKPT_PRINT_MAX)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	print_problem(msg);
}

static int ckpt_cmp(const void *a, const void *b)
{
	const struct ckpt_entry *x = a, *y = b;
	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return x->line < y->line ? -1 : x->line > y->line;
}

/* Read every line of the checkpoints file: keep those signed by pk. -1
 * when the file cannot be read (said why). */
static int ckpt_load(struct ckpt_set *cs, const unsigned char *pk)
{
	FILE *f = fopen(cs->path, "rb");
	char *text = NULL;
	size_t cap = 0, lineno = 0;
	ssize_t n;
	int rc = 0;
	if (!f) {
		ckpt_problem(cs, "cannot open %s: %s", cs->path, strerror(errno));
		return -1;
	}
	while ((n = getline(&text, &cap, f)) >= 0) {
		struct checkpoint c;
		struct error err = {{0}};
		lineno++;
		size_t len = (size_t)n;
		if (len && text[len - 1] == '\n')
			len--;
		if (checkpoint_parse(text, len, &c, &err) < 0) {
			cs->refused++;
			ckpt_problem(cs, "%s:%zu: not a checkpoint: %s", cs->path, lineno, err.msg);
			continue;
		}
		if (checkpoint_verify(&c, pk, &err) < 0) {
			cs->refused++;
			ckpt_problem(cs, "%s:%zu: checkpoint seq %" PRIu64 " refused: %s", cs->path,
				     lineno, c.seq, err.msg);
			continue;
		}
		if (cs->n == cs->alloc) {
			size_t na = cs->alloc ? cs->alloc * 2 : 64;
			struct ckpt_entry *e = realloc(cs->e, na * sizeof(*e));
			if (!e) {
				ckpt_problem(cs, "out of memory");
				rc = -1;
				break;
			}
			cs->e = e;
			cs->alloc = na;
		}
		struct ckpt_entry *e = &cs->e[cs->n++];
		e->seq = c.seq;
		e->line = lineno;
		memcpy(e->hash, c.hash, sizeof(e->hash));
	}
	if (rc == 0 && ferror(f)) {
		ckpt_problem(cs, "cannot read %s: %s", cs->path, strerror(errno));
		rc = -1;
	}
	free(text);
	fclose(f);
	if (rc == 0 && cs->n == 0 && cs->refused == 0) {
		ckpt_problem(cs, "%s: no checkpoint in it: nothing to check the journal against",
			     cs->path);
		rc = -1;
	}
	if (cs->n > 1)
		qsort(cs->e, cs->n, sizeof(*cs->e), ckpt_cmp);
	return rc;
}

int audit_verify_checkpoints(const char *journal, const char *checkpoints, const char *pubkey)
{
	struct ckpt_set cs = {.path = checkpoints};
	unsigned char pk[CHECKPOINT_PK_BYTES];
	char key_id[CHECKPOINT_KEY_ID_HEX + 1];
	struct error err = {{0}};
	struct walk w;
	json_t *obj;
	bool verified;
	size_t next = 0;
	int rc = EXIT_INVALID;

	if (checkpoint_pubkey_load(pubkey, pk, &err) < 0) {
		print_problem(err.msg);
		return EXIT_INVALID;
	}
	checkpoint_key_id(pk, key_id);
	if (ckpt_load(&cs, pk) < 0)
		goto out;
	if (walk_open(&w, journal) < 0) {
		print_problem(w.problem);
		goto out;
	}
	while (walk_next(&w, &obj, &verified) > 0 && !w.broken) {
		json_decref(obj);
		for (; next < cs.n && cs.e[next].seq == w.seq; next++) {
			const struct ckpt_entry *e = &cs.e[next];
			if (memcmp(e->hash, w.prev, JOURNAL_HASH_HEX) == 0)
				continue;
			cs.failed++;
			ckpt_problem(&cs,
				     "%s:%zu: checkpoint seq %" PRIu64 ": the journal's record seq "
				     "%" PRIu64 " has hash %s, the checkpoint signed %s (the journal "
				     "was rewritten up to there, or is another history)",
				     checkpoints, e->line, e->seq, w.seq, w.prev, e->hash);
		}
	}
	json_decref(obj);
	walk_close(&w);
	if (!walk_ok(&w))
		print_problem(w.problem);
	for (; next < cs.n; next++) {
		const struct ckpt_entry *e = &cs.e[next];
		cs.failed++;
		if (!walk_ok(&w))
			ckpt_problem(&cs,
				     "%s:%zu: checkpoint seq %" PRIu64 ": not checked: the chain "
				     "is not intact past seq %" PRIu64,
				     checkpoints, e->line, e->seq, w.seq);
		else
			ckpt_problem(&cs,
				     "%s:%zu: checkpoint seq %" PRIu64 ": the journal ends at seq "
				     "%" PRIu64 " (truncated: records up to seq %" PRIu64
				     " are missing)",
				     checkpoints, e->line, e->seq, w.seq, e->seq);
	}
	if (cs.printed > CKPT_PRINT_MAX)
		fprintf(stderr, "rollbackd: audit: ... and %zu more problems\n",
			cs.printed - CKPT_PRINT_MAX);
	if (!walk_ok(&w) || cs.failed || cs.refused) {
		fprintf(stderr,
			"rollbackd: audit: %s: %zu of %zu checkpoints do not match the journal, "
			"%zu refused\n",
			checkpoints, cs.failed, cs.n, cs.refused);
		goto out;
	}
	printf("ok: %" PRIu64 " records, last seq %" PRIu64 ", last hash %s; %zu checkpoints "
	       "match (key_id %s, last at seq %" PRIu64 ")\n",
	       w.records, w.seq, w.prev, cs.n, key_id, cs.e[cs.n - 1].seq);
	rc = finish_stdout() < 0 ? EXIT_INVALID : EXIT_OK;
out:
	free(cs.e);
	return rc;
}

/* ---- show ------------------------------------------------------------------------ */

static int filter_setup(struct audit_filter *f, const char *incident, const char *since)
{
	memset(f, 0, sizeof(*f));
	f->incident = incident;
	if (!since)
		return 0;
	if (timestamp_parse(since, strlen(since), &f->since) < 0) {
		struct buf b = BUF_INIT;
		add_safe(&b, since, strlen(since), 200);
		fprintf(stderr, "rollbackd: audit: --since '%s' is not an RFC 3339 time\n",
			b.data ? b.data : "");
		buf_release(&b);
		return -1;
	}
	f->has_since = true;
	return 0;
}

/* First pass for --incident: which alert fingerprints its decisions name.
 * Reading problems are left for the second pass to report. */
static int learn_pass(const char *journal, struct audit_filter *f)
{
	struct walk w;
	json_t *obj;
	bool verified;
	int rc = 0;
	if (walk_open(&w, journal) < 0)
		return 0;
	while (rc == 0 && walk_next(&w, &obj, &verified) > 0) {
		if (obj && audit_filter_learn(f, obj) < 0)
			rc = -1;
		json_decref(obj);
	}
	walk_close(&w);
	if (rc < 0)
		fprintf(stderr, "rollbackd: audit: out of memory\n");
	else if (f->fingerprints_full)
		fprintf(stderr,
			"rollbackd: audit: incident '%s' names more than %u alert fingerprints; "
			"notifications of the others are left out\n",
			f->incident, AUDIT_MAX_FINGERPRINTS);
	return rc;
}

static int show_one(const struct walk *w, const json_t *obj, bool verified, bool json,
		    struct buf *line)
{
	if (json) {
		fwrite(w->line.text, 1, w->line.len, stdout);
		putchar('\n');
		return 0;
	}
	buf_reset(line);
	if (audit_format_line(obj, line) < 0 || (!verified && buf_adds(line, "  [unverified]")))
		return -1;
	fwrite(line->data, 1, line->len, stdout);
	putchar('\n');
	return 0;
}

static int show_pass(const char *journal, const struct audit_filter *f, bool json)
{
	struct walk w;
	struct buf line = BUF_INIT;
	json_t *obj;
	bool verified, oom = false;
	if (walk_open(&w, journal) < 0) {
		print_problem(w.problem);
		return EXIT_INVALID;
	}
	while (!oom && walk_next(&w, &obj, &verified) > 0) {
		if (obj && audit_filter_match(f, obj))
			oom = show_one(&w, obj, verified, json, &line) < 0;
		json_decref(obj);
	}
	walk_close(&w);
	buf_release(&line);
	int rc = finish_stdout() < 0 ? EXIT_INVALID : EXIT_OK;
	if (oom) {
		fprintf(stderr, "rollbackd: audit: out of memory\n");
		return EXIT_INVALID;
	}
	if (!walk_ok(&w)) {
		print_problem(w.problem);
		return EXIT_INVALID;
	}
	return rc;
}

int audit_show(const char *journal, const struct audit_show_options *opt)
{
	struct audit_filter f;
	int rc = EXIT_INVALID;
	if (filter_setup(&f, opt->incident, opt->since) < 0)
		return EXIT_USAGE;
	if (!opt->incident || learn_pass(journal, &f) == 0)
		rc = show_pass(journal, &f, opt->json);
	audit_filter_release(&f);
	return rc;
}

/* ---- report: collecting ------------------------------------------------------------ */

struct report {
	const char *incident;
	json_t *recs;		 /* the incident's records, in journal order */
	size_t first_unverified; /* index into recs; SIZE_MAX when all are verified */
	struct walk w;		 /* how reading went */
	/* facts */
	const char *rule, *alertname, *state;
	const json_t *verdict; /* the last incident_state record */
	const json_t *group;
	bool have_t0, have_action, have_resolved;
	struct timestamp t0, first_action, resolved;
	const char *t0_text; /* the time the relative times count from */
	bool t0_is_alert;    /* t0 is a startsAt, not a record's ts */
	json_int_t episodes[MAX_EPISODES];
	size_t n_episodes;
	bool episodes_full;
	/* config_loaded records in force at the incident's decisions (journal
	 * order, each once): which rule set decided */
	json_t *configs;
	json_t *cur_config; /* the last config_loaded read so far */
};

/* Add obj (stolen) to the report's records; -1 with rp->w.problem when
 * there are too many or memory runs out. */
static int keep_record(struct report *rp, json_t *obj, bool verified)
{
	if (json_array_size(rp->recs) >= AUDIT_MAX_RECORDS) {
		json_decref(obj);
		snprintf(rp->w.problem, sizeof(rp->w.problem),
			 "incident '%s' has more than %u records, more than a report holds; "
			 "see 'audit show --incident'",
			 rp->incident, AUDIT_MAX_RECORDS);
		rp->w.failed = true;
		return -1;
	}
	if (!verified && rp->first_unverified == SIZE_MAX)
		rp->first_unverified = json_array_size(rp->recs);
	if (json_array_append_new(rp->recs, obj) < 0) { /* steals obj, even then */
		snprintf(rp->w.problem, sizeof(rp->w.problem), "out of memory");
		rp->w.failed = true;
		return -1;
	}
	return 0;
}

/* What collect() gathered, and rp itself: the one place both reports free it. */
static void report_free(struct report *rp)
{
	json_decref(rp->recs);
	json_decref(rp->configs);
	json_decref(rp->cur_config);
	free(rp);
}

static int collect(struct report *rp, const char *journal)
{
	struct audit_filter f;
	json_t *obj;
	bool verified;
	filter_setup(&f, rp->incident, NULL);
	rp->first_unverified = SIZE_MAX;
	if (learn_pass(journal, &f) < 0 || !(rp->recs = json_array())) {
		audit_filter_release(&f);
		return -1;
	}
	if (!(rp->configs = json_array())) {
		audit_filter_release(&f);
		return -1;
	}
	int rc = walk_open(&rp->w, journal) < 0 ? -1 : 0;
	while (rc == 0 && walk_next(&rp->w, &obj, &verified) > 0) {
		if (obj && verified && is_type(obj, "config_loaded")) {
			json_decref(rp->cur_config);
			rp->cur_config = json_incref(obj);
		}
		if (!obj || !audit_filter_match(&f, obj)) {
			json_decref(obj);
			continue;
		}
		size_t nc = json_array_size(rp->configs);
		if (is_type(obj, "decision") && rp->cur_config &&
		    (nc == 0 || json_array_get(rp->configs, nc - 1) != rp->cur_config) &&
		    json_array_append(rp->configs, rp->cur_config) < 0) {
			json_decref(obj);
			rc = -1;
			break;
		}
		rc = keep_record(rp, obj, verified);
	}
	walk_close(&rp->w);
	audit_filter_release(&f);
	return rc;
}

/* ---- report: facts ------------------------------------------------------------------- */

static void note_episode(struct report *rp, const json_t *rec)
{
	json_int_t ep;
	if (!mint(rec, "episode", &ep))
		return;
	for (size_t i = 0; i < rp->n_episodes; i++)
		if (rp->episodes[i] == ep)
			return;
	if (rp->n_episodes == MAX_EPISODES)
		rp->episodes_full = true;
	else
		rp->episodes[rp->n_episodes++] = ep;
}

/* The incident's state after rec, as far as rec tells. An incident_state
 * (effective, ineffective, ...) judges the rollback; once resolved, that
 * verdict does not make the incident open again. */
static void note_state(struct report *rp, const json_t *rec)
{
	const char *s = NULL;
	bool resolved = rp->state && strcmp(rp->state, "resolved") == 0;
	if (is_type(rec, "incident_state"))
		rp->verdict = rec;
	if (is_type(rec, "decision") || (is_type(rec, "incident_state") && !resolved))
		s = mstr(rec, "state");
	else if (is_type(rec, "action_finished"))
		s = mstr(rec, "incident_state");
	else if (is_type(rec, "resolved"))
		s = "resolved";
	else if (is_type(rec, "ack") && !resolved)
		s = "acknowledged";
	if (s && *s)
		rp->state = s;
}

static void note_first_alert(struct report *rp, const json_t *rec)
{
	struct timestamp t;
	const char *status = mstr(rec, "status");
	if (!is_type(rec, "notification") || !status || strcmp(status, "firing") != 0 ||
	    !rec_time(rec, "startsAt", &t) || timestamp_is_zero(t))
		return;
	if (!rp->have_t0 || !rp->t0_is_alert || ts_cmp(t, rp->t0) < 0) {
		rp->t0 = t;
		rp->t0_text = mstr(rec, "startsAt");
		rp->have_t0 = rp->t0_is_alert = true;
	}
}

static void note_times(struct report *rp, const json_t *rec)
{
	struct timestamp t;
	if (!rec_time(rec, "ts", &t))
		return;
	if (!rp->have_t0) {
		rp->t0 = t;
		rp->t0_text = mstr(rec, "ts");
		rp->have_t0 = true;
	}
	if (is_type(rec, "action_started") && !rp->have_action) {
		rp->first_action = t;
		rp->have_action = true;
	}
	if (is_type(rec, "resolved") && !rp->have_resolved) {
		rp->resolved = t;
		rp->have_resolved = true;
	}
}

static void gather_facts(struct report *rp)
{
	size_t i;
	json_t *rec;
	json_array_foreach(rp->recs, i, rec) {
		const char *name = mstr(json_object_get(rec, "labels"), "alertname");
		if (!rp->rule && mstr(rec, "rule") && *mstr(rec, "rule"))
			rp->rule = mstr(rec, "rule");
		if (!rp->alertname && name && *name)
			rp->alertname = name;
		if (!rp->group && is_type(rec, "decision") &&
		    json_is_object(json_object_get(rec, "group")))
			rp->group = json_object_get(rec, "group");
		note_episode(rp, rec);
		note_state(rp, rec);
		note_first_alert(rp, rec);
	}
	json_array_foreach(rp->recs, i, rec)
		note_times(rp, rec);
}

/* ---- report: rendering ------------------------------------------------------------------- */

static int flush_md(struct buf *md)
{
	if (md->len && fwrite(md->data, 1, md->len, stdout) != md->len)
		return -1;
	buf_reset(md);
	return 0;
}

/* "`+1m30s` 2026-11-21T10:01:30.000Z" for rec (or for the time text t). */
static int add_when_text(struct report *rp, struct buf *md, const char *text)
{
	struct timestamp t;
	char rel[AUDIT_DURATION_STRLEN];
	if (!text || timestamp_parse(text, strlen(text), &t) < 0)
		return buf_adds(md, "(no time)");
	if (!rp->have_t0)
		return md_texts(md, text);
	audit_format_rel(timestamp_diff_ms(t, rp->t0), rel, sizeof(rel));
	return buf_addf(md, "`%s` ", rel) | md_texts(md, text);
}

static int add_when(struct report *rp, struct buf *md, const json_t *rec)
{
	return add_when_text(rp, md, mstr(rec, "ts"));
}

/* "1m30s (what)" from the first alert to to, or none. */
static int add_span(struct report *rp, struct buf *md, bool have, struct timestamp to,
		    const char *what, const char *none)
{
	char d[AUDIT_DURATION_STRLEN];
	if (!have || !rp->have_t0)
		return buf_adds(md, none);
	audit_format_duration(timestamp_diff_ms(to, rp->t0), d, sizeof(d));
	return buf_addf(md, "%s (%s)", d, what);
}

static int render_title(struct report *rp, struct buf *md)
{
	int bad = buf_adds(md, "# Incident ") | md_texts(md, rp->incident);
	if (rp->rule)
		bad |= buf_adds(md, " — ") | md_texts(md, rp->rule);
	return bad | buf_adds(md, "\n\n");
}

static int render_people(struct report *rp, struct buf *md, const char *type)
{
	size_t i;
	json_t *rec;
	int bad = 0;
	bool any = false;
	json_array_foreach(rp->recs, i, rec) {
		if (!is_type(rec, type))
			continue;
		bad |= buf_adds(md, any ? "; " : "") | md_texts(md, mstr_or(rec, "by", "?"));
		if (mstr(rec, "via"))
			bad |= buf_adds(md, " via ") | md_texts(md, mstr(rec, "via"));
		bad |= buf_adds(md, " at ") | add_when(rp, md, rec);
		any = true;
	}
	return bad | buf_adds(md, any ? "\n" : "no\n");
}

static int render_group(struct report *rp, struct buf *md)
{
	struct buf g = BUF_INIT;
	int bad = add_labels(&g, rp->group, NULL);
	if (!bad)
		bad = g.len ? audit_md_code(g.data, g.len, md) : buf_adds(md, "(none recorded)");
	buf_release(&g);
	return bad | buf_addc(md, '\n');
}

static int render_summary(struct report *rp, struct buf *md)
{
	int bad = buf_adds(md, "## Summary\n\n- **Rule:** ");
	bad |= rp->rule ? md_codes(md, rp->rule) : buf_adds(md, "(none recorded)");
	if (rp->alertname)
		bad |= buf_adds(md, "\n- **Alert:** ") | md_texts(md, rp->alertname);
	bad |= buf_adds(md, "\n- **Group:** ") | render_group(rp, md);
	bad |= buf_adds(md, "- **State at the end:** ") |
	       (rp->state ? md_codes(md, rp->state) : buf_adds(md, "(none recorded)"));
	if (rp->verdict)
		bad |= buf_adds(md, "\n- **Rollback verdict:** ") |
		       md_codes(md, mstr_or(rp->verdict, "state", "?")) |
		       (mstr(rp->verdict, "reason")
			    ? buf_adds(md, " — ") | md_texts(md, mstr(rp->verdict, "reason"))
			    : 0);
	bad |= buf_adds(md, "\n- **First alert:** ") |
	       md_texts(md, rp->t0_text ? rp->t0_text : "?") |
	       buf_adds(md, rp->t0_is_alert ? " (startsAt of the first firing alert)\n"
					    : " (no alert recorded: first record)\n");
	bad |= buf_adds(md, "- **Time to rollback:** ") |
	       add_span(rp, md, rp->have_action, rp->first_action,
			"first alert → first action started", "no action ran");
	bad |= buf_adds(md, "\n- **Time to resolve:** ") |
	       add_span(rp, md, rp->have_resolved, rp->resolved, "first alert → resolved",
			"not resolved");
	bad |= buf_adds(md, "\n- **Acknowledged:** ") | render_people(rp, md, "ack");
	bad |= buf_adds(md, "- **Approved:** ") | render_people(rp, md, "approve");
	bad |= buf_addf(md, "- **Episodes:** %s%zu\n\n", rp->episodes_full ? "more than " : "",
			rp->n_episodes);
	return bad;
}

static int render_timeline(struct report *rp, struct buf *md)
{
	size_t i;
	json_t *rec;
	struct buf what = BUF_INIT;
	int bad = buf_adds(md, "## Timeline\n\n| Time | Timestamp (UTC) | Seq | Type | What |\n"
			       "|---:|---|---:|---|---|\n");
	json_array_foreach(rp->recs, i, rec) {
		struct timestamp t;
		char rel[AUDIT_DURATION_STRLEN] = "?";
		json_int_t seq = 0;
		if (rp->have_t0 && rec_time(rec, "ts", &t))
			audit_format_rel(timestamp_diff_ms(t, rp->t0), rel, sizeof(rel));
		mint(rec, "seq", &seq);
		buf_reset(&what);
		bad |= audit_summary(rec, &what);
		bad |= buf_addf(md, "| %s | ", rel) | md_texts(md, mstr_or(rec, "ts", "?")) |
		       buf_addf(md, " | %" JSON_INTEGER_FORMAT " | ", seq) |
		       md_texts(md, mstr_or(rec, "type", "?")) | buf_adds(md, " | ") |
		       audit_md_text(what.data ? what.data : "", what.len, md);
		if (i >= rp->first_unverified)
			bad |= buf_adds(md, " *(unverified)*");
		bad |= buf_adds(md, " |\n") | flush_md(md);
		if (bad)
			break;
	}
	buf_release(&what);
	return bad | buf_addc(md, '\n');
}

static int render_value(struct report *rp, struct buf *md, const json_t *rec)
{
	const json_t *val = json_object_get(rec, "value");
	const json_t *above = json_object_get(val, "above"), *below = json_object_get(val, "below");
	struct buf rel = BUF_INIT;
	char t[40];
	int bad = add_value_relation(&rel, val);
	bad |= buf_adds(md, "- ") | add_when(rp, md, rec) | buf_adds(md, " — ");
	if (!bad)
		bad = audit_md_code(rel.data ? rel.data : "", rel.len, md);
	buf_release(&rel);
	if (above || below) {
		audit_format_number(above ? above : below, t, sizeof(t));
		bad |= buf_adds(md, " (") | md_texts(md, mstr_or(val, "from", "value")) |
		       buf_addf(md, " must be %s %s to act)", above ? "above" : "below", t);
	}
	return bad | buf_adds(md, ", decision ") | md_codes(md, mstr_or(rec, "outcome", "?")) |
	       buf_addc(md, '\n');
}

static int render_values(struct report *rp, struct buf *md)
{
	size_t i;
	json_t *rec;
	int bad = buf_adds(md, "## Alert values\n\n");
	bool any = false;
	json_array_foreach(rp->recs, i, rec) {
		if (!is_type(rec, "decision") || !json_is_object(json_object_get(rec, "value")))
			continue;
		bad |= render_value(rp, md, rec);
		any = true;
	}
	return bad | buf_adds(md, any ? "\n" : "No decision recorded an alert value.\n\n");
}

static int render_decision(struct report *rp, struct buf *md, const json_t *rec)
{
	json_int_t ep;
	int bad = buf_adds(md, "- ") | add_when(rp, md, rec) | buf_adds(md, " — ") |
		  md_codes(md, mstr_or(rec, "outcome", "?"));
	const char *sep = " (";
	if (mint(rec, "episode", &ep)) {
		bad |= buf_addf(md, "%sepisode %" JSON_INTEGER_FORMAT, sep, ep);
		sep = ", ";
	}
	if (mstr(rec, "state") && *mstr(rec, "state")) {
		bad |= buf_addf(md, "%sstate ", sep) | md_codes(md, mstr(rec, "state"));
		sep = ", ";
	}
	if (mstr(rec, "trigger")) {
		bad |= buf_addf(md, "%strigger ", sep) | md_codes(md, mstr(rec, "trigger"));
		sep = ", ";
	}
	if (sep[0] == ',')
		bad |= buf_addc(md, ')');
	if (mstr(rec, "reason") && *mstr(rec, "reason"))
		bad |= buf_adds(md, ": ") | md_texts(md, mstr(rec, "reason"));
	return bad | buf_addc(md, '\n');
}

static int render_decisions(struct report *rp, struct buf *md)
{
	size_t i;
	json_t *rec;
	int bad = buf_adds(md, "## Decisions\n\n");
	bool any = false;
	json_array_foreach(rp->recs, i, rec) {
		if (is_type(rec, "decision")) {
			bad |= render_decision(rp, md, rec);
			any = true;
		}
	}
	return bad | buf_adds(md, any ? "\n" : "No decision recorded.\n\n");
}

/* Key of an action within the incident: "episode:index". */
static void action_key(const json_t *rec, char *key, size_t sz)
{
	json_int_t ep = -1, idx = -1;
	mint(rec, "episode", &ep);
	mint(rec, "index", &idx);
	snprintf(key, sz, "%" JSON_INTEGER_FORMAT ":%" JSON_INTEGER_FORMAT, ep, idx);
}

/* finished[i]: for an action_started at i, the index of its
 * action_finished, else SIZE_MAX; an action_finished that has a start is
 * marked paired. */
static int pair_actions(struct report *rp, size_t *finished, bool *paired)
{
	json_t *open = json_object();
	size_t i;
	json_t *rec;
	char key[64];
	if (!open)
		return -1;
	json_array_foreach(rp->recs, i, rec) {
		finished[i] = SIZE_MAX;
		paired[i] = false;
		action_key(rec, key, sizeof(key));
		if (is_type(rec, "action_started")) {
			if (json_object_set_new(open, key, json_integer((json_int_t)i)) < 0)
				goto oom;
		} else if (is_type(rec, "action_finished") && json_object_get(open, key)) {
			finished[json_integer_value(json_object_get(open, key))] = i;
			paired[i] = true;
			json_object_del(open, key);
		}
	}
	json_decref(open);
	return 0;
oom:
	json_decref(open);
	return -1;
}

static int render_output(struct buf *md, const json_t *fin)
{
	json_t *out = json_object_get(fin, "output");
	size_t n = json_string_length(out), shown = 0;
	if (!json_is_string(out) || n == 0)
		return buf_adds(md, "- Output: none\n");
	int bad = buf_addf(md, "- Output (%zu bytes):\n\n", n) |
		  audit_md_fence(json_string_value(out), n, AUDIT_OUTPUT_MAX, &shown, md);
	if (!bad && shown < n)
		bad = buf_addf(md, "\n*(output trimmed: the first %zu of %zu bytes are shown)*\n",
			       shown, n);
	return bad;
}

static int render_result(struct report *rp, struct buf *md, const json_t *fin)
{
	json_int_t code, ms;
	char d[AUDIT_DURATION_STRLEN];
	int bad = buf_adds(md, "- Finished: ") | add_when(rp, md, fin);
	if (mint(fin, "duration_ms", &ms)) {
		audit_format_duration(ms, d, sizeof(d));
		bad |= buf_addf(md, ", after %s", d);
	}
	bad |= buf_adds(md, "\n- Result: ") | md_codes(md, mstr_or(fin, "result", "?"));
	if (mint(fin, "exit_code", &code))
		bad |= buf_addf(md, ", exit code %" JSON_INTEGER_FORMAT, code);
	if (mint(fin, "status_code", &code))
		bad |= buf_addf(md, ", HTTP status %" JSON_INTEGER_FORMAT, code);
	if (mstr(fin, "error") && *mstr(fin, "error"))
		bad |= buf_adds(md, "\n- Error: ") | md_texts(md, mstr(fin, "error"));
	if (mstr(fin, "incident_state"))
		bad |= buf_adds(md, "\n- Incident state after: ") |
		       md_codes(md, mstr(fin, "incident_state"));
	return bad | buf_addc(md, '\n') | render_output(md, fin);
}

/* One action: its start (may be NULL) and its end (may be NULL). */
static int render_action(struct report *rp, struct buf *md, const json_t *start, const json_t *fin)
{
	const json_t *any = start ? start : fin;
	struct buf target = BUF_INIT;
	json_int_t ep;
	json_int_t idx;
	int bad = buf_adds(md, "### Action");
	if (mint(any, "index", &idx) && idx >= 0 && idx < INT32_MAX)
		bad |= buf_addf(md, " %" JSON_INTEGER_FORMAT, idx + 1);
	bad |= buf_adds(md, " (") | md_texts(md, mstr_or(any, "action", "?")) | buf_addc(md, ')');
	if (mint(any, "episode", &ep))
		bad |= buf_addf(md, ", episode %" JSON_INTEGER_FORMAT, ep);
	bad |= buf_adds(md, "\n\n") | add_action_target(&target, any);
	if (!bad && target.len)
		bad = buf_adds(md, json_is_array(json_object_get(any, "argv")) ? "- Command: "
									       : "- Request: ") |
		      audit_md_code(target.data, target.len, md) | buf_addc(md, '\n');
	buf_release(&target);
	if (start)
		bad |= buf_adds(md, "- Started: ") | add_when(rp, md, start) | buf_addc(md, '\n');
	else
		bad |= buf_adds(md, "- Started: no action_started record\n");
	if (fin)
		bad |= render_result(rp, md, fin);
	else
		bad |= buf_adds(md, "- Result: not journaled as finished (the daemon may have "
				    "stopped while it ran: treat as `unknown`)\n");
	return bad | buf_addc(md, '\n');
}

static int render_actions(struct report *rp, struct buf *md)
{
	size_t n = json_array_size(rp->recs), i;
	size_t *finished = calloc(n, sizeof(*finished));
	bool *paired = calloc(n, sizeof(*paired));
	bool any = false;
	json_t *rec;
	int bad = !finished || !paired || pair_actions(rp, finished, paired) < 0;
	bad |= buf_adds(md, "## Actions\n\n");
	json_array_foreach(rp->recs, i, rec) {
		if (bad)
			break;
		bool start = is_type(rec, "action_started");
		if (!start && !(is_type(rec, "action_finished") && !paired[i]))
			continue;
		bad |= render_action(rp, md, start ? rec : NULL,
				     !start ? rec
				     : finished[i] == SIZE_MAX
					 ? NULL
					 : json_array_get(rp->recs, finished[i]));
		bad |= flush_md(md);
		any = true;
	}
	free(finished);
	free(paired);
	return bad | buf_adds(md, any ? "" : "No action ran.\n\n");
}

static int render_list(struct report *rp, struct buf *md, const char *title,
		       const char *const *types, const char *none)
{
	size_t i;
	json_t *rec;
	struct buf what = BUF_INIT;
	int bad = buf_addf(md, "## %s\n\n", title);
	bool any = false;
	json_array_foreach(rp->recs, i, rec) {
		bool match = false;
		for (const char *const *t = types; *t; t++)
			match = match || is_type(rec, *t);
		if (!match)
			continue;
		buf_reset(&what);
		bad |= audit_summary(rec, &what) | buf_adds(md, "- ") | add_when(rp, md, rec) |
		       buf_adds(md, " — ") |
		       audit_md_text(what.data ? what.data : "", what.len, md) | buf_addc(md, '\n');
		any = true;
	}
	buf_release(&what);
	return bad | buf_addf(md, "%s\n", any ? "" : none);
}

/* ---- report: the change record ----------------------------------------------------- */

/* What the journal holds about one episode, for change management. */
struct episode_facts {
	json_int_t ep;
	const json_t *opening;	/* first decision naming an alert (fingerprint) */
	const json_t *decisive; /* first acting or dry_run decision, else the last one */
	const json_t *approve;	/* first approve record */
	const json_t *verdict;	/* last effective/ineffective/inconclusive state */
	const json_t *alert;	/* the last firing notification of opening's alert */
	const json_t *config;	/* config_loaded in force at decisive */
	size_t started;
	struct buf results; /* "`ok`, `error`" */
};

static bool is_verdict(const json_t *rec)
{
	const char *s = mstr(rec, "state");
	return is_type(rec, "incident_state") && s &&
	       (strcmp(s, "effective") == 0 || strcmp(s, "ineffective") == 0 ||
		strcmp(s, "inconclusive") == 0);
}

static json_int_t rec_seq(const json_t *rec)
{
	json_int_t s = 0;
	mint(rec, "seq", &s);
	return s;
}

/* Records without an "episode" (approve, ack, some states) belong to the
 * episode of the records before them. */
static int episode_gather(struct report *rp, struct episode_facts *f)
{
	size_t i;
	json_t *rec;
	json_int_t cur = 0, ep;
	const json_t *last_decision = NULL;
	int bad = 0;
	json_array_foreach(rp->recs, i, rec) {
		if (mint(rec, "episode", &ep))
			cur = ep;
		if (cur != f->ep)
			continue;
		if (is_type(rec, "decision")) {
			const char *fp = mstr(rec, "fingerprint"), *o = mstr_or(rec, "outcome", "");
			if (!f->opening && fp && *fp)
				f->opening = rec;
			if (!f->decisive && (!strcmp(o, "acting") || !strcmp(o, "dry_run")))
				f->decisive = rec;
			last_decision = rec;
		} else if (is_type(rec, "approve") && !f->approve) {
			f->approve = rec;
		} else if (is_verdict(rec)) {
			f->verdict = rec;
		} else if (is_type(rec, "action_started")) {
			f->started++;
		} else if (is_type(rec, "action_finished")) {
			bad |= buf_adds(&f->results, f->results.len ? ", " : "") |
			       md_codes(&f->results, mstr_or(rec, "result", "?"));
		}
	}
	if (!f->decisive)
		f->decisive = last_decision;
	json_int_t at = f->decisive ? rec_seq(f->decisive) : 0;
	const char *fp = f->opening ? mstr(f->opening, "fingerprint") : NULL;
	json_array_foreach(rp->recs, i, rec) {
		const char *st = mstr(rec, "status");
		if (fp && is_type(rec, "notification") && st && !strcmp(st, "firing") &&
		    mstr(rec, "fingerprint") && !strcmp(mstr(rec, "fingerprint"), fp) &&
		    rec_seq(rec) <= at)
			f->alert = rec;
	}
	json_array_foreach(rp->configs, i, rec)
		if (rec_seq(rec) < at)
			f->config = rec;
	return bad;
}

static int cr_change(struct report *rp, struct buf *md, const struct episode_facts *f)
{
	const json_t *d = f->decisive;
	const char *rule = d ? mstr(d, "rule") : NULL;
	int bad = buf_adds(md, "- **Change:** rule ") |
		  (rule && *rule ? md_codes(md, rule) : buf_adds(md, "(none recorded)"));
	if (rp->group) {
		bad |= buf_adds(md, ", group ") | render_group(rp, md);
		if (!bad)
			md->len--; /* render_group ends the line; the actions go on it */
	}
	if (f->started)
		bad |= buf_addf(md, ": %zu action(s) started, results ", f->started) |
		       (f->results.len ? buf_add(md, f->results.data, f->results.len)
				       : buf_adds(md, "not journaled"));
	else
		bad |= buf_adds(md, ": no action ran");
	return bad | buf_addc(md, '\n');
}

static int cr_digest(struct report *rp, struct buf *md, const struct episode_facts *f)
{
	const json_t *c = f->config;
	json_int_t n;
	int bad = buf_adds(md, "- **Rule file digest:** ");
	if (!c || !mstr(c, "rules_digest"))
		return bad | buf_adds(md, "not journaled (no config_loaded record before the "
					  "decision)\n");
	bad |= md_codes(md, mstr(c, "rules_digest")) | buf_adds(md, " (rules ") |
	       md_codes(md, mstr_or(c, "rules_path", "?"));
	if (mint(c, "rules", &n))
		bad |= buf_addf(md, ", %" JSON_INTEGER_FORMAT " rule(s)", n);
	bad |= buf_adds(md, json_is_true(json_object_get(c, "reload")) ? ", reloaded at "
									: ", loaded at ") |
	       add_when(rp, md, c) | buf_addf(md, ", seq %" JSON_INTEGER_FORMAT, rec_seq(c));
	if (json_is_boolean(json_object_get(c, "dry_run")))
		bad |= buf_adds(md, json_is_true(json_object_get(c, "dry_run")) ? ", dry-run on"
										 : ", dry-run off");
	return bad | buf_adds(md, ")\n");
}

static int cr_evidence(struct report *rp, struct buf *md, const struct episode_facts *f)
{
	const json_t *d = f->decisive, *val = NULL;
	int bad = buf_adds(md, "- **Alert evidence:** ");
	/* The value the decisive decision acted on, else the opening one's. */
	if (d && json_is_object(json_object_get(d, "value")))
		val = json_object_get(d, "value");
	else if (f->opening && json_is_object(json_object_get(f->opening, "value")))
		val = json_object_get(f->opening, "value");
	if (val) {
		struct buf rel = BUF_INIT;
		const json_t *above = json_object_get(val, "above");
		const json_t *thr = above ? above : json_object_get(val, "below");
		char t[40];
		bad |= add_value_relation(&rel, val);
		if (!bad)
			bad = audit_md_code(rel.data ? rel.data : "", rel.len, md);
		buf_release(&rel);
		if (thr) {
			audit_format_number(thr, t, sizeof(t));
			bad |= buf_adds(md, " (") | md_texts(md, mstr_or(val, "from", "value")) |
			       buf_addf(md, ", threshold: %s %s)", above ? "above" : "below", t);
		}
	} else {
		bad |= buf_adds(md, "no value threshold in the rule");
	}
	const json_t *labels = json_object_get(f->alert ? f->alert : f->opening, "labels");
	if (mstr(labels, "alertname"))
		bad |= buf_adds(md, "; alert ") | md_texts(md, mstr(labels, "alertname"));
	if (f->opening)
		bad |= buf_adds(md, ", fingerprint ") | md_codes(md, mstr(f->opening, "fingerprint"));
	if (f->alert && mstr(f->alert, "startsAt"))
		bad |= buf_adds(md, ", firing since ") | md_texts(md, mstr(f->alert, "startsAt"));
	if (f->alert && mstr(f->alert, "generatorURL") && *mstr(f->alert, "generatorURL"))
		bad |= buf_adds(md, ", generatorURL ") | md_codes(md, mstr(f->alert, "generatorURL"));
	else
		bad |= buf_adds(md, ", no generatorURL journaled");
	return bad | buf_addc(md, '\n');
}

static int cr_decision_ref(struct report *rp, struct buf *md, const json_t *d)
{
	int bad = buf_adds(md, "decision ") | md_codes(md, mstr_or(d, "outcome", "?")) |
		  buf_adds(md, " at ") | add_when(rp, md, d) |
		  buf_addf(md, ", seq %" JSON_INTEGER_FORMAT, rec_seq(d));
	if (mstr(d, "trigger"))
		bad |= buf_adds(md, ", trigger ") | md_codes(md, mstr(d, "trigger"));
	return bad;
}

static int cr_authorised(struct report *rp, struct buf *md, const struct episode_facts *f)
{
	const json_t *d = f->decisive, *a = f->approve;
	const char *o = d ? mstr_or(d, "outcome", "") : "";
	int bad = buf_adds(md, "- **Authorised by:** ");
	if (a && !strcmp(mstr_or(a, "by", ""), "approve_timeout"))
		bad |= buf_adds(md, "no human: the rule's `approve_timeout` ran the actions at ") |
		       add_when(rp, md, a);
	else if (a)
		bad |= buf_adds(md, "approver ") | md_texts(md, mstr_or(a, "by", "?")) |
		       (mstr(a, "via") ? buf_adds(md, " via ") | md_texts(md, mstr(a, "via")) : 0) |
		       buf_adds(md, " at ") | add_when(rp, md, a) |
		       buf_addf(md, ", seq %" JSON_INTEGER_FORMAT, rec_seq(a));
	else if (!strcmp(o, "acting"))
		bad |= buf_adds(md, "the rule ") | md_codes(md, mstr_or(d, "rule", "?")) |
		       buf_adds(md, " in mode `auto` (acts without a human): ") |
		       cr_decision_ref(rp, md, d);
	else if (!strcmp(o, "dry_run"))
		bad |= buf_adds(md, "nobody: dry-run was on, the rule decided to act and nothing "
				    "ran (") |
		       cr_decision_ref(rp, md, d) | buf_addc(md, ')');
	else if (!strcmp(o, "notify_only"))
		bad |= buf_adds(md, "nobody: the rule's mode is `notify`, it never acts (") |
		       cr_decision_ref(rp, md, d) | buf_addc(md, ')');
	else if (!strcmp(o, "awaiting_approval"))
		bad |= buf_adds(md, "nobody yet: the rule waits for an approval and none is "
				    "journaled (") |
		       cr_decision_ref(rp, md, d) | buf_addc(md, ')');
	else if (d)
		bad |= buf_adds(md, "nobody: no action was decided (last ") |
		       cr_decision_ref(rp, md, d) | buf_addc(md, ')');
	else
		bad |= buf_adds(md, "nobody: no decision journaled");
	return bad | buf_addc(md, '\n');
}

static int cr_verification(struct report *rp, struct buf *md, const struct episode_facts *f)
{
	const json_t *v = f->verdict;
	int bad = buf_adds(md, "- **Verification:** ");
	if (v) {
		bad |= md_codes(md, mstr_or(v, "state", "?"));
		if (mstr(v, "reason") && *mstr(v, "reason"))
			bad |= buf_adds(md, " — ") | md_texts(md, mstr(v, "reason"));
		return bad | buf_adds(md, " (at ") | add_when(rp, md, v) |
		       buf_addf(md, ", seq %" JSON_INTEGER_FORMAT ")\n", rec_seq(v));
	}
	if (f->started)
		return bad | buf_adds(md, "none journaled (the rule has no verify.within, or it "
					  "had not ended)\n");
	return bad | buf_adds(md, "nothing to verify: no action ran\n");
}

static int render_change_record(struct report *rp, struct buf *md)
{
	int bad = buf_adds(md, "## Change record\n\nPer episode, what the journal holds for "
			       "change management: the rule set that decided, the alert evidence, "
			       "who or what authorised the action, and how it was verified.\n\n");
	if (rp->n_episodes == 0)
		return bad | buf_adds(md, "No episode recorded.\n\n");
	for (size_t i = 0; i < rp->n_episodes && !bad; i++) {
		struct episode_facts f = {.ep = rp->episodes[i], .results = BUF_INIT};
		bad |= episode_gather(rp, &f);
		bad |= buf_addf(md, "### Episode %" JSON_INTEGER_FORMAT "\n\n", f.ep) |
		       cr_change(rp, md, &f) | cr_digest(rp, md, &f) | cr_evidence(rp, md, &f) |
		       cr_authorised(rp, md, &f) | cr_verification(rp, md, &f) |
		       buf_addc(md, '\n') | flush_md(md);
		buf_release(&f.results);
	}
	if (rp->episodes_full)
		bad |= buf_addf(md, "*(only the first %u episodes are shown)*\n\n", MAX_EPISODES);
	return bad;
}

static int render_footer(struct report *rp, struct buf *md)
{
	size_t n = json_array_size(rp->recs);
	json_int_t a = 0, b = 0;
	mint(json_array_get(rp->recs, 0), "seq", &a);
	mint(json_array_get(rp->recs, n - 1), "seq", &b);
	int bad = buf_adds(md, "---\n\n");
	if (walk_ok(&rp->w))
		return bad | buf_addf(md,
				      "Journal: %zu records for this incident, chain verified "
				      "(seq %" JSON_INTEGER_FORMAT "..%" JSON_INTEGER_FORMAT ")\n",
				      n, a, b);
	bad |= buf_addf(
	    md,
	    "**Warning:** Journal: %zu records for this incident (seq %" JSON_INTEGER_FORMAT
	    "..%" JSON_INTEGER_FORMAT "), but the chain is NOT verified: ",
	    n, a, b);
	return bad | md_texts(md, rp->w.problem) |
	       buf_adds(md, ". Records from there on are marked *(unverified)*.\n");
}

static int render(struct report *rp)
{
	static const char *const notify[] = {"notify_intent", "notify_sent", "notify_failed", NULL};
	static const char *const people[] = {"ack", "approve", NULL};
	struct buf md = BUF_INIT;
	int bad = render_title(rp, &md) | render_summary(rp, &md) | flush_md(&md);
	bad |= render_timeline(rp, &md) | render_values(rp, &md) | render_decisions(rp, &md);
	bad |= flush_md(&md) | render_actions(rp, &md);
	bad |= render_list(rp, &md, "Notifications", notify, "None journaled.\n");
	bad |= render_list(rp, &md, "Acknowledgements and approvals", people, "None.\n");
	bad |= render_change_record(rp, &md);
	bad |= render_footer(rp, &md) | flush_md(&md);
	buf_release(&md);
	return bad ? -1 : 0;
}

int audit_report(const char *journal, const char *incident)
{
	struct report *rp = calloc(1, sizeof(*rp));
	int rc = EXIT_INVALID;
	if (!rp) {
		fprintf(stderr, "rollbackd: audit: out of memory\n");
		return EXIT_INVALID;
	}
	rp->incident = incident;
	if (collect(rp, journal) < 0) {
		if (rp->w.failed)
			print_problem(rp->w.problem);
		goto out;
	}
	if (json_array_size(rp->recs) == 0) {
		if (!walk_ok(&rp->w))
			print_problem(rp->w.problem);
		snprintf(rp->w.problem, sizeof(rp->w.problem), "%s: no records for incident '%s'",
			 journal, incident);
		print_problem(rp->w.problem);
		goto out;
	}
	gather_facts(rp);
	if (render(rp) < 0) {
		if (finish_stdout() == 0) /* else it said why */
			fprintf(stderr, "rollbackd: audit: out of memory\n");
	} else if (finish_stdout() == 0) {
		rc = walk_ok(&rp->w) ? EXIT_OK : EXIT_INVALID;
	}
	if (!walk_ok(&rp->w))
		print_problem(rp->w.problem);
out:
	report_free(rp);
	return rc;
}

/* ---- report --html ------------------------------------------------------------------ */

int audit_report_html(const char *journal, const char *incident)
{
	struct report *rp = calloc(1, sizeof(*rp));
	struct buf page = BUF_INIT, footer = BUF_INIT;
	int rc = EXIT_INVALID;
	if (!rp) {
		fprintf(stderr, "rollbackd: audit: out of memory\n");
		return EXIT_INVALID;
	}
	rp->incident = incident;
	if (collect(rp, journal) < 0) {
		if (rp->w.failed)
			print_problem(rp->w.problem);
		goto out;
	}
	if (json_array_size(rp->recs) == 0) {
		if (!walk_ok(&rp->w))
			print_problem(rp->w.problem);
		snprintf(rp->w.problem, sizeof(rp->w.problem), "%s: no records for incident '%s'",
			 journal, incident);
		print_problem(rp->w.problem);
		goto out;
	}
	size_t n = json_array_size(rp->recs);
	json_int_t a = 0, b = 0;
	mint(json_array_get(rp->recs, 0), "seq", &a);
	mint(json_array_get(rp->recs, n - 1), "seq", &b);
	int bad = walk_ok(&rp->w)
		      ? buf_addf(&footer,
				 "Journal: %zu records for this incident, chain verified (seq "
				 "%" JSON_INTEGER_FORMAT "..%" JSON_INTEGER_FORMAT ").",
				 n, a, b)
		      : buf_addf(&footer,
				 "Warning: journal: %zu records for this incident, but the chain is "
				 "NOT verified: %s",
				 n, rp->w.problem);
	struct ui_page up = {.standalone = true, .footer = footer.data}; /* no age: a record */
	if (bad || ui_render_incident(&page, incident, NULL, rp->recs, &up) < 0) {
		fprintf(stderr, "rollbackd: audit: out of memory\n");
		goto out;
	}
	if (fwrite(page.data, 1, page.len, stdout) != page.len || finish_stdout() < 0)
		goto out;
	rc = walk_ok(&rp->w) ? EXIT_OK : EXIT_INVALID;
	if (!walk_ok(&rp->w))
		print_problem(rp->w.problem);
out:
	buf_release(&page);
	buf_release(&footer);
	report_free(rp);
	return rc;
}
