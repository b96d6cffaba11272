/*
 * cmd: what each command-line verb does. Secrets are read here only through
 * config/secret and never printed (sign prints a MAC, not the key).
 */
#include "rollbackd/cmd.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rollbackd/auth.h"
#include "rollbackd/buf.h"
#include "rollbackd/config.h"
#include "rollbackd/log.h"
#include "rollbackd/metrics.h"
#include "rollbackd/secret.h"
#include "rollbackd/server.h"

#define SIGN_MAX_BODY (64u << 20) /* what `sign` reads from stdin at most */

static int load_config(const char *path, struct config *cfg)
{
	struct error err = {{0}};
	int r = path ? config_load(path, cfg, &err) : config_init(cfg);
	if (r < 0)
		fprintf(stderr, "rollbackd: %s\n", err.msg[0] ? err.msg : "out of memory");
	return r;
}

int cmd_serve(const char *config_path)
{
	struct config cfg;
	struct error err = {{0}};
	enum log_level level = LOG_INFO;
	if (load_config(config_path, &cfg) < 0)
		return EXIT_INVALID;
	if (log_level_parse(cfg.log_level, &level) == 0)
		log_set_level(level);
	log_info("starting", "version", ROLLBACKD_VERSION, "config",
		 config_path ? config_path : "(built-in defaults)", NULL);
	int r = server_run(&cfg, &err);
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
	printf("%s: ok\n", config_path ? config_path : "built-in defaults");
	config_release(&cfg);
	return EXIT_OK;
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
