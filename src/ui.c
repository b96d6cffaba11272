/*
 * ui: the operator console (SPEC §13).
 *
 * Pages are rendered here from engine.h (engine_incidents_json,
 * engine_incident_json) and from the journal; buttons go through
 * engine_ack / engine_approve / engine_set_paused, exactly like the API.
 * Never: interpolate text into HTML without links_html_escape, change state
 * on a GET, change state on a POST without a valid session and its CSRF
 * token, or compare a token other than in constant time.
 *
 * Reading the journal without blocking a loop: a thread of this module
 * tails every segment of state_dir's journal and keeps, per incident, the
 * (file, offset, length) of its records (8 bytes each: the first 4 in its
 * 64-byte entry, past 4 all of them in pooled blocks), at most UI_TIMELINE_MAX per incident,
 * UI_INDEX_MAX_REFS in all, and the records of at most limits.max_incidents incidents, like the
 * engine (the oldest incidents leave the index first; they stay in the journal, and their page says
 * that their timeline is older than the index). It keeps every segment's file descriptor open, so a
 * segment renamed by rotation is still read through the same descriptor. A page asks the thread to
 * catch up with the end of the journal and waits for it at most UI_CATCHUP_WAIT_MS, then reads only
 * its incident's records with pread, at most UI_TIMELINE_BYTES. The first
 * scan of a large journal runs on that thread; pages say it is still under
 * way instead of waiting for it.
 *
 * Sessions: a sign-in (the api token, compared constant-time) creates a
 * random session id (the cookie, HttpOnly; SameSite=Strict; Secure when
 * public_url is https; Max-Age UI_SESSION_TTL_S) and a random CSRF token
 * bound to it, both kept in memory only: a restart signs everyone out.
 *
 * Over 800 lines (about 2 100): the journal index thread, sessions, HTML
 * rendering and the pages share one struct ui and its lock; the journal index
 * is the first part to move to its own file.
 */
#include "rollbackd/ui.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sodium.h>

#include "rollbackd/audit.h"
#include "rollbackd/engine.h"
#include "rollbackd/journal.h"
#include "rollbackd/links.h"
#include "rollbackd/log.h"
#include "rollbackd/record.h"
#include "rollbackd/text.h"
#include "rollbackd/timestamp.h"

#define UI_ID_MAX 64
#define UI_CATCHUP_WAIT_MS 200
#define UI_SCAN_CHUNK (JOURNAL_MAX_LINE + (256u << 10))
#define UI_FORM_FIELD_MAX 512
#define UI_VALUE_MAX 96
#define UI_MAX_FILES 4096
#define UI_MAX_SPANS 4096
#define UI_TRIM_EVICTED 10000 /* malloc_trim once this many left the index (a burst) */
#define TOKEN_HEX 64	      /* 32 random bytes */
#define SESSION_COOKIE "rollbackd_session"
#define LOGIN_COOKIE "rollbackd_login"

const char ui_stylesheet[] =
    ":root{--fg:#1b1f24;--mute:#5b6470;--bg:#fff;--line:#d8dde3;--accent:#0b5cad;"
    "--bad:#b42318;--warn:#9a6700;--good:#1a7f37}\n"
    "*{box-sizing:border-box}\n"
    "body{margin:0;font:15px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;"
    "color:var(--fg);background:var(--bg)}\n"
    "header.top{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;"
    "padding:.6rem 1rem;border-bottom:1px solid var(--line);background:#f6f8fa}\n"
    "header.top a.home{font-weight:700;color:var(--fg);text-decoration:none}\n"
    "header.top form{margin-left:auto}\n"
    "main{max-width:72rem;margin:0 auto;padding:1rem}\n"
    "h1{font-size:1.35rem;margin:.2rem 0 .8rem}h2{font-size:1.1rem;margin:1.4rem 0 .5rem}\n"
    "a{color:var(--accent)}\n"
    "code,pre{font:13px/1.4 ui-monospace,Menlo,Consolas,monospace}\n"
    "pre{background:#f6f8fa;border:1px solid var(--line);padding:.5rem;overflow-x:auto;"
    "white-space:pre-wrap;word-break:break-word;margin:.3rem 0}\n"
    ".banner{padding:.6rem 1rem;margin:0 0 1rem;border:1px solid var(--line);"
    "display:flex;flex-wrap:wrap;gap:.5rem;align-items:center}\n"
    ".banner.paused{background:#fff4e5;border-color:#f5b041;font-weight:600}\n"
    ".banner.running{background:#eefbf1;border-color:#9ad6a9}\n"
    ".banner form{margin-left:auto}\n"
    ".notice{padding:.5rem 1rem;background:#eef6ff;border:1px solid #9cc3ee;margin:0 0 1rem}\n"
    ".error{padding:.5rem 1rem;background:#fdecea;border:1px solid #f1998e;margin:0 0 1rem}\n"
    "table{border-collapse:collapse;width:100%}\n"
    "th,td{text-align:left;padding:.4rem .5rem;border-bottom:1px solid var(--line);"
    "vertical-align:top}\n"
    "th{font-size:.85rem;color:var(--mute);font-weight:600}\n"
    ".state{display:inline-block;padding:0 .4rem;border-radius:.6rem;font-size:.85rem;"
    "background:#eaeef2;white-space:nowrap}\n"
    ".state.rolled_back,.state.effective{background:#dafbe1;color:var(--good)}\n"
    ".state.action_failed,.state.ineffective,.state.unknown,.state.inconclusive"
    "{background:#ffebe9;color:var(--bad)}\n"
    ".state.awaiting_approval,.state.held,.state.pending{background:#fff8c5;color:var(--warn)}\n"
    "nav.filter{display:flex;flex-wrap:wrap;gap:.3rem .8rem;margin:0 0 .8rem}\n"
    "nav.filter a.on{font-weight:700;text-decoration:none;color:var(--fg)}\n"
    "nav.pages{display:flex;gap:1rem;margin:.8rem 0}\n"
    "dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem;margin:0}\n"
    "dl.facts dt{color:var(--mute)}dl.facts dd{margin:0;word-break:break-word}\n"
    "form.act{display:flex;flex-wrap:wrap;gap:.5rem;align-items:flex-end;margin:.6rem 0;"
    "padding:.6rem;border:1px solid var(--line)}\n"
    "form.act label{display:flex;flex-direction:column;font-size:.85rem;color:var(--mute)}\n"
    "input[type=text],input[type=password]{font:inherit;padding:.35rem .5rem;"
    "border:1px solid #afb8c1;min-width:12rem;max-width:100%}\n"
    "button{font:inherit;padding:.35rem .9rem;border:1px solid #1f6feb;background:#1f6feb;"
    "color:#fff;border-radius:4px;cursor:pointer}\n"
    "button.quiet{background:#fff;color:var(--fg);border-color:#afb8c1}\n"
    "ol.timeline{list-style:none;padding:0;margin:0}\n"
    "ol.timeline li{border-left:3px solid var(--line);padding:.3rem 0 .5rem .8rem;margin:0}\n"
    "ol.timeline li.decision{border-color:#8250df}ol.timeline li.action_started,"
    "ol.timeline li.action_finished{border-color:#1f6feb}\n"
    "ol.timeline li.ack,ol.timeline li.approve{border-color:var(--good)}\n"
    "ol.timeline li.notify_failed{border-color:var(--bad)}\n"
    ".when{color:var(--mute);font-size:.85rem;margin-right:.5rem}\n"
    ".type{font-weight:600;margin-right:.5rem}\n"
    "svg.chart{max-width:100%;height:auto;border:1px solid var(--line);background:#fff}\n"
    ".mute{color:var(--mute)}\n"
    "@media (max-width:640px){main{padding:.6rem}"
    "table.incidents thead{display:none}"
    "table.incidents tr{display:block;border-bottom:1px solid var(--line);padding:.4rem 0}"
    "table.incidents td{display:block;border:0;padding:.1rem 0}"
    "table.incidents td[data-k]::before{content:attr(data-k) ': ';color:var(--mute)}"
    "dl.facts{grid-template-columns:1fr}dl.facts dd{margin-bottom:.4rem}}\n";

/* ---- the journal index ------------------------------------------------- */

/* Where one record is, in 8 bytes: its span (index into ui_index.spans,
 * < UI_MAX_SPANS), the low 32 bits of its offset in the span's file, and
 * its length (1..JOURNAL_MAX_LINE). */
struct ui_ref {
	uint32_t off_lo;
	uint32_t span_len; /* span << 20 | (len - 1) */
};
_Static_assert(UI_MAX_SPANS <= 1u << 12 && JOURNAL_MAX_LINE <= 1u << 20,
	       "a ui_ref packs a span in 12 bits and a length in 20");

/* A file and the high 32 bits of the offsets of its refs: a file takes a
 * span when it is opened and one more each time it grows past another
 * 4 GiB (journal.segment_bytes may be up to LLONG_MAX, and a segment may
 * pass it by a batch). */
struct ui_span {
	uint32_t file, hi; /* file: index into ui_index.fds */
};

static struct ui_ref ref_make(uint32_t span, uint64_t off, uint32_t len)
{
	return (struct ui_ref){(uint32_t)off, span << 20 | (len - 1)};
}
static uint32_t ref_span(struct ui_ref r)
{
	return r.span_len >> 20;
}
static uint32_t ref_len(struct ui_ref r)
{
	return (r.span_len & ((1u << 20) - 1)) + 1;
}

/* An incident's first UI_INLINE_REFS refs live in its entry; past them,
 * all its refs move to a chain of blocks from one pool (a free list, no
 * allocation per record): 60 bytes hold 7. The pool grows a chunk of
 * UI_CHUNK_BLOCKS blocks (60 KiB) at a time: no doubling, no copy. */
#define UI_INLINE_REFS 4
#define UI_BLOCK_REFS 7
#define UI_CHUNK_BLOCKS 1024
#define UI_NONE UINT32_MAX
struct ui_block {
	struct ui_ref r[UI_BLOCK_REFS];
	uint32_t next; /* the next block of the chain, or the free list; UI_NONE */
};
_Static_assert(sizeof(struct ui_block) == 60, "a block is 60 bytes");
_Static_assert(UI_INLINE_REFS < UI_BLOCK_REFS, "a spill fits in one block");

/* The last decision's value member, kept as numbers (value_format makes
 * "0.05 > 0.01" of it). */
enum { VAL_NONE, VAL_NOT_NUMERIC, VAL_ONLY, VAL_ABOVE, VAL_BELOW };
union ui_num {
	json_int_t i;
	double d;
};
struct ui_value {
	union ui_num x, thr;
	uint8_t kind;
	bool x_int, thr_int;
};

/* One incident: 64 bytes, plus 8 to 16 bytes of hash table (buckets of 4
 * bytes, at most half full), plus its blocks past UI_INLINE_REFS refs. */
struct ui_entry {
	uint64_t key;	     /* index_key of its id */
	union ui_num x, thr; /* its value (a struct ui_value, packed) */
	uint32_t dropped;    /* records past UI_TIMELINE_MAX (or without a span) */
	uint16_t n;	     /* refs kept, at most UI_TIMELINE_MAX */
	uint8_t kind;	     /* of its value; VAL_NONE: no decision with a value yet */
	bool x_int : 1, thr_int : 1;
	union {
		struct ui_ref r[UI_INLINE_REFS]; /* n <= UI_INLINE_REFS */
		struct {
			uint32_t head, tail;
		} chain; /* n > UI_INLINE_REFS: all n refs, in blocks */
	} refs;
};
_Static_assert(sizeof(struct ui_entry) == 64, "an entry is 64 bytes");
_Static_assert(UI_TIMELINE_MAX <= UINT16_MAX, "ui_entry.n is 16 bits");

static struct ui_value entry_value(const struct ui_entry *e)
{
	return (struct ui_value){e->x, e->thr, e->kind, e->x_int, e->thr_int};
}
static void entry_set_value(struct ui_entry *e, const struct ui_value *v)
{
	e->x = v->x;
	e->thr = v->thr;
	e->kind = v->kind;
	e->x_int = v->x_int;
	e->thr_int = v->thr_int;
}

/* Lock: lock guards every field below but thread, started, dir, pos,
 * file_span and key (thread-only or set before the thread starts); nothing
 * slow (no I/O, no JSON parsing) runs under it. The incidents indexed are
 * ents, a ring in the order they first appeared: at most index_max()
 * (limits.max_incidents, never above UI_INDEX_MAX_REFS) and
 * UI_INDEX_MAX_REFS refs together, the oldest leaving first. buckets (open
 * addressing, linear probing, at most half full) map a key to its position
 * in ents. */
