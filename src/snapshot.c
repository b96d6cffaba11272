/*
 * snapshot: the compacted journal start-up replays first (snapshot.h has
 * the format and the trust rules).
 *
 * Must never: change the journal, or leave a half-written snapshot.jsonl
 * (it is written to snapshot.jsonl.tmp, synced, renamed, and the directory
 * synced).
 */
#include "rollbackd/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "rollbackd/buf.h"
#include "rollbackd/fs.h"
#include "rollbackd/record.h"

#define TRAILER_MAX 4096
#define TMP_SUFFIX ".tmp"

struct snapshot {
	char *path; /* state_dir/snapshot.jsonl */
	uint64_t body_bytes;
	struct snapshot_point pt;
};

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

void snapshot_free(struct snapshot *s)
{
	if (!s)
		return;
	free(s->path);
	free(s->pt.segment);
	free(s);
}

const struct snapshot_point *snapshot_point(const struct snapshot *s)
{
	return &s->pt;
}

/* What the journal's files were when the snapshot was written: a digest of
 * the closed segments' (name, size, mtime, inode), and the current file's
 * size, mtime and inode. */
struct files_state {
	uint64_t closed;	     /* closed segments, all of them */
	char closed_digest[65];	     /* of the first `prefix` (files_state_of) */
	int64_t size, mtime_ns, ino; /* journal.jsonl; -1: none */
	/* the closed segment right after the first `prefix` ones; -1: none */
	int64_t next_size, next_mtime_ns, next_ino;
};

static int64_t mtime_ns(const struct stat *sb)
{
	return (int64_t)sb->st_mtim.tv_sec * 1000000000 + sb->st_mtim.tv_nsec;
}

/* fs for state_dir's journal; the digest covers the first prefix closed
 * segments (UINT64_MAX: all). */
static int files_state_of(const char *state_dir, uint64_t prefix, struct files_state *fs,
			  struct error *err)
{
	struct journal_reader *r = NULL;
	if (journal_reader_open(state_dir, &r, err) < 0)
		return -1;
	crypto_generichash_state h;
	unsigned char d[32];
	crypto_generichash_init(&h, NULL, 0, 32);
	fs->closed = 0;
	fs->size = fs->mtime_ns = fs->ino = -1;
	fs->next_size = fs->next_mtime_ns = fs->next_ino = -1;
	const char *p;
	int rc = 0;
	for (size_t i = 0; (p = journal_reader_segment(r, i)); i++) {
		struct stat sb;
		if (stat(p, &sb) < 0) {
			rc = error_set(err, "%s: %s", p, strerror(errno));
			break;
		}
		int64_t mt = mtime_ns(&sb);
		if (strcmp(base_name(p), JOURNAL_FILE) == 0) {
			fs->size = (int64_t)sb.st_size;
			fs->mtime_ns = mt;
			fs->ino = (int64_t)sb.st_ino;
			continue;
		}
		if (fs->closed == prefix) {
			fs->next_size = (int64_t)sb.st_size;
			fs->next_mtime_ns = mt;
			fs->next_ino = (int64_t)sb.st_ino;
		}
		if (fs->closed++ >= prefix)
			continue;
		char line[512];
		int n = snprintf(line, sizeof(line), "%s %lld %lld %lld\n", base_name(p),
				 (long long)sb.st_size, (long long)mt, (long long)sb.st_ino);
		crypto_generichash_update(&h, (const unsigned char *)line, (size_t)n);
	}
	journal_reader_free(r);
	crypto_generichash_final(&h, d, sizeof(d));
	sodium_bin2hex(fs->closed_digest, sizeof(fs->closed_digest), d, sizeof(d));
	return rc;
}

/* Whether a file that was (ino, size, mtime) then is the same file now,
 * untouched or only appended to. */
static bool same_or_grown(int64_t ino, int64_t size, int64_t mtime, int64_t ino_then,
			  int64_t size_then, int64_t mtime_then)
{
	/* mtime_then -1: only the size up to the last covered record is known */
	return ino == ino_then &&
	       (size == size_then ? mtime_then == -1 || mtime == mtime_then : size > size_then);
}

/* Whether segment holds at offset a line of len bytes (then '\n') that is
 * record seq with hash. */
