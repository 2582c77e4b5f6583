/*
 * fs.h - file-system helpers of the roles that keep files: the bookie (journal, entry logs,
 * index), the embedded metadata store and the daemon's data directory.
 *
 * Blocking system calls: call them where blocking is allowed (start-up, the bookie's
 * journal thread, the stores' own synchronous writes). Each keeps errno as the failing
 * call left it, for callers that tell ENOSPC from other failures or print strerror(errno).
 */
#ifndef MG_FS_H
#define MG_FS_H

#include <stddef.h>
#include <stdint.h>

/* mkdir -p (mode 0755): path and its missing parents. 0, or -MG_E* (errno set). */
int mg_mkdirs(const char *path);
/* fsync a directory, so that an entry created or renamed in it is durable. 0 or -MG_E*. */
int mg_fsync_dir(const char *dir);
/* Write all len bytes of buf at fd's offset (mg_write_all) or at off (mg_pwrite_all),
 * through short writes and EINTR. 0, or -1 with errno set; bytes before the failure may
 * have been written. */
int mg_write_all(int fd, const void *buf, size_t len);
int mg_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
/* The whole file at path, at most max bytes: mg_malloc'd (mg_free) with a NUL after the
 * *len bytes, or NULL with err "PATH: cannot open: ...", "PATH: cannot read: ..." or "PATH:
 * larger than MAX bytes". */
char *mg_read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen);

#endif
