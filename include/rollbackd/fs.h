/*
 * fs: the small file-system helpers the journal, the snapshot and the
 * checkpointer share: a path under a directory, and making a directory
 * entry durable.
 *
 * Must never: log, or block on anything but the disk (callers keep them off
 * event loops except at start and stop). Thread-safe: no state.
 */
#ifndef ROLLBACKD_FS_H
#define ROLLBACKD_FS_H

/* dir "/" name (no second slash when dir ends in one), malloc'd; NULL
 * without memory. */
char *fs_join(const char *dir, const char *name);

/* fsync the directory dir, so that the entries created or renamed in it
 * survive a crash. 0, or -1 with errno. */
int fs_fsync_dir(const char *dir);

/* fs_fsync_dir of the directory that holds path ("." for a bare name).
 * 0, or -1 with errno. */
int fs_fsync_parent(const char *path);

#endif