struct ui_index {
	pthread_t thread;
	bool started;
	pthread_mutex_t lock; /* guards everything below; nothing slow runs under it */
	pthread_cond_t wake;  /* the thread waits here for a kick or a tick */
	pthread_cond_t done;  /* pages wait here for a scan to end */
	bool stop;
	uint64_t kick_gen, done_gen;
	bool first_scan_done;
	uint64_t scanned_bytes;
	char *dir;
	_Atomic size_t max_incidents; /* limits.max_incidents of the current config */
	unsigned char key[crypto_shorthash_KEYBYTES]; /* hashes ids and buckets */
	/* files and spans: only the thread adds; fds stay open until ui_free */
	int fds[UI_MAX_FILES];
	uint64_t pos[UI_MAX_FILES];	  /* thread-only: next byte to read */
	uint32_t file_span[UI_MAX_FILES]; /* thread-only: the file's last span */
	struct record_toks toks;	  /* thread-only: index_line's decoder */
	uint32_t n_files;
	bool have_current; /* fds[n_files - 1] is journal.jsonl (or was, before a rename) */
	struct ui_span spans[UI_MAX_SPANS];
	uint32_t n_spans;
	/* incidents */
	struct ui_entry *ents;
	size_t cap_ents, first, count; /* the ring: ents[(first + i) % cap_ents] */
	uint32_t *buckets;	       /* position in ents, or UI_NONE */
	size_t n_buckets;	       /* a power of two, >= 2 * cap_ents */
	struct ui_block **chunks;      /* block b: chunks[b / UI_CHUNK_BLOCKS][b % ...] */
	size_t n_chunks, cap_chunks;
	size_t used_blocks;  /* blocks [0, used_blocks) were handed out once */
	uint32_t free_block; /* free list (through next), or UI_NONE */
	size_t total_refs;
	size_t evicted; /* incidents that left the index */
};

/* The incidents the index keeps: limits.max_incidents (0: no limit), and
 * never more than UI_INDEX_MAX_REFS (each has a record). */
static size_t index_max(struct ui_index *ix)
{
	size_t max = atomic_load(&ix->max_incidents);
	return max && max < UI_INDEX_MAX_REFS ? max : UI_INDEX_MAX_REFS;
}

/* The 64 bits that stand for an incident id: those of an engine id
 * ("inc-" + 16 lowercase hex) themselves, a keyed hash of any other. Two
 * ids with one key share an entry; index_records keeps only the records of
 * the id asked for. */
static uint64_t index_key(const struct ui_index *ix, const char *id)
{
	size_t n = strlen(id);
	uint64_t k = 0;
	if (n == 20 && memcmp(id, "inc-", 4) == 0 && strspn(id + 4, "0123456789abcdef") == 16) {
		for (size_t i = 4; i < 20; i++)
			k = k << 4 | (uint64_t)(id[i] <= '9' ? id[i] - '0' : id[i] - 'a' + 10);
		return k;
	}
	unsigned char h[crypto_shorthash_BYTES];
	crypto_shorthash(h, (const unsigned char *)id, n, ix->key);
	memcpy(&k, h, sizeof(k));
	return k;
}

static size_t bucket_of(const struct ui_index *ix, uint64_t key)
{
	unsigned char h[crypto_shorthash_BYTES];
	uint64_t b;
	crypto_shorthash(h, (const unsigned char *)&key, sizeof(key), ix->key);
	memcpy(&b, h, sizeof(b));
	return (size_t)b & (ix->n_buckets - 1);
}

/* The bucket holding key, or the empty one where it would go. Under lock. */
static size_t bucket_find(const struct ui_index *ix, uint64_t key)
{
	size_t b = bucket_of(ix, key);
	while (ix->buckets[b] != UI_NONE && ix->ents[ix->buckets[b]].key != key)
		b = (b + 1) & (ix->n_buckets - 1);
	return b;
}

/* Empty bucket b, moving back the entries after it that probed past it. */
static void bucket_del(struct ui_index *ix, size_t b)
{
	size_t mask = ix->n_buckets - 1, j = b;
	ix->buckets[b] = UI_NONE;
	for (;;) {
		j = (j + 1) & mask;
		if (ix->buckets[j] == UI_NONE)
			return;
		size_t home = bucket_of(ix, ix->ents[ix->buckets[j]].key);
		/* j's entry may move to b when its home is not in (b, j] */
		if (((j - home) & mask) >= ((j - b) & mask)) {
			ix->buckets[b] = ix->buckets[j];
			ix->buckets[j] = UI_NONE;
			b = j;
		}
	}
}

/* The entry of key, or NULL. Under lock. */
static struct ui_entry *index_find(const struct ui_index *ix, uint64_t key)
{
	if (!ix->n_buckets)
		return NULL;
	uint32_t at = ix->buckets[bucket_find(ix, key)];
	return at == UI_NONE ? NULL : &ix->ents[at];
}

static struct ui_block *block_at(const struct ui_index *ix, uint32_t b)
{
	return &ix->chunks[b / UI_CHUNK_BLOCKS][b % UI_CHUNK_BLOCKS];
}

static void blocks_release(struct ui_index *ix, struct ui_entry *e)
{
	if (e->n <= UI_INLINE_REFS)
		return;
	block_at(ix, e->refs.chain.tail)->next = ix->free_block;
	ix->free_block = e->refs.chain.head;
	e->n = 0;
}

/* A block off the free list, or a new one (a new chunk when the last is
 * full); UI_NONE on OOM. */
static uint32_t block_take(struct ui_index *ix)
{
	uint32_t b = ix->free_block;
	if (b != UI_NONE) {
		ix->free_block = block_at(ix, b)->next;
	} else {
		if (ix->used_blocks == ix->n_chunks * UI_CHUNK_BLOCKS) {
			if (ix->used_blocks >= UI_NONE - UI_CHUNK_BLOCKS)
				return UI_NONE;
			if (ix->n_chunks == ix->cap_chunks) {
				size_t cap = ix->cap_chunks ? ix->cap_chunks * 2 : 16;
				struct ui_block **nc = realloc(ix->chunks, cap * sizeof(*nc));
				if (!nc)
					return UI_NONE;
				ix->chunks = nc;
				ix->cap_chunks = cap;
			}
			struct ui_block *c = malloc(UI_CHUNK_BLOCKS * sizeof(*c));
			if (!c)
				return UI_NONE;
			ix->chunks[ix->n_chunks++] = c;
		}
		b = (uint32_t)ix->used_blocks++;
	}
	block_at(ix, b)->next = UI_NONE;
	return b;
}

/* Drop the oldest incident. Under lock. */
static void index_drop_oldest(struct ui_index *ix)
{
	struct ui_entry *e = &ix->ents[ix->first];
	bucket_del(ix, bucket_find(ix, e->key));
	ix->total_refs -= e->n;
	blocks_release(ix, e);
	ix->first = (ix->first + 1) % ix->cap_ents;
	ix->count--;
	ix->evicted++;
}

/* Drop the oldest incidents until at most keep are left and the refs fit.
 * Under lock. */
static void index_evict(struct ui_index *ix, size_t keep)
{
	while (ix->count && (ix->count > keep || ix->total_refs > UI_INDEX_MAX_REFS))
		index_drop_oldest(ix);
}

/* Room for cap entries (the ring unwrapped into a new array, the table
 * rebuilt); -1 on OOM, nothing changed. Under lock. */
static int index_grow(struct ui_index *ix, size_t cap)
{
	size_t nb = 16;
	while (nb < 2 * cap)
		nb *= 2;
	struct ui_entry *ents = malloc(cap * sizeof(*ents));
	uint32_t *buckets = malloc(nb * sizeof(*buckets));
	if (!ents || !buckets) {
		free(ents);
		free(buckets);
		return -1;
	}
	for (size_t i = 0; i < ix->count; i++)
		ents[i] = ix->ents[(ix->first + i) % ix->cap_ents];
	memset(buckets, 0xff, nb * sizeof(*buckets)); /* UI_NONE */
	free(ix->ents);
	free(ix->buckets);
	ix->ents = ents;
	ix->cap_ents = cap;
	ix->first = 0;
	ix->buckets = buckets;
	ix->n_buckets = nb;
	for (size_t i = 0; i < ix->count; i++)
		ix->buckets[bucket_find(ix, ents[i].key)] = (uint32_t)i;
	return 0;
}

/* The entry of key, made (the newest) when absent: the oldest leave first
 * past index_max(). NULL on OOM. Under lock. */
static struct ui_entry *index_entry(struct ui_index *ix, uint64_t key)
{
	struct ui_entry *e = index_find(ix, key);
	if (e)
		return e;
	size_t max = index_max(ix);
	index_evict(ix, max - 1);
	if (ix->count == ix->cap_ents) {
		size_t cap = ix->cap_ents ? ix->cap_ents * 2 : 256;
		if (cap > max)
			cap = max; /* > cap_ents: count < max here */
		if (index_grow(ix, cap) < 0)
			return NULL;
	}
	size_t at = (ix->first + ix->count) % ix->cap_ents;
	e = &ix->ents[at];
	*e = (struct ui_entry){.key = key}; /* kind VAL_NONE */
	ix->buckets[bucket_find(ix, key)] = (uint32_t)at;
	ix->count++;
	return e;
}

/* Append r to e's refs (its first block when they spill from the entry);
 * false on OOM. Under lock. */
static bool entry_add(struct ui_index *ix, struct ui_entry *e, struct ui_ref r)
{
	if (e->n < UI_INLINE_REFS) {
		e->refs.r[e->n] = r;
	} else if (e->n == UI_INLINE_REFS) {
		uint32_t b = block_take(ix);
		if (b == UI_NONE)
			return false;
		struct ui_block *bl = block_at(ix, b);
		memcpy(bl->r, e->refs.r, sizeof(e->refs.r));
		bl->r[UI_INLINE_REFS] = r;
		e->refs.chain.head = e->refs.chain.tail = b;
	} else {
		uint32_t slot = e->n % UI_BLOCK_REFS;
		if (slot == 0) {
			uint32_t b = block_take(ix);
			if (b == UI_NONE)
				return false;
			block_at(ix, e->refs.chain.tail)->next = b;
			e->refs.chain.tail = b;
		}
		block_at(ix, e->refs.chain.tail)->r[slot] = r;
	}
	e->n++;
	ix->total_refs++;
	return true;
}

/* e's n refs, in journal order, into out. Under lock. */
static void entry_refs(const struct ui_index *ix, const struct ui_entry *e, struct ui_ref *out)
{
	if (e->n <= UI_INLINE_REFS) {
		memcpy(out, e->refs.r, e->n * sizeof(*out));
		return;
	}
	uint32_t b = e->refs.chain.head;
	for (uint32_t i = 0; i < e->n; i += UI_BLOCK_REFS) {
		const struct ui_block *bl = block_at(ix, b);
		uint32_t k = e->n - i < UI_BLOCK_REFS ? e->n - i : UI_BLOCK_REFS;
		memcpy(out + i, bl->r, k * sizeof(*out));
		b = bl->next;
	}
}

/* The span of file f that holds off, a new one when off is past the
 * file's last; UI_NONE when all UI_MAX_SPANS are taken. The thread only;
 * under lock. */
static uint32_t span_of(struct ui_index *ix, uint32_t f, uint64_t off)
{
	uint32_t s = ix->file_span[f], hi = (uint32_t)(off >> 32);
	if (ix->spans[s].hi == hi)
		return s; /* a file's offsets only grow: hi is never below the last */
	if (ix->n_spans == UI_MAX_SPANS)
		return UI_NONE;
	s = ix->n_spans++;
	ix->spans[s] = (struct ui_span){f, hi};
	ix->file_span[f] = s;
	return s;
}

/* A decision's value member as numbers. */
static void value_parse(const json_t *val, struct ui_value *out)
{
	json_t *x = json_object_get(val, "value"), *above = json_object_get(val, "above");
	json_t *thr = above ? above : json_object_get(val, "below");
	memset(out, 0, sizeof(*out));
	if (!json_is_number(x)) {
		out->kind = VAL_NOT_NUMERIC;
		return;
	}
	out->x_int = json_is_integer(x);
	if (out->x_int)
		out->x.i = json_integer_value(x);
	else
		out->x.d = json_real_value(x);
	if (!json_is_number(thr)) {
		out->kind = VAL_ONLY;
		return;
	}
	out->kind = above ? VAL_ABOVE : VAL_BELOW;
	out->thr_int = json_is_integer(thr);
	if (out->thr_int)
		out->thr.i = json_integer_value(thr);
	else
		out->thr.d = json_real_value(thr);
}

