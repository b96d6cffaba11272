/*
 * secret: load keys, tokens and passwords from files or the environment.
 *
 * The value is held in a malloc'd buffer that is wiped before it is freed,
 * including every intermediate copy. This module must never put a secret's
 * bytes into an error message, a log line or anything else that leaves it:
 * messages name the file path or the variable name and the reason only.
 */
#include "rollbackd/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

/* Length after dropping one trailing "\n" or "\r\n". */
static size_t strip_newline(const unsigned char *p, size_t n)
{
	if (n >= 2 && p[n - 2] == '\r' && p[n - 1] == '\n')
		return n - 2;
	if (n >= 1 && p[n - 1] == '\n')
		return n - 1;
	return n;
}

int secret_from_bytes(const void *p, size_t n, struct secret *out)
{
	if (n == 0 || n > SECRET_MAX_BYTES)
		return -1;
	unsigned char *data = malloc(n + 1);
	if (!data)
		return -1;
	memcpy(data, p, n);
	data[n] = '\0';
	out->data = data;
	out->len = n;
	return 0;
}

int secret_from_file(const char *path, struct secret *out, struct error *err)
{
	int fd = -1, ret = -1;
	/* One byte more than allowed, so that an oversized file is noticed
	 * without trusting st_size (which lies for pipes and /proc). */
	const size_t cap = SECRET_MAX_BYTES + 1;
	unsigned char *raw = NULL;
	size_t len = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		error_set(err, "cannot open secret file '%s': %s", path, strerror(errno));
		goto out;
	}
	raw = malloc(cap);
	if (!raw) {
		error_set(err, "cannot read secret file '%s': %s", path, strerror(ENOMEM));
		goto out;
	}
	while (len < cap) {
		ssize_t r = read(fd, raw + len, cap - len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			error_set(err, "cannot read secret file '%s': %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	if (len > SECRET_MAX_BYTES) {
		error_set(err, "secret file '%s' is larger than %d bytes", path, SECRET_MAX_BYTES);
		goto out;
	}
	len = strip_newline(raw, len);
	if (len == 0) {
		error_set(err, "secret file '%s' is empty", path);
		goto out;
	}
	if (secret_from_bytes(raw, len, out) < 0) {
		error_set(err, "cannot read secret file '%s': %s", path, strerror(ENOMEM));
		goto out;
	}
	ret = 0;
out:
	if (raw) {
		sodium_memzero(raw, cap);
		free(raw);
	}
	if (fd >= 0)
		close(fd);
	return ret;
}

int secret_from_env(const char *name, struct secret *out, struct error *err)
{
	if (!name || !*name)
		return error_set(err, "empty environment variable name");
	const char *v = getenv(name);
	if (!v)
		return error_set(err, "environment variable '%s' is not set", name);
	size_t n = strlen(v);
	if (n > SECRET_MAX_BYTES)
		return error_set(err, "environment variable '%s' is larger than %d bytes", name,
				 SECRET_MAX_BYTES);
	n = strip_newline((const unsigned char *)v, n);
	if (n == 0)
		return error_set(err, "environment variable '%s' is empty", name);
	if (secret_from_bytes(v, n, out) < 0)
		return error_set(err, "cannot load environment variable '%s': %s", name,
				 strerror(ENOMEM));
	return 0;
}

void secret_release(struct secret *s)
{
	if (s->data) {
		sodium_memzero(s->data, s->len + 1);
		free(s->data);
	}
	s->data = NULL;
	s->len = 0;
}
