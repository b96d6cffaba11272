/*
 * checkpoint: sign the journal head, journal it, publish it (SPEC §8).
 *
 * The pure half formats, signs, parses and verifies published lines; the
 * daemon half is one thread with its own event base that wakes every
 * checkpoints.every, signs the durable head, journals a "checkpoint"
 * record, appends the line to publish.file (write + fsync) and queues it
 * for publish.url. The queue is this module's own (the notification outbox
 * is for Slack and PagerDuty): one POST at a time, in order, retried with
 * exponential backoff and jitter for as long as the witness is down,
 * bounded at CHECKPOINT_QUEUE_MAX lines (the oldest goes first: a later
 * checkpoint covers everything an earlier one did). Lines still queued at
 * exit are logged; they stay in the journal as checkpoint records.
 *
 * It must never run on an HTTP loop, never block one, and never put the
 * secret key anywhere but in memory that is wiped on free.
 */
#include "rollbackd/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>
#include <sodium.h>

#include "rollbackd/cmd.h"
#include "rollbackd/config.h"
#include "rollbackd/fs.h"
#include "rollbackd/httpc.h"
#include "rollbackd/log.h"
#include "rollbackd/metrics.h"
#include "rollbackd/record.h"
#include "rollbackd/timestamp.h"

#define BACKOFF_BASE_MS 500
#define BACKOFF_MAX_MS 30000
#define POST_TIMEOUT_MS 10000
#define STOP_POLL_MS 20

/* ---- pure helpers ---------------------------------------------------- */

static bool is_lower_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static int hex_decode(const char *hex, size_t hex_len, unsigned char *out, size_t out_len)
{
	size_t got = 0;
	if (hex_len != out_len * 2 || !is_lower_hex(hex, hex_len))
		return -1;
	if (sodium_hex2bin(out, out_len, hex, hex_len, NULL, &got, NULL) != 0 || got != out_len)
		return -1;
	return 0;
}

int checkpoint_key_parse(const unsigned char *data, size_t len,
			 unsigned char sk[CHECKPOINT_SK_BYTES], struct error *err)
{
	unsigned char key[CHECKPOINT_SK_BYTES], seed[crypto_sign_SEEDBYTES];
	unsigned char pk[CHECKPOINT_PK_BYTES], check[CHECKPOINT_SK_BYTES];
	int rc = -1;
	if (!data || hex_decode((const char *)data, len, key, sizeof(key)) < 0) {
		error_set(err,
			  "not an Ed25519 secret key (expected %d lowercase hex digits, as "
			  "'rollbackd keygen' writes)",
			  CHECKPOINT_SK_BYTES * 2);
		goto out;
	}
	/* The second half is the public key: it must be the seed's. */
	crypto_sign_ed25519_sk_to_seed(seed, key);
	if (crypto_sign_seed_keypair(pk, check, seed) != 0 ||
	    sodium_memcmp(check, key, sizeof(key)) != 0) {
		error_set(err, "not an Ed25519 secret key (its public half does not match its "
			       "seed)");
		goto out;
	}
	if (sk)
		memcpy(sk, key, sizeof(key));
	rc = 0;
out:
	sodium_memzero(key, sizeof(key));
	sodium_memzero(seed, sizeof(seed));
	sodium_memzero(check, sizeof(check));
	return rc;
}

int checkpoint_pubkey_load(const char *path, unsigned char pk[CHECKPOINT_PK_BYTES],
			   struct error *err)
{
	char text[CHECKPOINT_PK_BYTES * 2 + 4];
	FILE *f = fopen(path, "rb");
	if (!f)
		return error_set(err, "%s: cannot read: %s", path, strerror(errno));
	size_t n = fread(text, 1, sizeof(text), f);
	bool failed = ferror(f);
	fclose(f);
	if (failed)
		return error_set(err, "%s: cannot read", path);
	if (n > 0 && text[n - 1] == '\n')
		n--;
	if (n > 0 && text[n - 1] == '\r')
		n--;
	if (hex_decode(text, n, pk, CHECKPOINT_PK_BYTES) < 0)
		return error_set(err,
				 "%s: not an Ed25519 public key (expected %d lowercase hex digits, "
				 "as 'rollbackd keygen' writes to FILE.pub)",
				 path, CHECKPOINT_PK_BYTES * 2);
	return 0;
}

