/*
 * template: {{labels.X}}, {{annotations.X}}, {{incident.id}}, {{rule.name}},
 * {{change.revision}}, {{change.previous_revision}}, {{change.source}},
 * {{secret.NAME}} in action argv, URLs, headers and JSON bodies (SPEC §6).
 *
 * Pure. A template never reaches a shell: in argv it becomes exactly one
 * argument; in a URL it is percent-encoded; in a JSON body it becomes (part
 * of) a JSON string. A reference to something the alert lacks fails the
 * expansion with a clear error — it never expands to "".
 */
#ifndef ROLLBACKD_TEMPLATE_H
#define ROLLBACKD_TEMPLATE_H

#include <stddef.h>

#include "rollbackd/alert.h"
#include "rollbackd/buf.h"
#include "rollbackd/changes.h"
#include "rollbackd/error.h"
#include "rollbackd/secret.h"

/* What templates may refer to. Lookups for secrets go through a callback so
 * the template module does not know the config. */
struct template_ctx {
	const struct label_set *labels;
	const struct label_set *annotations;
	const char *incident_id;
	const char *rule_name;
	const struct secret *(*secret_lookup)(void *arg, const char *name);
	void *secret_arg;
	const struct change *change; /* the target's latest change; NULL: none known */
	const char *change_target;   /* the target, for messages (may be NULL) */
};

enum template_escape {
	TEMPLATE_RAW,  /* argv, header values: bytes as they are */
	TEMPLATE_URL,  /* a whole URL: expanded values percent-encoded (every byte
			  outside RFC 3986 unreserved), literal text kept; a
			  {{secret.X}} at offset 0 is the base URL and kept as is;
			  the result must start with http:// or https:// */
	TEMPLATE_JSON, /* JSON string content (no surrounding quotes); literal
			  text is escaped too */
};

/* Check syntax and roots without expanding: "{{" ... "}}" balanced, root one
 * of labels/annotations/incident/rule/secret/change with a non-empty key
 * (incident only .id, rule only .name, change only .revision,
 * .previous_revision, .source). 0 or -1 with err naming the reference. */
int template_validate(const char *tpl, struct error *err);

/* Expand tpl into out with the given escaping. -1 with err (e.g. "template
 * '{{labels.service}}': the alert has no label 'service'"). Appends to out;
 * on success out->data is a NUL-terminated string even when nothing was
 * added (an empty argv element is "", never NULL). out may hold a partial
 * result on failure; callers discard it. */
int template_expand(const char *tpl, const struct template_ctx *ctx,
		    enum template_escape esc, struct buf *out, struct error *err);

#endif
