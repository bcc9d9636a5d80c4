#define _POSIX_C_SOURCE 200809L
/* A C program in one of several roles, for the cross-process tests (tests/c_programs.rs):
 *   peer pub NAME N SUBS    publish "msg-<i>" for i < N once SUBS subscribers attached, close
 *   peer sub NAME N         print N messages, one per line, then "end" at the end of stream
 *   peer board NAME VALUE   create a blackboard, write VALUE, print "written", wait for stdin EOF
 *   peer wait NAME          open an event, print "waiting", wait up to 10 s, print "woke"
 *   peer set NAME           open an event and set it
 *   peer open NAME          try to open a subscriber: print the status name and the message
 * Exits 0 on success, 1 with the status name and message on stderr otherwise. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shmbus.h"

static int fail(const char *what, int rc) {
    fprintf(stderr, "%s: %s: %s\n", what, shmbus_status_name(rc), shmbus_last_error());
    return 1;
}

static void nap_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int role_pub(const char *name, long n, size_t subs) {
    shmbus_channel_config cfg;
    shmbus_channel_config_default(&cfg);
    cfg.mode = SHMBUS_BACKPRESSURE; /* nobody may miss a message */
    shmbus_publisher *p;
    int rc = shmbus_publisher_create(name, &cfg, &p);
    if (rc) return fail("create", rc);
    printf("created\n");
    fflush(stdout);
    for (int i = 0; i < 10000 && shmbus_publisher_subscriber_count(p) < subs; i++) nap_ms(1);
    if (shmbus_publisher_subscriber_count(p) < subs) {
        fprintf(stderr, "only %zu subscribers came\n", shmbus_publisher_subscriber_count(p));
        return 1;
    }
    char msg[32];
    for (long i = 0; i < n; i++) {
        int len = snprintf(msg, sizeof msg, "msg-%ld", i);
        if (i % 2) {
            void *buf;
            if ((rc = shmbus_publisher_loan(p, (size_t)len, &buf))) return fail("loan", rc);
            memcpy(buf, msg, (size_t)len);
            if ((rc = shmbus_publisher_commit(p))) return fail("commit", rc);
        } else if ((rc = shmbus_publisher_send(p, msg, (size_t)len))) {
            return fail("send", rc);
        }
    }
    /* Keep the channel until every subscriber has drained it: close ends the stream, and
     * removes the name only (readers keep their mapping). */
    shmbus_publisher_close(p);
    return 0;
}

static int role_sub(const char *name, long n) {
    shmbus_subscriber *s;
    int rc;
    for (int i = 0; i < 10000; i++) {
        rc = shmbus_subscriber_open(name, &s);
        if (rc != SHMBUS_ERR_NOT_FOUND) break;
        nap_ms(1);
    }
    if (rc) return fail("open", rc);
    printf("subscribed\n");
    fflush(stdout);
    char buf[256];
    size_t len;
    for (long i = 0; i < n; i++) {
        rc = shmbus_subscriber_recv(s, buf, sizeof buf - 1, &len, 10000000000LL);
        if (rc) return fail("recv", rc);
        buf[len] = '\0';
        printf("%s\n", buf);
    }
    rc = shmbus_subscriber_recv(s, buf, sizeof buf, &len, 10000000000LL);
    printf("%s\n", rc == SHMBUS_ERR_DISCONNECTED ? "end" : shmbus_status_name(rc));
    shmbus_subscriber_close(s);
    return 0;
}

static int role_board(const char *name, const char *value) {
    shmbus_blackboard *b;
    int rc = shmbus_blackboard_create(name, 256, &b);
    if (rc) return fail("create", rc);
    if ((rc = shmbus_blackboard_write(b, value, strlen(value)))) return fail("write", rc);
    printf("written\n");
    fflush(stdout);
    while (getchar() != EOF) {
    }
    shmbus_blackboard_close(b);
    return 0;
}

static int role_wait(const char *name) {
    shmbus_event *e;
    int rc = shmbus_event_open(name, &e);
    if (rc) return fail("open", rc);
    printf("waiting\n");
    fflush(stdout);
    rc = shmbus_event_wait(e, 10000000000LL);
    if (rc) return fail("wait", rc);
    printf("woke\n");
    shmbus_event_close(e);
    return 0;
}

static int role_set(const char *name) {
    shmbus_event *e;
    int rc = shmbus_event_open(name, &e);
    if (rc) return fail("open", rc);
    if ((rc = shmbus_event_set(e))) return fail("set", rc);
    shmbus_event_close(e);
    return 0;
}

static int role_open(const char *name) {
    shmbus_subscriber *s = NULL;
    int rc = shmbus_subscriber_open(name, &s);
    printf("%s\n%s\n", shmbus_status_name(rc), rc ? shmbus_last_error() : "");
    shmbus_subscriber_close(s);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 5 && strcmp(argv[1], "pub") == 0)
        return role_pub(argv[2], atol(argv[3]), (size_t)atol(argv[4]));
    if (argc >= 4 && strcmp(argv[1], "sub") == 0) return role_sub(argv[2], atol(argv[3]));
    if (argc >= 4 && strcmp(argv[1], "board") == 0) return role_board(argv[2], argv[3]);
    if (argc >= 3 && strcmp(argv[1], "wait") == 0) return role_wait(argv[2]);
    if (argc >= 3 && strcmp(argv[1], "set") == 0) return role_set(argv[2]);
    if (argc >= 3 && strcmp(argv[1], "open") == 0) return role_open(argv[2]);
    fprintf(stderr, "usage: peer pub|sub|board|wait|set|open NAME [ARGS]\n");
    return 2;
}
