/* log.c - stderr logging: "2026-11-25T21:40:01.123Z INFO  conn  text". */
#include "util/log.h"
#include "util/err.h"
#include "util/loop.h"

#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum mg_log_level mg_log_min_level = MG_LOG_INFO;

static const char *const level_name[] = {"DEBUG", "INFO", "WARN", "ERROR"};

int mg_log_parse_level(const char *s, enum mg_log_level *out)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, names[i]) == 0) {
            *out = (enum mg_log_level)i;
            return 0;
        }
    }
    return -MG_EINVAL;
}

void mg_log_set_level(enum mg_log_level lvl)
{
    mg_log_min_level = lvl;
}

void mg_log_write(enum mg_log_level lvl, const char *module, const char *fmt, ...)
{
    char line[1024];
    struct tm tm;
    int64_t now = mg_wall_ms();
    time_t sec = (time_t)(now / 1000);
    gmtime_r(&sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %-5s %-6s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(now % 1000), level_name[lvl], module);
    if (n < 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    fwrite(line, 1, len, stderr);
}

static void mg_log_libevent_cb(int severity, const char *msg)
{
    enum mg_log_level lvl = severity >= EVENT_LOG_ERR    ? MG_LOG_ERROR
                            : severity == EVENT_LOG_WARN ? MG_LOG_WARN
                            : severity == EVENT_LOG_MSG  ? MG_LOG_INFO
                                                         : MG_LOG_DEBUG;
    MG_LOG(lvl, "event", "%s", msg);
}

void mg_log_hook_libevent(void)
{
    event_set_log_callback(mg_log_libevent_cb);
}

void mg_assert_fail(const char *cond, const char *file, int line)
{
    mg_log_write(MG_LOG_ERROR, "assert", "%s:%d: assertion failed: %s", file, line, cond);
    abort();
}
