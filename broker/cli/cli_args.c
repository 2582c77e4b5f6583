/*
 * cli_args.c - the command table's parser, usage and bash completion, the connection
 * options (flags and client.conf), value parsers and output helpers shared by
 * `magnetar admin` and `magnetar client`.
 *
 * Flags are spelled as pulsar-admin and pulsar-client spell them (JCommander style: one
 * dash may start a long name, "-ttl", "-db"); "--name=value" works too. The global flags
 * (connection, auth, TLS) are accepted before the group and after the command. Every
 * usage error is one line naming the word that is wrong.
 */
#include "cli/cli_int.h"

#include "auth/auth.h"
#include "util/alloc.h"
#include "util/err.h"
#include "util/fs.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ---- the table --------------------------------------------------------------------------- */

const struct cli_cmd *cli_cmd_find(const struct cli_cmd *table, size_t n, const char *group,
                                   const char *name)
{
    for (size_t i = 0; i < n; i++) {
        const struct cli_cmd *c = &table[i];
        if (((!c->group && !group) || (c->group && group && strcmp(c->group, group) == 0)) &&
            strcmp(c->name, name) == 0)
            return c;
    }
    return NULL;
}

static bool cli_group_exists(const struct cli_cmd *table, size_t n, const char *group)
{
    for (size_t i = 0; i < n; i++)
        if (table[i].group && strcmp(table[i].group, group) == 0)
            return true;
    return false;
}

/* Rows of one group are contiguous: whether row i starts its group, and the row after it. */
static bool cli_group_first(const struct cli_cmd *table, size_t i)
{
    return i == 0 || strcmp(table[i - 1].group, table[i].group) != 0;
}

static size_t cli_group_end(const struct cli_cmd *table, size_t n, size_t i)
{
    size_t j = i;
    while (j < n && strcmp(table[j].group, table[i].group) == 0)
        j++;
    return j;
}

/* Whether `name` (len bytes) is one of the comma-separated spellings in names. */
static bool cli_name_matches(const char *names, const char *name, size_t len)
{
    const char *p = names;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == len && strncmp(p, name, len) == 0)
            return true;
        if (!e)
            break;
        p = e + 1;
    }
    return false;
}

static int cli_nflags(const struct cli_flag *f)
{
    int n = 0;
    while (f && f[n].names)
        n++;
    return n;
}

/* Index into a->vals of the flag spelled name: cmd flags first, then the globals. */
static int cli_flag_index(const struct cli_cmd *cmd, const struct cli_flag *globals,
                          const char *name, size_t len)
{
    for (int i = 0; cmd && cmd->flags[i].names; i++)
        if (cli_name_matches(cmd->flags[i].names, name, len))
            return i;
    for (int i = 0; globals && globals[i].names; i++)
        if (cli_name_matches(globals[i].names, name, len))
            return CLI_MAX_FLAGS + i;
    return -1;
}

static const struct cli_flag *cli_flag_at(const struct cli_cmd *cmd, const struct cli_flag *globals,
                                          int idx)
{
    return idx < CLI_MAX_FLAGS ? &cmd->flags[idx] : &globals[idx - CLI_MAX_FLAGS];
}

/* "-s/--subscription" for messages. */
static void cli_flag_label(const struct cli_flag *f, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s", f->names);
    for (char *p = out; *p; p++)
        if (*p == ',')
            *p = '/';
}

