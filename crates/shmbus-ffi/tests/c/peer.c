#define _POSIX_C_SOURCE 200809L
/* A C program in one of several roles, for the cross-process tests (tests/c_programs.rs):
 *   peer pub NAME N SUBS    publish "msg-<i>" for i < N once SUBS subscribers attached, close
 *   peer sub NAME N         print N messages, one per line, then "end" at the end of stream
 *   peer board NAME VALUE   create a blackboard, write VALUE, print "written", wait for stdin EOF
 *   peer keyed NAME KEY=VALUE...  create a keyed blackboard with those keys, write each VALUE,
 *                           print "written", wait for stdin EOF
 *   peer keyed-wait NAME KEY VERSION  open a keyed blackboard (waiting up to 10 s for it), print
 *                           "waiting on NAME (keys: a,b,...)", wait up to 10 s for a version
 *                           of KEY newer than VERSION, print "KEY VERSION VALUE"
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

static int role_keyed(const char *name, int n, char **pairs) {
    enum { MAX = 16 };
    const char *keys[MAX];
    const char *values[MAX];
    char copies[MAX][128];
    if (n < 1 || n > MAX) {
        fprintf(stderr, "keyed: 1 to %d KEY=VALUE pairs\n", MAX);
        return 2;
    }
    for (int i = 0; i < n; i++) {
        snprintf(copies[i], sizeof copies[i], "%s", pairs[i]);
        char *eq = strchr(copies[i], '=');
        if (!eq) {
            fprintf(stderr, "keyed: %s is not KEY=VALUE\n", pairs[i]);
            return 2;
        }
        *eq = '\0';
        keys[i] = copies[i];
        values[i] = eq + 1;
    }
    shmbus_keyed_blackboard *b;
    int rc = shmbus_keyed_blackboard_create(name, keys, (size_t)n, 256, &b);
    if (rc) return fail("create", rc);
    for (int i = 0; i < n; i++) {
        if ((rc = shmbus_keyed_blackboard_write(b, keys[i], values[i], strlen(values[i]))))
            return fail("write", rc);
    }
    printf("written\n");
    fflush(stdout);
    while (getchar() != EOF) {
    }
    shmbus_keyed_blackboard_close(b);
    return 0;
}

static int role_keyed_wait(const char *name, const char *key, uint64_t after) {
    shmbus_keyed_blackboard *b;
    int rc;
    for (int i = 0; i < 10000; i++) {
        rc = shmbus_keyed_blackboard_open(name, &b);
        if (rc != SHMBUS_ERR_NOT_FOUND) break;
        nap_ms(1);
    }
    if (rc) return fail("open", rc);
    /* One line: the harness reads it before the next one exists. */
    printf("waiting on %s (keys: ", name);
    for (size_t i = 0; i < shmbus_keyed_blackboard_key_count(b); i++)
        printf("%s%s", i ? "," : "", shmbus_keyed_blackboard_key(b, i));
    printf(")\n");
    fflush(stdout);
    uint64_t version = 0;
    rc = shmbus_keyed_blackboard_wait_newer(b, key, after, 10000000000LL, &version);
    if (rc) return fail("wait_newer", rc);
    char buf[257];
    size_t len;
    /* A newer version may have come since: print the one read, with its own version. */
    rc = shmbus_keyed_blackboard_read(b, key, buf, sizeof buf - 1, &len, &version);
    if (rc) return fail("read", rc);
    buf[len] = '\0';
    printf("%s %llu %s\n", key, (unsigned long long)version, buf);
    shmbus_keyed_blackboard_close(b);
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
    if (argc >= 4 && strcmp(argv[1], "keyed") == 0) return role_keyed(argv[2], argc - 3, argv + 3);
    if (argc >= 5 && strcmp(argv[1], "keyed-wait") == 0)
        return role_keyed_wait(argv[2], argv[3], strtoull(argv[4], NULL, 10));
    if (argc >= 3 && strcmp(argv[1], "wait") == 0) return role_wait(argv[2]);
    if (argc >= 3 && strcmp(argv[1], "set") == 0) return role_set(argv[2]);
    if (argc >= 3 && strcmp(argv[1], "open") == 0) return role_open(argv[2]);
    fprintf(stderr, "usage: peer pub|sub|board|keyed|keyed-wait|wait|set|open NAME [ARGS]\n");
    return 2;
}
