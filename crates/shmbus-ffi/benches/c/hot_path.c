/* The C half of benches/c_hot_path.rs: 64-byte send + receive through the C API, in one
 * thread (so the figure is the cost of the calls, not of moving cache lines between cores).
 * Prints the best of ROUNDS rounds in nanoseconds per send+receive pair, for the copy path
 * (send + recv into a buffer) and the loan path (loan + commit + recv). */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shmbus.h"

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int check(int rc, const char *what) {
    if (rc != SHMBUS_OK) {
        fprintf(stderr, "%s: %s: %s\n", what, shmbus_status_name(rc), shmbus_last_error());
        exit(1);
    }
    return rc;
}

int main(int argc, char **argv) {
    long iters = argc > 1 ? atol(argv[1]) : 1000000;
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    shmbus_channel_config cfg;
    shmbus_channel_config_with_capacity(&cfg, 1 << 20);
    shmbus_publisher *p;
    shmbus_subscriber *s;
    check(shmbus_publisher_create("bench.c.hot", &cfg, &p), "create");
    check(shmbus_subscriber_open("bench.c.hot", &s), "open");
    unsigned char msg[64], buf[64];
    memset(msg, 7, sizeof msg);
    size_t len;
    double best_copy = 1e30, best_loan = 1e30;
    for (int r = 0; r < rounds; r++) {
        double t0 = now_ns();
        for (long i = 0; i < iters; i++) {
            msg[0] = (unsigned char)i;
            check(shmbus_publisher_send(p, msg, sizeof msg), "send");
            check(shmbus_subscriber_recv(s, buf, sizeof buf, &len, 0), "recv");
        }
        double copy = (now_ns() - t0) / (double)iters;
        if (buf[0] != (unsigned char)(iters - 1) || len != 64) return 1;
        t0 = now_ns();
        for (long i = 0; i < iters; i++) {
            void *loan;
            check(shmbus_publisher_loan(p, sizeof msg, &loan), "loan");
            memcpy(loan, msg, sizeof msg);
            check(shmbus_publisher_commit(p), "commit");
            check(shmbus_subscriber_recv(s, buf, sizeof buf, &len, 0), "recv");
        }
        double loan = (now_ns() - t0) / (double)iters;
        if (copy < best_copy) best_copy = copy;
        if (loan < best_loan) best_loan = loan;
    }
    printf("%.2f %.2f\n", best_copy, best_loan);
    shmbus_subscriber_close(s);
    shmbus_publisher_close(p);
    return 0;
}
