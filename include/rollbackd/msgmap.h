/*
 * msgmap: a bounded map from an incident id to the message a channel has
 * for it (the Slack channel and ts, the first email's Message-ID), kept in
 * least-recently-set order: past its bound the oldest is forgotten (its
 * next notice then starts a new message). Not thread-safe: one owner
 * thread (the notify loop).
 */
#ifndef ROLLBACKD_MSGMAP_H
#define ROLLBACKD_MSGMAP_H

#include <stddef.h>

struct msgmap;

/* NULL on OOM. max >= 1. */
struct msgmap *msgmap_new(size_t max);
void msgmap_free(struct msgmap *m);
/* The value for key, or NULL; valid until the next set/forget/free. */
const char *msgmap_get(struct msgmap *m, const char *key);
/* Copy value in for key (replacing it, now the newest). 0, or -1 on OOM
 * with the map unchanged. */
int msgmap_set(struct msgmap *m, const char *key, const char *value);
void msgmap_forget(struct msgmap *m, const char *key);
size_t msgmap_count(const struct msgmap *m);

#endif
