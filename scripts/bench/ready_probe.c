/*
 * ready_probe.c - start-to-ready time and idle RSS of a server, for scripts/bench.sh.
 *
 *   ready_probe --proto pulsar|nats --port P [--timeout S] [--idle S] [--log FILE]
 *               -- COMMAND ARGS...
 *
 * Takes the time, forks and execs COMMAND (output to --log, default /dev/null), then
 * connects to 127.0.0.1:P every 0.5 ms until a client's CONNECT is answered:
 *   pulsar: sends a CONNECT frame (client_version "bench", protocol_version 15) and waits
 *           for a frame whose BaseCommand type is CONNECTED (3);
 *   nats:   reads the server's INFO line, sends "CONNECT {...}\r\nPING\r\n" and waits
 *           for PONG (the server has processed the CONNECT).
 * ready_ms = that moment minus the start time. Then waits --idle (2) seconds, reads the
 * server's VmRSS (and that of its child processes, for a server that forks), stops it with
 * SIGTERM (SIGKILL after 10 s) and prints {"ready_ms": .., "idle_rss_kb": .., "pid": ..}.
 * Failure modes: the server exits or is not ready within --timeout (20) s: exit 1.
 */
#define _GNU_SOURCE
#include "bench_common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static long rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* reads until `want` bytes or timeout_ms; returns bytes read */
static ssize_t read_some(int fd, char *buf, size_t cap, size_t want, int timeout_ms)
{
    size_t got = 0;
    uint64_t end = bc_now_ns() + (uint64_t)timeout_ms * 1000000ull;
    while (got < want) {
        uint64_t now = bc_now_ns();
        if (now >= end)
            break;
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, (int)((end - now) / 1000000ull) + 1) <= 0)
            break;
        ssize_t r = read(fd, buf + got, cap - got);
        if (r <= 0)
            break;
        got += (size_t)r;
        if (memchr(buf, '\n', got) && want == (size_t)-1)
            break;
    }
    return (ssize_t)got;
}

static int try_ready(const char *proto, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return 0;
    }
    char buf[4096];
    int ok = 0;
    if (strcmp(proto, "pulsar") == 0) {
        /* CommandConnect{client_version="bench"(1), protocol_version=15(4)} */
        unsigned char conn[] = {0x0a, 5, 'b', 'e', 'n', 'c', 'h', 0x20, 15};
        unsigned char cmd[64];
        size_t n = 0;
        cmd[n++] = 0x08; /* BaseCommand.type = CONNECT */
        cmd[n++] = 2;
        cmd[n++] = 0x12; /* BaseCommand.connect */
        cmd[n++] = (unsigned char)sizeof conn;
        memcpy(cmd + n, conn, sizeof conn);
        n += sizeof conn;
        unsigned char frame[80];
        uint32_t total = htonl((uint32_t)(n + 4)), csz = htonl((uint32_t)n);
        memcpy(frame, &total, 4);
        memcpy(frame + 4, &csz, 4);
        memcpy(frame + 8, cmd, n);
        if (write(fd, frame, n + 8) == (ssize_t)(n + 8)) {
            ssize_t r = read_some(fd, buf, sizeof buf, 10, 2000);
            ok = r >= 10 && (unsigned char)buf[8] == 0x08 && buf[9] == 3;
        }
    } else {
        ssize_t r = read_some(fd, buf, sizeof buf - 1, (size_t)-1, 2000); /* INFO line */
        if (r > 4 && strncmp(buf, "INFO", 4) == 0) {
            const char *c = "CONNECT {\"verbose\":false,\"pedantic\":false,\"name\":\"bench\"}"
                            "\r\nPING\r\n";
            if (write(fd, c, strlen(c)) == (ssize_t)strlen(c)) {
                r = read_some(fd, buf, sizeof buf - 1, 6, 2000);
                buf[r > 0 ? r : 0] = 0;
                ok = strstr(buf, "PONG") != NULL;
            }
        }
    }
    close(fd);
    return ok;
}

/* VmRSS of pid plus its direct children (a server that forks helpers) */
static long tree_rss_kb(pid_t pid)
{
    long kb = rss_kb(pid);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)pid);
    FILE *f = fopen(path, "r");
    if (f) {
        int c;
        while (fscanf(f, "%d", &c) == 1) {
            long k = rss_kb(c);
            if (k > 0)
                kb += k;
        }
        fclose(f);
    }
    return kb;
}

int main(int argc, char **argv)
{
    const char *proto = NULL, *logp = "/dev/null";
    int port = 0;
    double timeout = 20, idle = 2;
    int i;
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        if (i + 1 >= argc)
            break;
        if (strcmp(argv[i], "--proto") == 0)
            proto = argv[++i];
        else if (strcmp(argv[i], "--port") == 0)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--timeout") == 0)
            timeout = atof(argv[++i]);
        else if (strcmp(argv[i], "--idle") == 0)
            idle = atof(argv[++i]);
        else if (strcmp(argv[i], "--log") == 0)
            logp = argv[++i];
    }
    if (!proto || !port || i >= argc) {
        fprintf(stderr, "usage: ready_probe --proto pulsar|nats --port P [--timeout S] "
                        "[--idle S] [--log FILE] -- COMMAND ARGS...\n");
        return 2;
    }
    uint64_t t0 = bc_now_ns();
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execvp(argv[i], argv + i);
        _exit(127);
    }
    uint64_t deadline = t0 + (uint64_t)(timeout * 1e9), ready = 0;
    while (bc_now_ns() < deadline) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            fprintf(stderr, "ready_probe: %s exited before it was ready (see %s)\n", argv[i], logp);
            return 1;
        }
        if (try_ready(proto, port)) {
            ready = bc_now_ns();
            break;
        }
        struct timespec ts = {0, 500000};
        nanosleep(&ts, NULL);
    }
    long idle_kb = -1;
    if (ready) {
        struct timespec ts = {(time_t)idle, (long)((idle - (double)(time_t)idle) * 1e9)};
        nanosleep(&ts, NULL);
        idle_kb = tree_rss_kb(pid);
    }
    kill(pid, SIGTERM);
    int st;
    for (int k = 0; k < 1000; k++) {
        if (waitpid(pid, &st, WNOHANG) == pid) {
            pid = 0;
            break;
        }
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    if (pid) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
    }
    if (!ready) {
        fprintf(stderr, "ready_probe: %s not ready within %.0f s (see %s)\n", argv[i], timeout,
                logp);
        return 1;
    }
    printf("{\"ready_ms\": %.2f, \"idle_rss_kb\": %ld}\n", (double)(ready - t0) / 1e6, idle_kb);
    return 0;
}