void checkpoint_key_id(const unsigned char pk[CHECKPOINT_PK_BYTES],
		       char out[CHECKPOINT_KEY_ID_HEX + 1])
{
	sodium_bin2hex(out, CHECKPOINT_KEY_ID_HEX + 1, pk, CHECKPOINT_KEY_ID_HEX / 2);
}

int checkpoint_message(uint64_t seq, const char *hash, const char *ts, struct buf *out)
{
	return record_checkpoint_signed(out, seq, hash, ts);
}

int checkpoint_sign(uint64_t seq, const char *hash, const char *ts,
		    const unsigned char sk[CHECKPOINT_SK_BYTES], struct buf *out, char *sig_hex)
{
	struct buf msg = BUF_INIT;
	unsigned char sig[CHECKPOINT_SIG_BYTES];
	char sig_text[CHECKPOINT_SIG_BYTES * 2 + 1], id[CHECKPOINT_KEY_ID_HEX + 1];
	int rc = -1;
	if (checkpoint_message(seq, hash, ts, &msg) < 0)
		goto out;
	crypto_sign_detached(sig, NULL, (const unsigned char *)msg.data, msg.len, sk);
	sodium_bin2hex(sig_text, sizeof(sig_text), sig, sizeof(sig));
	/* libsodium's secret key ends with the public key. */
	checkpoint_key_id(sk + crypto_sign_SEEDBYTES, id);
	if (buf_add(out, msg.data, msg.len - 1) ||
	    buf_addf(out, ",\"key_id\":\"%s\",\"sig\":\"%s\"}", id, sig_text))
		goto out;
	if (sig_hex)
		memcpy(sig_hex, sig_text, sizeof(sig_text));
	rc = 0;
out:
	buf_release(&msg);
	return rc;
}

/* A ts that is RFC 3339 and needs no JSON escaping, so the signed message
 * can be rebuilt byte for byte. */
static bool ts_ok(const char *s, size_t n)
{
	struct timestamp t;
	if (n == 0 || n >= CHECKPOINT_TS_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= '0' && c <= '9') || c == 'T' || c == 'Z' || c == 't' || c == 'z' ||
		      c == ':' || c == '.' || c == '-' || c == '+'))
			return false;
	}
	return timestamp_parse(s, n, &t) == 0;
}

static const char *str_member(json_t *o, const char *key, size_t *len)
{
	json_t *v = json_object_get(o, key);
	if (!json_is_string(v))
		return NULL;
	*len = json_string_length(v);
	return json_string_value(v);
}

int checkpoint_parse(const char *text, size_t len, struct checkpoint *c, struct error *err)
{
	static const char *const members[] = {"seq", "hash", "ts", "key_id", "sig"};
	json_error_t je;
	json_t *o = NULL;
	const char *s;
	size_t n;
	int rc = -1;
	memset(c, 0, sizeof(*c));
	if (len > CHECKPOINT_LINE_MAX) {
		error_set(err, "longer than %d bytes", CHECKPOINT_LINE_MAX);
		goto out;
	}
	o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!o || !json_is_object(o)) {
		error_set(err, "not a JSON object");
		goto out;
	}
	for (size_t i = 0; i < sizeof(members) / sizeof(members[0]); i++)
		if (!json_object_get(o, members[i])) {
			error_set(err, "no \"%s\"", members[i]);
			goto out;
		}
	if (json_object_size(o) != sizeof(members) / sizeof(members[0])) {
		error_set(err, "members other than seq, hash, ts, key_id and sig");
		goto out;
	}
	json_t *seq = json_object_get(o, "seq");
	if (!json_is_integer(seq) || json_integer_value(seq) < 1) {
		error_set(err, "\"seq\" is not a positive integer");
		goto out;
	}
	c->seq = (uint64_t)json_integer_value(seq);
	if (!(s = str_member(o, "hash", &n)) || n != JOURNAL_HASH_HEX || !is_lower_hex(s, n)) {
		error_set(err, "\"hash\" is not %d lowercase hex digits", JOURNAL_HASH_HEX);
		goto out;
	}
	memcpy(c->hash, s, n + 1);
	if (!(s = str_member(o, "ts", &n)) || !ts_ok(s, n)) {
		error_set(err, "\"ts\" is not an RFC 3339 time");
		goto out;
	}
	memcpy(c->ts, s, n + 1);
	if (!(s = str_member(o, "key_id", &n)) || n != CHECKPOINT_KEY_ID_HEX ||
	    !is_lower_hex(s, n)) {
		error_set(err, "\"key_id\" is not %d lowercase hex digits", CHECKPOINT_KEY_ID_HEX);
		goto out;
	}
	memcpy(c->key_id, s, n + 1);
	if (!(s = str_member(o, "sig", &n)) || hex_decode(s, n, c->sig, sizeof(c->sig)) < 0) {
		error_set(err, "\"sig\" is not %d lowercase hex digits", CHECKPOINT_SIG_BYTES * 2);
		goto out;
	}
	rc = 0;
