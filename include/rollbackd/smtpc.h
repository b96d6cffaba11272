/*
 * smtpc: outbound mail through libcurl's SMTP on the multi interface,
 * driven by libevent like httpc (hiperfifo's shape), for the email channel
 * (SPEC §9). libcurl is loaded with dlopen on first use, as in httpc.
 *
 * Never blocks the loop, speaks only smtp:// and smtps://, and with
 * starttls refuses a server that does not offer STARTTLS. No retries of
 * its own: the outbox retries whole deliveries. Single-threaded: call from
 * the loop thread of the base it was created on. Never: put the password
 * into an error text.
 */
#ifndef ROLLBACKD_SMTPC_H
#define ROLLBACKD_SMTPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollbackd/error.h"
#include "rollbackd/httpc.h"
#include "rollbackd/secret.h"

struct event_base;
struct smtpc;

struct smtpc_message {
	const char *url;       /* smtp://host:port or smtps://host:port */
	const char *from;      /* envelope sender, a bare address */
	const char *const *to; /* recipients, bare addresses */
	size_t n_to;
	const char *username;	       /* NULL: no AUTH */
	const struct secret *password; /* may be NULL */
	bool starttls;		       /* smtp://: STARTTLS required */
	const char *ca_file;	       /* NULL: the system's CA store */
	const char *data;	       /* the whole message, CRLF line ends, dot-safe */
	size_t len;
	int64_t timeout_ms; /* whole transfer */
};

/* NULL when libcurl cannot be loaded or on OOM. */
struct smtpc *smtpc_new(struct event_base *base);
/* Cancels what is in flight (done runs with ok false, error "cancelled"). */
void smtpc_free(struct smtpc *c);

/* Start one delivery; everything m points to is copied. done runs exactly
 * once, on the loop, with status = the server's last reply code (0 when
 * none), error = curl's message on failure, attempts = 1. -1 with err and
 * no callback when it cannot start. */
int smtpc_send(struct smtpc *c, const struct smtpc_message *m, httpc_done_fn done, void *arg,
	       struct error *err);

#endif
