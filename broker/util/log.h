/*
 * log.h - one line per event on stderr: time, level, module, text.
 *
 * MG_LOG checks the level before formatting anything. Never log payload bytes.
 * The log level is process-wide configuration set once at start-up (mg_log_set_level);
 * it is the only global, read-only after start.
 */
#ifndef MG_LOG_H
#define MG_LOG_H

enum mg_log_level { MG_LOG_DEBUG = 0, MG_LOG_INFO, MG_LOG_WARN, MG_LOG_ERROR };

extern enum mg_log_level mg_log_min_level;

/* Parse "debug"/"info"/"warn"/"error"; returns 0 or -MG_EINVAL. */
int mg_log_parse_level(const char *s, enum mg_log_level *out);
void mg_log_set_level(enum mg_log_level lvl);
/* Route libevent's internal warnings through MG_LOG. */
void mg_log_hook_libevent(void);

void mg_log_write(enum mg_log_level lvl, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define MG_LOG(lvl, module, ...)                                                                   \
    do {                                                                                           \
        if ((lvl) >= mg_log_min_level)                                                             \
            mg_log_write((lvl), (module), __VA_ARGS__);                                            \
    } while (0)

#define MG_DEBUG(module, ...) MG_LOG(MG_LOG_DEBUG, module, __VA_ARGS__)
#define MG_INFO(module, ...) MG_LOG(MG_LOG_INFO, module, __VA_ARGS__)
#define MG_WARN(module, ...) MG_LOG(MG_LOG_WARN, module, __VA_ARGS__)
#define MG_ERROR(module, ...) MG_LOG(MG_LOG_ERROR, module, __VA_ARGS__)

/* Always compiled in; only for our own invariants, never for peer input. */
#define MG_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond))                                                                               \
            mg_assert_fail(#cond, __FILE__, __LINE__);                                             \
    } while (0)
_Noreturn void mg_assert_fail(const char *cond, const char *file, int line);

#endif
