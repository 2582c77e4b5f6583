/*
 * fuzz_config.c - libFuzzer target for the configuration loader (cfg.c): a YAML file read
 * by libcyaml against the key table, then every value converted and range-checked.
 *
 * The input is written as the YAML file and loaded with cfg_load_file. Promises checked for
 * every input: the load succeeds or fails with a message naming where (never an empty
 * error); a configuration that loaded dumps (cfg_dump) to YAML that loads again and dumps to
 * the same bytes (but for the dump's first line, which names the file it came from). Failure modes:
 * a broken promise aborts; ASan/UBSan catch memory errors and undefined behaviour; LeakSanitizer
 * catches leaks.
 */
#define FUZZ_TARGET "fuzz_config"
#include "config/cfg.h"
#include "fuzz.h"
#include "util/log.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *fuzz_slurp(FILE *f, size_t *len)
{
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *p = malloc((size_t)n + 1);
    check(p && fread(p, 1, (size_t)n, f) == (size_t)n, "read back the dump");
    *len = (size_t)n;
    return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64], dump_path[64];
    if (!path[0]) {
        mg_log_set_level((enum mg_log_level)(MG_LOG_ERROR + 1));
        snprintf(path, sizeof path, "/dev/shm/fuzz_cfg.%d.yaml", (int)getpid());
        snprintf(dump_path, sizeof dump_path, "/dev/shm/fuzz_cfg.%d.dump.yaml", (int)getpid());
    }
    FILE *f = fopen(path, "wb");
    check(f && fwrite(data, 1, size, f) == size && fclose(f) == 0, "write the input");
    struct cfg c;
    char err[512] = "";
    cfg_init(&c);
    if (cfg_load_file(&c, path, err, sizeof err) < 0) {
        check(err[0] != '\0', "a refused file has a reason");
        check(strstr(err, path) != NULL, "the reason names the file");
        cfg_fini(&c);
        return 0;
    }
    FILE *d = fopen(dump_path, "w+b");
    check(d && cfg_dump(&c, d) == 0 && fflush(d) == 0, "dump");
    size_t n1;
    char *first = fuzz_slurp(d, &n1);
    fclose(d);
    struct cfg again;
    cfg_init(&again);
    check(cfg_load_file(&again, dump_path, err, sizeof err) == 0, "the dump loads again");
    d = fopen(dump_path, "w+b");
    check(d && cfg_dump(&again, d) == 0 && fflush(d) == 0, "dump again");
    size_t n2;
    char *second = fuzz_slurp(d, &n2);
    fclose(d);
    /* the dumps differ only in their first line, "# loaded from <file>" */
    const char *b1 = memchr(first, '\n', n1), *b2 = memchr(second, '\n', n2);
    check(b1 && b2, "a dump starts with its origin line");
    size_t r1 = n1 - (size_t)(b1 - first), r2 = n2 - (size_t)(b2 - second);
    check(r1 == r2 && memcmp(b1, b2, r1) == 0, "the dump is a fixed point");
    free(first);
    free(second);
    cfg_fini(&again);
    cfg_fini(&c);
    return 0;
}