static void num_format(union ui_num v, bool is_int, char *out, size_t outsz)
{
	json_t *j = is_int ? json_integer(v.i) : json_real(v.d);
	if (j)
		audit_format_number(j, out, outsz);
	else
		snprintf(out, outsz, "?");
	json_decref(j);
}

/* "0.05 > 0.01" of v ("" for VAL_NONE). */
static void value_format(const struct ui_value *v, char *out, size_t outsz)
{
	char x[40], t[40];
	out[0] = '\0';
	if (v->kind == VAL_NONE)
		return;
	if (v->kind == VAL_NOT_NUMERIC) {
		snprintf(out, outsz, "no numeric value");
		return;
	}
	num_format(v->x, v->x_int, x, sizeof(x));
	if (v->kind == VAL_ONLY) {
		snprintf(out, outsz, "%s", x);
		return;
	}
	num_format(v->thr, v->thr_int, t, sizeof(t));
	double xd = v->x_int ? (double)v->x.i : v->x.d,
	       td = v->thr_int ? (double)v->thr.i : v->thr.d;
	const char *op;
	if (v->kind == VAL_ABOVE)
		op = xd > td ? ">" : "<=";
	else
		op = xd < td ? "<" : ">=";
	snprintf(out, outsz, "%s %s %s", x, op, t);
}

/* "0.05 > 0.01" for a decision's value member. */
static void value_relation(const json_t *val, char *out, size_t outsz)
{
	struct ui_value v;
	value_parse(val, &v);
	value_format(&v, out, outsz);
}

/* One line of file f at off: remember it under its incident. */
static void index_line(struct ui_index *ix, uint32_t f, uint64_t off, const char *s, size_t n)
{
	struct ui_value value = {.kind = VAL_NONE};
	struct record r;
	if (n > JOURNAL_MAX_LINE)
		return; /* a longer line is not a record */
	if (record_decode(s, n, &r, &ix->toks) != RECORD_OK || !r.incident[0])
		return; /* not a record, or one that concerns no incident */
	const char *id = r.incident;
	size_t vlen;
	const char *vraw = r.type == RECORD_DECISION && record_obj(&r, "value")
			       ? record_raw(&r, "value", &vlen)
			       : NULL;
	if (vraw) { /* only the member's text: the rest of the line is decoded */
		json_t *val = json_loadb(vraw, vlen, 0, NULL);
		if (json_is_object(val))
			value_parse(val, &value);
		json_decref(val);
	}
	uint64_t key = index_key(ix, id);
	pthread_mutex_lock(&ix->lock);
	struct ui_entry *e = index_entry(ix, key);
	if (e) {
		uint32_t span = e->n < UI_TIMELINE_MAX ? span_of(ix, f, off) : UI_NONE;
		if (value.kind != VAL_NONE)
			entry_set_value(e, &value);
		if (span == UI_NONE)
			e->dropped++;
		else
			entry_add(ix, e, ref_make(span, off, (uint32_t)n));
		index_evict(ix, ix->count); /* the refs (e may go) */
	}
	pthread_mutex_unlock(&ix->lock);
}

/* Read what file f has past its position; only whole lines count. */
static void index_file(struct ui_index *ix, uint32_t f, char *buf)
{
	for (;;) {
		ssize_t got = pread(ix->fds[f], buf, UI_SCAN_CHUNK, (off_t)ix->pos[f]);
		if (got <= 0)
			return;
		size_t n = (size_t)got, start = 0;
		const char *last = memrchr(buf, '\n', n);
		if (!last) {
			if (n < UI_SCAN_CHUNK)
				return;	 /* a line still being written */
			ix->pos[f] += n; /* no record is that long: skip it */
			continue;
		}
		size_t upto = (size_t)(last - buf) + 1;
		while (start < upto) {
			const char *nl = memchr(buf + start, '\n', upto - start);
			size_t len = (size_t)(nl - (buf + start));
			if (len)
				index_line(ix, f, ix->pos[f] + start, buf + start, len);
			start += len + 1;
		}
		ix->pos[f] += upto;
		pthread_mutex_lock(&ix->lock);
		ix->scanned_bytes += upto;
		pthread_mutex_unlock(&ix->lock);
		if (n < UI_SCAN_CHUNK)
			return;
	}
}