int cli_args_parse(const struct cli_cmd *cmd, const struct cli_flag *globals, int argc, char **argv,
                   struct cli_args *a, char *err, size_t errlen)
{
    memset(a, 0, sizeof *a);
    a->cmd = cmd;
    a->globals = globals;
    if (cli_nflags(globals) > CLI_MAX_FLAGS) {
        snprintf(err, errlen, "too many global flags");
        return -1;
    }
    for (int i = 0; i < argc; i++) {
        const char *w = argv[i];
        if (strcmp(w, "--help") == 0 || strcmp(w, "-h") == 0) {
            a->help = true;
            continue;
        }
        if (w[0] == '-' && w[1] != '\0') {
            const char *eq = strncmp(w, "--", 2) == 0 ? strchr(w, '=') : NULL;
            size_t len = eq ? (size_t)(eq - w) : strlen(w);
            int idx = cli_flag_index(cmd, globals, w, len);
            if (idx < 0) {
                snprintf(err, errlen, "unknown flag '%.*s' for '%s%s%s'", (int)len, w,
                         cmd->group ? cmd->group : "", cmd->group ? " " : "", cmd->name);
                return -1;
            }
            const struct cli_flag *f = cli_flag_at(cmd, globals, idx);
            const char *val = "true";
            if (eq) {
                val = eq + 1;
            } else if (f->arg) {
                if (i + 1 >= argc) {
                    char l[96];
                    cli_flag_label(f, l, sizeof l);
                    snprintf(err, errlen, "flag %s needs a value (%s)", l, f->arg);
                    return -1;
                }
                val = argv[++i];
            }
            if (!f->arg && eq && strcmp(val, "true") != 0 && strcmp(val, "false") != 0) {
                snprintf(err, errlen, "flag %.*s takes no value (or true|false)", (int)len, w);
                return -1;
            }
            if (a->nvals[idx] > 0 && !(f->flags & CLI_F_REPEAT))
                a->nvals[idx] = 0; /* the last one wins, as JCommander */
            if (!a->vals[idx])
                a->vals[idx] = mg_calloc((size_t)argc, sizeof *a->vals[idx]);
            a->vals[idx][a->nvals[idx]++] = val;
            continue;
        }
        if (a->pos || !cmd->pos) {
            snprintf(err, errlen, "unexpected argument '%s' for '%s%s%s'", w,
                     cmd->group ? cmd->group : "", cmd->group ? " " : "", cmd->name);
            return -1;
        }
        a->pos = w;
    }
    if (a->help)
        return 0;
    if (cmd->pos && cmd->pos[0] != '[' && !a->pos) {
        snprintf(err, errlen, "'%s%s%s' needs %s", cmd->group ? cmd->group : "",
                 cmd->group ? " " : "", cmd->name, cmd->pos);
        return -1;
    }
    for (int i = 0; cmd->flags[i].names; i++) {
        if ((cmd->flags[i].flags & CLI_F_REQUIRED) && a->nvals[i] == 0) {
            char l[96];
            cli_flag_label(&cmd->flags[i], l, sizeof l);
            snprintf(err, errlen, "'%s%s%s' needs %s %s", cmd->group ? cmd->group : "",
                     cmd->group ? " " : "", cmd->name, l,
                     cmd->flags[i].arg ? cmd->flags[i].arg : "");
            return -1;
        }
    }
    return 0;
}

void cli_args_fini(struct cli_args *a)
{
    for (int i = 0; i < 2 * CLI_MAX_FLAGS; i++)
        mg_free(a->vals[i]);
    memset(a, 0, sizeof *a);
}

static int cli_arg_idx(const struct cli_args *a, const char *name)
{
    int idx = cli_flag_index(a->cmd, a->globals, name, strlen(name));
    return idx >= 0 && a->nvals[idx] > 0 ? idx : -1;
}

const char *cli_arg(const struct cli_args *a, const char *name)
{
    int idx = cli_arg_idx(a, name);
    if (idx < 0)
        return NULL;
    const char *v = a->vals[idx][a->nvals[idx] - 1];
    const struct cli_flag *f = cli_flag_at(a->cmd, a->globals, idx);
    if (!f->arg && strcmp(v, "false") == 0)
        return NULL; /* --switch=false */
    return v;
}

int cli_arg_count(const struct cli_args *a, const char *name)
{
    int idx = cli_arg_idx(a, name);
    return idx < 0 ? 0 : a->nvals[idx];
}

const char *cli_arg_at(const struct cli_args *a, const char *name, int i)
{
    int idx = cli_arg_idx(a, name);
    return idx < 0 || i < 0 || i >= a->nvals[idx] ? NULL : a->vals[idx][i];
}

/* ---- usage and completion ---------------------------------------------------------------- */

static void cli_usage_flags(FILE *out, const struct cli_flag *f)
{
    for (int i = 0; f && f[i].names; i++) {
        char l[96];
        cli_flag_label(&f[i], l, sizeof l);
        char left[160];
        snprintf(left, sizeof left, "%s%s%s", l, f[i].arg ? " " : "", f[i].arg ? f[i].arg : "");
        fprintf(out, "  %-34s %s%s\n", left, f[i].help,
                (f[i].flags & CLI_F_REQUIRED) ? " (required)" : "");
    }
}

