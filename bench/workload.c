/* bench workloads (compiled by bench/run.sh into a temp dir).
 *   workload loop N            N getppid syscalls, prints elapsed seconds
 *   workload tick USEC         getppid every USEC microseconds until killed
 *   workload connect USEC      connect() to 127.0.0.1:23 every USEC microseconds until killed
 *   workload uprobe N          N calls of bench_hook() (a uprobe's target), prints elapsed seconds
 *   workload rename N          N prctl(PR_SET_NAME) (tracepoint task:task_rename), prints elapsed
 *   workload udp N             N UDP datagrams to itself on 127.0.0.1, prints elapsed seconds
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void pause_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* The function a uprobe attaches to: kept out of line and called for real. */
__attribute__((noinline)) int bench_hook(int i) {
    __asm__ volatile("" : : "r"(i) : "memory");
    return i;
}

/* N datagrams to a socket bound on 127.0.0.1, each received back (netfilter's LOCAL_OUT and
 * LOCAL_IN hooks see each once). */
static int udp_loop(long n) {
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) || getsockname(fd, (struct sockaddr *)&sa, &len)) {
        perror("udp socket");
        return 1;
    }
    char buf[16] = "x";
    double t0 = now();
    for (long i = 0; i < n; i++) {
        sendto(fd, buf, 1, 0, (struct sockaddr *)&sa, sizeof sa);
        recv(fd, buf, sizeof buf, 0);
    }
    printf("%.6f\n", now() - t0);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: workload loop|uprobe|rename|udp N | tick|connect USEC\n");
        return 2;
    }
    long n = atol(argv[2]);
    if (!strcmp(argv[1], "loop")) {
        double t0 = now();
        for (long i = 0; i < n; i++)
            syscall(SYS_getppid);
        printf("%.6f\n", now() - t0);
        return 0;
    }
    if (!strcmp(argv[1], "uprobe")) {
        double t0 = now();
        for (long i = 0; i < n; i++)
            bench_hook((int)i);
        printf("%.6f\n", now() - t0);
        return 0;
    }
    if (!strcmp(argv[1], "rename")) {
        double t0 = now();
        for (long i = 0; i < n; i++)
            prctl(PR_SET_NAME, "benchload");
        printf("%.6f\n", now() - t0);
        return 0;
    }
    if (!strcmp(argv[1], "udp"))
        return udp_loop(n);
    if (!strcmp(argv[1], "tick")) {
        for (;;) {
            syscall(SYS_getppid);
            pause_us(n);
        }
    }
    if (!strcmp(argv[1], "connect")) {
        struct sockaddr_in sa;
        memset(&sa, 0, sizeof sa);
        sa.sin_family = AF_INET;
        sa.sin_port = htons(23);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        for (;;) {
            int fd = socket(AF_INET, SOCK_STREAM, 0);
            if (fd >= 0) {
                connect(fd, (struct sockaddr *)&sa, sizeof sa);
                close(fd);
            }
            pause_us(n);
        }
    }
    fprintf(stderr, "workload: unknown mode %s\n", argv[1]);
    return 2;
}
