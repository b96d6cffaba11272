/*
 * audit: read the journal after the fact (SPEC §3 "audit", §8), without the
 * daemon: verify its hash chain, print a timeline, write a Markdown report
 * of one incident.
 *
 * It only reads: it never writes, truncates or repairs a journal. The chain
 * check is journal_check_line's; on top of it every record must be a JSON
 * object with "seq", "ts", "type" and "incident". Memory stays bounded: one
 * line at a time for verify and show; report keeps only the records of its
 * incident (at most AUDIT_MAX_RECORDS). Everything printed from a record is
 * made safe first: control bytes never reach a terminal, and Markdown or
 * code fences in record text cannot break the report's structure.
 */
#ifndef ROLLBACKD_AUDIT_H
#define ROLLBACKD_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "rollbackd/buf.h"
#include "rollbackd/timestamp.h"

#define AUDIT_OUTPUT_MAX (64u << 10) /* action output shown in a report */
#define AUDIT_LINE_MAX 4096	     /* one timeline line of `show` */
#define AUDIT_MAX_RECORDS 100000     /* records of one incident in a report */
#define AUDIT_MAX_FINGERPRINTS 65536 /* alert fingerprints of one incident */
#define AUDIT_DURATION_STRLEN 48

/* ---- the commands (exit codes as in cmd.h: 0, 1 failed, 2 usage) ------- */

/* journal: state_dir/journal.jsonl, a closed segment journal.NNNNNN.jsonl,
 * or state_dir itself; every segment of that directory is read, in order.
 * A path that does not exist, or a directory without any journal file:
 * exit 1 "cannot open". An existing empty journal is intact (0 records). */

/* Check the chain. Intact: exit 0 and, on stdout,
 * "ok: N records, last seq S, last hash H" ("ok: 0 records" when empty).
 * Broken: exit 1 and one line on stderr naming the file, the byte offset,
 * the seq the first bad record should have had, and what is wrong. */
int audit_verify(const char *journal);

/* Check the chain, and the journal against the signed checkpoints in the
 * file checkpoints (one published line each, SPEC §8) with the public key
 * in the file pubkey. Exit 1, with one line on stderr per problem naming
 * the checkpoint (file:line and seq), when a line is no checkpoint or is
 * not signed by the key (refused), when the journal ends before a
 * checkpoint's seq (truncated), or when its record at that seq has another
 * hash (rewritten, or another history); also when the chain is broken or
 * the file holds no checkpoint. Intact: exit 0 and on stdout
 * "ok: N records, last seq S, last hash H; K checkpoints match (key_id I,
 * last at seq X)". */
int audit_verify_checkpoints(const char *journal, const char *checkpoints, const char *pubkey);

struct audit_show_options {
	const char *incident; /* NULL: every record */
	const char *since;    /* RFC 3339 text; NULL: from the start */
	bool json;	      /* print the selected lines unchanged */
	bool html;	      /* report: audit_report_html */
};

/* Print the selected records as a timeline, one line each (see
 * audit_format_line), or the raw lines with opt->json. Verifies the chain
 * as it reads: past a bad record the rest is still printed, marked
 * "[unverified]", and the exit is 1 with verify's message on stderr. A
 * --since that is not RFC 3339: exit 2. */
int audit_show(const char *journal, const struct audit_show_options *opt);

/* Print a Markdown report of incident: summary, timeline, alert values,
 * decisions, actions with their output, notifications, acknowledgements,
 * and whether the chain held. No record for it: exit 1. A broken chain:
 * the report says so, and the exit is 1. */
int audit_report(const char *journal, const char *incident);

/* The same incident as one self-contained HTML page (the console's
 * incident page, ui_render_incident, with its stylesheet inline and no
 * forms) on stdout. Same exits as audit_report. */
int audit_report_html(const char *journal, const char *incident);

/* ---- pure helpers (exposed for tests) ------------------------------------ */

/* ms as a time relative to the first alert: "+0s", "+45s", "+1m02s",
 * "+2h03m04s", "+1d02h03m04s", "-5s" (whole seconds, truncated toward 0).
 * out gets at most outsz - 1 bytes and a NUL. Returns the length written. */
size_t audit_format_rel(int64_t ms, char *out, size_t outsz);

/* A duration: "850ms", "1.5s", "12.345s" (below a minute, trailing zeros
 * trimmed), "1m30s", "2h00m05s", "1d00h00m00s" (above, whole seconds); a
 * negative ms is shown with a leading '-'. Same contract as above. */
size_t audit_format_duration(int64_t ms, char *out, size_t outsz);

/* A JSON number as its shortest round-tripping text ("0.052", "3",
 * "1e+100"); "?" when v is not a number. */
size_t audit_format_number(const json_t *v, char *out, size_t outsz);

/* Append s[0..n) as a fenced Markdown code block (opening fence, text,
 * newline, closing fence, newline). The fence is longer than any run of
 * backticks in the text, so nothing inside can close it; control bytes
 * other than newline and tab become "\xNN"; the text is cut (on a UTF-8
 * boundary) so that at most max bytes are shown, and *shown says how many
 * input bytes made it. 0, or -1 when out is full or memory runs out. */
int audit_md_fence(const char *s, size_t n, size_t max, size_t *shown, struct buf *out);

/* Append s as Markdown inline code that shows s literally (backticks in s
 * get a longer delimiter; control bytes become "\xNN"). 0 or -1. */
int audit_md_code(const char *s, size_t n, struct buf *out);

/* Append s as Markdown text that renders as itself: punctuation Markdown
 * or HTML would act on is backslash-escaped, control bytes become spaces.
 * Safe inside a table cell. 0 or -1. */
int audit_md_text(const char *s, size_t n, struct buf *out);

/* Append a one-line, human summary of record rec (a parsed journal
 * object), by its "type"; missing members are left out, unknown types show
 * their other members as JSON. The text is not yet made safe for a
 * terminal: see audit_format_line. 0 or -1 (out of memory). */
int audit_summary(const json_t *rec, struct buf *out);

/* Append the timeline line of rec:
 * "<ts>  #<seq>  <type>  <incident or ->  <summary>", with control bytes
 * (C0, DEL, C1) shown as '?' and cut to AUDIT_LINE_MAX bytes on a UTF-8
 * boundary (ending in "..."). No newline. 0 or -1. */
int audit_format_line(const json_t *rec, struct buf *out);

/* Which records to show: those of one incident (the records whose
 * "incident" is it, and the "notification" records whose fingerprint one
 * of its decisions names) and/or those at or after a time. */
struct audit_filter {
	const char *incident; /* NULL: any */
	bool has_since;
	struct timestamp since;
	json_t *fingerprints;	/* set (object -> true) of the incident's decision
				   fingerprints; owned, NULL until learned */
	bool fingerprints_full; /* AUDIT_MAX_FINGERPRINTS reached */
};

/* Learn from one record on a first pass: a "decision" of the incident adds
 * its fingerprint to f->fingerprints. 0, or -1 out of memory. */
int audit_filter_learn(struct audit_filter *f, const json_t *rec);

/* Whether rec passes the filter. A record without a readable "ts" fails a
 * --since filter. */
bool audit_filter_match(const struct audit_filter *f, const json_t *rec);

/* Free what the filter owns (f->fingerprints). */
void audit_filter_release(struct audit_filter *f);

#endif
