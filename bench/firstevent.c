/* firstevent TIMEOUT_MS NEEDLE CMD ARGS...
 * Runs CMD with stdout on a pipe, prints the milliseconds from just before exec to the
 * first stdout line containing NEEDLE, then stops CMD (SIGINT, then SIGKILL after 5 s).
 * Exits 0 on success, 1 if the line never came (timeout or EOF): no number is printed then.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: firstevent TIMEOUT_MS NEEDLE CMD ARGS...\n");
        return 2;
    }
    double timeout = atof(argv[1]);
    const char *needle = argv[2];
    int p[2];
    if (pipe(p)) return 2;
    double t0 = now_ms();
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execvp(argv[3], argv + 3);
        _exit(127);
    }
    close(p[1]);
    char buf[1 << 16];
    size_t len = 0;
    double found = -1;
    int eof = 0;
    while (found < 0 && !eof) {
        double left = timeout - (now_ms() - t0);
        if (left <= 0) break;
        struct pollfd pfd = {p[0], POLLIN, 0};
        int r = poll(&pfd, 1, (int)left + 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) continue;
        ssize_t got = read(p[0], buf + len, sizeof buf - 1 - len);
        if (got <= 0) { eof = 1; break; }
        double t = now_ms();
        len += got;
        buf[len] = 0;
        char *nl;
        char *start = buf;
        while ((nl = strchr(start, '\n'))) {
            *nl = 0;
            if (strstr(start, needle)) { found = t - t0; break; }
            start = nl + 1;
        }
        if (found >= 0) break;
        memmove(buf, start, len - (start - buf));
        len -= start - buf;
        if (len >= sizeof buf - 1) len = 0;
    }
    kill(pid, SIGINT);
    /* keep draining so the tool never blocks on a full pipe while it stops */
    double stop0 = now_ms();
    int status = 0, done = 0;
    while (!done) {
        if (waitpid(pid, &status, WNOHANG) == pid) { done = 1; break; }
        if (now_ms() - stop0 > 5000) { kill(pid, SIGKILL); waitpid(pid, &status, 0); break; }
        struct pollfd pfd = {p[0], POLLIN, 0};
        if (poll(&pfd, 1, 10) > 0 && read(p[0], buf, sizeof buf) <= 0) {
            waitpid(pid, &status, 0);
            done = 1;
        }
    }
    if (found < 0) {
        fprintf(stderr, "firstevent: no line containing '%s' within %.0f ms%s\n", needle, timeout,
                eof ? " (stdout closed)" : "");
        return 1;
    }
    printf("%.3f\n", found);
    return 0;
}
