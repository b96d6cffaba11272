/*
 * Unit tests for fs: fs_join's one slash, and the directory fsyncs'
 * answers on a directory that exists and on one that does not.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rollbackd/fs.h"

Test(fs, join_puts_exactly_one_slash)
{
	char *a = fs_join("/var/lib/rollbackd", "journal.jsonl");
	char *b = fs_join("/var/lib/rollbackd/", "journal.jsonl");
	char *c = fs_join("", "x");
	cr_assert_str_eq(a, "/var/lib/rollbackd/journal.jsonl");
	cr_assert_str_eq(b, "/var/lib/rollbackd/journal.jsonl");
	cr_assert_str_eq(c, "/x");
	free(a);
	free(b);
	free(c);
}

Test(fs, fsync_dir_and_parent)
{
	char dir[] = "/tmp/rb-fs-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	char *file = fs_join(dir, "f");
	cr_assert_eq(fs_fsync_dir(dir), 0);
	cr_assert_eq(fs_fsync_parent(file), 0);	  /* dir */
	cr_assert_eq(fs_fsync_parent("bare"), 0); /* "." */
	cr_assert_eq(fs_fsync_parent("/etc"), 0); /* "/" */
	char *missing = fs_join(dir, "gone");
	errno = 0;
	cr_assert_eq(fs_fsync_dir(missing), -1);
	cr_assert_eq(errno, ENOENT);
	char *under = fs_join(missing, "f");
	errno = 0;
	cr_assert_eq(fs_fsync_parent(under), -1);
	cr_assert_eq(errno, ENOENT);
	cr_assert_eq(rmdir(dir), 0);
	free(file);
	free(missing);
	free(under);
}