static int open_file(struct ui_index *ix, const char *name)
{
	char path[4096];
	if (ix->n_files >= UI_MAX_FILES || ix->n_spans >= UI_MAX_SPANS)
		return -1;
	snprintf(path, sizeof(path), "%s/%s", ix->dir, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ix->pos[ix->n_files] = 0;
	ix->file_span[ix->n_files] = ix->n_spans;
	pthread_mutex_lock(&ix->lock);
	ix->spans[ix->n_spans++] = (struct ui_span){ix->n_files, 0};
	ix->fds[ix->n_files++] = fd;
	pthread_mutex_unlock(&ix->lock);
	return 0;
}

static int seg_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The closed segments, in order, then journal.jsonl. */
static void open_all(struct ui_index *ix)
{
	DIR *d = opendir(ix->dir);
	struct dirent *de;
	uint64_t *nums = NULL;
	size_t n = 0, alloc = 0;
	if (!d)
		return;
	while ((de = readdir(d)) != NULL) {
		const char *name = de->d_name;
		size_t digits =
		    strncmp(name, "journal.", 8) == 0 ? strspn(name + 8, "0123456789") : 0;
		if (digits < 6 || digits > 18 || strcmp(name + 8 + digits, ".jsonl") != 0)
			continue;
		if (n == alloc) {
			alloc = alloc ? alloc * 2 : 16;
			uint64_t *t = realloc(nums, alloc * sizeof(*t));
			if (!t)
				break;
			nums = t;
		}
		nums[n++] = strtoull(name + 8, NULL, 10);
	}
	closedir(d);
	if (n)
		qsort(nums, n, sizeof(*nums), seg_cmp);
	for (size_t i = 0; i < n; i++) {
		char name[64];
		snprintf(name, sizeof(name), "journal.%06" PRIu64 ".jsonl", nums[i]);
		open_file(ix, name);
	}
	free(nums);
	ix->have_current = open_file(ix, JOURNAL_FILE) == 0;
}

/* Whether journal.jsonl is no longer the file we hold open (rotated). */
static bool current_rotated(struct ui_index *ix)
{
	char path[4096];
	struct stat now, held;
	snprintf(path, sizeof(path), "%s/%s", ix->dir, JOURNAL_FILE);
	if (stat(path, &now) < 0)
		return false;
	if (!ix->have_current)
		return true;
	if (fstat(ix->fds[ix->n_files - 1], &held) < 0)
		return false;
	return now.st_ino != held.st_ino || now.st_dev != held.st_dev;
}

static void scan(struct ui_index *ix, char *buf)
{
	if (ix->n_files == 0)
		open_all(ix);
	for (uint32_t f = 0; f < ix->n_files; f++)
		index_file(ix, f, buf);
	while (current_rotated(ix)) {
		if (ix->have_current)
			index_file(ix, ix->n_files - 1, buf); /* its last lines */
		if (open_file(ix, JOURNAL_FILE) < 0)
			break;
		ix->have_current = true;
		index_file(ix, ix->n_files - 1, buf);
	}
}

static void *index_main(void *arg)
{
	struct ui_index *ix = arg;
	/* Mapped, not malloc'd: its pages go back to the system after each
	 * scan (a scan of a large journal fills all 1.25 MiB; one of a few
	 * new lines touches a page or two). */
	char *buf =
	    mmap(NULL, UI_SCAN_CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	size_t trimmed_at = 0, evicted_before = 0;
	if (buf == MAP_FAILED)
		return NULL;
	pthread_mutex_lock(&ix->lock);
	while (!ix->stop) {
		uint64_t gen = ix->kick_gen;
		pthread_mutex_unlock(&ix->lock);
		scan(ix, buf);
		madvise(buf, UI_SCAN_CHUNK, MADV_DONTNEED); /* zero-filled when touched again */
		pthread_mutex_lock(&ix->lock);
		ix->first_scan_done = true;
		ix->done_gen = gen;
		pthread_cond_broadcast(&ix->done);
#ifdef __GLIBC__
		/* Incidents leave the engine as they leave the index: once a
		 * burst of them is over (none left since the last scan), hand
		 * the pages their memory left free back to the system (glibc
		 * keeps them otherwise: ~10 % of RSS measured). On this thread,
		 * never on a loop, and not during the burst: malloc_trim holds
		 * the arenas' locks for ~10-20 ms on a heap of 100 000
		 * incidents, and the engine reuses that memory meanwhile. */
		if (ix->evicted == evicted_before && ix->evicted - trimmed_at >= UI_TRIM_EVICTED) {
			trimmed_at = ix->evicted;
			pthread_mutex_unlock(&ix->lock);
			malloc_trim(0);
			pthread_mutex_lock(&ix->lock);
		}
		evicted_before = ix->evicted;
#endif
		if (ix->kick_gen != gen || ix->stop)
			continue;
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 1;
		pthread_cond_timedwait(&ix->wake, &ix->lock, &until);
	}
	pthread_mutex_unlock(&ix->lock);
	munmap(buf, UI_SCAN_CHUNK);
	return NULL;
}

/* Ask for a scan up to the end of the journal and wait a little for it.
 * false when the first scan is still under way; *current (when not NULL)
 * says whether a whole scan ran after the request within the wait. Never
 * under another lock. */
static bool index_catch_up(struct ui_index *ix, bool *current)
{
	if (current)
		*current = false;
	if (!ix->started)
		return false;
	pthread_mutex_lock(&ix->lock);
	uint64_t want = ++ix->kick_gen;
	pthread_cond_signal(&ix->wake);
	struct timespec until = timestamp_deadline(CLOCK_REALTIME, UI_CATCHUP_WAIT_MS);
	while (ix->done_gen < want && !ix->stop)
		if (pthread_cond_timedwait(&ix->done, &ix->lock, &until) == ETIMEDOUT)
			break;
	bool ready = ix->first_scan_done;
	if (current)
		*current = ix->done_gen >= want;
	pthread_mutex_unlock(&ix->lock);
	return ready;
}

/* The last decision's value relation of id into out ("" when none). */
static void index_value(struct ui_index *ix, const char *id, char *out, size_t outsz)
{
	struct ui_value v = {.kind = VAL_NONE};
	out[0] = '\0';
	if (!ix->started)
		return;
	uint64_t key = index_key(ix, id);
	pthread_mutex_lock(&ix->lock);
	const struct ui_entry *e = index_find(ix, key);
	if (e)
		v = entry_value(e);
	pthread_mutex_unlock(&ix->lock);
	value_format(&v, out, outsz);
}

/* Where one record is, resolved for reading outside the lock. */
struct ui_loc {
	uint64_t off;
	int fd;
	uint32_t len;
};

/* The records of id, read with pread outside the lock: an array (new
 * reference) in journal order, *dropped saying how many were left out.
 * NULL on OOM. */
static json_t *index_records(struct ui_index *ix, const char *id, size_t *dropped)
{
	json_t *arr = json_array();
	struct ui_loc *locs = NULL;
	uint32_t n = 0;
	*dropped = 0;
	if (!arr)
		return NULL;
	uint64_t key = ix->started ? index_key(ix, id) : 0;
	pthread_mutex_lock(&ix->lock);
	const struct ui_entry *e = ix->started ? index_find(ix, key) : NULL;
	if (e) {
		struct ui_ref *refs = malloc(e->n * sizeof(*refs) + 1);
		locs = malloc(e->n * sizeof(*locs) + 1);
		if (refs && locs) {
			entry_refs(ix, e, refs);
			for (n = 0; n < e->n; n++) {
				struct ui_span sp = ix->spans[ref_span(refs[n])];
				locs[n] = (struct ui_loc){(uint64_t)sp.hi << 32 | refs[n].off_lo,
							  ix->fds[sp.file], ref_len(refs[n])};
			}
			*dropped = e->dropped;
		}
		free(refs);
	}
	pthread_mutex_unlock(&ix->lock);
	char *line = n ? malloc(JOURNAL_MAX_LINE) : NULL;
	size_t bytes = 0;
	for (uint32_t i = 0; line && i < n; i++) {
		uint32_t len = locs[i].len;
		if (bytes + len > UI_TIMELINE_BYTES) {
			*dropped += n - i;
			break;
		}
		ssize_t got = pread(locs[i].fd, line, len, (off_t)locs[i].off);
		if (got != (ssize_t)len)
			continue;
		bytes += len;
		json_t *rec = json_loadb(line, len, JSON_ALLOW_NUL, NULL);
		const char *inc = json_string_value(json_object_get(rec, "incident"));
		if (rec && inc && strcmp(inc, id) == 0)
			json_array_append(arr, rec);
		json_decref(rec);
	}
	free(line);
	free(locs);
	return arr;
}

/* How many incidents left the index, and how many it keeps at most. */
static size_t index_evicted(struct ui_index *ix, size_t *max)
{
	pthread_mutex_lock(&ix->lock);
	size_t n = ix->evicted;
	pthread_mutex_unlock(&ix->lock);
	*max = index_max(ix);
	return n;
}

/* ---- sessions ---------------------------------------------------------- */

struct session {
	char id[TOKEN_HEX + 1];
	char csrf[TOKEN_HEX + 1];
	unsigned char token[32]; /* BLAKE2b of the api token it signed in with */
	int64_t expires;	 /* unix seconds; 0: free slot */
};

/* A reload that changes auth.api.token ends the sessions of the old one. */
static void token_hash(const struct secret *s, unsigned char out[32])
{
	crypto_generichash(out, 32, s->data, s->len, NULL, 0);
}

struct ui {
	const struct config *_Atomic cfg;
	struct engine *engine;
	struct journal *journal;
	struct ui_index ix;
	unsigned char key[crypto_auth_hmacsha256_KEYBYTES]; /* login-form CSRF */
	pthread_mutex_t sessions_lock;
	struct session sessions[UI_MAX_SESSIONS];
};

static void random_hex(char out[TOKEN_HEX + 1])
{
	unsigned char b[TOKEN_HEX / 2];
	randombytes_buf(b, sizeof(b));
	sodium_bin2hex(out, TOKEN_HEX + 1, b, sizeof(b));
	sodium_memzero(b, sizeof(b));
}

static bool token_eq(const char *a, const char *b)
{
	size_t n = strlen(a);
	return n == TOKEN_HEX && strlen(b) == TOKEN_HEX && sodium_memcmp(a, b, TOKEN_HEX) == 0;
}

/* A new session: its id and CSRF token copied out. */
static void session_new(struct ui *ui, const unsigned char token[32], char id[TOKEN_HEX + 1],
			char csrf[TOKEN_HEX + 1])
{
	int64_t now = (int64_t)time(NULL);
	pthread_mutex_lock(&ui->sessions_lock);
	struct session *slot = &ui->sessions[0];
	for (size_t i = 0; i < UI_MAX_SESSIONS; i++) {
		struct session *s = &ui->sessions[i];
		if (s->expires <= now) {
			slot = s;
			break;
		}
		if (s->expires < slot->expires)
			slot = s;
	}
	random_hex(slot->id);
	random_hex(slot->csrf);
	memcpy(slot->token, token, sizeof(slot->token));
	slot->expires = now + UI_SESSION_TTL_S;
	memcpy(id, slot->id, TOKEN_HEX + 1);
	memcpy(csrf, slot->csrf, TOKEN_HEX + 1);
	pthread_mutex_unlock(&ui->sessions_lock);
}

/* Find the live session id; its CSRF token into csrf. Every slot is
 * compared, in constant time each. */
static bool session_find(struct ui *ui, const unsigned char token[32], const char *id,
			 char csrf[TOKEN_HEX + 1])
{
	int64_t now = (int64_t)time(NULL);
	bool found = false;
	if (!id || strlen(id) != TOKEN_HEX)
		return false;
	pthread_mutex_lock(&ui->sessions_lock);
	for (size_t i = 0; i < UI_MAX_SESSIONS; i++) {
		struct session *s = &ui->sessions[i];
		if (s->expires > now && sodium_memcmp(s->id, id, TOKEN_HEX) == 0 &&
		    sodium_memcmp(s->token, token, sizeof(s->token)) == 0) {
			memcpy(csrf, s->csrf, TOKEN_HEX + 1);
			found = true;
		}
	}
	pthread_mutex_unlock(&ui->sessions_lock);
	return found;
}

static void session_end(struct ui *ui, const char *id)
{
	if (!id || strlen(id) != TOKEN_HEX)
		return;
	pthread_mutex_lock(&ui->sessions_lock);
	for (size_t i = 0; i < UI_MAX_SESSIONS; i++) {
		struct session *s = &ui->sessions[i];
		if (s->expires && sodium_memcmp(s->id, id, TOKEN_HEX) == 0)
			sodium_memzero(s, sizeof(*s));
	}
	pthread_mutex_unlock(&ui->sessions_lock);
}

/* The login form's CSRF value for the login cookie's nonce. */
static void login_csrf(struct ui *ui, const char *nonce, char out[TOKEN_HEX + 1])
{
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256(mac, (const unsigned char *)nonce, strlen(nonce), ui->key);
	sodium_bin2hex(out, TOKEN_HEX + 1, mac, sizeof(mac));
}

/* ---- lifecycle ---------------------------------------------------------- */

struct ui *ui_new(const struct config *cfg, struct engine *engine)
{
	struct ui *ui = calloc(1, sizeof(*ui));
	if (!ui || sodium_init() < 0) {
		free(ui);
		return NULL;
	}
	ui->cfg = cfg;
	atomic_store(&ui->ix.max_incidents, cfg->limits.max_incidents);
	crypto_shorthash_keygen(ui->ix.key);
	ui->ix.free_block = UI_NONE;
	ui->engine = engine;
	crypto_auth_hmacsha256_keygen(ui->key);
	pthread_mutex_init(&ui->sessions_lock, NULL);
	pthread_mutex_init(&ui->ix.lock, NULL);
	pthread_cond_init(&ui->ix.wake, NULL);
	pthread_cond_init(&ui->ix.done, NULL);
	return ui;
}

void ui_free(struct ui *ui)
{
	if (!ui)
		return;
	struct ui_index *ix = &ui->ix;
	if (ix->started) {
		pthread_mutex_lock(&ix->lock);
		ix->stop = true;
		pthread_cond_broadcast(&ix->wake);
		pthread_mutex_unlock(&ix->lock);
		pthread_join(ix->thread, NULL);
	}
	for (uint32_t i = 0; i < ix->n_files; i++)
		close(ix->fds[i]);
	free(ix->ents);
	free(ix->buckets);
	for (size_t i = 0; i < ix->n_chunks; i++)
		free(ix->chunks[i]);
	free(ix->chunks);
	free(ix->dir);
	record_toks_release(&ix->toks);
	pthread_mutex_destroy(&ix->lock);
	pthread_cond_destroy(&ix->wake);
	pthread_cond_destroy(&ix->done);
	pthread_mutex_destroy(&ui->sessions_lock);
	sodium_memzero(ui, sizeof(*ui));
	free(ui);
}

void ui_set_journal(struct ui *ui, struct journal *j)
{
	const struct config *cfg = atomic_load(&ui->cfg);
	ui->journal = j;
	if (ui->ix.started || !cfg->state_dir)
		return;
	ui->ix.dir = strdup(cfg->state_dir);
	if (ui->ix.dir && pthread_create(&ui->ix.thread, NULL, index_main, &ui->ix) == 0)
		ui->ix.started = true;
	else
		log_error("console: cannot start the journal index; timelines are unavailable",
			  NULL);
}

void ui_set_config(struct ui *ui, const struct config *cfg)
{
	atomic_store(&ui->cfg, cfg);
	atomic_store(&ui->ix.max_incidents,
		     cfg->limits.max_incidents); /* the next record applies it */
}

bool ui_owns_path(const char *path)
{
	return path && strncmp(path, "/ui", 3) == 0 && (path[3] == '\0' || path[3] == '/');
}

/* ---- pure helpers ---------------------------------------------------------- */

static int label_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int ui_incident_target(const json_t *incident, struct buf *out)
{
	const char *t = json_string_value(json_object_get(incident, "target"));
	if (t)
		return buf_adds(out, t);
	const json_t *labels = json_object_get(incident, "labels");
	if (!labels)
		labels = json_object_get(incident, "group");
	size_t n = json_object_size(labels), i = 0;
	const char **names = n ? calloc(n, sizeof(*names)) : NULL;
	const char *k;
	json_t *v;
	int bad = 0;
	if (n && !names)
		return -1;
	json_object_foreach((json_t *)labels, k, v) names[i++] = k;
	if (n)
		qsort(names, n, sizeof(*names), label_cmp);
	for (i = 0; i < n; i++) {
		const char *val = json_string_value(json_object_get(labels, names[i]));
		bad |= buf_addf(out, "%s%s=%s", i ? "," : "", names[i], val ? val : "");
	}
	free(names);
	return bad ? -1 : 0;
}

bool ui_target_matches(const char *typed, const char *target)
{
	if (!typed || !target || !*target)
		return false;
	while (*typed == ' ' || *typed == '\t')
		typed++;
	size_t n = strlen(typed);
	while (n && (typed[n - 1] == ' ' || typed[n - 1] == '\t'))
		n--;
	return n == strlen(target) && memcmp(typed, target, n) == 0;
}

/* ---- HTML ------------------------------------------------------------------- */

static int esc(struct buf *out, const char *s)
{
	return links_html_escape(out, s ? s : "");
}

/* s[0..n) escaped (may hold NULs: they end the text, as in a C string). */
static int escn(struct buf *out, const char *s, size_t n)
{
	struct buf t = BUF_INIT;
	int bad = buf_add(&t, s, n) || esc(out, t.data ? t.data : "");
	buf_release(&t);
	return bad ? -1 : 0;
}

static const char *mstr(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static int page_head(struct buf *out, const char *title, const struct ui_page *page)
{
	int bad = buf_adds(
	    out, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
		 "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
		 "<meta name=\"referrer\" content=\"no-referrer\">\n");
	if (page && page->standalone)
		bad |= buf_adds(
		    out, "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src "
			 "'none'; style-src 'unsafe-inline'; img-src data:\">\n");
	bad |= buf_adds(out, "<title>") | esc(out, title) | buf_adds(out, " - rollbackd</title>\n");
	if (page && page->standalone)
		bad |= buf_adds(out, "<style>") | buf_adds(out, ui_stylesheet) |
		       buf_adds(out, "</style>\n");
	else
		bad |= buf_adds(out, "<link rel=\"stylesheet\" href=\"/ui/style.css\">\n");
	return bad | buf_adds(out, "</head>\n<body>\n");
}

/* The top bar of console pages: home link and, when signed in, sign-out. */
static int top_bar(struct buf *out, const char *csrf)
{
	int bad =
	    buf_adds(out, "<header class=\"top\"><a class=\"home\" href=\"/ui/\">rollbackd</a>"
			  "<span class=\"mute\">operator console</span>");
	if (csrf)
		bad |=
		    buf_adds(out, "<form method=\"post\" action=\"/ui/logout\">"
				  "<input type=\"hidden\" name=\"csrf\" value=\"") |
		    esc(out, csrf) |
		    buf_adds(out,
			     "\"><button class=\"quiet\" type=\"submit\">Sign out</button></form>");
	return bad | buf_adds(out, "</header>\n<main>\n");
}

static int page_foot(struct buf *out)
{
	return buf_adds(out, "</main>\n</body>\n</html>\n");
}

static int state_badge(struct buf *out, const char *state)
{
	/* the class is a state name: [a-z_] only, else none */
	bool plain =
	    state && *state && strspn(state, "abcdefghijklmnopqrstuvwxyz_") == strlen(state);
	return buf_adds(out, "<span class=\"state") |
	       (plain ? buf_addc(out, ' ') | buf_adds(out, state) : 0) | buf_adds(out, "\">") |
	       esc(out, state ? state : "?") | buf_adds(out, "</span>");
}

static void format_age(int64_t ms, char *out, size_t outsz)
{
	int64_t s = ms / 1000;
	if (s < 0)
		s = 0;
	if (s < 60)
		snprintf(out, outsz, "%llds", (long long)s);
	else if (s < 3600)
		snprintf(out, outsz, "%lldm", (long long)(s / 60));
	else if (s < 86400)
		snprintf(out, outsz, "%lldh%02lldm", (long long)(s / 3600),
			 (long long)(s / 60 % 60));
	else
		snprintf(out, outsz, "%lldd%02lldh", (long long)(s / 86400),
			 (long long)(s / 3600 % 24));
}

static int64_t time_ms(const char *text)
{
	struct timestamp t;
	if (!text || timestamp_parse(text, strlen(text), &t) < 0)
		return INT64_MIN;
	return t.sec * 1000 + t.nsec / 1000000;
}

static int hidden(struct buf *out, const char *name, const char *value)
{
	return buf_addf(out, "<input type=\"hidden\" name=\"%s\" value=\"", name) |
	       esc(out, value) | buf_adds(out, "\">");
}

/* ---- the incident page --------------------------------------------------- */

/* What the records say when the engine no longer holds the incident. */
struct derived {
	const char *rule, *state, *acked_by, *first;
	const json_t *group;
};

static void derive(const json_t *records, struct derived *d)
{
	size_t i;
	json_t *rec;
	memset(d, 0, sizeof(*d));
	json_array_foreach(records, i, rec)
	{
		const char *type = mstr(rec, "type"), *s = NULL;
		if (!type)
			continue;
		if (!d->first)
			d->first = mstr(rec, "ts");
		if (!d->rule && mstr(rec, "rule") && *mstr(rec, "rule"))
			d->rule = mstr(rec, "rule");
		if (!d->group && strcmp(type, "decision") == 0 &&
		    json_is_object(json_object_get(rec, "group")))
			d->group = json_object_get(rec, "group");
		if (strcmp(type, "decision") == 0 || strcmp(type, "incident_state") == 0)
			s = mstr(rec, "state");
		else if (strcmp(type, "action_finished") == 0)
			s = mstr(rec, "incident_state");
		else if (strcmp(type, "resolved") == 0)
			s = "resolved";
		else if (strcmp(type, "ack") == 0 && !d->acked_by)
			d->acked_by = mstr(rec, "by");
		if (s && *s)
			d->state = s;
	}
}

static int fact(struct buf *out, const char *k, const char *v)
{
	return buf_addf(out, "<dt>%s</dt><dd>", k) | esc(out, v ? v : "—") | buf_adds(out, "</dd>");
}

/* The command or request an action record names, for a <pre>. */
static int action_target(struct buf *out, const json_t *rec)
{
	json_t *argv = json_object_get(rec, "argv");
	struct buf t = BUF_INIT;
	int bad = 0;
	if (json_is_array(argv)) {
		size_t i;
		json_t *a;
		json_array_foreach(argv, i, a)
		{
			const char *s = json_is_string(a) ? json_string_value(a) : "?";
			bool plain = *s && strcspn(s, " \t\n'\"\\$`;&|<>()*?[]{}#~") == strlen(s);
			bad |= (i ? buf_addc(&t, ' ') : 0);
			if (plain) {
				bad |= buf_adds(&t, s);
			} else {
				bad |= buf_addc(&t, '\'');
				for (; *s; s++)
					bad |=
					    *s == '\'' ? buf_adds(&t, "'\\''") : buf_addc(&t, *s);
				bad |= buf_addc(&t, '\'');
			}
		}
	} else if (mstr(rec, "url")) {
		bad |= buf_addf(&t, "%s ", mstr(rec, "method") ? mstr(rec, "method") : "?") |
		       buf_adds(&t, mstr(rec, "url"));
	}
	if (!bad && t.len)
		bad = buf_adds(out, "<pre class=\"cmd\">") | escn(out, t.data, t.len) |
		      buf_adds(out, "</pre>");
	buf_release(&t);
	return bad ? -1 : 0;
}

static int action_output(struct buf *out, const json_t *rec)
{
	json_t *o = json_object_get(rec, "output");
	size_t n = json_string_length(o);
	if (!json_is_string(o) || n == 0)
		return buf_adds(out, "<div class=\"mute\">no output</div>");
	if (n > AUDIT_OUTPUT_MAX)
		n = AUDIT_OUTPUT_MAX;
	return buf_addf(out, "<details%s><summary>Output (%zu bytes)</summary><pre class=\"out\">",
			n <= 2048 ? " open" : "", json_string_length(o)) |
	       escn(out, json_string_value(o), n) | buf_adds(out, "</pre></details>");
}

/* A number out of a verify_sample record, or false (an error sample). */
static bool sample_value(const json_t *rec, double *v)
{
	json_t *x = json_object_get(rec, "value");
	if (json_is_number(x)) {
		*v = json_number_value(x);
		return *v == *v;
	}
	if (json_is_string(x)) {
		char *end;
		*v = strtod(json_string_value(x), &end);
		return end != json_string_value(x) && !*end && *v == *v;
	}
	return false;
}

/* An inline SVG line chart of the verify_sample records; nothing when
 * there are none. */
static int verify_chart(struct buf *out, const json_t *records)
{
	enum { W = 600, H = 160, PAD = 28 };
	size_t i, n = 0;
	json_t *rec;
	double lo = 0, hi = 0, thr = 0;
	int64_t t0 = 0, t1 = 0;
	bool have_thr = false;
	json_array_foreach(records, i, rec)
	{
		double v;
		const char *type = mstr(rec, "type");
		if (!type || strcmp(type, "verify_sample") != 0)
			continue;
		json_t *b = json_object_get(rec, "below");
		if (!b)
			b = json_object_get(rec, "above");
		if (!b)
			b = json_object_get(rec, "threshold");
		if (json_is_number(b)) {
			thr = json_number_value(b);
			have_thr = true;
		}
		int64_t t = time_ms(mstr(rec, "ts"));
		if (t == INT64_MIN || !sample_value(rec, &v))
			continue;
		if (!n) {
			lo = hi = v;
			t0 = t1 = t;
		}
		lo = v < lo ? v : lo;
		hi = v > hi ? v : hi;
		t0 = t < t0 ? t : t0;
		t1 = t > t1 ? t : t1;
		n++;
	}
	if (!n)
		return 0;
	if (have_thr) {
		lo = thr < lo ? thr : lo;
		hi = thr > hi ? thr : hi;
	}
	if (hi - lo <= 0) {
		hi += 1;
		lo -= lo > 0 && lo < 1 ? lo : 1;
	}
	double span = t1 > t0 ? (double)(t1 - t0) : 1;
	char a[40], b[40];
	int bad = buf_adds(out, "<h2>Verification samples</h2>\n") |
		  buf_addf(out,
			   "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" "
			   "viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" role=\"img\" "
			   "aria-label=\"verification samples\">",
			   W, H, W, H);
	bad |= buf_addf(out,
			"<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" "
			"stroke=\"#d8dde3\"/>",
			PAD, 8, W - PAD - 8, H - PAD - 8);
	snprintf(a, sizeof(a), "%.4g", hi);
	snprintf(b, sizeof(b), "%.4g", lo);
	bad |= buf_addf(out,
			"<text x=\"2\" y=\"16\" font-size=\"10\" fill=\"#5b6470\">%s</text>"
			"<text x=\"2\" y=\"%d\" font-size=\"10\" fill=\"#5b6470\">%s</text>",
			a, H - PAD, b);
#define XOF(t) (PAD + ((double)((t)-t0) / span) * (W - PAD - 8 - 4) + 2)
#define YOF(v) (8 + (1 - ((v)-lo) / (hi - lo)) * (H - PAD - 8))
	if (have_thr)
		bad |= buf_addf(out,
				"<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" "
				"stroke=\"#b42318\" stroke-dasharray=\"4 3\"/>",
				PAD, W - 8, YOF(thr), YOF(thr));
	bad |= buf_adds(out,
			"<polyline fill=\"none\" stroke=\"#0b5cad\" stroke-width=\"2\" points=\"");
	json_array_foreach(records, i, rec)
	{
		double v;
		const char *type = mstr(rec, "type");
		int64_t t = time_ms(mstr(rec, "ts"));
		if (!type || strcmp(type, "verify_sample") != 0 || t == INT64_MIN ||
		    !sample_value(rec, &v))
			continue;
		bad |= buf_addf(out, "%.1f,%.1f ", XOF(t), YOF(v));
	}
	bad |= buf_adds(out, "\"/>");
	json_array_foreach(records, i, rec)
	{
		double v;
		const char *type = mstr(rec, "type");
		int64_t t = time_ms(mstr(rec, "ts"));
		if (!type || strcmp(type, "verify_sample") != 0 || t == INT64_MIN ||
		    !sample_value(rec, &v))
			continue;
		bad |= buf_addf(out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"#0b5cad\"/>",
				XOF(t), YOF(v));
	}
#undef XOF
#undef YOF
	bad |= buf_addf(out,
			"<text x=\"%d\" y=\"%d\" font-size=\"10\" fill=\"#5b6470\">%zu "
			"sample(s) over %llds%s</text></svg>\n",
			PAD, H - 8, n, (long long)((t1 - t0) / 1000),
			have_thr ? "; dashed: the threshold" : "");
	return bad ? -1 : 0;
}

/* The deciding alert's labels and annotations, folded. */
static int alert_details(struct buf *out, const json_t *rec)
{
	static const char *const keys[] = {"labels", "annotations"};
	int bad = 0;
	size_t n = json_object_size(json_object_get(rec, "labels")) +
		   json_object_size(json_object_get(rec, "annotations"));
	if (!n)
		return 0;
	bad |=
	    buf_adds(out, "<details><summary>Labels and annotations</summary><dl class=\"facts\">");
	for (size_t i = 0; i < 2; i++) {
		const char *k;
		json_t *v;
		json_object_foreach(json_object_get(rec, keys[i]), k, v)
		{
			if (!json_is_string(v))
				continue;
			bad |= buf_addf(out, "<dt>%s.", keys[i]) | esc(out, k) |
			       buf_adds(out, "</dt><dd>") |
			       escn(out, json_string_value(v), json_string_length(v)) |
			       buf_adds(out, "</dd>");
		}
	}
	return bad | buf_adds(out, "</dl></details>");
}

/* "value 0.4 (below 0.5)", or the sample's error. */
static int sample_summary(const json_t *rec, struct buf *out)
{
	char v[40], t[40];
	json_t *x = json_object_get(rec, "value"), *below = json_object_get(rec, "below");
	json_t *above = json_object_get(rec, "above");
	json_t *thr = below ? below : above;
	int bad = 0;
	if (json_is_number(x)) {
		audit_format_number(x, v, sizeof(v));
		bad |= buf_addf(out, "value %s", v);
	} else if (json_is_string(x)) {
		bad |= buf_adds(out, "value ") | buf_adds(out, json_string_value(x));
	} else {
		bad |= buf_adds(out, "no value");
	}
	if (json_is_number(thr)) {
		audit_format_number(thr, t, sizeof(t));
		bad |= buf_addf(out, " (%s %s)", below ? "below" : "above", t);
	}
	if (mstr(rec, "error") && *mstr(rec, "error"))
		bad |= buf_adds(out, ": error: ") | buf_adds(out, mstr(rec, "error"));
	return bad ? -1 : 0;
}

static int timeline(struct buf *out, const json_t *records, int64_t t0)
{
	size_t i;
	json_t *rec;
	struct buf what = BUF_INIT;
	int bad = buf_adds(out, "<h2>Timeline</h2>\n<ol class=\"timeline\">\n");
	json_array_foreach(records, i, rec)
	{
		const char *type = mstr(rec, "type");
		const char *ts = mstr(rec, "ts");
		int64_t t = time_ms(ts);
		char rel[AUDIT_DURATION_STRLEN] = "";
		bool plain = type && strspn(type, "abcdefghijklmnopqrstuvwxyz_") == strlen(type);
		if (t != INT64_MIN && t0 != INT64_MIN)
			audit_format_rel(t - t0, rel, sizeof(rel));
		buf_reset(&what);
		if (type && strcmp(type, "action_started") == 0) {
			/* the command goes below, in full */
			json_int_t idx = json_integer_value(json_object_get(rec, "index"));
			bad |= buf_addf(&what, "action %" JSON_INTEGER_FORMAT " (%s) started",
					idx + 1, mstr(rec, "action") ? mstr(rec, "action") : "?");
		} else if (type && strcmp(type, "verify_sample") == 0) {
			bad |= sample_summary(rec, &what);
		} else {
			bad |= audit_summary(rec, &what);
		}
		bad |=
		    buf_adds(out, "<li") |
		    (plain ? buf_adds(out, " class=\"") | buf_adds(out, type) | buf_addc(out, '"')
			   : 0) |
		    buf_adds(out, "><span class=\"when\"><time>") | esc(out, ts) |
		    buf_adds(out, "</time>") | (rel[0] ? buf_addf(out, " (%s)", rel) : 0) |
		    buf_adds(out, "</span><span class=\"type\">") | esc(out, type) |
		    buf_adds(out, "</span><span class=\"what\">") |
		    escn(out, what.data ? what.data : "", what.len) | buf_adds(out, "</span>");
		if (type && strcmp(type, "decision") == 0)
			bad |= alert_details(out, rec);
		if (type && strcmp(type, "action_started") == 0)
			bad |= action_target(out, rec);
		if (type && strcmp(type, "action_finished") == 0)
			bad |= action_output(out, rec);
		bad |= buf_adds(out, "</li>\n");
		if (bad)
			break;
	}
	buf_release(&what);
	return bad | buf_adds(out, "</ol>\n");
}

static int incident_forms(struct buf *out, const char *id, const char *state, const char *acked,
			  const char *target, const struct ui_page *page)
{
	struct buf path = BUF_INIT;
	int bad = 0;
	bool resolved = state && strcmp(state, "resolved") == 0;
	bool awaiting = state && strcmp(state, "awaiting_approval") == 0;
	if (!page->can_act || page->standalone)
		return 0;
	bad |= buf_adds(&path, "/ui/incidents/") | buf_adds(&path, id);
	if (!resolved && !acked)
		bad |= buf_adds(out, "<form class=\"act\" method=\"post\" action=\"") |
		       esc(out, path.data) | buf_adds(out, "/ack\">") |
		       hidden(out, "csrf", page->csrf) |
		       buf_addf(out,
				"<label>Your name<input type=\"text\" name=\"by\" maxlength=\"%d\" "
				"autocomplete=\"name\"></label>"
				"<button type=\"submit\">Acknowledge</button></form>\n",
				LINKS_BY_MAX);
	if (awaiting)
		bad |= buf_adds(out, "<form class=\"act\" method=\"post\" action=\"") |
		       esc(out, path.data) | buf_adds(out, "/approve\">") |
		       hidden(out, "csrf", page->csrf) |
		       buf_addf(out,
				"<label>Your name<input type=\"text\" name=\"by\" maxlength=\"%d\" "
				"autocomplete=\"name\"></label>",
				LINKS_BY_MAX) |
		       buf_adds(out, "<label>Type the target, <code>") | esc(out, target) |
		       buf_adds(out, "</code>, to approve<input type=\"text\" name=\"target\" "
				     "autocomplete=\"off\" spellcheck=\"false\"></label>"
				     "<button type=\"submit\">Approve rollback</button></form>\n");
	buf_release(&path);
	return bad;
}

int ui_render_incident(struct buf *out, const char *id, const json_t *incident,
		       const json_t *records, const struct ui_page *page)
{
	struct derived d;
	struct buf target = BUF_INIT, title = BUF_INIT;
	char age[32] = "", value[UI_VALUE_MAX] = "";
	size_t old = out->len, i;
	json_t *rec;
	derive(records, &d);
	const char *rule = incident ? mstr(incident, "rule") : d.rule;
	const char *state = incident ? mstr(incident, "state") : d.state;
	const char *acked = incident ? mstr(incident, "acknowledged_by") : d.acked_by;
	const char *first = incident ? mstr(incident, "first_seen") : d.first;
	int64_t t0 = time_ms(d.first ? d.first : first);
	int bad = 0;
	if (incident)
		bad |= ui_incident_target(incident, &target);
	else if (d.group) {
		json_t *tmp = json_pack("{s:O}", "labels", (json_t *)d.group);
		bad |= !tmp || ui_incident_target(tmp, &target);
		json_decref(tmp);
	}
	json_array_foreach(records, i, rec)
	{
		const char *type = mstr(rec, "type");
		if (type && strcmp(type, "decision") == 0 &&
		    json_is_object(json_object_get(rec, "value")))
			value_relation(json_object_get(rec, "value"), value, sizeof(value));
	}
	if (time_ms(first) != INT64_MIN && page->now_ms)
		format_age(page->now_ms - time_ms(first), age, sizeof(age));
	bad |= buf_adds(&title, "Incident ") | buf_adds(&title, id);
	bad |= page_head(out, title.data ? title.data : "Incident", page);
	if (!page->standalone)
		bad |= top_bar(out, page->can_act ? page->csrf : NULL);
	else
		bad |= buf_adds(out, "<main>\n");
	if (page->notice)
		bad |= buf_adds(out, "<p class=\"notice\">") | esc(out, page->notice) |
		       buf_adds(out, "</p>\n");
	if (page->error)
		bad |= buf_adds(out, "<p class=\"error\">") | esc(out, page->error) |
		       buf_adds(out, "</p>\n");
	bad |= buf_adds(out, "<h1>Incident <code>") | esc(out, id) | buf_adds(out, "</code> ") |
	       state_badge(out, state) | buf_adds(out, "</h1>\n<dl class=\"facts\">");
	bad |= fact(out, "Rule", rule) | fact(out, "Target", target.data) |
	       fact(out, "Value vs threshold", value[0] ? value : NULL) |
	       fact(out, "First seen", first);
	if (age[0])
		bad |= fact(out, "Age", age);
	if (incident && json_is_integer(json_object_get(incident, "episode")))
		bad |= buf_addf(out, "<dt>Episode</dt><dd>%" JSON_INTEGER_FORMAT "</dd>",
				json_integer_value(json_object_get(incident, "episode")));
	if (incident && mstr(incident, "coalesced_into"))
		bad |= fact(out, "Coalesced into", mstr(incident, "coalesced_into"));
	bad |= fact(out, "Acknowledged by", acked) | buf_adds(out, "</dl>\n");
	bad |= incident_forms(out, id, state, acked, target.len ? target.data : id, page);
	bad |= verify_chart(out, records);
	bad |= timeline(out, records, t0);
	if (json_array_size(records) == 0 && page->older_than_index)
		bad |= buf_addf(
		    out,
		    "<p class=\"mute\">This incident's timeline is older than the "
		    "console's journal index, which keeps the records of the newest "
		    "%zu incidents at most; <code>rollbackd audit show --incident</code> reads "
		    "the whole journal.</p>\n",
		    page->older_than_index);
	else if (json_array_size(records) == 0)
		bad |= buf_adds(out, "<p class=\"mute\">No journal records for this incident are "
				     "indexed (yet); <code>rollbackd audit show --incident</code> "
				     "reads the whole journal.</p>\n");
	if (page->dropped)
		bad |= buf_addf(out,
				"<p class=\"mute\">%zu more record(s) of this incident are not "
				"shown here; <code>rollbackd audit show --incident</code> lists "
				"them all.</p>\n",
				page->dropped);
	if (page->footer)
		bad |= buf_adds(out, "<p class=\"mute\">") | esc(out, page->footer) |
		       buf_adds(out, "</p>\n");
	bad |= page_foot(out);
	buf_release(&target);
	buf_release(&title);
	if (bad) {
		out->len = old;
		if (out->data)
			out->data[old] = '\0';
		return -1;
	}
	return 0;
}

/* ---- HTTP plumbing -------------------------------------------------------------- */

static const char *reason_of(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 303:
		return "See Other";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 409:
		return "Conflict";
	case 413:
		return "Payload Too Large";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	default:
		return "Error";
	}
}

static void common_headers(struct evhttp_request *req)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "Content-Security-Policy", UI_CSP);
	evhttp_add_header(h, "X-Frame-Options", "DENY");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(h, "Referrer-Policy", "no-referrer");
}

