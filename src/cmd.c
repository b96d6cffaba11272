/*
 * cmd: what each command-line verb does. Secrets are read here only through
 * config/secret and never printed (sign prints a MAC, not the key).
 */
#include "rollbackd/cmd.h"

#include <errno.h>
#include <jansson.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rollbackd/auth.h"
#include "rollbackd/alert.h"
#include "rollbackd/buf.h"
#include "rollbackd/config.h"
#include "rollbackd/engine.h"
#include "rollbackd/log.h"
#include "rollbackd/metrics.h"
#include "rollbackd/rules.h"
#include "rollbackd/secret.h"
#include "rollbackd/daemon.h"

#define SIGN_MAX_BODY (64u << 20) /* what `sign` reads from stdin at most */

static int load_config(const char *path, struct config *cfg)
{
	struct error err = {{0}};
	int r = path ? config_load(path, cfg, &err) : config_init(cfg);
	if (r < 0)
		fprintf(stderr, "rollbackd: %s\n", err.msg[0] ? err.msg : "out of memory");
	return r;
}

int cmd_serve(const char *config_path, bool recover)
{
	struct config cfg;
	struct error err = {{0}};
	enum log_level level = LOG_INFO;
#ifdef __GLIBC__
	/* glibc makes up to 8 malloc arenas per CPU, one for each thread that
	 * allocates, and each keeps what was freed in it: incidents are made on
	 * the HTTP workers and the engine's loop, the console index and the
	 * snapshots have threads of their own. Two arenas hold RSS about 11 MiB
	 * lower at 100 000 incidents kept (bench/memory.py, README); the
	 * engine's lock serializes the incidents' allocations anyway. An
	 * operator's MALLOC_ARENA_MAX still wins. */
	if (!getenv("MALLOC_ARENA_MAX"))
		mallopt(M_ARENA_MAX, 2);
#endif
	if (load_config(config_path, &cfg) < 0)
		return EXIT_INVALID;
	cfg.recover = recover;
	if (log_level_parse(cfg.log_level, &level) == 0)
		log_set_level(level);
	log_info("starting", "version", ROLLBACKD_VERSION, "config",
		 config_path ? config_path : "(built-in defaults)", NULL);
	int r = daemon_run(&cfg, config_path, &err);
	if (r < 0)
		log_error("cannot serve", "error", err.msg, NULL);
	config_release(&cfg);
	metrics_free_all();
	return r < 0 ? EXIT_INVALID : EXIT_OK;
}

int cmd_check_config(const char *config_path)
{
	struct config cfg;
	if (load_config(config_path, &cfg) < 0)
		return EXIT_INVALID;
	const char *paths[] = {cfg.rules};
	int errors = rules_check(paths, 1);
	if (errors == 0)
		printf("%s: ok\n", config_path ? config_path : "built-in defaults");
	config_release(&cfg);
	return errors ? EXIT_INVALID : EXIT_OK;
}

int cmd_check_rules(const char *const *paths, size_t n)
{
	int errors = rules_check(paths, n);
	if (errors == 0)
		printf("ok\n");
	return errors ? EXIT_INVALID : EXIT_OK;
}

static int read_all(int fd, struct buf *out)
{
	char chunk[65536];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n == 0)
			return 0;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (buf_add(out, chunk, (size_t)n) < 0)
			return -1;
	}
}