void cli_usage_tool(FILE *out, const char *prog, const char *what, const struct cli_cmd *table,
                    size_t n, const struct cli_flag *globals)
{
    bool grouped = n > 0 && table[0].group;
    fprintf(out, "usage: %s [options] %s\n\n%s\n\n", prog,
            grouped ? "<group> <command> [args]" : "<command> [args]", what);
    fprintf(out, "%s:\n", grouped ? "groups" : "commands");
    for (size_t i = 0; i < n; i++) {
        if (!grouped) {
            fprintf(out, "  %-14s %s\n", table[i].name, table[i].help);
            continue;
        }
        if (!cli_group_first(table, i))
            continue;
        fprintf(out, "  %-14s", table[i].group);
        for (size_t j = i, end = cli_group_end(table, n, i); j < end; j++)
            fprintf(out, " %s", table[j].name);
        fprintf(out, "\n");
    }
    if (grouped)
        fprintf(out, "  %-14s bash: print a bash completion script\n", "completion");
    fprintf(out, "\noptions:\n");
    cli_usage_flags(out, globals);
    fprintf(out, "  %-34s %s\n", "-h/--help", "this help (also after a group or a command)");
}

void cli_usage_group(FILE *out, const char *prog, const struct cli_cmd *table, size_t n,
                     const char *group)
{
    fprintf(out, "usage: %s %s <command> [args]\n\ncommands:\n", prog, group);
    for (size_t i = 0; i < n; i++)
        if (table[i].group && strcmp(table[i].group, group) == 0)
            fprintf(out, "  %-34s %s\n", table[i].name, table[i].help);
    fprintf(out, "\nRun '%s %s <command> --help' for its flags.\n", prog, group);
}

void cli_usage_cmd(FILE *out, const char *prog, const struct cli_cmd *cmd,
                   const struct cli_flag *globals)
{
    fprintf(out, "usage: %s %s%s%s%s%s [flags]\n\n%s\n", prog, cmd->group ? cmd->group : "",
            cmd->group ? " " : "", cmd->name, cmd->pos ? " " : "", cmd->pos ? cmd->pos : "",
            cmd->help);
    if (cmd->flags[0].names) {
        fprintf(out, "\nflags:\n");
        cli_usage_flags(out, cmd->flags);
    }
    fprintf(out, "\nconnection options (also before the group):\n");
    cli_usage_flags(out, globals);
}

/* The flag spellings of f, space-separated. */
static void cli_completion_words(FILE *out, const struct cli_flag *f)
{
    for (int i = 0; f && f[i].names; i++) {
        for (const char *p = f[i].names; *p; p++)
            fputc(*p == ',' ? ' ' : *p, out);
        fputc(' ', out);
    }
}

void cli_completion_bash(FILE *out, const char *prog, const struct cli_cmd *table, size_t n,
                         const struct cli_flag *globals)
{
    /* "magnetar admin" -> function _magnetar_admin, completing words after "admin" */
    char fn[64];
    snprintf(fn, sizeof fn, "_%s", prog);
    for (char *p = fn; *p; p++)
        if (!isalnum((unsigned char)*p))
            *p = '_';
    const char *sub = strrchr(prog, ' ');
    sub = sub ? sub + 1 : prog;
    fprintf(out, "# bash completion for `%s` (generated by `%s completion bash`)\n", prog, prog);
    fprintf(out, "%s() {\n", fn);
    fprintf(out, "    local cur=\"${COMP_WORDS[COMP_CWORD]}\" i start=0 group= cmd= words=\n");
    fprintf(out,
            "    for ((i = 1; i < COMP_CWORD; i++)); do\n"
            "        if [[ ${COMP_WORDS[i]} == %s ]]; then start=$i; break; fi\n"
            "    done\n",
            sub);
    fprintf(out, "    local glob=\"");
    cli_completion_words(out, globals);
    fprintf(out, " --help\"\n");
    fprintf(out, "    for ((i = start + 1; i < COMP_CWORD; i++)); do\n"
                 "        case ${COMP_WORDS[i]} in -*) continue ;; esac\n"
                 "        if [[ -z $group ]]; then group=${COMP_WORDS[i]}; "
                 "elif [[ -z $cmd ]]; then cmd=${COMP_WORDS[i]}; fi\n"
                 "    done\n");
    fprintf(out, "    case \"$group\" in\n");
    fprintf(out, "    \"\")\n        words=\"");
    for (size_t i = 0; i < n; i++)
        if (cli_group_first(table, i))
            fprintf(out, "%s ", table[i].group);
    fprintf(out, "completion $glob\" ;;\n");
    fprintf(out, "    completion) words=\"bash\" ;;\n");
    for (size_t i = 0; i < n; i++) {
        if (!cli_group_first(table, i))
            continue;
        size_t end = cli_group_end(table, n, i);
        fprintf(out, "    %s)\n        case \"$cmd\" in\n        \"\") words=\"", table[i].group);
        for (size_t j = i; j < end; j++)
            fprintf(out, "%s ", table[j].name);
        fprintf(out, "--help\" ;;\n");
        for (size_t j = i; j < end; j++) {
            fprintf(out, "        %s) words=\"", table[j].name);
            cli_completion_words(out, table[j].flags);
            fprintf(out, " $glob\" ;;\n");
        }
        fprintf(out, "        esac ;;\n");
    }
    fprintf(out, "    esac\n");
    fprintf(out, "    COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n}\n");
    fprintf(out, "complete -F %s %s\n", fn, strchr(prog, ' ') ? "magnetar" : prog);
}