static void send_body(struct evhttp_request *req, int status, const char *ctype, const char *body,
		      size_t len)
{
	common_headers(req);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
	if (evhttp_request_get_command(req) != EVHTTP_REQ_HEAD)
		evbuffer_add(evhttp_request_get_output_buffer(req), body, len);
	evhttp_send_reply(req, status, reason_of(status), NULL);
}

static void send_html(struct evhttp_request *req, int status, struct buf *b)
{
	send_body(req, status, "text/html; charset=utf-8", b->data ? b->data : "", b->len);
}

/* A small page: title, one paragraph, an optional link. */
static void send_message(struct evhttp_request *req, int status, const char *title, const char *msg,
			 const char *csrf)
{
	struct buf b = BUF_INIT;
	if (page_head(&b, title, NULL) | top_bar(&b, csrf) | buf_adds(&b, "<h1>") | esc(&b, title) |
	    buf_adds(&b, "</h1>\n<p>") | esc(&b, msg) |
	    buf_adds(&b, "</p>\n<p><a href=\"/ui/\">Back to the incidents</a></p>\n") |
	    page_foot(&b)) {
		buf_release(&b);
		evhttp_send_error(req, 500, NULL);
		return;
	}
	send_html(req, status, &b);
	buf_release(&b);
}

static void redirect(struct evhttp_request *req, const char *location)
{
	struct buf b = BUF_INIT;
	evhttp_add_header(evhttp_request_get_output_headers(req), "Location", location);
	if (buf_adds(&b, "<!DOCTYPE html>\n<title>See other</title>\n<a href=\"") ||
	    esc(&b, location) || buf_adds(&b, "\">continue</a>\n")) {
		buf_release(&b);
		evhttp_send_error(req, 500, NULL);
		return;
	}
	send_html(req, 303, &b);
	buf_release(&b);
}

