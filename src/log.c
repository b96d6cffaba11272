/*
 * log: JSON lines on stderr, one write(2) per line so threads never
 * interleave. It must never log a secret: callers pass only names, paths and
 * request facts.
 */
#include "rollbackd/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "rollbackd/buf.h"
#include "rollbackd/timestamp.h"

static _Atomic int min_level = LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_set_level(enum log_level level)
{
	atomic_store(&min_level, (int)level);
}

int log_level_parse(const char *s, enum log_level *out)
{
	for (int i = LOG_DEBUG; i <= LOG_ERROR; i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

int log_enabled(enum log_level level)
{
	return (int)level >= atomic_load(&min_level);
}

void log_msg(enum log_level level, const char *msg, ...)
{
	if (!log_enabled(level))
		return;
	char ts[TIMESTAMP_STRLEN];
	size_t tslen = timestamp_format(timestamp_now(), ts, sizeof(ts));
	struct buf b;
	buf_init(&b, 1 << 20); /* a log line never exceeds 1 MiB */
	int bad = buf_adds(&b, "{\"ts\":\"") | buf_add(&b, ts, tslen) |
		  buf_adds(&b, "\",\"level\":\"") | buf_adds(&b, level_names[level]) |
		  buf_adds(&b, "\",\"msg\":") | buf_add_json_str(&b, msg, strlen(msg));
	va_list ap;
	va_start(ap, msg);
	const char *key;
	while ((key = va_arg(ap, const char *)) != NULL) {
		const char *val = va_arg(ap, const char *);
		if (!val)
			val = "";
		bad |= buf_addc(&b, ',') | buf_add_json_str(&b, key, strlen(key)) |
		       buf_addc(&b, ':') | buf_add_json_str(&b, val, strlen(val));
	}
	va_end(ap);
	bad |= buf_adds(&b, "}\n");
	if (!bad) {
		const char *p = b.data;
		size_t left = b.len;
		while (left > 0) {
			ssize_t n = write(STDERR_FILENO, p, left);
			if (n <= 0)
				break; /* nowhere to report a failing stderr */
			p += n;
			left -= (size_t)n;
		}
	}
	buf_release(&b);
}