/* ---- connection options ------------------------------------------------------------------ */

static void cli_set(char **dst, const char *v)
{
    mg_free(*dst);
    *dst = v ? mg_strdup(v) : NULL;
}

static char *cli_trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

int cli_conf_load(struct cli_conn *c, const char *path, char *err, size_t errlen)
{
    char why[256];
    size_t len;
    char *text = mg_read_file(path, 1 << 20, &len, why, sizeof why);
    if (!text) {
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        line = cli_trim(line);
        if (!*line || *line == '#' || *line == '!')
            continue;
        size_t k = strcspn(line, "=:");
        if (!line[k])
            continue;
        char *val = cli_trim(line + k + 1);
        line[k] = '\0';
        char *key = cli_trim(line);
        if (strcmp(key, "webServiceUrl") == 0)
            cli_set(&c->web_url, *val ? val : NULL);
        else if (strcmp(key, "brokerServiceUrl") == 0)
            cli_set(&c->service_url, *val ? val : NULL);
        else if (strcmp(key, "authPlugin") == 0)
            cli_set(&c->auth_plugin, *val ? val : NULL);
        else if (strcmp(key, "authParams") == 0)
            cli_set(&c->auth_params, *val ? val : NULL);
        else if (strcmp(key, "tlsTrustCertsFilePath") == 0)
            cli_set(&c->trust_certs, *val ? val : NULL);
        else if (strcmp(key, "tlsAllowInsecureConnection") == 0)
            c->allow_insecure = strcasecmp(val, "true") == 0;
    }
    mg_free(text);
    return 0;
}

int cli_conn_init(struct cli_conn *c, const struct cli_args *a, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    const char *conf = cli_arg(a, "--conf");
    bool explicit = conf != NULL;
    if (!conf)
        conf = getenv("PULSAR_CLIENT_CONF");
    /* as the pulsar-admin script: $PULSAR_HOME/conf/client.conf (here: ./conf/client.conf
     * without PULSAR_HOME), used when it exists */
    const char *home = getenv("PULSAR_HOME");
    char *dflt = mg_asprintf("%s/conf/client.conf", home && *home ? home : ".");
    if (conf && *conf)
        explicit = true;
    else
        conf = access(dflt, R_OK) == 0 ? dflt : NULL;
    if (conf) {
        char why[300];
        if (cli_conf_load(c, conf, why, sizeof why) < 0 && explicit) {
            snprintf(err, errlen, "--conf: %s", why);
            mg_free(dflt);
            return -1;
        }
    }
    mg_free(dflt);
    const struct {
        const char *flag;
        char **dst;
    } map[] = {
        {"--admin-url", &c->web_url},
        {"--url", &c->service_url},
        {"--auth-plugin", &c->auth_plugin},
        {"--auth-params", &c->auth_params},
        {"--tls-trust-cert-path", &c->trust_certs},
    };
    for (size_t i = 0; i < sizeof map / sizeof *map; i++)
        if (cli_arg(a, map[i].flag))
            cli_set(map[i].dst, cli_arg(a, map[i].flag));
    if (cli_arg(a, "--tls-allow-insecure"))
        c->allow_insecure = true;
    c->timeout_s = CLI_HTTP_TIMEOUT_S;
    const char *t = cli_arg(a, "--request-timeout");
    if (t) {
        char *end;
        long v = strtol(t, &end, 10);
        if (!*t || *end || v < 1 || v > 3600) {
            snprintf(err, errlen, "--request-timeout: '%s' is not a number of seconds (1-3600)", t);
            return -1;
        }
        c->timeout_s = (int)v;
    }
    if (!c->web_url)
        c->web_url = mg_strdup("http://localhost:8080");
    if (!c->service_url)
        c->service_url = mg_strdup("pulsar://localhost:6650");
    char why[300];
    int rc = auth_client_token(c->auth_plugin, c->auth_params, &c->token, why, sizeof why);
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", rc == -MG_ENOTSUP ? "--auth-plugin" : "--auth-params", why);
        return -1;
    }
    return 0;
}

