/*
 * log: one JSON object per line on stderr.
 *
 *   {"ts":"2026-11-21T10:00:00.123Z","level":"info","msg":"listening","addr":"127.0.0.1:9097"}
 *
 * Fields are given as name/value pairs after the message, terminated by NULL:
 *   log_info("alert", "fingerprint", fp, "status", st, NULL);
 * Values are strings (escaped here). Never pass a secret. Thread-safe: a line
 * is written with one write(2).
 */
#ifndef ROLLBACKD_LOG_H
#define ROLLBACKD_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level level);
/* Parse "debug"|"info"|"warn"|"error"; -1 when unknown. */
int log_level_parse(const char *s, enum log_level *out);
int log_enabled(enum log_level level);

void log_msg(enum log_level level, const char *msg, ...)
	__attribute__((sentinel));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
