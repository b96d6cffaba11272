/*
 * target: what a rollback changes (SPEC §6 `target`, §7 "One remediation
 * per target", "Blast radius").
 *
 * Pure. target_name expands a rule's target template against the alert
 * that opened the episode, or writes the default — the group labels as
 * name=value pairs sorted by name, joined by ',' — so every rule grouped by
 * `service` shares the target `service=checkout`. blast_window counts the
 * distinct targets rolled back within a sliding window.
 *
 * Never: expand a secret (rules refuse {{secret.*}} in a target), or let a
 * target carry a control character or grow past TARGET_MAX bytes.
 * No locks: callers hold whatever guards their own state.
 */
#ifndef ROLLBACKD_TARGET_H
#define ROLLBACKD_TARGET_H

#include <stddef.h>
#include <stdint.h>

#include "rollbackd/alert.h"
#include "rollbackd/buf.h"
#include "rollbackd/error.h"
#include "rollbackd/rules.h"

#define TARGET_MAX 255 /* bytes of a target name (STORE_TARGET_MAX) */

/* Write the target of rule r for an episode opened by alert a (group =
 * r's group labels of a, n_group of them) into out (replacing what was
 * there). 0, or -1 with err saying why ("target: template ... has no label
 * 'namespace'", "target: longer than 255 bytes", "target: contains a
 * control character"); on -1 out is empty. */
int target_name(const struct rule *r, const struct alert *a, const struct label *group,
		size_t n_group, struct buf *out, struct error *err);

/* Distinct targets rolled back within a window: a bounded ring of (target
 * hash, time). */
#define BLAST_RING 1024

struct blast_window {
	uint64_t hash[BLAST_RING];
	int64_t at_ms[BLAST_RING];
	size_t head, n;
};

uint64_t target_hash(const char *target);
/* Note that target was rolled back at now_ms. */
void blast_note(struct blast_window *w, uint64_t target_hash, int64_t now_ms);
/* Distinct targets noted in (now_ms - window_ms, now_ms], other than
 * except (0 = none): a target already counted does not count twice.
 * Counting stops at limit (the caller's threshold), which bounds the work
 * to limit x BLAST_RING. */
size_t blast_count(const struct blast_window *w, int64_t now_ms, int64_t window_ms, uint64_t except,
		   size_t limit);

#endif
