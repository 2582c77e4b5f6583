/*
 * fs.c - file-system helpers (fs.h): mkdir -p, a directory's fsync, whole writes.
 *
 * Failure modes: each returns at the first failing system call with its errno kept.
 */
#include "util/fs.h"
#include "util/alloc.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int mg_mkdirs(const char *path)
{
    char *p = mg_strdup(path);
    int e = 0;
    for (char *s = p; *s && e == 0; s++) {
        if (*s != '/' || s == p)
            continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            e = errno;
        *s = '/';
    }
    if (e == 0 && mkdir(p, 0755) != 0 && errno != EEXIST)
        e = errno;
    mg_free(p);
    errno = e;
    return e ? mg_err_from_errno(e) : 0;
}

int mg_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return mg_err_from_errno(errno);
    int e = fsync(fd) != 0 ? errno : 0;
    close(fd);
    errno = e;
    return e ? mg_err_from_errno(e) : 0;
}

int mg_write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int mg_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        off += (uint64_t)n;
        len -= (size_t)n;
    }
    return 0;
}

char *mg_read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        mg_set_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = mg_malloc(max + 2);
    size_t n = fread(buf, 1, max + 1, f);
    int rerr = ferror(f) ? errno : 0;
    fclose(f);
    if (rerr != 0 || n > max) {
        if (rerr != 0)
            mg_set_err(err, errlen, "%s: cannot read: %s", path, strerror(rerr));
        else
            mg_set_err(err, errlen, "%s: larger than %zu bytes", path, max);
        mg_free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}