void cli_conn_fini(struct cli_conn *c)
{
    mg_free(c->web_url);
    mg_free(c->service_url);
    mg_free(c->auth_plugin);
    mg_free(c->auth_params);
    mg_free(c->trust_certs);
    mg_free(c->token);
    memset(c, 0, sizeof *c);
}

/* ---- values ------------------------------------------------------------------------------ */

/* A number with an optional unit letter among units (multipliers in mult). */
static int cli_parse_unit(const char *s, const char *units, const int64_t *mult, int64_t *out)
{
    if (!s || !*s)
        return -1;
    if (strcmp(s, "-1") == 0) {
        *out = -1;
        return 0;
    }
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v < 0)
        return -1;
    int64_t m = 1;
    if (*end) {
        const char *u = end[1] == '\0' ? strchr(units, *end) : NULL;
        if (!u || !*end)
            return -1;
        m = mult[u - units];
    }
    if (m > 1 && v > INT64_MAX / m)
        return -1;
    *out = (int64_t)v * m;
    return 0;
}

int cli_parse_size(const char *s, int64_t *bytes)
{
    static const int64_t m[] = {1024,
                                1024,
                                1024LL * 1024,
                                1024LL * 1024,
                                1024LL * 1024 * 1024,
                                1024LL * 1024 * 1024,
                                1024LL * 1024 * 1024 * 1024,
                                1024LL * 1024 * 1024 * 1024};
    return cli_parse_unit(s, "kKmMgGtT", m, bytes);
}

int cli_parse_time(const char *s, int64_t *seconds)
{
    static const int64_t m[] = {1, 60, 3600, 86400, 7 * 86400, 365 * 86400};
    return cli_parse_unit(s, "smhdwy", m, seconds);
}

int cli_parse_msg_id(const char *s, int64_t *ledger, int64_t *entry)
{
    long long l, e;
    int n = 0;
    if (!s || sscanf(s, "%lld:%lld%n", &l, &e, &n) != 2 || l < -1 || e < -1)
        return -1;
    const char *rest = s + n; /* ":partition[:batch]" may follow */
    if (*rest && *rest != ':')
        return -1;
    *ledger = l;
    *entry = e;
    return 0;
}

/* ---- output ------------------------------------------------------------------------------ */

void cli_print_json(FILE *out, const json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    fprintf(out, "%s\n", s ? s : "null");
    free(s);
}

int cli_print_list(FILE *out, const char *body, size_t len)
{
    json_t *j = json_loadb(body, len, JSON_DECODE_ANY, NULL);
    if (!json_is_array(j)) {
        json_decref(j);
        return -1;
    }
    size_t i;
    json_t *v;
    json_array_foreach(j, i, v)
    {
        if (json_is_string(v)) {
            fprintf(out, "%s\n", json_string_value(v));
        } else {
            char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            fprintf(out, "%s\n", s ? s : "null");
            free(s);
        }
    }
    json_decref(j);
    return 0;
}

void cli_hexdump(FILE *out, const void *data, size_t len)
{
    const unsigned char *b = data;
    fprintf(out, "         +-------------------------------------------------+\n"
                 "         |  0  1  2  3  4  5  6  7  8  9  a  b  c  d  e  f |\n"
                 "+--------+-------------------------------------------------+----------------+\n");
    for (size_t off = 0; off < len; off += 16) {
        fprintf(out, "|%08zx|", off);
        for (size_t i = 0; i < 16; i++) {
            if (off + i < len)
                fprintf(out, " %02x", b[off + i]);
            else
                fprintf(out, "   ");
        }
        fprintf(out, " |");
        for (size_t i = 0; i < 16; i++)
            fputc(off + i < len ? (isprint(b[off + i]) ? b[off + i] : '.') : ' ', out);
        fprintf(out, "|\n");
    }
    fprintf(out, "+--------+-------------------------------------------------+----------------+\n");
}