static bool peer_is_loopback(struct evhttp_request *req)
{
	struct evhttp_connection *conn = evhttp_request_get_connection(req);
	const struct sockaddr *sa = conn ? evhttp_connection_get_addr(conn) : NULL;
	if (!sa)
		return false;
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
			return true;
		return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127;
	}
	return false;
}

/* The value of cookie name from the Cookie header into out; false when
 * absent or longer than TOKEN_HEX. */
static bool get_cookie(struct evhttp_request *req, const char *name, char out[TOKEN_HEX + 1])
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Cookie");
	size_t nl = strlen(name);
	while (h && *h) {
		while (*h == ' ' || *h == ';')
			h++;
		const char *end = strchr(h, ';');
		size_t len = end ? (size_t)(end - h) : strlen(h);
		if (len > nl && strncmp(h, name, nl) == 0 && h[nl] == '=') {
			size_t vl = len - nl - 1;
			if (vl > TOKEN_HEX)
				return false;
			memcpy(out, h + nl + 1, vl);
			out[vl] = '\0';
			return true;
		}
		h = end;
	}
	return false;
}

/* Field name of an x-www-form-urlencoded body or query into out: 1 found,
 * 0 absent, -1 malformed or too long. */
int ui_form_field(const char *s, size_t n, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name), i = 0;
	while (s && i < n) {
		const char *amp = memchr(s + i, '&', n - i);
		size_t end = amp ? (size_t)(amp - s) : n;
		const char *eq = memchr(s + i, '=', end - i);
		size_t klen = eq ? (size_t)(eq - (s + i)) : end - i;
		if (klen == nl && memcmp(s + i, name, nl) == 0) {
			size_t vstart = eq ? (size_t)(eq - s) + 1 : end;
			return text_form_decode(s + vstart, end - vstart, out, cap, NULL, false) ==
				       TEXT_FORM_OK
				   ? 1
				   : -1;
		}
		i = end + 1;
	}
	if (cap)
		out[0] = '\0';
	return 0;
}

struct request_ctx {
	struct ui *ui;
	const struct config *cfg;
	bool has_token; /* auth.api.token configured */
	bool signed_in; /* a valid session cookie */
	char sid[TOKEN_HEX + 1];
	char csrf[TOKEN_HEX + 1];
	const char *body; /* POST body (not NUL-terminated) */
	size_t body_len;
};

static void ctx_init(struct ui *ui, struct evhttp_request *req, struct request_ctx *c)
{
	memset(c, 0, sizeof(*c));
	c->ui = ui;
	c->cfg = atomic_load(&ui->cfg);
	c->has_token = secret_is_set(&c->cfg->api_token);
	if (c->has_token && get_cookie(req, SESSION_COOKIE, c->sid)) {
		unsigned char th[32];
		token_hash(&c->cfg->api_token, th);
		c->signed_in = session_find(ui, th, c->sid, c->csrf);
	}
	if (evhttp_request_get_command(req) == EVHTTP_REQ_POST) {
		struct evbuffer *in = evhttp_request_get_input_buffer(req);
		size_t len = evbuffer_get_length(in);
		c->body = len ? (const char *)evbuffer_pullup(in, (ev_ssize_t)len) : "";
		c->body_len = c->body ? len : 0;
		if (!c->body)
			c->body = "";
	}
}

/* Host names a loopback address: without an api token the console trusts
 * loopback peers, and this keeps a DNS-rebinding page (a foreign name
 * resolved to 127.0.0.1 in the operator's browser) from reading it. */
static bool host_is_loopback(struct evhttp_request *req)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Host");
	if (!h)
		return false;
	size_t n = strcspn(h, ":");
	if (h[0] == '[')
		return strncmp(h, "[::1]", 5) == 0 && (h[5] == '\0' || h[5] == ':');
	return (n == 9 && strncmp(h, "localhost", 9) == 0) ||
	       (n >= 7 && strncmp(h, "127.", 4) == 0 && strspn(h, "0123456789.") == n);
}