static bool record_at(const char *segment, uint64_t offset, uint64_t len, uint64_t seq,
		      const char *hash)
{
	if (len == 0 || len > JOURNAL_MAX_LINE)
		return false;
	int fd = open(segment, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	char *line = malloc(len + 1);
	bool ok = false;
	if (line && pread(fd, line, len + 1, (off_t)offset) == (ssize_t)(len + 1) &&
	    line[len] == '\n') {
		uint64_t got;
		char h[JOURNAL_HASH_HEX + 1];
		struct error err = {{0}};
		ok = journal_check_line(line, len, NULL, seq, &got, h, &err) == 0 &&
		     strcmp(h, hash) == 0;
	}
	free(line);
	close(fd);
	return ok;
}

/* The trailer: the file's last line. 0 with it in out (NUL-terminated) and
 * the body's size, or -1 with err. */
static int read_trailer(int fd, char *out, size_t outsz, uint64_t *body, struct error *err)
{
	struct stat sb;
	if (fstat(fd, &sb) < 0)
		return error_set(err, "%s", strerror(errno));
	size_t n = sb.st_size < (off_t)outsz - 1 ? (size_t)sb.st_size : outsz - 1;
	if (n < 2 || pread(fd, out, n, sb.st_size - (off_t)n) != (ssize_t)n || out[n - 1] != '\n')
		return error_set(err, "no trailer line (a file cut short?)");
	out[n - 1] = '\0';
	char *nl = strrchr(out, '\n');
	size_t start = nl ? (size_t)(nl - out) + 1 : 0;
	if (!nl && (uint64_t)sb.st_size != n)
		return error_set(err, "trailer line longer than %d bytes", TRAILER_MAX);
	*body = (uint64_t)sb.st_size - (n - start);
	memmove(out, out + start, n - start);
	return 0;
}

/* Stream the body: its lines through fn (NULL: only count and hash). */
static int each_line(struct snapshot *s, int (*fn)(const struct journal_line *, void *), void *arg,
		     uint64_t *lines, unsigned char digest[32], struct error *err)
{
	FILE *f = fopen(s->path, "re");
	if (!f)
		return error_set(err, "%s: %s", s->path, strerror(errno));
	crypto_generichash_state h;
	crypto_generichash_init(&h, NULL, 0, 32);
	char *line = NULL;
	size_t cap = 0;
	uint64_t off = 0, n = 0;
	int rc = 0;
	while (off < s->body_bytes) {
		ssize_t got = getline(&line, &cap, f);
		if (got <= 0 || line[got - 1] != '\n' || (uint64_t)got > JOURNAL_MAX_LINE ||
		    off + (uint64_t)got > s->body_bytes) {
			rc =
			    error_set(err, "%s: offset %" PRIu64 ": a body line is cut or too long",
				      s->path, off);
			break;
		}
		crypto_generichash_update(&h, (const unsigned char *)line, (size_t)got);
		struct journal_line jl = {line, (size_t)got - 1, s->path, off};
		if (fn && fn(&jl, arg) < 0) {
			rc = error_set(err, "%s: offset %" PRIu64 ": cannot replay this line",
				       s->path, off);
			break;
		}
		off += (uint64_t)got;
		n++;
	}
	free(line);
	fclose(f);
	crypto_generichash_final(&h, digest, 32);
	*lines = n;
	return rc;
}

int snapshot_load(const char *state_dir, struct snapshot **out, struct error *err)
{
	struct snapshot *s = calloc(1, sizeof(*s));
	char trailer[TRAILER_MAX];
	struct record_toks toks = {0};
	struct journal_reader *r = NULL;
	int rc = -1;
	if (!s || !(s->path = fs_join(state_dir, SNAPSHOT_FILE))) {
		error_set(err, "out of memory");
		goto out;
	}
	int fd = open(s->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = errno == ENOENT ? 0 : error_set(err, "%s: %s", s->path, strerror(errno));
		goto out;
	}
	int t = read_trailer(fd, trailer, sizeof(trailer), &s->body_bytes, err);
	close(fd);
	if (t < 0)
		goto out;
	struct record rec;
	char segment[256], hash[JOURNAL_HASH_HEX + 1], digest_hex[65];
	int64_t version = 0, offset = -1, len = -1, lines = -1, bytes = -1;
	if (record_decode(trailer, strlen(trailer), &rec, &toks) != RECORD_OK ||
	    !record_get_int(&rec, "snapshot", &version) || version != 1 || !rec.has_seq ||
	    !record_str(&rec, "hash", hash, sizeof(hash)) || strlen(hash) != JOURNAL_HASH_HEX ||
	    !record_str(&rec, "segment", segment, sizeof(segment)) || strchr(segment, '/') ||
	    !record_get_int(&rec, "offset", &offset) || !record_get_int(&rec, "len", &len) ||
	    !record_get_int(&rec, "lines", &lines) || !record_get_int(&rec, "bytes", &bytes) ||
	    !record_str(&rec, "digest", digest_hex, sizeof(digest_hex)) || offset < 0 || len <= 0 ||
	    lines < 0 || bytes < 0) {
		error_set(err, "%s: its trailer is not a snapshot version 1 trailer", s->path);
		goto out;
	}
	if ((uint64_t)bytes != s->body_bytes) {
		error_set(err, "%s: the body is %" PRIu64 " bytes, the trailer says %" PRId64,
			  s->path, s->body_bytes, bytes);
		goto out;
	}
	s->pt.seq = rec.seq;
	memcpy(s->pt.hash, hash, sizeof(hash));
	/* The files as the snapshot left them: closed segments untouched, the
	 * current one the same file, untouched or only grown (a later run that
	 * did not stop cleanly appended to it, or this one after a periodic
	 * snapshot), or since closed as the next segment (a rotation), with
	 * newer segments after it. Anything else (an edit, a restore from
	 * backup, a removed segment) and the whole journal is checked. */
	struct files_state now, then = {0};
	int64_t closed = -1;
	if (!record_get_int(&rec, "closed", &closed) ||
	    !record_str(&rec, "closed_digest", then.closed_digest, sizeof(then.closed_digest)) ||
	    !record_get_int(&rec, "current_size", &then.size) ||
	    !record_get_int(&rec, "current_mtime_ns", &then.mtime_ns) ||
	    !record_get_int(&rec, "current_ino", &then.ino) || closed < 0) {
		error_set(err, "%s: its trailer does not say what the journal's files were",
			  s->path);
		goto out;
	}
	if (files_state_of(state_dir, (uint64_t)closed, &now, err) < 0)
		goto out;
	if (now.closed < (uint64_t)closed || strcmp(then.closed_digest, now.closed_digest) != 0) {
		error_set(err, "%s: the journal's closed segments changed since it was written",
			  s->path);
		goto out;
	}
	bool rotated = now.closed > (uint64_t)closed;
	if (then.ino >= 0 &&
	    !(rotated ? same_or_grown(now.next_ino, now.next_size, now.next_mtime_ns, then.ino,
				      then.size, then.mtime_ns)
		      : same_or_grown(now.ino, now.size, now.mtime_ns, then.ino, then.size,
				      then.mtime_ns))) {
		error_set(err, "%s: %s changed since it was written (not only appended to)",
			  s->path, JOURNAL_FILE);
		goto out;
	}
	/* Its last record, where it says; or, when that was the current file,
	 * in a segment closed since (newest first). */
	if (journal_reader_open(state_dir, &r, err) < 0)
		goto out;
	size_t n_segs = 0;
	while (journal_reader_segment(r, n_segs))
		n_segs++;
	for (size_t i = n_segs; i-- > 0 && !s->pt.segment;) {
		const char *p = journal_reader_segment(r, i);
		bool named = strcmp(base_name(p), segment) == 0;
		if (!named && strcmp(segment, JOURNAL_FILE) != 0)
			continue;
		if (record_at(p, (uint64_t)offset, (uint64_t)len, s->pt.seq, hash) &&
		    !(s->pt.segment = strdup(p))) {
			error_set(err, "out of memory");
			goto out;
		}
	}
	if (!s->pt.segment) {
		error_set(err,
			  "%s: the journal no longer holds its last record (seq %" PRIu64
			  " at %s offset %" PRId64 ")",
			  s->path, s->pt.seq, segment, offset);
		goto out;
	}
	s->pt.record_offset = (uint64_t)offset;
	s->pt.record_len = (uint64_t)len;
	s->pt.offset = (uint64_t)offset + (uint64_t)len + 1;
	unsigned char digest[32];
	char hex[65];
	if (each_line(s, NULL, NULL, &s->pt.lines, digest, err) < 0)
		goto out;
	sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
	if (strcmp(hex, digest_hex) != 0 || s->pt.lines != (uint64_t)lines) {
		error_set(err, "%s: its body does not match its digest", s->path);
		goto out;
	}
	*out = s;
	s = NULL;
	rc = 1;
out:
	journal_reader_free(r);
	record_toks_release(&toks);
	snapshot_free(s);
	return rc;
}

int snapshot_replay(struct snapshot *s, int (*fn)(const struct journal_line *line, void *arg),
		    void *arg, struct error *err)
{
	uint64_t lines = 0;
	unsigned char digest[32];
	if (each_line(s, fn, arg, &lines, digest, err) < 0)
		return -1;
	if (lines != s->pt.lines)
		return error_set(err, "%s: changed while it was read", s->path);
	return 0;
}

/* ---- writing ------------------------------------------------------------- */

struct writer {
	FILE *f;
	crypto_generichash_state h;
	uint64_t lines, bytes;
	const struct snapshot_source *src;
	struct record_toks toks;
	struct snapshot_stats *st;
	/* the last journal record seen (hash: the next one's prev) */
	uint64_t seq;
	char hash[JOURNAL_HASH_HEX + 1];
	char segment[256];
	uint64_t offset, len;
};

static int put(struct writer *w, const char *text, size_t len)
{
	if (fwrite(text, 1, len, w->f) != len)
		return -1;
	crypto_generichash_update(&w->h, (const unsigned char *)text, len);
	w->bytes += len;
	for (size_t i = 0; i < len; i++)
		w->lines += text[i] == '\n';
	return 0;
}

/* A journal line (its own, or a copy in the previous snapshot): kept when
 * the source wants it. */
static int consider(struct writer *w, const char *text, size_t len, bool state_line_ok)
{
	struct record rec;
	if (record_decode(text, len, &rec, &w->toks) == RECORD_ENOMEM)
		return -1;
	if (record_is_snapshot_state(rec.type))
		return state_line_ok ? 0 : -1; /* the old state: written afresh */
	if (!w->src->keep(&rec, w->src->arg))
		return 0;
	w->st->kept++;
	if (put(w, text, len) < 0 || put(w, "\n", 1) < 0)
		return -1;
	return 0;
}

static int from_previous(const struct journal_line *line, void *arg)
{
	return consider(arg, line->text, line->len, true);
}

int snapshot_write(const char *state_dir, const struct snapshot_source *src,
		   struct snapshot_stats *st, struct error *err)
{
	struct writer w = {.src = src, .st = st};
	struct snapshot *prev = NULL;
	struct journal_reader *r = NULL;
	struct buf state = BUF_INIT, trailer = BUF_INIT;
	char *path = fs_join(state_dir, SNAPSHOT_FILE),
	     *tmp = fs_join(state_dir, SNAPSHOT_FILE TMP_SUFFIX);
	int rc = -1;
	memset(st, 0, sizeof(*st));
	if (!path || !tmp) {
		error_set(err, "out of memory");
		goto out;
	}
	struct error perr = {{0}};
	if (snapshot_load(state_dir, &prev, &perr) < 0)
		prev = NULL; /* unusable: built from the whole journal instead */
	if (!(w.f = fopen(tmp, "we"))) {
		error_set(err, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	crypto_generichash_init(&w.h, NULL, 0, 32);
	for (int more = 1; more == 1;) { /* in parts: never all of it in memory */
		buf_reset(&state);
		if ((more = src->state(&state, src->arg)) < 0) {
			error_set(err, "out of memory");
			goto out;
		}
		if (state.len && put(&w, state.data, state.len) < 0) {
			error_set(err, "%s: %s", tmp, strerror(errno));
			goto out;
		}
	}
	st->state_lines = w.lines;
	memset(w.hash, '0', JOURNAL_HASH_HEX); /* the first record's prev */
	if (journal_reader_open(state_dir, &r, err) < 0)
		goto out;
	if (prev) {
		const struct snapshot_point *pt = snapshot_point(prev);
		if (snapshot_replay(prev, from_previous, &w, err) < 0 ||
		    journal_reader_seek(r, pt->segment, pt->offset, err) < 0)
			goto out;
		if (pt->seq > src->upto) {
			error_set(err, "the snapshot on disk covers seq %" PRIu64 ", past %" PRIu64,
				  pt->seq, src->upto);
			goto out;
		}
		w.seq = pt->seq;
		memcpy(w.hash, pt->hash, sizeof(w.hash));
		snprintf(w.segment, sizeof(w.segment), "%s", base_name(pt->segment));
		w.offset = pt->record_offset; /* the same point when nothing follows */
		w.len = pt->record_len;
		st->from_previous = true;
	}
	struct journal_line line;
	bool torn = false;
	int got;
	bool any = prev != NULL;
	while ((got = journal_reader_next(r, &line, &torn, err)) == 1) {
		if (torn)
			break; /* a write cut short is not a record */
		uint64_t seq;
		char hash[JOURNAL_HASH_HEX + 1];
		if (journal_check_line(line.text, line.len, w.hash, w.seq + 1, &seq, hash, err) <
		    0) {
			error_prefix(err, "%s: offset %" PRIu64 ": ", line.segment, line.offset);
			goto out;
		}
		st->read++;
		if (consider(&w, line.text, line.len, false) < 0) {
			error_set(err, "%s: %s", tmp, errno ? strerror(errno) : "out of memory");
			goto out;
		}
		w.seq = seq;
		memcpy(w.hash, hash, sizeof(w.hash));
		snprintf(w.segment, sizeof(w.segment), "%s", base_name(line.segment));
		w.offset = line.offset;
		w.len = line.len;
		any = true;
		if (seq == src->upto)
			break; /* a live journal: what follows is not covered */
	}
	if (got < 0)
		goto out;
	if (w.seq != src->upto) {
		error_set(err, "the journal ends at seq %" PRIu64 ", before seq %" PRIu64, w.seq,
			  src->upto);
		goto out;
	}
	if (!any) {
		rc = 0; /* an empty journal: nothing to snapshot */
		goto out;
	}
	unsigned char digest[32];
	char hex[65];
	crypto_generichash_final(&w.h, digest, sizeof(digest));
	sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
	struct files_state fs;
	if (files_state_of(state_dir, UINT64_MAX, &fs, err) < 0)
		goto out;
	if (fs.ino >= 0 && src->live) {
		/* what follows the last covered record may not be on disk yet */
		bool here = strcmp(w.segment, JOURNAL_FILE) == 0;
		fs.size = here ? (int64_t)(w.offset + w.len + 1) : 0;
		fs.mtime_ns = -1;
	}
	if (buf_addf(&trailer,
		     "{\"type\":\"snapshot_trailer\",\"snapshot\":1,\"seq\":%" PRIu64
		     ",\"hash\":\"%s\",\"closed\":%" PRIu64
		     ",\"closed_digest\":\"%s\",\"current_size\":%lld,\"current_mtime_ns\":%lld,"
		     "\"current_ino\":%lld,\"segment\":",
		     w.seq, w.hash, fs.closed, fs.closed_digest, (long long)fs.size,
		     (long long)fs.mtime_ns, (long long)fs.ino) ||
	    buf_add_json_str(&trailer, w.segment, strlen(w.segment)) ||
	    buf_addf(&trailer,
		     ",\"offset\":%" PRIu64 ",\"len\":%" PRIu64 ",\"lines\":%" PRIu64
		     ",\"bytes\":%" PRIu64 ",\"digest\":\"%s\"}\n",
		     w.offset, w.len, w.lines, w.bytes, hex)) {
		error_set(err, "out of memory");
		goto out;
	}
	st->seq = w.seq;
	st->bytes = w.bytes;
	if (fwrite(trailer.data, 1, trailer.len, w.f) != trailer.len || fflush(w.f) != 0 ||
	    fsync(fileno(w.f)) != 0) {
		error_set(err, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	fclose(w.f);
	w.f = NULL;
	if (src->commit && src->commit(src->arg, err) < 0) {
		unlink(tmp);
		goto out;
	}
	if (rename(tmp, path) < 0) {
		error_set(err, "%s: %s", path, strerror(errno));
		goto out;
	}
	(void)fs_fsync_dir(state_dir);
	rc = 0;
out:
	if (w.f) {
		fclose(w.f);
		unlink(tmp);
	}
	journal_reader_free(r);
	record_toks_release(&w.toks);
	snapshot_free(prev);
	buf_release(&state);
	buf_release(&trailer);
	free(path);
	free(tmp);
	return rc;
}