out:
	json_decref(o);
	return rc;
}

int checkpoint_verify(const struct checkpoint *c, const unsigned char pk[CHECKPOINT_PK_BYTES],
		      struct error *err)
{
	char id[CHECKPOINT_KEY_ID_HEX + 1];
	struct buf msg = BUF_INIT;
	checkpoint_key_id(pk, id);
	if (strcmp(id, c->key_id) != 0)
		return error_set(err, "signed by key_id %s, not by the --pubkey key (key_id %s)",
				 c->key_id, id);
	if (checkpoint_message(c->seq, c->hash, c->ts, &msg) < 0)
		return error_set(err, "out of memory");
	int bad = crypto_sign_verify_detached(c->sig, (const unsigned char *)msg.data, msg.len, pk);
	buf_release(&msg);
	if (bad)
		return error_set(err, "bad signature: the line was not signed by the --pubkey key "
				      "as it reads (changed or forged)");
	return 0;
}

/* ---- keygen ------------------------------------------------------------ */

static int write_key_file(const char *path, const char *text, mode_t mode, struct error *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return error_set(err, "%s: %s", path,
				 errno == EEXIST ? "already exists; not overwritten"
						 : strerror(errno));
	size_t n = strlen(text), done = 0;
	int rc = fchmod(fd, mode); /* whatever the umask */
	while (rc == 0 && done < n) {
		ssize_t w = write(fd, text + done, n - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			rc = -1;
		else
			done += (size_t)w;
	}
	if (rc == 0)
		rc = fsync(fd);
	int saved = errno;
	if (close(fd) < 0 && rc == 0) {
		rc = -1;
		saved = errno;
	}
	if (rc < 0) {
		unlink(path);
		return error_set(err, "%s: %s", path, strerror(saved));
	}
	return 0;
}

int checkpoint_cmd_keygen(const char *out_path)
{
	unsigned char pk[CHECKPOINT_PK_BYTES], sk[CHECKPOINT_SK_BYTES];
	char sk_text[CHECKPOINT_SK_BYTES * 2 + 2], pk_text[CHECKPOINT_PK_BYTES * 2 + 2];
	char id[CHECKPOINT_KEY_ID_HEX + 1];
	struct error err = {{0}};
	char *pub_path = NULL;
	struct stat st;
	int rc = EXIT_INVALID;
	size_t n = strlen(out_path) + sizeof(".pub");
	if (!(pub_path = malloc(n))) {
		fprintf(stderr, "rollbackd: keygen: out of memory\n");
		return EXIT_INVALID;
	}
	snprintf(pub_path, n, "%s.pub", out_path);
	/* Refuse before writing anything when either exists. */
	if (lstat(out_path, &st) == 0 || lstat(pub_path, &st) == 0) {
		fprintf(stderr, "rollbackd: keygen: %s: already exists; not overwritten\n",
			lstat(out_path, &st) == 0 ? out_path : pub_path);
		goto out;
	}
	crypto_sign_keypair(pk, sk);
	sodium_bin2hex(sk_text, sizeof(sk_text) - 1, sk, sizeof(sk));
	sodium_bin2hex(pk_text, sizeof(pk_text) - 1, pk, sizeof(pk));
	sk_text[sizeof(sk_text) - 2] = '\n';
	sk_text[sizeof(sk_text) - 1] = '\0';
	pk_text[sizeof(pk_text) - 2] = '\n';
	pk_text[sizeof(pk_text) - 1] = '\0';
	if (write_key_file(out_path, sk_text, 0600, &err) < 0) {
		fprintf(stderr, "rollbackd: keygen: %s\n", err.msg);
		goto out;
	}
	if (write_key_file(pub_path, pk_text, 0644, &err) < 0) {
		unlink(out_path);
		fprintf(stderr, "rollbackd: keygen: %s\n", err.msg);
		goto out;
	}
	checkpoint_key_id(pk, id);
	printf("wrote %s (secret key, mode 0600) and %s (public key); key_id %s\n", out_path,
	       pub_path, id);
	rc = fflush(stdout) == 0 ? EXIT_OK : EXIT_INVALID;
out:
	sodium_memzero(sk, sizeof(sk));
	sodium_memzero(sk_text, sizeof(sk_text));
	free(pub_path);
	return rc;
}

/* ---- the daemon ------------------------------------------------------ */

/* A published line waiting for its destination. */
struct pending_line {
	char *text; /* the line, with its newline */
	size_t len;
	uint64_t seq; /* the checkpoint's */
	struct pending_line *next;
};

struct line_queue {
	struct pending_line *head, *tail;
	size_t n;
};

struct checkpointer {
	struct journal *journal;
	unsigned char sk[CHECKPOINT_SK_BYTES];
	char key_id[CHECKPOINT_KEY_ID_HEX + 1];
	int64_t every_ms;
	const char *file; /* NULL when not configured */
	const char *url;  /* NULL when not configured */

	struct event_base *base;
	struct event *tick_ev, *stop_ev, *retry_ev, *drain_ev;
	struct httpc *http; /* only with url */
	pthread_t thread;
	bool thread_started;

	struct line_queue to_file; /* lines whose append failed, retried each tick */
	struct line_queue to_url;  /* head is in flight when posting */
	bool posting;
	int64_t backoff_ms;
	int url_failures; /* in a row */

	uint64_t last_signed; /* seq of the head last signed */
	uint64_t last_record; /* seq of our last checkpoint record */

	/* stopping: 1 waiting for the journal, 2 waiting for publishing, 3 freeing */
	int stop_phase;
	int64_t stop_deadline_ms;

	struct metric_child *m_signed, *m_published, *m_failed, *m_dropped;
};

static void queue_push(struct line_queue *q, struct pending_line *p)
{
	p->next = NULL;
	if (q->tail)
		q->tail->next = p;
	else
		q->head = p;
	q->tail = p;
	q->n++;
}

static struct pending_line *queue_pop(struct line_queue *q)
{
	struct pending_line *p = q->head;
	if (!p)
		return NULL;
	q->head = p->next;
	if (!q->head)
		q->tail = NULL;
	q->n--;
	return p;
}

static void line_free(struct pending_line *p)
{
	if (p) {
		free(p->text);
		free(p);
	}
}

static void queue_clear(struct line_queue *q)
{
	struct pending_line *p;
	while ((p = queue_pop(q)) != NULL)
		line_free(p);
}

static struct pending_line *line_new(const char *text, size_t len, uint64_t seq)
{
	struct pending_line *p = calloc(1, sizeof(*p));
	if (!p || !(p->text = malloc(len + 2))) {
		free(p);
		return NULL;
	}
	memcpy(p->text, text, len);
	p->text[len] = '\n';
	p->text[len + 1] = '\0';
	p->len = len + 1;
	p->seq = seq;
	return p;
}

static void log_seq(const char *level, const char *msg, uint64_t seq, const char *error)
{
	char s[24];
	snprintf(s, sizeof(s), "%" PRIu64, seq);
	if (strcmp(level, "error") == 0)
		log_error(msg, "seq", s, "error", error, NULL);
	else if (strcmp(level, "warn") == 0)
		log_warn(msg, "seq", s, "error", error, NULL);
	else
		log_info(msg, "seq", s, NULL);
}

/* Append one line to publish.file and make it durable. */
static int append_file(struct checkpointer *c, const struct pending_line *p, struct error *err)
{
	struct stat st;
	bool created = stat(c->file, &st) < 0;
	int fd = open(c->file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0)
		return error_set(err, "%s: %s", c->file, strerror(errno));
	int rc = 0;
	size_t done = 0;
	while (rc == 0 && done < p->len) {
		ssize_t w = write(fd, p->text + done, p->len - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			rc = error_set(err, "%s: %s", c->file, strerror(errno));
		else
			done += (size_t)w;
	}
	if (rc == 0 && fsync(fd) < 0)
		rc = error_set(err, "%s: fsync: %s", c->file, strerror(errno));
	close(fd);
	if (rc == 0 && created) {
		/* A new file is only there once its directory entry is. */
		(void)fs_fsync_parent(c->file);
	}
	return rc;
}

/* Write what waits for publish.file, in order; stop at the first failure
 * (the rest waits for the next try). */
static void flush_file(struct checkpointer *c)
{
	while (c->to_file.head) {
		struct error err = {{0}};
		if (append_file(c, c->to_file.head, &err) < 0) {
			metric_inc(c->m_failed);
			log_seq("error",
				"checkpoint: cannot append to publish.file; retried at the "
				"next checkpoint",
				c->to_file.head->seq, err.msg);
			return;
		}
		metric_inc(c->m_published);
		line_free(queue_pop(&c->to_file));
	}
}

static void post_next(struct checkpointer *c);

static void on_posted(const struct httpc_result *res, void *arg)
{
	struct checkpointer *c = arg;
	c->posting = false;
	if (c->stop_phase == 3)
		return;
	if (res->ok) {
		struct pending_line *p = queue_pop(&c->to_url);
		if (c->url_failures)
			log_seq("info", "checkpoint: publish.url reachable again", p->seq, NULL);
		c->url_failures = 0;
		c->backoff_ms = 0;
		metric_inc(c->m_published);
		line_free(p);
		post_next(c);
		return;
	}
	char why[300];
	if (res->error)
		snprintf(why, sizeof(why), "%s", res->error);
	else
		snprintf(why, sizeof(why), "HTTP %d", res->status);
	metric_inc(c->m_failed);
	/* One line when the witness goes away, then one per 10 failures. */
	if (c->url_failures++ % 10 == 0)
		log_seq("warn", "checkpoint: cannot POST to publish.url; retrying with backoff",
			c->to_url.head->seq, why);
	c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_BASE_MS;
	if (c->backoff_ms > BACKOFF_MAX_MS)
		c->backoff_ms = BACKOFF_MAX_MS;
	/* Half fixed, half jitter. */
	int64_t wait =
	    c->backoff_ms / 2 + (int64_t)randombytes_uniform((uint32_t)(c->backoff_ms / 2 + 1));
	if (c->stop_phase && timestamp_mono_ms() + wait > c->stop_deadline_ms)
		return; /* past the deadline: what is left is reported at exit */
	struct timeval tv = timestamp_tv(wait);
	evtimer_add(c->retry_ev, &tv);
}

static void post_next(struct checkpointer *c)
{
	static const char *const headers[] = {"Content-Type: application/json", NULL};
	struct error err = {{0}};
	if (c->posting || !c->to_url.head || evtimer_pending(c->retry_ev, NULL))
		return;
	struct pending_line *p = c->to_url.head;
	struct httpc_request req = {
	    .method = "POST",
	    .url = c->url,
	    .headers = headers,
	    .body = p->text,
	    .body_len = p->len,
	    .timeout_ms = POST_TIMEOUT_MS,
	    .retries = 0, /* retried here, with the queue's own backoff */
	    .max_response = 4096,
	};
	c->posting = true;
	if (httpc_send(c->http, &req, on_posted, c, &err) < 0) {
		c->posting = false;
		metric_inc(c->m_failed);
		log_seq("error", "checkpoint: cannot POST to publish.url", p->seq, err.msg);
		struct timeval tv = timestamp_tv(BACKOFF_MAX_MS);
		evtimer_add(c->retry_ev, &tv);
	}
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	post_next(arg);
}

/* Sign the durable head unless nothing but our own checkpoint record was
 * written since the last one; journal and publish it. */
static void take_checkpoint(struct checkpointer *c)
{
	char hash[JOURNAL_HASH_HEX + 1], ts[TIMESTAMP_STRLEN], sig[CHECKPOINT_SIG_BYTES * 2 + 1];
	struct buf line = BUF_INIT, m = BUF_INIT;
	uint64_t seq = journal_durable_head(c->journal, hash), rec_seq = 0;
	if (seq == 0 || seq == c->last_signed || seq == c->last_record)
		return;
	timestamp_format(timestamp_now(), ts, sizeof(ts));
	struct record_checkpoint v = {
	    .seq = seq, .hash = hash, .ts = ts, .key_id = c->key_id, .sig = sig};
	if (checkpoint_sign(seq, hash, ts, c->sk, &line, sig) < 0 ||
	    record_build_checkpoint(&m, &v) < 0) {
		log_error("checkpoint: out of memory", NULL);
		goto out;
	}
	c->last_signed = seq;
	metric_inc(c->m_signed);
	if (journal_append_seq(c->journal, "checkpoint", "", m.data, m.len, NULL, &rec_seq) < 0)
		log_seq("error", "checkpoint: cannot journal the checkpoint record", seq,
			"journal unavailable");
	else
		c->last_record = rec_seq;
	log_seq("info", "checkpoint signed", seq, NULL);
	if (c->file) {
		struct pending_line *p = line_new(line.data, line.len, seq);
		if (p)
			queue_push(&c->to_file, p);
		flush_file(c);
	}
	if (c->url) {
		struct pending_line *p = line_new(line.data, line.len, seq);
		if (p && c->to_url.n >= CHECKPOINT_QUEUE_MAX) {
			/* Never the head: it may be in flight. */
			struct pending_line *second = c->to_url.head->next;
			if (second) {
				c->to_url.head->next = second->next;
				if (c->to_url.tail == second)
					c->to_url.tail = c->to_url.head;
				c->to_url.n--;
				metric_inc(c->m_dropped);
				log_seq("error",
					"checkpoint: publish.url queue full; oldest waiting "
					"line dropped (it stays in the journal)",
					second->seq, "queue full");
				line_free(second);
			}
		}
		if (p)
			queue_push(&c->to_url, p);
		post_next(c);
	}
out:
	buf_release(&line);
	buf_release(&m);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct checkpointer *c = arg;
	flush_file(c);
	take_checkpoint(c);
}

/* At exit: wait for the journal to be durable, take the last checkpoint,
 * then give publishing until the deadline. */
static void on_drain(evutil_socket_t fd, short what, void *arg)
{
	struct checkpointer *c = arg;
	int64_t now = timestamp_mono_ms();
	if (c->stop_phase == 1) {
		bool durable = journal_durable(c->journal, journal_last_ticket(c->journal));
		if (!durable && now < c->stop_deadline_ms)
			goto again;
		flush_file(c);
		take_checkpoint(c);
		c->stop_phase = 2;
	}
	if ((c->to_url.head || c->posting) && now < c->stop_deadline_ms)
		goto again;
	event_base_loopexit(c->base, NULL);
	return;
again:;
	struct timeval tv = timestamp_tv(STOP_POLL_MS);
	evtimer_add(c->drain_ev, &tv);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
	struct checkpointer *c = arg;
	evtimer_del(c->tick_ev);
	c->stop_phase = 1;
	c->stop_deadline_ms = timestamp_mono_ms() + CHECKPOINT_STOP_WAIT_MS;
	on_drain(-1, 0, c);
}

static void *checkpoint_main(void *arg)
{
	struct checkpointer *c = arg;
	event_base_dispatch(c->base);
	return NULL;
}

static void checkpointer_free(struct checkpointer *c)
{
	if (!c)
		return;
	httpc_free(c->http); /* cancels a POST in flight; its callback runs */
	if (c->tick_ev)
		event_free(c->tick_ev);
	if (c->stop_ev)
		event_free(c->stop_ev);
	if (c->retry_ev)
		event_free(c->retry_ev);
	if (c->drain_ev)
		event_free(c->drain_ev);
	if (c->base)
		event_base_free(c->base);
	queue_clear(&c->to_file);
	queue_clear(&c->to_url);
	sodium_memzero(c->sk, sizeof(c->sk));
	free(c);
}

int checkpoint_start(const struct config *cfg, struct journal *j, struct checkpointer **out,
		     struct error *err)
{
	static const char *const labels[] = {"result", NULL};
	*out = NULL;
	/* Exported (without samples) even when checkpoints are off, so that a
	 * dashboard can tell "off" from "not scraped". */
	struct metric_family *f = metrics_register(
	    METRIC_COUNTER, "checkpoints_total",
	    "Journal checkpoints signed, published (per destination), failed to publish "
	    "(per attempt) and dropped from a full queue.",
	    labels, NULL, 0);
	if (!f)
		return error_set(err, "checkpoints: out of memory");
	if (!secret_is_set(&cfg->checkpoints.key))
		return 0;
	struct checkpointer *c = calloc(1, sizeof(*c));
	if (!c)
		return error_set(err, "checkpoints: out of memory");
	c->journal = j;
	c->every_ms = cfg->checkpoints.every_ms;
	c->file = cfg->checkpoints.publish_file[0] ? cfg->checkpoints.publish_file : NULL;
	c->url = cfg->checkpoints.publish_url[0] ? cfg->checkpoints.publish_url : NULL;
	if (checkpoint_key_parse(cfg->checkpoints.key.data, cfg->checkpoints.key.len, c->sk, err) <
	    0) {
		error_prefix(err, "checkpoints.key");
		goto fail;
	}
	checkpoint_key_id(c->sk + crypto_sign_SEEDBYTES, c->key_id);
	if (!(c->m_signed = metrics_child(f, "signed")) ||
	    !(c->m_published = metrics_child(f, "published")) ||
	    !(c->m_failed = metrics_child(f, "publish_failed")) ||
	    !(c->m_dropped = metrics_child(f, "dropped"))) {
		error_set(err, "checkpoints: out of memory");
		goto fail;
	}
	c->base = timestamp_event_base_new();
	if (!c->base) {
		error_set(err, "checkpoints: cannot create an event base");
		goto fail;
	}
	c->tick_ev = event_new(c->base, -1, EV_PERSIST, on_tick, c);
	c->stop_ev = event_new(c->base, -1, 0, on_stop, c);
	c->retry_ev = evtimer_new(c->base, on_retry, c);
	c->drain_ev = evtimer_new(c->base, on_drain, c);
	if (!c->tick_ev || !c->stop_ev || !c->retry_ev || !c->drain_ev) {
		error_set(err, "checkpoints: cannot create events");
		goto fail;
	}
	if (c->url && !(c->http = httpc_new(c->base))) {
		error_set(err, "checkpoints.publish.url: cannot start the HTTP client (libcurl)");
		goto fail;
	}
	struct timeval tv = timestamp_tv(c->every_ms);
	if (evtimer_add(c->tick_ev, &tv) < 0) {
		error_set(err, "checkpoints: cannot arm the timer");
		goto fail;
	}
	if (pthread_create(&c->thread, NULL, checkpoint_main, c) != 0) {
		error_set(err, "checkpoints: cannot start the checkpoint thread");
		goto fail;
	}
	c->thread_started = true;
	log_info("checkpoints on", "key_id", c->key_id, "publish_file", c->file ? c->file : "",
		 "publish_url", c->url ? c->url : "", NULL);
	*out = c;
	return 0;
fail:
	checkpointer_free(c);
	return -1;
}

void checkpoint_stop(struct checkpointer *c)
{
	if (!c)
		return;
	if (c->thread_started) {
		event_active(c->stop_ev, EV_READ, 0); /* the thread's own loop does the rest */
		pthread_join(c->thread, NULL);
	}
	if (c->to_file.n || c->to_url.n) {
		char nf[24], nu[24];
		snprintf(nf, sizeof(nf), "%zu", c->to_file.n);
		snprintf(nu, sizeof(nu), "%zu", c->to_url.n);
		log_error("checkpoint: lines not published before exit (they are in the journal "
			  "as checkpoint records)",
			  "publish_file", nf, "publish_url", nu, NULL);
	}
	c->stop_phase = 3; /* httpc_free's cancelled callback must not retry */
	checkpointer_free(c);
}