bool cli_is_text(const void *data, size_t len)
{
    const unsigned char *b = data;
    for (size_t i = 0; i < len;) {
        unsigned char c = b[i];
        if (c < 0x80) {
            if (c < 0x20 && c != '\n' && c != '\r' && c != '\t')
                return false;
            if (c == 0x7f)
                return false;
            i++;
            continue;
        }
        size_t n = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
        if (n == 0 || c == 0xc0 || c == 0xc1 || i + n > len)
            return false;
        for (size_t k = 1; k < n; k++)
            if ((b[i + k] & 0xc0) != 0x80)
                return false;
        i += n;
    }
    return true;
}

/* ---- the shared main --------------------------------------------------------------------- */

/* Whether w is a global flag that takes a value. */
static const struct cli_flag *cli_global_find(const struct cli_flag *globals, const char *w)
{
    const char *eq = strncmp(w, "--", 2) == 0 ? strchr(w, '=') : NULL;
    size_t len = eq ? (size_t)(eq - w) : strlen(w);
    for (int i = 0; globals[i].names; i++)
        if (cli_name_matches(globals[i].names, w, len))
            return &globals[i];
    return NULL;
}

int cli_tool_main(const char *prog, const char *what, const struct cli_cmd *table, size_t n,
                  const struct cli_flag *globals, int argc, char **argv)
{
    bool grouped = n > 0 && table[0].group;
    /* the global flags before the group are moved after the command's own words */
    char **rest = mg_calloc((size_t)argc + 1, sizeof *rest);
    int nrest = 0, i = 1, rc = CLI_EXIT_USAGE;
    for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            cli_usage_tool(stdout, prog, what, table, n, globals);
            rc = 0;
            goto out;
        }
        const struct cli_flag *f = cli_global_find(globals, argv[i]);
        if (!f) {
            fprintf(stderr, "%s: unknown option '%s'\n", prog, argv[i]);
            goto out;
        }
        rest[nrest++] = argv[i];
        if (f->arg && !strchr(argv[i], '=')) {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s: option '%s' needs a value\n", prog, argv[i]);
                goto out;
            }
            rest[nrest++] = argv[++i];
        }
    }
    if (i >= argc) {
        fprintf(stderr, "%s: give a %s (see %s --help)\n", prog, grouped ? "group" : "command",
                prog);
        goto out;
    }
    const char *group = grouped ? argv[i++] : NULL;
    if (grouped && strcmp(group, "completion") == 0) {
        if (i < argc && strcmp(argv[i], "bash") == 0) {
            cli_completion_bash(stdout, prog, table, n, globals);
            rc = 0;
        } else {
            fprintf(stderr, "%s completion: give the shell: %s completion bash\n", prog, prog);
        }
        goto out;
    }
    if (grouped && !cli_group_exists(table, n, group)) {
        fprintf(stderr, "%s: unknown group '%s' (see %s --help)\n", prog, group, prog);
        goto out;
    }
    if (grouped && i >= argc) {
        fprintf(stderr, "%s %s: give a command (see %s %s --help)\n", prog, group, prog, group);
        goto out;
    }
    if (grouped && (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)) {
        cli_usage_group(stdout, prog, table, n, group);
        rc = 0;
        goto out;
    }
    const char *name = argv[i++];
    const struct cli_cmd *cmd = cli_cmd_find(table, n, group, name);
    if (!cmd) {
        fprintf(stderr, "%s: unknown command '%s%s%s' (see %s %s--help)\n", prog,
                group ? group : "", group ? " " : "", name, prog, group ? group : "");
        goto out;
    }
    for (; i < argc; i++)
        rest[nrest++] = argv[i];
    struct cli_args a;
    char err[512];
    if (cli_args_parse(cmd, globals, nrest, rest, &a, err, sizeof err) < 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        cli_args_fini(&a);
        goto out;
    }
    if (a.help) {
        cli_usage_cmd(stdout, prog, cmd, globals);
        cli_args_fini(&a);
        rc = 0;
        goto out;
    }
    struct cli_env env = {.prog = prog, .out = stdout, .err = stderr};
    if (cli_conn_init(&env.conn, &a, err, sizeof err) < 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        cli_conn_fini(&env.conn);
        cli_args_fini(&a);
        goto out;
    }
    rc = cmd->run(&env, &a);
    fflush(stdout);
    cli_conn_fini(&env.conn);
    cli_args_fini(&a);
out:
    mg_free(rest);
    return rc;
}
