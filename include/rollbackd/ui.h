/*
 * ui: the operator console of SPEC §13 (GET /ui/, /ui/incidents/{id}).
 *
 * Server-rendered HTML with one stylesheet (/ui/style.css), no JavaScript,
 * no external assets and a strict Content-Security-Policy. Sign-in with the
 * api token (auth.api.token) sets an HttpOnly, SameSite=Strict session
 * cookie; every state-changing form carries the session's CSRF token. State
 * is read and changed only through engine.h; the timelines come from the
 * journal, through an index kept by a thread of this module (see ui.c).
 *
 * Without an api token the console is read-only and answers loopback peers
 * only. Thread-safe: every worker's loop calls ui_handle concurrently.
 */
#ifndef ROLLBACKD_UI_H
#define ROLLBACKD_UI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "rollbackd/buf.h"
#include "rollbackd/config.h"

#define UI_SESSION_TTL_S (8 * 3600)   /* a sign-in lasts this long */
#define UI_MAX_SESSIONS 256	      /* the oldest sign-in goes first past this */
#define UI_TIMELINE_MAX 2000	      /* records of one incident shown on its page */
#define UI_TIMELINE_BYTES (16u << 20) /* and their bytes, read per page */
#define UI_INDEX_MAX_REFS (1u << 20)  /* records indexed, all incidents together */
/* and incidents indexed: limits.max_incidents (the newest; 0: no limit) */
#define UI_PAGE_SIZE 50 /* incidents per list page */
#define UI_CSP                                                                                     \
	"default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "         \
	"frame-ancestors 'none'"

struct evhttp_request;
struct engine;
struct journal;
struct ui;

/* cfg and engine must outlive the ui (a reload hands a new cfg through
 * ui_set_config). NULL on OOM. */
struct ui *ui_new(const struct config *cfg, struct engine *engine);
/* Stops the index thread and frees everything (sessions included). */
void ui_free(struct ui *ui);

/* Start indexing cfg->state_dir's journal (a thread that tails it), and
 * answer state changes only once j has made them durable. */
void ui_set_journal(struct ui *ui, struct journal *j);
void ui_set_config(struct ui *ui, const struct config *cfg);

/* Whether path belongs to the console ("/ui" or under "/ui/"). */
bool ui_owns_path(const char *path);
/* Answer one request under /ui (exactly one reply). */
void ui_handle(struct ui *ui, struct evhttp_request *req);

/* ---- pure helpers (also used by api.c and audit.c) --------------------- */

/* Append the target of incident (a GET /v1/incidents/{id} object): its
 * "target" member when it has one, else SPEC §6's default, the "labels"
 * (group labels) as name=value pairs sorted by name and joined by ','.
 * 0, or -1 on OOM. */
int ui_incident_target(const json_t *incident, struct buf *out);

/* Whether what an approver typed names target: equal after trimming
 * surrounding blanks (case matters: labels are case-sensitive). An
 * approver types the target, or the incident id when the target is empty
 * (an incident without group labels). */
bool ui_target_matches(const char *typed, const char *target);

/* Field name of the application/x-www-form-urlencoded text s[0..n) (a
 * body or a query string; s may be NULL when n is 0), decoded into out
 * (cap bytes, NUL-terminated): 1 found, 0 absent (out is ""), -1 a broken
 * escape, a NUL or a value over cap. */
int ui_form_field(const char *s, size_t n, const char *name, char *out, size_t cap);

struct ui_page {
	bool standalone;	 /* audit report --html: the stylesheet inline, no forms */
	bool can_act;		 /* signed in: show the Acknowledge / Approve forms */
	const char *csrf;	 /* the session's CSRF token (when can_act) */
	const char *notice;	 /* a line saying what just happened, or NULL */
	const char *error;	 /* a line saying what went wrong, or NULL */
	const char *footer;	 /* e.g. whether the chain verified, or NULL */
	size_t dropped;		 /* records of the incident left out (caps) */
	size_t older_than_index; /* no records: they left the console's index, which
				  * keeps this many incidents (0: not that) */
	int64_t now_ms;		 /* unix ms, for ages */
};

/* Append the incident page: a summary (from incident, or from the records
 * when incident is NULL), the Acknowledge / Approve forms, and the
 * timeline of records (an array of journal objects, in journal order).
 * Everything from records is escaped. 0, or -1 on OOM. */
int ui_render_incident(struct buf *out, const char *id, const json_t *incident,
		       const json_t *records, const struct ui_page *page);

/* The stylesheet (/ui/style.css; inlined by a standalone page). */
extern const char ui_stylesheet[];

#endif