/* May this request read pages? Sends the answer when not. */
static bool may_read(struct request_ctx *c, struct evhttp_request *req)
{
	if (c->has_token) {
		if (c->signed_in)
			return true;
		redirect(req, "/ui/login");
		return false;
	}
	if (peer_is_loopback(req) && host_is_loopback(req))
		return true;
	send_message(req, 403, "Console unavailable",
		     "No api token is configured (auth.api.token), so the console answers only "
		     "from loopback (and to a loopback Host), read-only.",
		     NULL);
	return false;
}

/* May this POST change state? Needs a session and its CSRF token. */
static bool may_change(struct request_ctx *c, struct evhttp_request *req)
{
	char csrf[TOKEN_HEX + 8];
	if (!c->has_token) {
		send_message(
		    req, 403, "Read-only console",
		    "No api token is configured (auth.api.token): the console is read-only "
		    "and changes nothing.",
		    NULL);
		return false;
	}
	if (!c->signed_in) {
		send_message(req, 401, "Sign in first",
			     "Your session is missing or has expired: nothing was changed. Sign in "
			     "again.",
			     NULL);
		return false;
	}
	if (ui_form_field(c->body, c->body_len, "csrf", csrf, sizeof(csrf)) != 1 ||
	    !token_eq(csrf, c->csrf)) {
		send_message(
		    req, 403, "Form expired",
		    "The form's CSRF token is missing or wrong: nothing was changed. Reload "
		    "the page and try again.",
		    c->csrf);
		return false;
	}
	return true;
}

/* ---- answering once the journal is durable ------------------------------------ */

struct deferred {
	struct evhttp_request *req;
	char location[256];
};

static void deferred_done(bool ok, void *arg)
{
	struct deferred *d = arg;
	if (ok)
		redirect(d->req, d->location);
	else
		send_message(d->req, 503, "Journal unavailable",
			     "The journal cannot be written; the change may not be recorded. Try "
			     "again shortly.",
			     NULL);
	free(d);
}

/* 303 to location once everything journaled so far is durable. */
static void redirect_durable(struct ui *ui, struct evhttp_request *req, const char *location)
{
	struct journal *j = ui->journal;
	uint64_t ticket = j ? journal_last_ticket(j) : 0;
	if (!j || journal_durable(j, ticket)) {
		redirect(req, location);
		return;
	}
	struct deferred *d = calloc(1, sizeof(*d));
	struct evhttp_connection *conn = evhttp_request_get_connection(req);
	struct event_base *base = conn ? evhttp_connection_get_base(conn) : NULL;
	if (d && base) {
		d->req = req;
		snprintf(d->location, sizeof(d->location), "%s", location);
		if (journal_wait(j, ticket, base, deferred_done, d) == 0)
			return;
	}
	free(d);
	send_message(req, 500, "Internal error", "out of memory", NULL);
}

static bool journal_down(struct ui *ui, struct evhttp_request *req)
{
	if (!ui->journal || journal_available(ui->journal))
		return false;
	send_message(req, 503, "Journal unavailable",
		     "The journal cannot be written (disk full or I/O error): nothing was changed.",
		     NULL);
	return true;
}

/* ---- pages ----------------------------------------------------------------------- */

static void cookie_header(struct request_ctx *c, struct evhttp_request *req, const char *name,
			  const char *value, int max_age)
{
	char h[256];
	bool secure = c->cfg->public_url && strncmp(c->cfg->public_url, "https://", 8) == 0;
	snprintf(h, sizeof(h), "%s=%s; Path=/ui/; Max-Age=%d; HttpOnly; SameSite=Strict%s", name,
		 value, max_age, secure ? "; Secure" : "");
	evhttp_add_header(evhttp_request_get_output_headers(req), "Set-Cookie", h);
}

static void login_page(struct request_ctx *c, struct evhttp_request *req, int status,
		       const char *error)
{
	char nonce[TOKEN_HEX + 1], csrf[TOKEN_HEX + 1];
	struct buf b = BUF_INIT;
	random_hex(nonce);
	login_csrf(c->ui, nonce, csrf);
	cookie_header(c, req, LOGIN_COOKIE, nonce, 600);
	int bad =
	    page_head(&b, "Sign in", NULL) | top_bar(&b, NULL) | buf_adds(&b, "<h1>Sign in</h1>\n");
	if (error)
		bad |=
		    buf_adds(&b, "<p class=\"error\">") | esc(&b, error) | buf_adds(&b, "</p>\n");
	bad |= buf_adds(&b, "<form class=\"act\" method=\"post\" action=\"/ui/login\">") |
	       hidden(&b, "csrf", csrf) |
	       buf_adds(&b, "<label>API token<input type=\"password\" name=\"token\" "
			    "autocomplete=\"current-password\" required></label>"
			    "<button type=\"submit\">Sign in</button></form>\n"
			    "<p class=\"mute\">The token is the one configured as auth.api.token. "
			    "A sign-in lasts 8 hours.</p>\n") |
	       page_foot(&b);
	if (bad)
		evhttp_send_error(req, 500, NULL);
	else
		send_html(req, status, &b);
	buf_release(&b);
}

static void handle_login(struct request_ctx *c, struct evhttp_request *req)
{
	if (!c->has_token) {
		send_message(
		    req, 404, "No sign-in",
		    "No api token is configured (auth.api.token): the console is read-only "
		    "from loopback and needs no sign-in.",
		    NULL);
		return;
	}
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		login_page(c, req, 200, NULL);
		return;
	}
	char nonce[TOKEN_HEX + 1], want[TOKEN_HEX + 1], csrf[TOKEN_HEX + 8];
	char token[SECRET_MAX_BYTES < 4096 ? SECRET_MAX_BYTES : 4096];
	if (!get_cookie(req, LOGIN_COOKIE, nonce) || strlen(nonce) != TOKEN_HEX ||
	    ui_form_field(c->body, c->body_len, "csrf", csrf, sizeof(csrf)) != 1) {
		login_page(c, req, 403,
			   "The sign-in form expired or was not sent from this page; "
			   "try again.");
		return;
	}
	login_csrf(c->ui, nonce, want);
	if (!token_eq(csrf, want)) {
		login_page(c, req, 403,
			   "The sign-in form expired or was not sent from this page; "
			   "try again.");
		return;
	}
	/* Both sides hashed first, so the compare is constant-time whatever
	 * the lengths. */
	int got = ui_form_field(c->body, c->body_len, "token", token, sizeof(token));
	const struct secret *s = &c->cfg->api_token;
	unsigned char h1[32], h2[32];
	crypto_generichash(h1, sizeof(h1), (const unsigned char *)token, strlen(token), NULL, 0);
	token_hash(s, h2);
	bool ok = got == 1 && sodium_memcmp(h1, h2, sizeof(h1)) == 0;
	sodium_memzero(token, sizeof(token));
	sodium_memzero(h1, sizeof(h1));
	if (!ok) {
		sodium_memzero(h2, sizeof(h2));
		log_warn("console: sign-in refused (wrong api token)", NULL);
		login_page(c, req, 401, "That is not the api token.");
		return;
	}
	char sid[TOKEN_HEX + 1], scsrf[TOKEN_HEX + 1];
	session_new(c->ui, h2, sid, scsrf);
	sodium_memzero(h2, sizeof(h2));
	cookie_header(c, req, SESSION_COOKIE, sid, UI_SESSION_TTL_S);
	cookie_header(c, req, LOGIN_COOKIE, "", 0);
	log_info("console: signed in", NULL);
	redirect(req, "/ui/");
}

static void handle_logout(struct request_ctx *c, struct evhttp_request *req)
{
	if (!may_change(c, req))
		return;
	session_end(c->ui, c->sid);
	cookie_header(c, req, SESSION_COOKIE, "", 0);
	redirect(req, "/ui/login");
}

static bool valid_state_word(const char *s)
{
	size_t n = strlen(s);
	return n > 0 && n <= 32 && strspn(s, "abcdefghijklmnopqrstuvwxyz_") == n;
}

static const char *done_notice(const char *done)
{
	if (!strcmp(done, "ack"))
		return "Acknowledged.";
	if (!strcmp(done, "approve"))
		return "Approved: the rollback actions run now.";
	if (!strcmp(done, "pause"))
		return "Paused: automatic actions are held until you resume.";
	if (!strcmp(done, "resume"))
		return "Resumed: rules act again.";
	return NULL;
}

static int pause_banner(struct buf *b, struct request_ctx *c)
{
	bool paused = engine_paused(c->ui->engine);
	int bad =
	    buf_addf(b, "<div class=\"banner %s\"><span>%s</span>", paused ? "paused" : "running",
		     paused ? "Automatic actions are PAUSED: incidents are held, nothing runs."
			    : "Automatic actions are on.");
	if (c->signed_in)
		bad |= buf_addf(b, "<form method=\"post\" action=\"/ui/%s\">",
				paused ? "resume" : "pause") |
		       hidden(b, "csrf", c->csrf) |
		       buf_addf(b, "<button type=\"submit\"%s>%s</button></form>",
				paused ? "" : " class=\"quiet\"", paused ? "Resume" : "Pause");
	return bad | buf_adds(b, "</div>\n");
}

static int filter_link(struct buf *b, const char *state, const char *current, const char *label)
{
	bool on = (!state && !current[0]) || (state && !strcmp(state, current));
	int bad = buf_adds(b, "<a href=\"/ui/");
	if (state)
		bad |= buf_adds(b, "?state=") | buf_adds(b, state);
	return bad | buf_addf(b, "\"%s>", on ? " class=\"on\"" : "") | esc(b, label) |
	       buf_adds(b, "</a>");
}

static void handle_list(struct request_ctx *c, struct evhttp_request *req)
{
	const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	char state[64] = "", pagebuf[24] = "", done[16] = "";
	int64_t page = 1;
	struct buf js = BUF_INIT, b = BUF_INIT;
	json_t *all = NULL, *states = json_object();
	size_t qn = q ? strlen(q) : 0;
	if (ui_form_field(q, qn, "state", state, sizeof(state)) < 0 ||
	    (state[0] && !valid_state_word(state)) ||
	    ui_form_field(q, qn, "page", pagebuf, sizeof(pagebuf)) < 0 ||
	    (pagebuf[0] && (text_parse_digits(pagebuf, strlen(pagebuf), &page) < 0 || page < 1 ||
			    page > 1000000))) {
		json_decref(states);
		send_message(req, 400, "Bad filter",
			     "state must be a state name and page a number from 1.",
			     c->signed_in ? c->csrf : NULL);
		return;
	}
	ui_form_field(q, qn, "done", done, sizeof(done));
	/* Only this page is copied out of the engine; the counts walk the rest. */
	struct engine_page pg = {.limit = UI_PAGE_SIZE,
				 .skip = (size_t)(page - 1) * UI_PAGE_SIZE,
				 .state = state[0] ? state : NULL,
				 .count = true};
	int prc = states ? engine_incidents_page(c->ui->engine, &pg, &js) : -1;
	if (prc == ENGINE_PAGE_BAD_STATE) { /* a state word no incident can be in */
		pg.state = NULL;
		pg.limit = 0;
		buf_release(&js);
		prc = engine_incidents_page(c->ui->engine, &pg, &js);
		pg.matched = 0;
	}
	if (prc != 0 || !(all = json_loadb(js.data, js.len, 0, NULL))) {
		json_decref(states);
		buf_release(&js);
		send_message(req, 500, "Internal error", "out of memory", NULL);
		return;
	}
	buf_release(&js);
	index_catch_up(&c->ui->ix, NULL);
	int64_t now = timestamp_now().sec * 1000;
	size_t i, shown = 0, matched = pg.matched, from = pg.skip;
	json_t *inc;
	for (int si = 0; si < ENGINE_STATES; si++)
		if (pg.state_counts[si])
			json_object_set_new(states, engine_state_name(si), json_true());
	const char *notice = done[0] ? done_notice(done) : NULL;
	int bad = page_head(&b, "Incidents", NULL) | top_bar(&b, c->signed_in ? c->csrf : NULL);
	if (notice)
		bad |=
		    buf_adds(&b, "<p class=\"notice\">") | esc(&b, notice) | buf_adds(&b, "</p>\n");
	if (!c->has_token)
		bad |= buf_adds(&b, "<p class=\"notice\">Read-only: no api token is configured "
				    "(auth.api.token), so nothing can be changed here.</p>\n");
	bad |= pause_banner(&b, c) | buf_adds(&b, "<h1>Incidents</h1>\n<nav class=\"filter\">") |
	       filter_link(&b, NULL, state, "all");
	const char *k;
	json_t *v;
	json_object_foreach(states, k, v) if (valid_state_word(k)) bad |=
	    filter_link(&b, k, state, k);
	if (state[0] && !json_object_get(states, state))
		bad |= filter_link(&b, state, state, state);
	bad |= buf_adds(&b, "</nav>\n<table class=\"incidents\"><thead><tr><th>Incident</th>"
			    "<th>State</th><th>Target</th><th>Rule</th><th>Value vs threshold</th>"
			    "<th>Age</th><th>Acknowledged by</th></tr></thead><tbody>\n");
	json_array_foreach(all, i, inc)
	{
		const char *id = mstr(inc, "id"), *s = mstr(inc, "state");
		if (!id)
			continue;
		struct buf target = BUF_INIT;
		char age[32] = "", value[UI_VALUE_MAX];
		int64_t first = time_ms(mstr(inc, "first_seen"));
		if (first != INT64_MIN)
			format_age(now - first, age, sizeof(age));
		index_value(&c->ui->ix, id, value, sizeof(value));
		bad |= ui_incident_target(inc, &target);
		bad |= buf_adds(&b, "<tr><td><a href=\"/ui/incidents/") | esc(&b, id) |
		       buf_adds(&b, "\"><code>") | esc(&b, id) |
		       buf_adds(&b, "</code></a></td><td data-k=\"state\">") | state_badge(&b, s) |
		       buf_adds(&b, "</td><td data-k=\"target\">") | esc(&b, target.data) |
		       buf_adds(&b, "</td><td data-k=\"rule\">") | esc(&b, mstr(inc, "rule")) |
		       buf_adds(&b, "</td><td data-k=\"value\">") |
		       esc(&b, value[0] ? value : "—") | buf_adds(&b, "</td><td data-k=\"age\">") |
		       esc(&b, age) | buf_adds(&b, "</td><td data-k=\"acknowledged by\">") |
		       esc(&b, mstr(inc, "acknowledged_by") ? mstr(inc, "acknowledged_by") : "—") |
		       buf_adds(&b, "</td></tr>\n");
		buf_release(&target);
		shown++;
	}
	bad |= buf_adds(&b, "</tbody></table>\n");
	if (!matched)
		bad |= buf_adds(&b, "<p class=\"mute\">No incidents.</p>\n");
	bad |= buf_addf(&b, "<nav class=\"pages\"><span class=\"mute\">%zu incident(s)</span>",
			matched);
	if (page > 1)
		bad |= buf_addf(&b, "<a rel=\"prev\" href=\"/ui/?%s%s%spage=%lld\">Newer</a>",
				state[0] ? "state=" : "", state, state[0] ? "&amp;" : "",
				(long long)(page - 1));
	if (matched > from + shown)
		bad |= buf_addf(&b, "<a rel=\"next\" href=\"/ui/?%s%s%spage=%lld\">Older</a>",
				state[0] ? "state=" : "", state, state[0] ? "&amp;" : "",
				(long long)(page + 1));
	bad |= buf_adds(&b, "</nav>\n") | page_foot(&b);
	json_decref(all);
	json_decref(states);
	if (bad)
		send_message(req, 500, "Internal error", "out of memory", NULL);
	else
		send_html(req, 200, &b);
	buf_release(&b);
}

