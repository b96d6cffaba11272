/*
 * fuzz_changes: the POST /v1/changes body parser (SPEC §11 fields and Flux
 * events) and the journal round trip of what it accepts.
 *
 * Invariants (abort() when broken): a parse returns 0 or -1; an accepted
 * change has a non-empty target and revision without control bytes and a
 * source; its journal record, replayed into a fresh store, gives back the
 * same target, revision, previous revision and source. Plain C, so
 * tests/fuzz/replay.c can drive it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rollbackd/changes.h"
#include "rollbackd/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void no_controls(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct change *c = calloc(1, sizeof(*c)), *back = calloc(1, sizeof(*back));
	struct error err = {{0}};
	enum change_format fmt;
	bool je;
	struct timestamp now = {1767225600, 0};
	if (!c || !back)
		abort();
	int rc = changes_parse((const char *)data, size, now, c, &fmt, &je, &err);
	if (rc != 0 && rc != -1)
		abort();
	if (rc == 0 && fmt != CHANGE_FORMAT_IGNORED) {
		if (!c->target[0] || !c->revision[0] || !c->source[0])
			abort();
		no_controls(c->target);
		no_controls(c->revision);
		no_controls(c->previous_revision);
		struct buf line = BUF_INIT;
		if (buf_adds(&line, "{\"seq\":1,\"type\":\"change\",\"incident\":\"\"") ||
		    changes_record_members(c, &line) || buf_adds(&line, "}"))
			abort();
		struct changes *s = changes_new();
		struct record_toks toks = {0};
		struct record rec;
		if (!s || record_decode(line.data, line.len, &rec, &toks) != RECORD_OK ||
		    changes_replay_record(s, &rec) != 1 || !changes_latest(s, c->target, back) ||
		    strcmp(back->revision, c->revision) ||
		    strcmp(back->previous_revision, c->previous_revision) ||
		    strcmp(back->source, c->source))
			abort();
		changes_free(s);
		record_toks_release(&toks);
		buf_release(&line);
	}
	free(c);
	free(back);
	return 0;
}
