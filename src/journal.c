/*
 * journal: append, chain, group-commit and read the audit log (SPEC §8).
 *
 * Appenders format a record, chain it (BLAKE2b-256 over B, prev = the last
 * hash) and add the line to an in-memory batch under j->lock: cheap, no
 * I/O. The writer thread swaps the batch out, writes it with one write()
 * and makes it durable with one fdatasync(), then wakes the waiters on
 * their own event bases. A failed write or sync truncates the file back to
 * the last durable byte and keeps the batch to retry, so the file never
 * holds half a record and no accepted record is dropped.
 *
 * Over 800 lines because reading (audit, replay), start-up checking and the
 * writer thread share the line format, the segment list and the chain state;
 * the start-up pipeline (verifier thread + replay) lives next to the state it
 * fills in.
 */
#include "rollbackd/journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <sodium.h>

#include "rollbackd/buf.h"
#include "rollbackd/fs.h"
#include "rollbackd/log.h"
#include "rollbackd/metrics.h"
#include "rollbackd/record.h"
#include "rollbackd/timestamp.h"

#define HASH_BYTES 32
#define HASH_SUFFIX_LEN (sizeof(",\"hash\":\"") - 1 + JOURNAL_HASH_HEX + 2) /* 75 */
#define PREV_MEMBER_LEN (sizeof(",\"prev\":\"") - 1 + JOURNAL_HASH_HEX + 1) /* 74 */
#define READ_CHUNK (1u << 20)
#define MAX_PENDING (256u << 20) /* records buffered while the disk fails */
#define RETRY_MS 1000
#define HEALTH_CHECK_MS 250 /* an idle writer looks at its file this often */

static const char zero_hash[JOURNAL_HASH_HEX + 1] =
    "0000000000000000000000000000000000000000000000000000000000000000";

static bool is_lower_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* ---- reading ----------------------------------------------------------- */

struct segment {
	char *path;
	uint64_t number; /* UINT64_MAX: the current file */
};

struct journal_reader {
	struct segment *segs;
	size_t n_segs, cur;
	int fd;
	char *buf;	   /* READ_CHUNK + JOURNAL_MAX_LINE */
	size_t start, end; /* unread bytes buf[start..end) */
	uint64_t buf_off;  /* file offset of buf[start] */
	bool eof;
};

static int seg_cmp(const void *a, const void *b)
{
	const struct segment *x = a, *y = b;
	return x->number < y->number ? -1 : x->number > y->number;
}

/* "journal.000012.jsonl" -> 12 */
static bool segment_number(const char *name, uint64_t *n)
{
	const char *p = name + strlen("journal.");
	if (strncmp(name, "journal.", 8) != 0)
		return false;
	size_t digits = strspn(p, "0123456789");
	if (digits < 6 || digits > 18 || strcmp(p + digits, ".jsonl") != 0)
		return false;
	*n = strtoull(p, NULL, 10);
	return true;
}

/* The directory of a journal path: the path itself when it is a directory. */
static char *journal_dir(const char *path)
{
	struct stat st;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return strdup(path);
	const char *slash = strrchr(path, '/');
	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

static int list_segments(const char *dir, struct segment **out, size_t *n_out, struct error *err)
{
	struct segment *segs = NULL;
	size_t n = 0, alloc = 0;
	DIR *d = opendir(dir);
	if (!d) {
		if (errno == ENOENT) {
			*out = NULL;
			*n_out = 0;
			return 0;
		}
		return error_set(err, "%s: %s", dir, strerror(errno));
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		uint64_t num;
		if (strcmp(de->d_name, JOURNAL_FILE) == 0)
			num = UINT64_MAX;
		else if (!segment_number(de->d_name, &num))
			continue;
		if (n == alloc) {
			alloc = alloc ? alloc * 2 : 8;
			struct segment *s = realloc(segs, alloc * sizeof(*s));
			if (!s)
				goto oom;
			segs = s;
		}
		segs[n].number = num;
		if (!(segs[n].path = fs_join(dir, de->d_name)))
			goto oom;
		n++;
	}
	closedir(d);
	if (n > 1)
		qsort(segs, n, sizeof(*segs), seg_cmp);
	*out = segs;
	*n_out = n;
	return 0;
oom:
	closedir(d);
	for (size_t i = 0; i < n; i++)
		free(segs[i].path);
	free(segs);
	return error_set(err, "out of memory");
}

int journal_reader_open(const char *path, struct journal_reader **out, struct error *err)
{
	struct journal_reader *r = calloc(1, sizeof(*r));
	char *dir = journal_dir(path);
	if (!r || !dir || !(r->buf = malloc(READ_CHUNK + JOURNAL_MAX_LINE + 1))) {
		free(dir);
		journal_reader_free(r);
		return error_set(err, "out of memory");
	}
	r->fd = -1;
	if (list_segments(dir, &r->segs, &r->n_segs, err) < 0) {
		free(dir);
		journal_reader_free(r);
		return -1;
	}
	free(dir);
	*out = r;
	return 0;
}

void journal_reader_free(struct journal_reader *r)
{
	if (!r)
		return;
	if (r->fd >= 0)
		close(r->fd);
	for (size_t i = 0; i < r->n_segs; i++)
		free(r->segs[i].path);
	free(r->segs);
	free(r->buf);
	free(r);
}

int journal_reader_next(struct journal_reader *r, struct journal_line *line, bool *torn,
			struct error *err)
{
	*torn = false;
	for (;;) {
		if (r->fd < 0) {
			if (r->cur >= r->n_segs)
				return 0;
			r->fd = open(r->segs[r->cur].path, O_RDONLY | O_CLOEXEC);
			if (r->fd < 0)
				return error_set(err, "%s: %s", r->segs[r->cur].path,
						 strerror(errno));
			r->start = r->end = 0;
			r->buf_off = 0;
			r->eof = false;
		}
		char *nl = memchr(r->buf + r->start, '\n', r->end - r->start);
		if (nl && (size_t)(nl - (r->buf + r->start)) > JOURNAL_MAX_LINE)
			return error_set(err, "%s: offset %" PRIu64 ": line longer than %u bytes",
					 r->segs[r->cur].path, r->buf_off, JOURNAL_MAX_LINE);
		if (nl) {
			line->text = r->buf + r->start;
			line->len = (size_t)(nl - line->text);
			line->segment = r->segs[r->cur].path;
			line->offset = r->buf_off;
			r->buf_off += line->len + 1;
			r->start += line->len + 1;
			return 1;
		}
		if (r->end - r->start > JOURNAL_MAX_LINE)
			return error_set(err, "%s: offset %" PRIu64 ": line longer than %u bytes",
					 r->segs[r->cur].path, r->buf_off, JOURNAL_MAX_LINE);
		if (r->eof) {
			if (r->end > r->start) { /* a last line without its newline */
				line->text = r->buf + r->start;
				line->len = r->end - r->start;
				line->segment = r->segs[r->cur].path;
				line->offset = r->buf_off;
				r->buf_off += line->len;
				r->start = r->end;
				*torn = true;
				return 1;
			}
			close(r->fd);
			r->fd = -1;
			r->cur++;
			continue;
		}
		/* Slide the partial line to the front and read more. */
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->end -= r->start;
		r->start = 0;
		ssize_t got = read(r->fd, r->buf + r->end, READ_CHUNK);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return error_set(err, "%s: %s", r->segs[r->cur].path, strerror(errno));
		}
		if (got == 0)
			r->eof = true;
		r->end += (size_t)got;
	}
}

