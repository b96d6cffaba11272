/*
 * Unit tests for secret: files and environment variables, the trailing
 * newline rule, size and emptiness limits, and error messages that name the
 * source but never the content.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rollbackd/secret.h"

static char dir[64];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/rollbackd-secret-XXXXXX");
	cr_assert(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
}

static void teardown(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[512];
	cr_assert(d);
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		cr_assert_eq(unlink(path), 0, "%s: %s", path, strerror(errno));
	}
	closedir(d);
	cr_assert_eq(rmdir(dir), 0);
}

TestSuite(secret, .init = setup, .fini = teardown);

/* Write n bytes to dir/name; the path into path. */
static void write_file(const char *name, const void *p, size_t n, char *path, size_t cap)
{
	snprintf(path, cap, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	cr_assert(f, "fopen %s: %s", path, strerror(errno));
	cr_assert_eq(fwrite(p, 1, n, f), n);
	cr_assert_eq(fclose(f), 0);
}

/* Load content from a file and compare what comes out. */
static void check_file(const char *content, size_t n, const char *want, size_t want_len)
{
	char path[128];
	struct secret s = {0};
	struct error err = {{0}};
	write_file("s", content, n, path, sizeof(path));
	cr_assert_eq(secret_from_file(path, &s, &err), 0, "%s", err.msg);
	cr_assert(secret_is_set(&s));
	cr_assert_eq(s.len, want_len);
	cr_assert_eq(memcmp(s.data, want, want_len), 0);
	cr_assert_eq(s.data[s.len], '\0');
	secret_release(&s);
}

Test(secret, file_plain)
{
	check_file("hunter2", 7, "hunter2", 7);
}

Test(secret, file_trailing_newline)
{
	check_file("hunter2\n", 8, "hunter2", 7);
	check_file("hunter2\r\n", 9, "hunter2", 7);
	/* Only one newline goes. */
	check_file("hunter2\n\n", 9, "hunter2\n", 8);
	check_file("hunter2\r\n\r\n", 11, "hunter2\r\n", 9);
	check_file("hunter2\n\r\n", 10, "hunter2\n", 8);
	/* A lone CR, leading and inner newlines, spaces stay. */
	check_file("hunter2\r", 8, "hunter2\r", 8);
	check_file("\nhunter2", 8, "\nhunter2", 8);
	check_file("a\nb\n", 4, "a\nb", 3);
	check_file(" x ", 3, " x ", 3);
}

Test(secret, file_binary)
{
	static const char bin[] = {'k', '\0', (char)0xff, '\n', 'z'};
	check_file(bin, sizeof(bin), bin, sizeof(bin));
}

Test(secret, file_empty)
{
	const char *contents[] = {"", "\n", "\r\n"};
	for (size_t i = 0; i < 3; i++) {
		char path[128];
		struct secret s = {0};
		struct error err = {{0}};
		write_file("empty", contents[i], strlen(contents[i]), path, sizeof(path));
		cr_assert_eq(secret_from_file(path, &s, &err), -1);
		cr_assert_null(s.data);
		cr_assert_eq(s.len, 0);
		cr_assert(strstr(err.msg, path), "'%s'", err.msg);
		cr_assert(strstr(err.msg, "empty"), "'%s'", err.msg);
	}
}

Test(secret, file_missing)
{
	char path[128];
	struct secret s = {0};
	struct error err = {{0}};
	snprintf(path, sizeof(path), "%s/does-not-exist.key", dir);
	cr_assert_eq(secret_from_file(path, &s, &err), -1);
	cr_assert_null(s.data);
	char want[256];
	snprintf(want, sizeof(want), "cannot open secret file '%s': %s", path, strerror(ENOENT));
	cr_assert_str_eq(err.msg, want);
	/* err may be NULL. */
	cr_assert_eq(secret_from_file(path, &s, NULL), -1);
}

Test(secret, file_is_directory)
{
	struct secret s = {0};
	struct error err = {{0}};
	cr_assert_eq(secret_from_file(dir, &s, &err), -1);
	cr_assert_null(s.data);
	cr_assert(strstr(err.msg, dir), "'%s'", err.msg);
	cr_assert(strstr(err.msg, strerror(EISDIR)), "'%s'", err.msg);
}

Test(secret, file_unreadable)
{
	char path[128];
	struct secret s = {0};
	struct error err = {{0}};
	write_file("locked", "x", 1, path, sizeof(path));
	cr_assert_eq(chmod(path, 0), 0);
	if (geteuid() == 0) /* root reads mode 000 files */
		return;
	cr_assert_eq(secret_from_file(path, &s, &err), -1);
	cr_assert(strstr(err.msg, path));
	cr_assert(strstr(err.msg, strerror(EACCES)), "'%s'", err.msg);
}

Test(secret, file_size_limit)
{
	char path[128];
	struct secret s = {0};
	struct error err = {{0}};
	char *big = malloc(SECRET_MAX_BYTES + 2);
	cr_assert(big);
	memset(big, 'S', SECRET_MAX_BYTES + 2);

	write_file("max", big, SECRET_MAX_BYTES, path, sizeof(path));
	cr_assert_eq(secret_from_file(path, &s, &err), 0, "%s", err.msg);
	cr_assert_eq(s.len, SECRET_MAX_BYTES);
	secret_release(&s);

	/* The limit is on the file: a newline past it does not help. */
	big[SECRET_MAX_BYTES] = '\n';
	write_file("max-nl", big, SECRET_MAX_BYTES + 1, path, sizeof(path));
	cr_assert_eq(secret_from_file(path, &s, &err), -1);
	cr_assert_null(s.data);
	cr_assert(strstr(err.msg, path), "'%s'", err.msg);
	cr_assert(strstr(err.msg, "larger than 65536 bytes"), "'%s'", err.msg);
	cr_assert_null(strstr(err.msg, "SSSS"));

	write_file("huge", big, SECRET_MAX_BYTES + 2, path, sizeof(path));
	cr_assert_eq(secret_from_file(path, &s, &err), -1);
	cr_assert(strstr(err.msg, "larger than"), "'%s'", err.msg);
	free(big);
}

Test(secret, file_dev_null_is_empty)
{
	struct secret s = {0};
	struct error err = {{0}};
	cr_assert_eq(secret_from_file("/dev/null", &s, &err), -1);
	cr_assert_str_eq(err.msg, "secret file '/dev/null' is empty");
}

Test(secret, env)
{
	struct secret s = {0};
	struct error err = {{0}};
	cr_assert_eq(setenv("ROLLBACKD_TEST_SECRET", "tok-123", 1), 0);
	cr_assert_eq(secret_from_env("ROLLBACKD_TEST_SECRET", &s, &err), 0);
	cr_assert_eq(s.len, 7);
	cr_assert_str_eq((const char *)s.data, "tok-123");
	secret_release(&s);

	cr_assert_eq(setenv("ROLLBACKD_TEST_SECRET", "tok-123\r\n", 1), 0);
	cr_assert_eq(secret_from_env("ROLLBACKD_TEST_SECRET", &s, &err), 0);
	cr_assert_str_eq((const char *)s.data, "tok-123");
	cr_assert_eq(s.len, 7);
	secret_release(&s);
}

Test(secret, env_unset_and_empty)
{
	struct secret s = {0};
	struct error err = {{0}};
	cr_assert_eq(unsetenv("ROLLBACKD_TEST_NOPE"), 0);
	cr_assert_eq(secret_from_env("ROLLBACKD_TEST_NOPE", &s, &err), -1);
	cr_assert_null(s.data);
	cr_assert_str_eq(err.msg, "environment variable 'ROLLBACKD_TEST_NOPE' is not set");

	cr_assert_eq(setenv("ROLLBACKD_TEST_EMPTY", "", 1), 0);
	cr_assert_eq(secret_from_env("ROLLBACKD_TEST_EMPTY", &s, &err), -1);
	cr_assert_str_eq(err.msg, "environment variable 'ROLLBACKD_TEST_EMPTY' is empty");
	cr_assert_eq(setenv("ROLLBACKD_TEST_EMPTY", "\n", 1), 0);
	cr_assert_eq(secret_from_env("ROLLBACKD_TEST_EMPTY", &s, &err), -1);
	cr_assert_null(s.data);

	cr_assert_eq(secret_from_env("", &s, &err), -1);
	cr_assert_eq(secret_from_env(NULL, &s, NULL), -1);
}

Test(secret, env_too_large_names_variable_not_value)
{
	struct secret s = {0};
	struct error err = {{0}};
	char *big = malloc(SECRET_MAX_BYTES + 2);
	cr_assert(big);
	memset(big, 'V', SECRET_MAX_BYTES + 1);
	big[SECRET_MAX_BYTES + 1] = '\0';
	cr_assert_eq(setenv("ROLLBACKD_TEST_BIG", big, 1), 0);
	cr_assert_eq(secret_from_env("ROLLBACKD_TEST_BIG", &s, &err), -1);
	cr_assert(strstr(err.msg, "'ROLLBACKD_TEST_BIG'"), "'%s'", err.msg);
	cr_assert_null(strstr(err.msg, "VVVV"));
	free(big);
}

Test(secret, bytes_and_release)
{
	struct secret s = {0};
	cr_assert_not(secret_is_set(&s));
	secret_release(&s); /* unset: harmless */
	cr_assert_eq(secret_from_bytes("ab\0c", 4, &s), 0);
	cr_assert(secret_is_set(&s));
	cr_assert_eq(s.len, 4);
	cr_assert_eq(memcmp(s.data, "ab\0c", 5), 0); /* NUL-terminated */
	secret_release(&s);
	cr_assert_null(s.data);
	cr_assert_eq(s.len, 0);
	secret_release(&s);

	/* Empty and oversized secrets are refused; out is untouched. */
	s.len = 42;
	cr_assert_eq(secret_from_bytes("", 0, &s), -1);
	cr_assert_eq(secret_from_bytes("x", SECRET_MAX_BYTES + 1, &s), -1);
	cr_assert_null(s.data);
	cr_assert_eq(s.len, 42);
}
