/* err.c - text, names and Pulsar ServerError mapping of magnetar's error codes, and the
 * formatting of error messages into callers' buffers. */
#include "util/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#define MG_ERR_TEXT(name, text, se) text,
#define MG_ERR_NAME(name, text, se) #name,
#define MG_ERR_SE(name, text, se) se,
static const char *const err_text[] = {MG_ERR_LIST(MG_ERR_TEXT)};
static const char *const err_name[] = {MG_ERR_LIST(MG_ERR_NAME)};
static const int err_se[] = {MG_ERR_LIST(MG_ERR_SE)};

static int mg_err_index(int err)
{
    if (err < 0)
        err = -err;
    return err < MG_ERR__COUNT ? err : -1;
}

const char *mg_strerror(int err)
{
    int i = mg_err_index(err);
    return i < 0 ? "unknown error" : err_text[i];
}

const char *mg_errname(int err)
{
    int i = mg_err_index(err);
    return i < 0 ? "MG_E?" : err_name[i];
}

int mg_err_server_error(int err)
{
    int i = mg_err_index(err);
    return i < 0 ? 0 : err_se[i];
}

int mg_err_from_errno(int e)
{
    switch (e) {
    case 0:
        return MG_OK;
    case ENOMEM:
        return -MG_ENOMEM;
    case EINVAL:
        return -MG_EINVAL;
    case ENOENT:
        return -MG_ENOTFOUND;
    case EEXIST:
        return -MG_EEXIST;
    case EBUSY:
        return -MG_EBUSY;
    case ETIMEDOUT:
        return -MG_ETIMEDOUT;
    case ECANCELED:
        return -MG_ECANCELED;
    case EROFS:
        return -MG_EREADONLY;
    case ENOSPC:
    case EDQUOT:
        return -MG_ENOSPC;
    case EAGAIN:
        return -MG_EAGAIN;
    default:
        return -MG_EIO;
    }
}

void mg_set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}