const char *journal_reader_segment(const struct journal_reader *r, size_t i)
{
	return i < r->n_segs ? r->segs[i].path : NULL;
}

int journal_reader_seek(struct journal_reader *r, const char *segment, uint64_t offset,
			struct error *err)
{
	size_t i = 0;
	while (i < r->n_segs && strcmp(r->segs[i].path, segment) != 0)
		i++;
	if (i == r->n_segs)
		return error_set(err, "%s: no such segment", segment);
	if (r->fd >= 0)
		close(r->fd);
	r->cur = i;
	r->fd = open(segment, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0)
		return error_set(err, "%s: %s", segment, strerror(errno));
	if (lseek(r->fd, (off_t)offset, SEEK_SET) < 0)
		return error_set(err, "%s: %s", segment, strerror(errno));
	r->start = r->end = 0;
	r->buf_off = offset;
	r->eof = false;
	return 0;
}

int journal_check_line(const char *text, size_t len, const char *prev_hex, uint64_t want_seq,
		       uint64_t *seq, char hash_hex[JOURNAL_HASH_HEX + 1], struct error *err)
{
	static const char head[] = "{\"seq\":";
	if (len < sizeof(head) + HASH_SUFFIX_LEN + PREV_MEMBER_LEN)
		return error_set(err, "too short to be a record");
	size_t blen = len - HASH_SUFFIX_LEN; /* B without its final '}' */
	const char *h = text + blen;
	if (memcmp(h, ",\"hash\":\"", 9) != 0 || memcmp(text + len - 2, "\"}", 2) != 0 ||
	    !is_lower_hex(h + 9, JOURNAL_HASH_HEX))
		return error_set(err, "no \"hash\" member at the end of the line");
	if (memcmp(text, head, sizeof(head) - 1) != 0)
		return error_set(err, "does not start with {\"seq\":");
	const char *p = text + blen - PREV_MEMBER_LEN;
	if (memcmp(p, ",\"prev\":\"", 9) != 0 || text[blen - 1] != '"' ||
	    !is_lower_hex(p + 9, JOURNAL_HASH_HEX))
		return error_set(err, "no \"prev\" member before \"hash\"");

	unsigned char digest[HASH_BYTES];
	char got[JOURNAL_HASH_HEX + 1];
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, sizeof(digest));
	crypto_generichash_update(&st, (const unsigned char *)text, blen);
	crypto_generichash_update(&st, (const unsigned char *)"}", 1);
	crypto_generichash_final(&st, digest, sizeof(digest));
	sodium_bin2hex(got, sizeof(got), digest, sizeof(digest));

	uint64_t n = 0;
	const char *q = text + sizeof(head) - 1;
	size_t digits = 0;
	while (q + digits < p && q[digits] >= '0' && q[digits] <= '9' && digits < 19)
		n = n * 10 + (uint64_t)(q[digits++] - '0');
	if (digits == 0 || q[digits] != ',')
		return error_set(err, "\"seq\" is not a number");
	*seq = n;
	if (memcmp(got, h + 9, JOURNAL_HASH_HEX) != 0)
		return error_set(err, "seq %" PRIu64 ": hash does not match the record", n);
	if (want_seq && n != want_seq)
		return error_set(err, "seq %" PRIu64 ": expected seq %" PRIu64, n, want_seq);
	if (prev_hex && memcmp(p + 9, prev_hex, JOURNAL_HASH_HEX) != 0)
		return error_set(err, "seq %" PRIu64 ": \"prev\" is not the previous record's hash",
				 n);
	memcpy(hash_hex, got, sizeof(got));
	return 0;
}

/* ---- writing ----------------------------------------------------------- */

struct waiter {
	uint64_t ticket;
	struct event_base *base;
	void (*cb)(bool ok, void *arg);
	void *arg;
	bool ok;
	struct waiter *next;
};

struct journal {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	char *dir, *path;
	uint64_t segment_bytes;
	int fd;
	uint64_t size; /* durable bytes of the current file */
	uint64_t next_segment;
	/* chain */
	uint64_t seq;
	char prev[JOURNAL_HASH_HEX + 1];
	/* tickets: appended > batch being written >= durable */
	uint64_t appended, durable;
	uint64_t durable_seq; /* the chain head on disk */
	char durable_hash[JOURNAL_HASH_HEX + 1];
	struct buf pending; /* lines not yet handed to the writer */
	size_t pending_records;
	bool failed;
	bool damaged;	 /* the file was removed, replaced or changed under us */
	char *recovered; /* what journal_open --recover moved aside; NULL: nothing */
	dev_t dev;	 /* of the open current file */
	ino_t ino;
	char last_error[600];
	struct waiter *waiters;
	bool stop;
	int stop_timeout_ms;
	pthread_t thread;
	bool thread_started;
	struct metric_child *records_total;
	struct metric_child *fsync_seconds;
	struct metric_child *errors_total;
};