int cmd_sign(const char *secret_file, const char *timestamp)
{
	struct secret key = {0};
	struct error err = {{0}};
	struct buf body, sig;
	int rc = EXIT_INVALID;
	int64_t t = (int64_t)time(NULL);
	buf_init(&body, SIGN_MAX_BODY);
	buf_init(&sig, 0);

	if (timestamp) {
		char *end = NULL;
		errno = 0;
		long long v = strtoll(timestamp, &end, 10);
		if (errno || !end || *end || end == timestamp || v < 0) {
			fprintf(stderr, "rollbackd: sign: --timestamp '%s' is not unix seconds\n",
				timestamp);
			rc = EXIT_USAGE;
			goto out;
		}
		t = v;
	}
	if (secret_from_file(secret_file, &key, &err) < 0) {
		fprintf(stderr, "rollbackd: sign: %s\n", err.msg);
		goto out;
	}
	if (read_all(STDIN_FILENO, &body) < 0) {
		fprintf(stderr, "rollbackd: sign: cannot read the body from stdin (at most %u bytes)\n",
			SIGN_MAX_BODY);
		goto out;
	}
	if (auth_sign(&key, t, body.data ? body.data : "", body.len, &sig) < 0) {
		fprintf(stderr, "rollbackd: sign: out of memory\n");
		goto out;
	}
	printf("%s\n", sig.data);
	rc = EXIT_OK;
out:
	secret_release(&key);
	buf_release(&body);
	buf_release(&sig);
	return rc;
}

/* Read a whole file into b (capped by b's max). */
static int read_file(const char *path, struct buf *b, struct error *err)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return error_set(err, "%s: cannot open: %s", path, strerror(errno));
	char chunk[65536];
	size_t n;
	int rc = 0;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (buf_add(b, chunk, n) < 0) {
			rc = error_set(err, "%s: larger than %zu bytes", path, b->max);
			break;
		}
	}
	if (rc == 0 && ferror(f))
		rc = error_set(err, "%s: read error", path);
	fclose(f);
	return rc;
}

int cmd_test_rules(const char *config_path, const char *rules_path, const char *alerts_path,
		   const char *now_text)
{
	struct config cfg;
	struct ruleset rs = {0};
	struct webhook wh = {0};
	struct engine *e = NULL;
	struct error err = {{0}};
	struct buf body, out;
	struct alert_limits lim = ALERT_LIMITS_DEFAULT;
	struct timestamp now = timestamp_now();
	int rc = EXIT_INVALID;
	buf_init(&body, 64u << 20);
	buf_init(&out, 0);
	log_set_level(LOG_WARN); /* stdout carries the decisions; keep stderr for errors */
	if (config_path) {
		if (load_config(config_path, &cfg) < 0)
			return EXIT_INVALID;
	} else {
		if (config_init(&cfg) < 0)
			return EXIT_INVALID;
		cfg.dry_run = false; /* without a config, show what would run */
	}
	if (now_text && timestamp_parse(now_text, strlen(now_text), &now) < 0) {
		fprintf(stderr, "rollbackd: test-rules: --now '%s' is not an RFC 3339 time\n",
			now_text);
		rc = EXIT_USAGE;
		goto out;
	}
	if (rules_load(rules_path, &rs, &err) < 0 || read_file(alerts_path, &body, &err) < 0) {
		fprintf(stderr, "rollbackd: %s\n", err.msg);
		goto out;
	}
	if (alert_parse_webhook(body.data ? body.data : "", body.len, &lim, &wh, &err) !=
	    ALERT_PARSE_OK) {
		fprintf(stderr, "rollbackd: %s: %s\n", alerts_path, err.msg);
		goto out;
	}
	struct engine_options eo = {.cfg = &cfg, .base = NULL, .plan_only = true};
	e = engine_new(&eo, &rs);
	if (!e || engine_process(e, &wh, now, &out) < 0) {
		fprintf(stderr, "rollbackd: test-rules: out of memory\n");
		goto out;
	}
	/* engine_process gives a JSON array; print one decision per line. */
	json_error_t je;
	json_t *arr = json_loadb(out.data, out.len, 0, &je);
	size_t i;
	json_t *d;
	json_array_foreach(arr, i, d) {
		char *line = json_dumps(d, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (line)
			printf("%s\n", line);
		free(line);
	}
	json_decref(arr);
	rc = EXIT_OK;
out:
	engine_free(e);
	webhook_release(&wh);
	ruleset_release(&rs);
	config_release(&cfg);
	buf_release(&body);
	buf_release(&out);
	metrics_free_all();
	return rc;
}
