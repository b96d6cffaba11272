/*
 * fs: see include/rollbackd/fs.h.
 */
#include "rollbackd/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *fs_join(const char *dir, const char *name)
{
	size_t dl = strlen(dir), n = dl + strlen(name) + 2;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", name);
	return p;
}

int fs_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	int saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

int fs_fsync_parent(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return fs_fsync_dir(".");
	if (slash == path)
		return fs_fsync_dir("/");
	char *dir = strndup(path, (size_t)(slash - path));
	if (!dir) {
		errno = ENOMEM;
		return -1;
	}
	int rc = fs_fsync_dir(dir);
	int saved = errno;
	free(dir);
	errno = saved;
	return rc;
}