static void waiter_fire(evutil_socket_t fd, short what, void *arg)
{
	struct waiter *w = arg;
	w->cb(w->ok, w->arg);
	free(w);
}

/* Hand a waiter to its loop (any thread may call this). */
static void waiter_schedule(struct waiter *w, bool ok)
{
	struct timeval now = {0, 0};
	w->ok = ok;
	if (event_base_once(w->base, -1, EV_TIMEOUT, waiter_fire, w, &now) < 0) {
		log_error("journal: cannot schedule a waiter; its request stays unanswered", NULL);
		free(w);
	}
}

/* Under j->lock: wake every waiter whose ticket is settled. */
static void settle_waiters(struct journal *j, uint64_t through, bool ok)
{
	struct waiter **pp = &j->waiters;
	while (*pp) {
		struct waiter *w = *pp;
		if (w->ticket <= through) {
			*pp = w->next;
			waiter_schedule(w, ok);
		} else {
			pp = &w->next;
		}
	}
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int open_current(struct journal *j, struct error *err)
{
	j->fd = open(j->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (j->fd < 0)
		return error_set(err, "%s: %s", j->path, strerror(errno));
	struct stat st;
	if (fstat(j->fd, &st) < 0)
		return error_set(err, "%s: %s", j->path, strerror(errno));
	j->size = (uint64_t)st.st_size;
	j->dev = st.st_dev;
	j->ino = st.st_ino;
	if (fs_fsync_dir(j->dir) < 0)
		return error_set(err, "%s: fsync: %s", j->dir, strerror(errno));
	return 0;
}

/* After a durable batch: start a new segment once the current one is full.
 * The chain simply continues: the next record's prev is the last hash. */
static void maybe_rotate(struct journal *j)
{
	if (!j->segment_bytes || j->size < j->segment_bytes)
		return;
	char name[64];
	snprintf(name, sizeof(name), "journal.%06" PRIu64 ".jsonl", j->next_segment);
	char *to = fs_join(j->dir, name);
	struct error err = {{0}};
	if (!to)
		return;
	if (rename(j->path, to) < 0) {
		log_error("journal: cannot start a new segment", "error", strerror(errno), NULL);
		free(to);
		return;
	}
	free(to);
	close(j->fd);
	j->fd = -1;
	j->next_segment++;
	if (open_current(j, &err) < 0) {
		log_error("journal: cannot open the new segment", "error", err.msg, NULL);
		j->failed = true;
		snprintf(j->last_error, sizeof(j->last_error), "%s", err.msg);
		return;
	}
	log_info("journal: new segment", "closed", name, NULL);
}

/*
 * Whether the file we write is still state_dir/journal.jsonl as we left it:
 * not unlinked (rm), not renamed away, not replaced by another file, not
 * truncated or written by anyone else. Two syscalls; run on the writer
 * thread only (it alone changes fd and size), without the lock. 0, or -1
 * with what happened in why.
 */
static int file_check(const struct journal *j, char *why, size_t whysz)
{
	struct stat fs, ps;
	if (j->fd < 0 || fstat(j->fd, &fs) < 0)
		return 0; /* nothing open, or cannot tell: the write will say */
	if (stat(j->path, &ps) < 0) {
		if (errno != ENOENT)
			return 0;
		snprintf(why, whysz, "%s was %s while rollbackd was running", j->path,
			 fs.st_nlink == 0 ? "removed" : "moved away");
		return -1;
	}
	if (ps.st_dev != j->dev || ps.st_ino != j->ino) {
		snprintf(why, whysz, "%s was replaced by another file while rollbackd was running",
			 j->path);
		return -1;
	}
	if ((uint64_t)fs.st_size < j->size) {
		snprintf(why, whysz,
			 "%s was truncated to %llu bytes while rollbackd was running (it had "
			 "written %llu)",
			 j->path, (unsigned long long)fs.st_size, (unsigned long long)j->size);
		return -1;
	}
	if ((uint64_t)fs.st_size > j->size) {
		snprintf(why, whysz,
			 "%s was written by something else while rollbackd was running (%llu "
			 "bytes, rollbackd wrote %llu)",
			 j->path, (unsigned long long)fs.st_size, (unsigned long long)j->size);
		return -1;
	}
	return 0;
}

/* Under j->lock (dropped for the check itself): look at the file; once it
 * is damaged, the journal stays unavailable for the life of the process. */
static void health_check(struct journal *j)
{
	char why[400];
	if (j->damaged)
		return;
	pthread_mutex_unlock(&j->lock);
	int bad = file_check(j, why, sizeof(why));
	pthread_mutex_lock(&j->lock);
	if (!bad)
		return;
	j->damaged = true;
	j->failed = true;
	snprintf(j->last_error, sizeof(j->last_error),
		 "%s; nothing more is written, no action starts and webhooks get 503 until "
		 "rollbackd is restarted (see 'rollbackd serve --recover')",
		 why);
	metric_inc(j->errors_total);
	log_error("journal: the journal file is damaged; acting stopped", "error", why, NULL);
	settle_waiters(j, UINT64_MAX, false);
}

static void wait_ms(struct journal *j, int ms)
{
	struct timespec ts = timestamp_deadline(CLOCK_REALTIME, ms);
	pthread_cond_timedwait(&j->wake, &j->lock, &ts);
}

static void *writer_main(void *arg)
{
	struct journal *j = arg;
	struct buf batch = BUF_INIT;
	pthread_mutex_lock(&j->lock);
	for (;;) {
		while (j->pending.len == 0 && !j->stop) {
			wait_ms(j, HEALTH_CHECK_MS);
			health_check(j);
		}
		if (j->pending.len == 0)
			break;
		health_check(j); /* never write into a file that is no longer the journal */
		if (j->damaged) {
			/* Keep what is buffered (bounded by MAX_PENDING): it was never
			 * answered 2xx, and it is reported as unwritten at exit. */
			settle_waiters(j, UINT64_MAX, false);
			if (j->stop)
				break;
			wait_ms(j, RETRY_MS);
			continue;
		}
		/* Take the whole batch; appenders start a new one meanwhile. */
		struct buf tmp = j->pending;
		j->pending = batch;
		batch = tmp;
		buf_reset(&j->pending);
		size_t records = j->pending_records;
		j->pending_records = 0;
		uint64_t through = j->appended, through_seq = j->seq;
		char through_hash[JOURNAL_HASH_HEX + 1];
		memcpy(through_hash, j->prev, sizeof(through_hash));
		int fd = j->fd;
		uint64_t size = j->size;
		pthread_mutex_unlock(&j->lock);

		int64_t t0 = timestamp_mono_ms();
		int werr = 0;
		if (fd < 0) { /* a new segment could not be opened: try again */
			struct error oerr = {{0}};
			pthread_mutex_lock(&j->lock);
			if (j->fd < 0 && open_current(j, &oerr) == 0)
				log_info("journal: segment reopened", NULL);
			fd = j->fd;
			size = j->size;
			pthread_mutex_unlock(&j->lock);
		}
		if (fd < 0)
			werr = EBADF;
		else if (write_all(fd, batch.data, batch.len) < 0 || fdatasync(fd) < 0)
			werr = errno;
		if (werr && fd >= 0 && ftruncate(fd, (off_t)size) == 0)
			(void)fdatasync(fd); /* nothing half-written stays behind */
		if (!werr)
			metric_observe(j->fsync_seconds,
				       (double)(timestamp_mono_ms() - t0) / 1000.0);

		pthread_mutex_lock(&j->lock);
		if (!werr) {
			j->size += batch.len;
			j->durable = through;
			j->durable_seq = through_seq;
			memcpy(j->durable_hash, through_hash, sizeof(through_hash));
			metric_add(j->records_total, (int64_t)records);
			if (j->failed)
				log_info("journal: writing again", NULL);
			j->failed = false;
			j->last_error[0] = '\0';
			settle_waiters(j, through, true);
			buf_reset(&batch);
			maybe_rotate(j);
			continue;
		}
		/* Put the batch back in front of what arrived meanwhile. */
		if (buf_add(&batch, j->pending.data ? j->pending.data : "", j->pending.len) == 0) {
			tmp = j->pending;
			j->pending = batch;
			batch = tmp;
			buf_reset(&batch);
			j->pending_records += records;
		} else {
			log_error("journal: out of memory keeping a failed batch", NULL);
		}
		if (!j->failed)
			log_error("journal: write failed; answering 503 until it works again",
				  "error", strerror(werr), NULL);
		j->failed = true;
		metric_inc(j->errors_total);
		snprintf(j->last_error, sizeof(j->last_error), "%s: %s", j->path, strerror(werr));
		settle_waiters(j, through, false);
		if (j->stop && j->stop_timeout_ms <= 0)
			break;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += RETRY_MS / 1000;
		pthread_cond_timedwait(&j->wake, &j->lock, &ts);
		if (j->stop)
			j->stop_timeout_ms -= RETRY_MS;
	}
	/* Whoever still waits will not be written. */
	settle_waiters(j, UINT64_MAX, false);
	pthread_mutex_unlock(&j->lock);
	buf_release(&batch);
	return NULL;
}

static int append_locked(struct journal *j, const char *type, const char *incident,
			 const char *members, size_t members_len, uint64_t *ticket)
{
	char ts[TIMESTAMP_STRLEN];
	timestamp_format(timestamp_now(), ts, sizeof(ts));
	if (j->pending.len > MAX_PENDING)
		return -1;
	size_t mark = j->pending.len;
	struct buf *b = &j->pending;
	int bad = buf_addf(b, "{\"seq\":%" PRIu64 ",\"ts\":\"%s\",\"type\":", j->seq + 1, ts) |
		  buf_add_json_str(b, type, strlen(type)) | buf_adds(b, ",\"incident\":") |
		  buf_add_json_str(b, incident, strlen(incident)) |
		  buf_add(b, members, members_len) | buf_adds(b, ",\"prev\":\"") |
		  buf_adds(b, j->prev) | buf_adds(b, "\"}");
	if (bad) {
		if (b->data) {
			b->len = mark;
			b->data[mark] = '\0';
		}
		return -1;
	}
	size_t blen = b->len - mark;
	if (blen + HASH_SUFFIX_LEN > JOURNAL_MAX_LINE || memchr(b->data + mark, '\n', blen)) {
		b->len = mark;
		b->data[mark] = '\0';
		return -1;
	}
	unsigned char digest[HASH_BYTES];
	char hex[JOURNAL_HASH_HEX + 1];
	crypto_generichash(digest, sizeof(digest), (const unsigned char *)b->data + mark, blen,
			   NULL, 0);
	sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
	b->len--; /* drop B's final '}' */
	if (buf_adds(b, ",\"hash\":\"") | buf_adds(b, hex) | buf_adds(b, "\"}\n")) {
		b->len = mark;
		b->data[mark] = '\0';
		return -1;
	}
	j->seq++;
	memcpy(j->prev, hex, sizeof(hex));
	j->appended++;
	j->pending_records++;
	if (ticket)
		*ticket = j->appended;
	return 0;
}

int journal_append(struct journal *j, const char *type, const char *incident, const char *members,
		   size_t members_len, uint64_t *ticket)
{
	return journal_append_seq(j, type, incident, members, members_len, ticket, NULL);
}

int journal_append_seq(struct journal *j, const char *type, const char *incident,
		       const char *members, size_t members_len, uint64_t *ticket, uint64_t *seq)
{
	pthread_mutex_lock(&j->lock);
	int r = append_locked(j, type, incident ? incident : "", members ? members : "",
			      members ? members_len : 0, ticket);
	if (r == 0) {
		pthread_cond_signal(&j->wake);
		if (seq)
			*seq = j->seq;
	}
	pthread_mutex_unlock(&j->lock);
	if (r < 0)
		log_error("journal: cannot append a record", "type", type, NULL);
	return r;
}

uint64_t journal_last_ticket(struct journal *j)
{
	pthread_mutex_lock(&j->lock);
	uint64_t t = j->appended;
	pthread_mutex_unlock(&j->lock);
	return t;
}

bool journal_durable(struct journal *j, uint64_t ticket)
{
	pthread_mutex_lock(&j->lock);
	bool d = ticket <= j->durable;
	pthread_mutex_unlock(&j->lock);
	return d;
}

bool journal_available(struct journal *j)
{
	pthread_mutex_lock(&j->lock);
	bool ok = !j->failed && !j->damaged;
	pthread_mutex_unlock(&j->lock);
	return ok;
}

bool journal_recovered(struct journal *j, char *what, size_t n)
{
	if (what && n)
		snprintf(what, n, "%s", j->recovered ? j->recovered : "");
	return j->recovered != NULL;
}

bool journal_healthy(struct journal *j, char *reason, size_t n)
{
	pthread_mutex_lock(&j->lock);
	bool ok = !j->failed && !j->damaged;
	if (reason && n)
		snprintf(reason, n, "%s", ok ? "" : j->last_error);
	pthread_mutex_unlock(&j->lock);
	return ok;
}

uint64_t journal_seq(struct journal *j)
{
	pthread_mutex_lock(&j->lock);
	uint64_t s = j->seq;
	pthread_mutex_unlock(&j->lock);
	return s;
}

uint64_t journal_durable_head(struct journal *j, char hash_hex[JOURNAL_HASH_HEX + 1])
{
	pthread_mutex_lock(&j->lock);
	uint64_t s = j->durable_seq;
	memcpy(hash_hex, j->durable_hash, JOURNAL_HASH_HEX + 1);
	pthread_mutex_unlock(&j->lock);
	return s;
}

void journal_last_error(struct journal *j, char *out, size_t outsz)
{
	pthread_mutex_lock(&j->lock);
	snprintf(out, outsz, "%s", j->last_error);
	pthread_mutex_unlock(&j->lock);
}

int journal_wait(struct journal *j, uint64_t ticket, struct event_base *base,
		 void (*cb)(bool ok, void *arg), void *arg)
{
	struct waiter *w = calloc(1, sizeof(*w));
	if (!w)
		return -1;
	w->ticket = ticket;
	w->base = base;
	w->cb = cb;
	w->arg = arg;
	pthread_mutex_lock(&j->lock);
	if (ticket <= j->durable) {
		waiter_schedule(w, true);
	} else if (j->failed || j->damaged) {
		waiter_schedule(w, false); /* do not hold a request for a failing disk */
	} else {
		w->next = j->waiters;
		j->waiters = w;
	}
	pthread_mutex_unlock(&j->lock);
	return 0;
}

/* Verify and replay every record; find where the current file's good part
 * ends. A bad last line of the current file is a write cut short: cut it. */
/* Where the good part of the journal ends (--recover). */
struct damage {
	char *segment; /* file path of the first bad record; NULL: none */
	uint64_t offset;
	uint64_t seq; /* the seq it should have had */
	char what[sizeof(((struct error *)0)->msg)];
};

/*
 * Start-up reads, checks and replays every record. Checking (BLAKE2b of
 * each line and the chain) and replaying (the engine, notify, the store)
 * are each about half of a start, so they run side by side: a verifier
 * thread reads and checks lines and hands the good ones over in batches
 * (copies, at most REPLAY_BATCHES of them in flight: bounded memory), and
 * the caller's thread replays them in order. Only checked lines are ever
 * replayed, in journal order, and replay stops where checking stopped, so
 * the outcome is the same as one loop doing both.
 */
#define REPLAY_BATCH_BYTES (1u << 20)
#define REPLAY_BATCHES 4

struct rline_ref {
	size_t at, len;
	const char *segment; /* the reader's: valid until it is freed */
	uint64_t offset, seq;
};

struct rbatch {
	char *text; /* REPLAY_BATCH_BYTES + JOURNAL_MAX_LINE */
	size_t used;
	struct rline_ref *lines;
	size_t n, cap;
	struct rbatch *next;
};

struct rpipe {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct rbatch *full, **full_tail; /* checked, to replay, in order */
	struct rbatch *free;
	bool done;  /* the verifier stopped (end, error, cut, damage) */
	bool abort; /* the replayer failed: stop checking */
	/* the verifier's, read after the join */
	struct journal *j;
	const struct journal_options *opt;
	struct journal_reader *r;
	uint64_t *cut_at, *cut_bytes;
	struct damage *dmg;
	uint64_t seq;
	char prev[JOURNAL_HASH_HEX + 1];
	int rc;
	struct error err;
};

/* The verifier's next empty batch; NULL when told to stop. */
static struct rbatch *rpipe_take_free(struct rpipe *p)
{
	pthread_mutex_lock(&p->lock);
	while (!p->free && !p->abort)
		pthread_cond_wait(&p->cond, &p->lock);
	struct rbatch *b = p->abort ? NULL : p->free;
	if (b) {
		p->free = b->next;
		b->next = NULL;
		b->used = b->n = 0;
	}
	pthread_mutex_unlock(&p->lock);
	return b;
}

static void rpipe_push_full(struct rpipe *p, struct rbatch *b)
{
	pthread_mutex_lock(&p->lock);
	b->next = NULL;
	*p->full_tail = b;
	p->full_tail = &b->next;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

/* Add a checked line to *cur (a new batch when it is full). -1: stop. */
static int rpipe_add(struct rpipe *p, struct rbatch **cur, const struct journal_line *line,
		     uint64_t seq)
{
	if (*cur && (*cur)->used + line->len > REPLAY_BATCH_BYTES + JOURNAL_MAX_LINE) {
		rpipe_push_full(p, *cur);
		*cur = NULL;
	}
	if (!*cur && !(*cur = rpipe_take_free(p)))
		return -1;
	struct rbatch *b = *cur;
	if (b->n == b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 4096;
		struct rline_ref *l = realloc(b->lines, cap * sizeof(*l));
		if (!l)
			return error_set(&p->err, "out of memory");
		b->lines = l;
		b->cap = cap;
	}
	memcpy(b->text + b->used, line->text, line->len);
	b->lines[b->n++] = (struct rline_ref){b->used, line->len, line->segment, line->offset, seq};
	b->used += line->len;
	if (b->used >= REPLAY_BATCH_BYTES) {
		rpipe_push_full(p, b);
		*cur = NULL;
	}
	return 0;
}

/* The verifier thread: check every line in order, hand the good ones
 * over, find where the current file's good part ends. */
static void *rpipe_verify(void *arg)
{
	struct rpipe *p = arg;
	struct journal *j = p->j;
	struct journal_reader *r = p->r;
	struct journal_line line;
	struct rbatch *cur = NULL;
	bool torn;
	char hash[JOURNAL_HASH_HEX + 1];
	int rc = 0;
	for (;;) {
		int got = journal_reader_next(r, &line, &torn, &p->err);
		if (got <= 0) {
			rc = got;
			break;
		}
		struct error lerr = {{0}};
		uint64_t s;
		bool in_current = strcmp(line.segment, j->path) == 0;
		if (torn)
			error_set(&lerr, "torn line without a newline (%zu bytes)", line.len);
		if (torn || journal_check_line(line.text, line.len, p->prev, p->seq + 1, &s, hash,
					       &lerr) < 0) {
			uint64_t off = line.offset, len = line.len;
			struct journal_line more;
			bool more_torn;
			/* Only a last line cut short (no newline: the write never
			 * finished) is cut away; a complete bad line is evidence. */
			if (torn && in_current &&
			    journal_reader_next(r, &more, &more_torn, &p->err) == 0) {
				*p->cut_at = off;
				*p->cut_bytes = len + (torn ? 0 : 1);
				break;
			}
			if (p->opt->recover) {
				if (!(p->dmg->segment = strdup(line.segment))) {
					rc = error_set(&p->err, "out of memory");
					break;
				}
				p->dmg->offset = off;
				p->dmg->seq = p->seq + 1;
				snprintf(p->dmg->what, sizeof(p->dmg->what), "%s", lerr.msg);
				break;
			}
			rc = error_set(
			    &p->err,
			    "%s: offset %" PRIu64 ": record seq %" PRIu64
			    " is bad (%s); nothing was changed: 'rollbackd audit verify "
			    "--journal %s' shows it, and 'rollbackd serve --recover' moves "
			    "the damaged part aside (kept), starts a new segment and starts "
			    "paused",
			    line.segment, off, p->seq + 1, lerr.msg, j->dir);
			break;
		}
		p->seq = s;
		memcpy(p->prev, hash, sizeof(p->prev));
		if (p->opt->replay && rpipe_add(p, &cur, &line, s) < 0) {
			rc = -1; /* told to stop, or out of memory (p->err says) */
			break;
		}
	}
	if (cur && cur->n > 0)
		rpipe_push_full(p, cur);
	else if (cur) {
		pthread_mutex_lock(&p->lock);
		cur->next = p->free;
		p->free = cur;
		pthread_mutex_unlock(&p->lock);
	}
	pthread_mutex_lock(&p->lock);
	p->rc = rc;
	p->done = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* The caller's side: replay batches in order until the verifier is done.
 * 0, or -1 with err when a replay callback failed. */
static int rpipe_replay(struct rpipe *p, struct error *err)
{
	for (;;) {
		pthread_mutex_lock(&p->lock);
		while (!p->full && !p->done)
			pthread_cond_wait(&p->cond, &p->lock);
		struct rbatch *b = p->full;
		if (b) {
			p->full = b->next;
			if (!p->full)
				p->full_tail = &p->full;
		}
		pthread_mutex_unlock(&p->lock);
		if (!b)
			return 0; /* done, and nothing left */
		int rc = 0;
		for (size_t i = 0; i < b->n && rc == 0; i++) {
			const struct rline_ref *l = &b->lines[i];
			struct journal_line line = {b->text + l->at, l->len, l->segment, l->offset};
			if (p->opt->replay(&line, p->opt->replay_arg) < 0)
				rc = error_set(err,
					       "%s: offset %" PRIu64 ": cannot replay seq %" PRIu64,
					       l->segment, l->offset, l->seq);
		}
		pthread_mutex_lock(&p->lock);
		b->next = p->free;
		p->free = b;
		if (rc < 0)
			p->abort = true;
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);
		if (rc < 0)
			return -1;
	}
}

static int replay_all(struct journal *j, const struct journal_options *opt, uint64_t *cut_at,
		      uint64_t *cut_bytes, struct damage *dmg, struct error *err)
{
	struct rpipe p = {.j = j, .opt = opt, .cut_at = cut_at, .cut_bytes = cut_bytes, .dmg = dmg};
	struct rbatch pool[REPLAY_BATCHES] = {{0}};
	pthread_t tid;
	int rc = 0;
	memcpy(p.prev, zero_hash, sizeof(p.prev));
	p.full_tail = &p.full;
	*cut_at = UINT64_MAX;
	*cut_bytes = 0;
	if (journal_reader_open(j->dir, &p.r, err) < 0)
		return -1;
	for (size_t i = 0; i < p.r->n_segs; i++)
		if (p.r->segs[i].number != UINT64_MAX && p.r->segs[i].number >= j->next_segment)
			j->next_segment = p.r->segs[i].number + 1;
	if (opt->from_segment) {
		if (!opt->from_hash || strlen(opt->from_hash) != JOURNAL_HASH_HEX ||
		    journal_reader_seek(p.r, opt->from_segment, opt->from_offset, err) < 0) {
			journal_reader_free(p.r);
			return error_set(err,
					 "cannot start after the snapshot's record seq %" PRIu64,
					 opt->from_seq);
		}
		p.seq = opt->from_seq;
		memcpy(p.prev, opt->from_hash, JOURNAL_HASH_HEX + 1);
	}
	for (size_t i = 0; i < REPLAY_BATCHES; i++) {
		if (!(pool[i].text = malloc(REPLAY_BATCH_BYTES + JOURNAL_MAX_LINE))) {
			rc = error_set(err, "out of memory");
			goto out;
		}
		pool[i].next = p.free;
		p.free = &pool[i];
	}
	pthread_mutex_init(&p.lock, NULL);
	pthread_cond_init(&p.cond, NULL);
	if (pthread_create(&tid, NULL, rpipe_verify, &p) != 0) {
		rc = error_set(err, "cannot start the journal's verifier thread");
	} else {
		int replayed = rpipe_replay(&p, err);
		pthread_join(tid, NULL);
		if (replayed < 0) {
			rc = -1;
		} else if (p.rc < 0) {
			*err = p.err;
			rc = -1;
		}
	}
	pthread_cond_destroy(&p.cond);
	pthread_mutex_destroy(&p.lock);
	j->seq = j->durable_seq = p.seq;
	memcpy(j->prev, p.prev, sizeof(p.prev));
	memcpy(j->durable_hash, p.prev, sizeof(p.prev));
out:
	for (size_t i = 0; i < REPLAY_BATCHES; i++) {
		free(pool[i].text);
		free(pool[i].lines);
	}
	journal_reader_free(p.r);
	return rc;
}

/* Copy path[from..) to a new file to (which must not exist) and sync it. */
static int copy_tail(const char *path, uint64_t from, const char *to, struct error *err)
{
	int in = open(path, O_RDONLY | O_CLOEXEC), outfd = -1, rc = -1;
	char *chunk = malloc(READ_CHUNK);
	if (in < 0 || !chunk) {
		error_set(err, "%s: %s", path, in < 0 ? strerror(errno) : "out of memory");
		goto out;
	}
	outfd = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	if (outfd < 0) {
		error_set(err, "%s: %s", to, strerror(errno));
		goto out;
	}
	for (off_t at = (off_t)from;;) {
		ssize_t got = pread(in, chunk, READ_CHUNK, at);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			error_set(err, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (got == 0)
			break;
		if (write_all(outfd, chunk, (size_t)got) < 0) {
			error_set(err, "%s: %s", to, strerror(errno));
			goto out;
		}
		at += got;
	}
	if (fsync(outfd) < 0) {
		error_set(err, "%s: fsync: %s", to, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (in >= 0)
		close(in);
	if (outfd >= 0)
		close(outfd);
	free(chunk);
	return rc;
}

/* serve --recover: move everything from the first bad record on aside, to
 * NAME.damaged-STAMP next to each file (the bad file's good head stays), so
 * the journal ends at the last good record; the current file starts anew.
 * Writes into names (a JSON array of the moved names) and j->recovered. */
static int move_damage_aside(struct journal *j, const struct damage *dmg, struct buf *names,
			     struct error *err)
{
	struct segment *segs = NULL;
	size_t n = 0, i;
	char stamp[32], *to = NULL;
	time_t now = time(NULL);
	struct tm tm;
	int rc = -1;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	if (list_segments(j->dir, &segs, &n, err) < 0)
		return -1;
	for (i = 0; i < n && strcmp(segs[i].path, dmg->segment) != 0; i++)
		;
	if (i == n) {
		error_set(err, "%s: no longer there", dmg->segment);
		goto out;
	}
	if (buf_addc(names, '['))
		goto oom;
	for (size_t k = i; k < n; k++) {
		struct stat st;
		size_t tn = strlen(segs[k].path) + sizeof(".damaged-") + strlen(stamp);
		free(to);
		if (!(to = malloc(tn)))
			goto oom;
		snprintf(to, tn, "%s.damaged-%s", segs[k].path, stamp);
		if (lstat(to, &st) == 0) {
			error_set(err, "%s: already exists", to);
			goto out;
		}
		if (k == i && dmg->offset > 0) {
			if (copy_tail(segs[k].path, dmg->offset, to, err) < 0)
				goto out;
			if (truncate(segs[k].path, (off_t)dmg->offset) < 0) {
				error_set(err, "%s: truncate: %s", segs[k].path, strerror(errno));
				goto out;
			}
			int fd = open(segs[k].path, O_WRONLY | O_CLOEXEC);
			if (fd < 0 || fsync(fd) < 0) {
				error_set(err, "%s: fsync: %s", segs[k].path, strerror(errno));
				if (fd >= 0)
					close(fd);
				goto out;
			}
			close(fd);
		} else if (rename(segs[k].path, to) < 0) {
			error_set(err, "%s: cannot move aside: %s", segs[k].path, strerror(errno));
			goto out;
		}
		const char *tb = strrchr(to, '/');
		if ((k > i && buf_addc(names, ',')) ||
		    buf_add_json_str(names, tb + 1, strlen(tb + 1)))
			goto oom;
	}
	if (buf_addc(names, ']'))
		goto oom;
	/* The good head of the current file becomes a closed segment, so the
	 * records after recovery start a segment of their own. */
	if (segs[i].number == UINT64_MAX && dmg->offset > 0) {
		char name[64];
		snprintf(name, sizeof(name), "journal.%06" PRIu64 ".jsonl", j->next_segment);
		free(to);
		if (!(to = fs_join(j->dir, name)))
			goto oom;
		if (rename(j->path, to) < 0) {
			error_set(err, "%s: cannot close the good part: %s", j->path,
				  strerror(errno));
			goto out;
		}
		j->next_segment++;
	}
	if (fs_fsync_dir(j->dir) < 0) {
		error_set(err, "%s: fsync: %s", j->dir, strerror(errno));
		goto out;
	}
	rc = 0;
	goto out;
oom:
	error_set(err, "out of memory");
out:
	for (size_t k = 0; k < n; k++)
		free(segs[k].path);
	free(segs);
	free(to);
	return rc;
}

int journal_open(const struct journal_options *opt, struct journal **out, struct error *err)
{
	static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
					0.05,	0.1,   0.25,   0.5,   1,    2.5};
	struct journal *j = calloc(1, sizeof(*j));
	if (!j)
		return error_set(err, "out of memory");
	pthread_mutex_init(&j->lock, NULL);
	pthread_cond_init(&j->wake, NULL);
	j->fd = -1;
	j->next_segment = 1;
	j->segment_bytes = opt->segment_bytes;
	buf_init(&j->pending, 0);
	if (mkdir(opt->state_dir, 0750) < 0 && errno != EEXIST) {
		error_set(err, "state_dir '%s': %s", opt->state_dir, strerror(errno));
		goto fail;
	}
	j->dir = strdup(opt->state_dir);
	j->path = fs_join(opt->state_dir, JOURNAL_FILE);
	if (!j->dir || !j->path) {
		error_set(err, "out of memory");
		goto fail;
	}
	uint64_t cut_at, cut_bytes;
	struct damage dmg = {0};
	struct buf moved = BUF_INIT;
	if (replay_all(j, opt, &cut_at, &cut_bytes, &dmg, err) < 0)
		goto fail;
	if (dmg.segment && move_damage_aside(j, &dmg, &moved, err) < 0) {
		error_prefix(err, "journal --recover: ");
		free(dmg.segment);
		buf_release(&moved);
		goto fail;
	}
	if (cut_at != UINT64_MAX) {
		if (truncate(j->path, (off_t)cut_at) < 0) {
			error_set(err, "%s: cannot truncate the torn last line: %s", j->path,
				  strerror(errno));
			goto fail;
		}
		log_warn("journal: truncated a torn last line", "path", j->path, NULL);
	}
	if (open_current(j, err) < 0) {
		free(dmg.segment);
		buf_release(&moved);
		goto fail;
	}
	if (dmg.segment) {
		/* The first record after recovery names what was moved and the
		 * last good record, which its prev chains to. */
		struct buf m = BUF_INIT, what = BUF_INIT;
		const char *seg = strrchr(dmg.segment, '/');
		seg = seg ? seg + 1 : dmg.segment;
		struct record_journal_recovered rv = {
		    .moved = moved.data,
		    .moved_len = moved.len,
		    .segment = seg,
		    .offset = dmg.offset,
		    .bad_seq = dmg.seq,
		    .error = dmg.what,
		    .last_good_seq = j->seq,
		    .last_good_hash = j->prev,
		};
		int bad = record_build_journal_recovered(&m, &rv);
		bad |= buf_addf(&what,
				"record seq %" PRIu64 " at %s offset %" PRIu64
				" was bad (%s); it and everything after it were moved to %s; the "
				"chain goes on from seq %" PRIu64 " (hash %s)",
				dmg.seq, seg, dmg.offset, dmg.what, moved.data, j->seq, j->prev);
		if (!bad)
			bad = append_locked(j, "journal_recovered", "", m.data, m.len, NULL);
		if (!bad) {
			j->recovered = what.data;
			what.data = NULL;
		}
		buf_release(&m);
		buf_release(&what);
		free(dmg.segment);
		buf_release(&moved);
		if (bad) {
			error_set(err, "out of memory");
			goto fail;
		}
		log_error("journal: damaged part moved aside (--recover)", "what", j->recovered,
			  NULL);
	}
	if (cut_at != UINT64_MAX) {
		struct buf tm = BUF_INIT;
		struct record_journal_truncated tv = {
		    .segment = JOURNAL_FILE, .offset = cut_at, .bytes = cut_bytes};
		int bad = record_build_journal_truncated(&tm, &tv) < 0 ||
			  append_locked(j, "journal_truncated", "", tm.data, tm.len, NULL) < 0;
		buf_release(&tm);
		if (bad) {
			error_set(err, "out of memory");
			goto fail;
		}
	}
	struct metric_family *rec =
	    metrics_register(METRIC_COUNTER, "journal_records_total",
			     "Records made durable in the journal.", NULL, NULL, 0);
	struct metric_family *fs =
	    metrics_register(METRIC_HISTOGRAM, "journal_fsync_seconds",
			     "Time of one group commit (write + fdatasync).", NULL, bounds,
			     sizeof(bounds) / sizeof(bounds[0]));
	struct metric_family *je = metrics_register(
	    METRIC_COUNTER, "journal_errors_total",
	    "Failed journal writes or syncs (each answered 503 and retried).", NULL, NULL, 0);
	if (!rec || !fs || !je || !(j->records_total = metrics_child(rec)) ||
	    !(j->fsync_seconds = metrics_child(fs)) || !(j->errors_total = metrics_child(je))) {
		error_set(err, "out of memory");
		goto fail;
	}
	if (pthread_create(&j->thread, NULL, writer_main, j) != 0) {
		error_set(err, "cannot start the journal writer thread");
		goto fail;
	}
	j->thread_started = true;
	*out = j;
	return 0;
fail:
	journal_close(j, 0);
	return -1;
}

bool journal_close(struct journal *j, int timeout_ms)
{
	if (!j)
		return false;
	if (j->thread_started) {
		pthread_mutex_lock(&j->lock);
		j->stop = true;
		j->stop_timeout_ms = timeout_ms;
		pthread_cond_signal(&j->wake);
		pthread_mutex_unlock(&j->lock);
		pthread_join(j->thread, NULL);
		if (j->pending.len)
			log_error("journal: records could not be written before exit", "error",
				  j->last_error, NULL);
	}
	char why[sizeof(j->last_error)];
	bool whole = j->thread_started && !j->pending.len && journal_healthy(j, why, sizeof(why));
	while (j->waiters) { /* only when the writer never started */
		struct waiter *w = j->waiters;
		j->waiters = w->next;
		free(w);
	}
	if (j->fd >= 0)
		close(j->fd);
	buf_release(&j->pending);
	free(j->recovered);
	free(j->dir);
	free(j->path);
	pthread_cond_destroy(&j->wake);
	pthread_mutex_destroy(&j->lock);
	free(j);
	return whole;
}