static bool valid_id(const char *id)
{
	size_t n = strlen(id);
	return n > 0 && n <= UI_ID_MAX &&
	       strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == n;
}

/* The incident's JSON from the engine (new reference), or NULL. */
static json_t *engine_incident(struct ui *ui, const char *id)
{
	struct buf js = BUF_INIT;
	json_t *inc = NULL;
	if (engine_incident_json(ui->engine, id, &js) == 0)
		inc = json_loadb(js.data, js.len, 0, NULL);
	buf_release(&js);
	return inc;
}

static void incident_page(struct request_ctx *c, struct evhttp_request *req, const char *id,
			  int status, const char *notice, const char *error)
{
	json_t *inc = engine_incident(c->ui, id);
	size_t dropped = 0, max = 0, evicted;
	bool current, ready = index_catch_up(&c->ui->ix, &current);
	json_t *recs = index_records(&c->ui->ix, id, &dropped);
	struct buf b = BUF_INIT;
	if (!recs) {
		json_decref(inc);
		send_message(req, 500, "Internal error", "out of memory", NULL);
		return;
	}
	/* The whole journal was indexed just now and some incidents left the
	 * index: one without records there left it too (each has a record). */
	evicted = index_evicted(&c->ui->ix, &max);
	bool older = ready && current && evicted && json_array_size(recs) == 0;
	if (!inc && json_array_size(recs) == 0) {
		char msg[512];
		if (older)
			snprintf(
			    msg, sizeof(msg),
			    "rollbackd knows no incident with that id in memory, and the "
			    "console's journal index, which keeps the newest %zu incidents at "
			    "most, does not hold it: its records, if it had any, are older than "
			    "the "
			    "index. rollbackd audit show --incident %s reads the whole journal.",
			    max, id);
		json_decref(recs);
		send_message(req, 404, "No such incident",
			     older   ? msg
			     : ready ? "rollbackd knows no incident with that id."
				     : "rollbackd knows no incident with that id (the journal is "
				       "still being indexed: try again in a moment).",
			     c->signed_in ? c->csrf : NULL);
		return;
	}
	struct ui_page page = {
	    .can_act = c->signed_in,
	    .csrf = c->csrf,
	    .notice = notice,
	    .error = error,
	    .dropped = dropped,
	    .older_than_index = older ? max : 0,
	    .now_ms = timestamp_now().sec * 1000,
	    .footer = ready ? NULL
			    : "The journal is still being indexed: the timeline may be "
			      "incomplete. Reload in a moment.",
	};
	if (ui_render_incident(&b, id, inc, recs, &page) < 0)
		send_message(req, 500, "Internal error", "out of memory", NULL);
	else
		send_html(req, status, &b);
	buf_release(&b);
	json_decref(inc);
	json_decref(recs);
}

/* POST /ui/incidents/{id}/ack|approve */
static void incident_action(struct request_ctx *c, struct evhttp_request *req, const char *id,
			    bool approve)
{
	char by[LINKS_BY_MAX * 4 + 1], typed[UI_FORM_FIELD_MAX], msg[512], when[TIMESTAMP_STRLEN];
	if (!may_change(c, req) || journal_down(c->ui, req))
		return;
	if (ui_form_field(c->body, c->body_len, "by", by, sizeof(by)) < 0 ||
	    ui_form_field(c->body, c->body_len, "target", typed, sizeof(typed)) < 0) {
		incident_page(c, req, id, 400, NULL,
			      "The form could not be read: nothing was changed.");
		return;
	}
	for (char *p = by; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	if (!by[0] || strspn(by, " ") == strlen(by))
		snprintf(by, sizeof(by), "anonymous");
	if (approve) {
		json_t *inc = engine_incident(c->ui, id);
		struct buf target = BUF_INIT;
		if (!inc) {
			send_message(req, 404, "No such incident",
				     "rollbackd knows no incident with that id.", c->csrf);
			return;
		}
		int bad = ui_incident_target(inc, &target);
		if (!bad && !target.len) /* no group labels: the id names it */
			bad = buf_adds(&target, id);
		json_decref(inc);
		if (bad || !ui_target_matches(typed, target.data ? target.data : "")) {
			struct buf m = BUF_INIT;
			buf_adds(&m, "The target you typed does not match ");
			buf_adds(&m, target.data ? target.data : "");
			buf_adds(&m, ": nothing was approved.");
			incident_page(c, req, id, 400, NULL, m.data ? m.data : "target mismatch");
			buf_release(&m);
			buf_release(&target);
			return;
		}
		buf_release(&target);
	}
	struct engine_use prev = {{0}, {0, 0}, 0};
	/* episode 0: the console acts on the episode the incident is in now */
	int rc = approve ? engine_approve(c->ui->engine, id, 0, by, "console", &prev)
			 : engine_ack(c->ui->engine, id, 0, by, "console", &prev);
	switch (rc) {
	case ENGINE_USE_DONE: {
		char loc[160];
		snprintf(loc, sizeof(loc), "/ui/incidents/%s?done=%s", id,
			 approve ? "approve" : "ack");
		log_info(approve ? "console: approved" : "console: acknowledged", "incident", id,
			 "by", by, NULL);
		redirect_durable(c->ui, req, loc);
		return;
	}
	case ENGINE_USE_ALREADY:
		timestamp_format(prev.at, when, sizeof(when));
		snprintf(msg, sizeof(msg), "Already %s by %s at %s: nothing was changed.",
			 approve ? "approved" : "acknowledged", prev.by, when);
		incident_page(c, req, id, 409, NULL, msg);
		return;
	case ENGINE_USE_NOT_APPLICABLE:
		incident_page(c, req, id, 409, NULL,
			      approve
				  ? "This incident is not awaiting approval: nothing was changed."
				  : "This incident is already resolved: nothing was changed.");
		return;
	default:
		send_message(req, 404, "No such incident",
			     "rollbackd knows no incident with that id.", c->csrf);
		return;
	}
}

static void handle_pause(struct request_ctx *c, struct evhttp_request *req, bool pause)
{
	if (!may_change(c, req) || journal_down(c->ui, req))
		return;
	engine_set_paused(c->ui->engine, pause, "console");
	log_info(pause ? "console: paused" : "console: resumed", NULL);
	redirect_durable(c->ui, req, pause ? "/ui/?done=pause" : "/ui/?done=resume");
}

static void handle_incident_path(struct request_ctx *c, struct evhttp_request *req,
				 const char *rest)
{
	char id[UI_ID_MAX + 1];
	const char *slash = strchr(rest, '/');
	size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
	bool post = evhttp_request_get_command(req) == EVHTTP_REQ_POST;
	if (n == 0 || n > UI_ID_MAX) {
		send_message(req, 404, "Not found", "no such page", NULL);
		return;
	}
	memcpy(id, rest, n);
	id[n] = '\0';
	if (!valid_id(id)) {
		send_message(req, 404, "No such incident",
			     "rollbackd knows no incident with that id.", NULL);
		return;
	}
	if (!slash) {
		if (post) {
			evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
					  "GET, HEAD");
			send_message(req, 405, "Method not allowed", "this page accepts GET only",
				     NULL);
			return;
		}
		if (!may_read(c, req))
			return;
		const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
		char done[16] = "";
		ui_form_field(q, q ? strlen(q) : 0, "done", done, sizeof(done));
		incident_page(c, req, id, 200, done[0] ? done_notice(done) : NULL, NULL);
		return;
	}
	bool ack = strcmp(slash, "/ack") == 0, approve = strcmp(slash, "/approve") == 0;
	if (!ack && !approve) {
		send_message(req, 404, "Not found", "no such page", NULL);
		return;
	}
	if (!post) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "POST");
		send_message(req, 405, "Method not allowed", "this address accepts POST only",
			     NULL);
		return;
	}
	incident_action(c, req, id, approve);
}

void ui_handle(struct ui *ui, struct evhttp_request *req)
{
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	bool post = cmd == EVHTTP_REQ_POST;
	struct request_ctx c;
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD && !post) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
				  "GET, HEAD, POST");
		send_message(req, 405, "Method not allowed",
			     "the console accepts GET, HEAD and POST", NULL);
		return;
	}
	if (!strcmp(path, "/ui")) {
		redirect(req, "/ui/");
		return;
	}
	if (!strcmp(path, "/ui/style.css")) {
		send_body(req, 200, "text/css; charset=utf-8", ui_stylesheet,
			  sizeof(ui_stylesheet) - 1);
		return;
	}
	ctx_init(ui, req, &c);
	if (!strcmp(path, "/ui/login")) {
		handle_login(&c, req);
	} else if (!strcmp(path, "/ui/logout") && post) {
		handle_logout(&c, req);
	} else if (!strcmp(path, "/ui/pause") && post) {
		handle_pause(&c, req, true);
	} else if (!strcmp(path, "/ui/resume") && post) {
		handle_pause(&c, req, false);
	} else if (!strcmp(path, "/ui/") && !post) {
		if (may_read(&c, req))
			handle_list(&c, req);
	} else if (!strncmp(path, "/ui/incidents/", 14)) {
		handle_incident_path(&c, req, path + 14);
	} else if (!strcmp(path, "/ui/") || !strcmp(path, "/ui/logout") ||
		   !strcmp(path, "/ui/pause") || !strcmp(path, "/ui/resume")) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
				  post ? "GET, HEAD" : "POST");
		send_message(req, 405, "Method not allowed", "wrong method for this address", NULL);
	} else {
		send_message(req, 404, "Not found", "no such page in the console", NULL);
	}
	sodium_memzero(c.csrf, sizeof(c.csrf));
}
