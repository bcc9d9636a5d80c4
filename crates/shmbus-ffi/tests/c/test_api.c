#define _DEFAULT_SOURCE
/* Single-process tests of the C API: every function's success path and every error path a C
 * caller can meet, each checked for its status code and a message. Run in a namespace of
 * its own (SHMBUS_NAMESPACE, set by the harness); under valgrind and the sanitizers too. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shmbus.h"

int spec_decls_ok(void);

static int failures = 0;

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "%s:%d: CHECK(%s) failed; last error: %s\n", __FILE__, __LINE__, \
                    #cond, shmbus_last_error());                                             \
            failures++;                                                                      \
        }                                                                                    \
    } while (0)

/* The call returns `want`, and a failure leaves a message. */
#define EXPECT(want, call)                                                                   \
    do {                                                                                     \
        int rc_ = (call);                                                                    \
        if (rc_ != (want)) {                                                                 \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s; last error: %s\n", __FILE__, \
                    __LINE__, #call, shmbus_status_name(rc_), shmbus_status_name(want),      \
                    shmbus_last_error());                                                    \
            failures++;                                                                      \
        } else if (rc_ != SHMBUS_OK && shmbus_last_error()[0] == '\0') {                     \
            fprintf(stderr, "%s:%d: %s failed without a message\n", __FILE__, __LINE__, #call); \
            failures++;                                                                      \
        }                                                                                    \
    } while (0)

#define OK(call) EXPECT(SHMBUS_OK, call)

static void test_version_and_errors(void) {
    CHECK(strlen(shmbus_version()) > 0);
    CHECK(shmbus_layout_version() > 0);
    CHECK(strcmp(shmbus_status_name(SHMBUS_ERR_TIMEOUT), "SHMBUS_ERR_TIMEOUT") == 0);
    CHECK(strcmp(shmbus_status_name(12345), "SHMBUS_ERR_UNKNOWN") == 0);
    CHECK(strcmp(shmbus_status_name(SHMBUS_ERR_UNKNOWN_KEY), "SHMBUS_ERR_UNKNOWN_KEY") == 0);
    CHECK(SHMBUS_ERR_UNKNOWN_KEY == -26);
    CHECK(spec_decls_ok());
}

static void test_channel(void) {
    shmbus_channel_config cfg;
    shmbus_channel_config_default(&cfg);
    CHECK(cfg.capacity == 256 * 1024 && cfg.mode == SHMBUS_LOSSY);
    shmbus_channel_config_default(NULL); /* ignored */
    shmbus_publisher *p = NULL;
    OK(shmbus_publisher_create("c.chan", &cfg, &p));
    EXPECT(SHMBUS_ERR_EXISTS, shmbus_publisher_create("c.chan", &cfg, &p));
    CHECK(strstr(shmbus_last_error(), "already exists") != NULL);
    shmbus_subscriber *s = NULL;
    OK(shmbus_subscriber_open("c.chan", &s));
    CHECK(shmbus_publisher_subscriber_count(p) == 1);

    char buf[64];
    size_t len = 0;
    EXPECT(SHMBUS_ERR_EMPTY, shmbus_subscriber_recv(s, buf, sizeof buf, &len, 0));
    EXPECT(SHMBUS_ERR_TIMEOUT, shmbus_subscriber_recv(s, buf, sizeof buf, &len, 1000000));
    OK(shmbus_publisher_send(p, "hello", 5));
    OK(shmbus_publisher_send(p, NULL, 0)); /* an empty message */
    /* Too small: the size needed, and the message stays unread. */
    EXPECT(SHMBUS_ERR_TOO_SMALL, shmbus_subscriber_recv(s, buf, 2, &len, -1));
    CHECK(len == 5);
    EXPECT(SHMBUS_ERR_TOO_SMALL, shmbus_subscriber_recv(s, NULL, 0, &len, 0));
    CHECK(len == 5);
    OK(shmbus_subscriber_recv(s, buf, sizeof buf, &len, -1));
    CHECK(len == 5 && memcmp(buf, "hello", 5) == 0);
    OK(shmbus_subscriber_recv(s, NULL, 0, &len, 0));
    CHECK(len == 0);

    /* Zero-copy send. */
    void *loan = NULL;
    EXPECT(SHMBUS_ERR_NO_LOAN, shmbus_publisher_commit(p));
    OK(shmbus_publisher_loan(p, 4, &loan));
    memcpy(loan, "loan", 4);
    OK(shmbus_publisher_commit(p));
    OK(shmbus_publisher_loan(p, 3, &loan));
    OK(shmbus_publisher_discard(p));
    EXPECT(SHMBUS_ERR_NO_LOAN, shmbus_publisher_commit(p));
    OK(shmbus_subscriber_recv(s, buf, sizeof buf, &len, 0));
    CHECK(len == 4 && memcmp(buf, "loan", 4) == 0);
    EXPECT(SHMBUS_ERR_EMPTY, shmbus_subscriber_recv(s, buf, sizeof buf, &len, 0));

    /* Zero-copy receive needs back-pressure. */
    const void *data = NULL;
    EXPECT(SHMBUS_ERR_WRONG_MODE, shmbus_subscriber_recv_ref(s, &data, &len, 0));
    EXPECT(SHMBUS_ERR_TOO_LARGE, shmbus_publisher_send(p, buf, cfg.max_message + 1));
    CHECK(shmbus_publisher_published(p) == 3);
    shmbus_channel_config got;
    OK(shmbus_subscriber_config(s, &got));
    CHECK(got.capacity == cfg.capacity && got.max_message == cfg.max_message);
    CHECK(shmbus_subscriber_publisher_alive(s) == 1);

    /* End of stream. */
    shmbus_publisher_close(p);
    CHECK(shmbus_subscriber_publisher_alive(s) == 0);
    EXPECT(SHMBUS_ERR_DISCONNECTED, shmbus_subscriber_recv(s, buf, sizeof buf, &len, -1));
    shmbus_subscriber_close(s);
    EXPECT(SHMBUS_ERR_NOT_FOUND, shmbus_subscriber_open("c.chan", &s));
    CHECK(strstr(shmbus_last_error(), "shmbus ls") != NULL);
}

static void test_lossy_counts_every_loss(void) {
    shmbus_channel_config cfg;
    shmbus_channel_config_with_capacity(&cfg, 1024);
    shmbus_publisher *p = NULL;
    shmbus_subscriber *s = NULL;
    OK(shmbus_publisher_create("c.lossy", &cfg, &p));
    OK(shmbus_subscriber_open("c.lossy", &s));
    char msg[40];
    for (int i = 0; i < 1000; i++) {
        memset(msg, i & 0xff, sizeof msg);
        OK(shmbus_publisher_send(p, msg, sizeof msg));
    }
    shmbus_publisher_close(p);
    uint64_t received = 0;
    int lagged = 0;
    for (;;) {
        char buf[64];
        size_t len;
        int rc = shmbus_subscriber_recv(s, buf, sizeof buf, &len, 0);
        if (rc == SHMBUS_OK) {
            received++;
        } else if (rc == SHMBUS_ERR_LAGGED) {
            lagged++;
            CHECK(strstr(shmbus_last_error(), "lost") != NULL);
        } else {
            EXPECT(SHMBUS_ERR_DISCONNECTED, rc);
            break;
        }
    }
    CHECK(lagged == 1);
    CHECK(shmbus_subscriber_lost(s) > 0);
    CHECK(received + shmbus_subscriber_lost(s) == 1000);
    shmbus_subscriber_close(s);
}

static void test_backpressure_and_borrow(void) {
    shmbus_channel_config cfg;
    shmbus_channel_config_with_capacity(&cfg, 1024);
    cfg.mode = SHMBUS_BACKPRESSURE;
    cfg.max_subscribers = 1;
    shmbus_publisher *p = NULL;
    shmbus_subscriber *s = NULL, *s2 = NULL;
    OK(shmbus_publisher_create("c.bp", &cfg, &p));
    OK(shmbus_subscriber_open("c.bp", &s));
    EXPECT(SHMBUS_ERR_NO_SLOT, shmbus_subscriber_open("c.bp", &s2));
    char msg[100] = {0};
    int sent = 0;
    while (shmbus_publisher_send_timeout(p, msg, sizeof msg, 0) == SHMBUS_OK) sent++;
    EXPECT(SHMBUS_ERR_FULL, shmbus_publisher_send_timeout(p, msg, sizeof msg, 0));
    EXPECT(SHMBUS_ERR_TIMEOUT, shmbus_publisher_send_timeout(p, msg, sizeof msg, 1000000));
    void *loan;
    EXPECT(SHMBUS_ERR_FULL, shmbus_publisher_loan_timeout(p, 10, &loan, 0));
    CHECK(sent > 0);
    const void *data = NULL;
    size_t len = 0;
    for (int i = 0; i < sent; i++) {
        OK(shmbus_subscriber_recv_ref(s, &data, &len, 0));
        CHECK(data != NULL && len == sizeof msg);
        OK(shmbus_subscriber_release(s));
    }
    EXPECT(SHMBUS_ERR_EMPTY, shmbus_subscriber_recv_ref(s, &data, &len, 0));
    OK(shmbus_publisher_send_timeout(p, "x", 1, 0)); /* room again */
    OK(shmbus_subscriber_recv_ref(s, &data, &len, -1));
    CHECK(len == 1 && *(const char *)data == 'x');
    /* A release frees the message's room at once, with no further receive. */
    while (shmbus_publisher_send_timeout(p, msg, sizeof msg, 0) == SHMBUS_OK) {
    }
    OK(shmbus_subscriber_recv_ref(s, &data, &len, 0));
    EXPECT(SHMBUS_ERR_FULL, shmbus_publisher_send_timeout(p, msg, sizeof msg, 0));
    OK(shmbus_subscriber_release(s));
    OK(shmbus_publisher_send_timeout(p, msg, sizeof msg, 0));
    OK(shmbus_subscriber_recv_ref(s, &data, &len, -1));
    shmbus_subscriber_close(s); /* with a message still borrowed */
    shmbus_publisher_close(p);
}

static void test_null_and_bad_handles(void) {
    shmbus_publisher *p = NULL;
    shmbus_subscriber *s = NULL;
    char buf[8];
    size_t len;
    EXPECT(SHMBUS_ERR_INVALID, shmbus_publisher_create(NULL, NULL, &p));
    EXPECT(SHMBUS_ERR_INVALID, shmbus_publisher_create("x", NULL, NULL));
    EXPECT(SHMBUS_ERR_INVALID, shmbus_publisher_create("bad name!", NULL, &p));
    CHECK(strstr(shmbus_last_error(), "invalid name") != NULL);
    EXPECT(SHMBUS_ERR_INVALID, shmbus_publisher_create(".hidden", NULL, &p));
    EXPECT(SHMBUS_ERR_INVALID, shmbus_publisher_create("\xff\xfe", NULL, &p));
    shmbus_channel_config cfg;
    shmbus_channel_config_default(&cfg);
    cfg.capacity = 1000; /* not a power of two */
    EXPECT(SHMBUS_ERR_INVALID, shmbus_publisher_create("x", &cfg, &p));
    shmbus_channel_config_default(&cfg);
    cfg.mode = 7;
    EXPECT(SHMBUS_ERR_INVALID, shmbus_publisher_create("x", &cfg, &p));
    EXPECT(SHMBUS_ERR_INVALID, shmbus_publisher_send(NULL, "x", 1));
    EXPECT(SHMBUS_ERR_INVALID, shmbus_publisher_commit(NULL));
    EXPECT(SHMBUS_ERR_INVALID, shmbus_subscriber_recv(NULL, buf, sizeof buf, &len, 0));
    CHECK(shmbus_subscriber_lost(NULL) == 0);
    CHECK(shmbus_publisher_published(NULL) == 0);

    /* A handle of another type is refused, not used. */
    shmbus_event *e = NULL;
    OK(shmbus_event_create("c.wrongtype", 0, &e));
    EXPECT(SHMBUS_ERR_INVALID, shmbus_publisher_send((shmbus_publisher *)e, "x", 1));
    CHECK(strstr(shmbus_last_error(), "not a publisher") != NULL);
    EXPECT(SHMBUS_ERR_INVALID, shmbus_subscriber_recv((shmbus_subscriber *)e, buf, 8, &len, 0));
    shmbus_subscriber_close((shmbus_subscriber *)e); /* refused, the event lives on */
    OK(shmbus_event_set(e));
    /* A misaligned pointer. */
    EXPECT(SHMBUS_ERR_INVALID, shmbus_event_set((shmbus_event *)((char *)e + 1)));
    shmbus_event_close(e);

    OK(shmbus_publisher_create("c.nulls", NULL, &p));
    EXPECT(SHMBUS_ERR_INVALID, shmbus_publisher_send(p, NULL, 5));
    EXPECT(SHMBUS_ERR_INVALID, shmbus_publisher_loan(p, 4, NULL));
    OK(shmbus_subscriber_open("c.nulls", &s));
    EXPECT(SHMBUS_ERR_INVALID, shmbus_subscriber_recv(s, NULL, 8, &len, 0));
    EXPECT(SHMBUS_ERR_INVALID, shmbus_subscriber_recv(s, buf, sizeof buf, NULL, 0));
    shmbus_subscriber_close(s);
    shmbus_publisher_close(p);

    /* Every close accepts NULL. */
    shmbus_publisher_close(NULL);
    shmbus_subscriber_close(NULL);
    shmbus_blackboard_close(NULL);
    shmbus_keyed_blackboard_close(NULL);
    shmbus_event_close(NULL);
    shmbus_duplex_close(NULL);
    shmbus_segment_close(NULL);
    shmbus_handler_close(NULL);
    shmbus_options_close(NULL);
}

static void test_blackboard(void) {
    shmbus_blackboard *b = NULL, *r = NULL;
    EXPECT(SHMBUS_ERR_NOT_FOUND, shmbus_blackboard_open("c.board", &r));
    OK(shmbus_blackboard_create("c.board", 64, &b));
    OK(shmbus_blackboard_open("c.board", &r));
    char buf[64];
    size_t len = 99;
    uint64_t version = 99;
    OK(shmbus_blackboard_read(r, buf, sizeof buf, &len, &version));
    CHECK(len == 0 && version == 0);
    OK(shmbus_blackboard_write(b, "value-1", 7));
    OK(shmbus_blackboard_read(r, buf, sizeof buf, &len, &version));
    CHECK(len == 7 && version == 1 && memcmp(buf, "value-1", 7) == 0);
    EXPECT(SHMBUS_ERR_TOO_SMALL, shmbus_blackboard_read(r, buf, 3, &len, &version));
    CHECK(len == 7);
    OK(shmbus_blackboard_read(r, buf, sizeof buf, &len, NULL));
    EXPECT(SHMBUS_ERR_TOO_LARGE, shmbus_blackboard_write(b, buf, 65));
    CHECK(shmbus_blackboard_version(r) == 1 && shmbus_blackboard_capacity(r) == 64);
    uint64_t newer = 0;
    EXPECT(SHMBUS_ERR_TIMEOUT, shmbus_blackboard_wait_newer(r, 1, 1000000, &newer));
    OK(shmbus_blackboard_wait_newer(r, 0, 0, &newer));
    CHECK(newer == 1);
    shmbus_blackboard *same = NULL;
    OK(shmbus_blackboard_create_or_open("c.board", 32, NULL, &same));
    CHECK(shmbus_blackboard_capacity(same) == 64); /* an existing board keeps its capacity */
    shmbus_blackboard_close(same);
    /* A blackboard is not a channel. */
    shmbus_subscriber *s = NULL;
    EXPECT(SHMBUS_ERR_MISMATCH, shmbus_subscriber_open("c.board", &s));
    shmbus_blackboard_close(r);
    shmbus_blackboard_close(b);
}

static void test_events(void) {
    shmbus_event *e = NULL, *o = NULL;
    EXPECT(SHMBUS_ERR_NOT_FOUND, shmbus_event_open("c.event", &o));
    OK(shmbus_event_create("c.event", 0, &e));
    OK(shmbus_event_open("c.event", &o));
    EXPECT(SHMBUS_ERR_TIMEOUT, shmbus_event_wait(o, 0));
    EXPECT(SHMBUS_ERR_TIMEOUT, shmbus_event_wait(o, 1000000));
    OK(shmbus_event_set(e));
    CHECK(shmbus_event_is_set(o) == 1);
    OK(shmbus_event_wait(o, -1));
    CHECK(shmbus_event_is_set(o) == 0); /* auto-reset: taken */
    shmbus_event_close(o);
    shmbus_event_close(e);

    OK(shmbus_event_create("c.manual", 1, &e));
    OK(shmbus_event_set(e));
    OK(shmbus_event_wait(e, 0));
    OK(shmbus_event_wait(e, 0)); /* stays set */
    OK(shmbus_event_reset(e));
    EXPECT(SHMBUS_ERR_TIMEOUT, shmbus_event_wait(e, 0));
    EXPECT(SHMBUS_ERR_MISMATCH, shmbus_event_create_or_open("c.manual", 0, NULL, &o));
    shmbus_event_close(e);
}

struct seen {
    pthread_mutex_t lock;
    uint64_t count, last_version, lost;
    char last[32];
};

static void on_message(const void *data, size_t len, uint64_t lost, void *user) {
    struct seen *seen = user;
    pthread_mutex_lock(&seen->lock);
    seen->count++;
    seen->lost += lost;
    if (len < sizeof seen->last) {
        memcpy(seen->last, data, len);
        seen->last[len] = '\0';
    }
    pthread_mutex_unlock(&seen->lock);
}

static void on_update(const void *data, size_t len, uint64_t version, uint64_t skipped, void *user) {
    (void)skipped;
    on_message(data, len, 0, user);
    struct seen *seen = user;
    pthread_mutex_lock(&seen->lock);
    seen->last_version = version;
    pthread_mutex_unlock(&seen->lock);
}

static uint64_t last_version_of(struct seen *seen) {
    pthread_mutex_lock(&seen->lock);
    uint64_t v = seen->last_version;
    pthread_mutex_unlock(&seen->lock);
    return v;
}

static uint64_t count_of(struct seen *seen) {
    pthread_mutex_lock(&seen->lock);
    uint64_t n = seen->count;
    pthread_mutex_unlock(&seen->lock);
    return n;
}

static void test_handlers(void) {
    struct seen seen = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, ""};
    shmbus_publisher *p = NULL;
    shmbus_subscriber *s = NULL;
    shmbus_handler *h = NULL;
    OK(shmbus_publisher_create("c.handled", NULL, &p));
    OK(shmbus_subscriber_open("c.handled", &s));
    EXPECT(SHMBUS_ERR_INVALID, shmbus_subscriber_on_message(s, NULL, &seen, &h));
    CHECK(shmbus_publisher_subscriber_count(p) == 0); /* consumed even so */
    OK(shmbus_subscriber_open("c.handled", &s));
    OK(shmbus_subscriber_on_message(s, on_message, &seen, &h)); /* s is consumed */
    for (int i = 0; i < 100; i++) OK(shmbus_publisher_send(p, "msg", 3));
    shmbus_publisher_close(p); /* the handler ends at the end of the stream */
    for (int i = 0; i < 5000 && !shmbus_handler_is_finished(h); i++) usleep(1000);
    CHECK(shmbus_handler_is_finished(h) == 1);
    shmbus_handler_stats stats;
    OK(shmbus_handler_stop(h, &stats));
    CHECK(stats.delivered == 100 && count_of(&seen) == 100 && strcmp(seen.last, "msg") == 0);

    struct seen board_seen = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, ""};
    shmbus_blackboard *b = NULL;
    OK(shmbus_blackboard_create("c.handled.board", 32, &b));
    OK(shmbus_blackboard_write(b, "first", 5));
    OK(shmbus_blackboard_on_update(b, 0, on_update, &board_seen, &h));
    for (int i = 0; i < 5000 && count_of(&board_seen) < 1; i++) usleep(1000);
    OK(shmbus_blackboard_write(b, "second", 6));
    for (int i = 0; i < 5000 && board_seen.last_version < 2; i++) usleep(1000);
    shmbus_handler_close(h);
    CHECK(board_seen.last_version == 2 && strcmp(board_seen.last, "second") == 0);
    shmbus_blackboard_close(b);

    /* A keyed board's handler: the versions of its key only, each with its value. */
    struct seen key_seen = {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0, ""};
    const char *keys[] = {"a", "b"};
    shmbus_keyed_blackboard *kb = NULL;
    OK(shmbus_keyed_blackboard_create("c.handled.keyed", keys, 2, 32, &kb));
    OK(shmbus_keyed_blackboard_write(kb, "b", "b-1", 3));
    OK(shmbus_keyed_blackboard_on_update(kb, "b", 0, on_update, &key_seen, &h));
    for (int i = 0; i < 5000 && count_of(&key_seen) < 1; i++) usleep(1000);
    CHECK(count_of(&key_seen) == 1 && key_seen.last_version == 1 && strcmp(key_seen.last, "b-1") == 0);
    char value[16];
    for (int i = 1; i <= 20; i++) {
        int n = snprintf(value, sizeof value, "a-%d", i);
        OK(shmbus_keyed_blackboard_write(kb, "a", value, (size_t)n));
    }
    OK(shmbus_keyed_blackboard_write(kb, "b", "b-2", 3));
    for (int i = 0; i < 5000 && last_version_of(&key_seen) < 2; i++) usleep(1000);
    shmbus_keyed_blackboard_close(kb); /* the handler may outlive the board's handle */
    OK(shmbus_handler_stop(h, &stats));
    CHECK(key_seen.last_version == 2 && strcmp(key_seen.last, "b-2") == 0);
    CHECK(stats.delivered == count_of(&key_seen) && stats.delivered + stats.skipped == 2);
}

/* The last error names `what` (a key, a count, ...). */
#define MESSAGE_HAS(what) CHECK(strstr(shmbus_last_error(), (what)) != NULL)

static void test_keyed_blackboard(void) {
    const char *keys[] = {"pose", "battery", "mode"};
    shmbus_keyed_blackboard *b = NULL, *r = NULL;
    EXPECT(SHMBUS_ERR_NOT_FOUND, shmbus_keyed_blackboard_open("c.keyed", &r));
    OK(shmbus_keyed_blackboard_create("c.keyed", keys, 3, 16, &b));
    EXPECT(SHMBUS_ERR_EXISTS, shmbus_keyed_blackboard_create("c.keyed", keys, 3, 16, &r));
    OK(shmbus_keyed_blackboard_open("c.keyed", &r));

    /* The keys, in their order, as the opener sees them; an index out of range is NULL. */
    CHECK(shmbus_keyed_blackboard_key_count(r) == 3);
    CHECK(shmbus_keyed_blackboard_capacity(r) == 16);
    const char *first = shmbus_keyed_blackboard_key(r, 0);
    CHECK(first != NULL && strcmp(first, "pose") == 0);
    CHECK(strcmp(shmbus_keyed_blackboard_key(r, 1), "battery") == 0);
    CHECK(strcmp(shmbus_keyed_blackboard_key(r, 2), "mode") == 0);
    CHECK(shmbus_keyed_blackboard_key(r, 3) == NULL);
    MESSAGE_HAS("out of range");
    CHECK(shmbus_keyed_blackboard_key(r, SIZE_MAX) == NULL);
    CHECK(shmbus_keyed_blackboard_key(NULL, 0) == NULL);
    MESSAGE_HAS("NULL");
    CHECK(shmbus_keyed_blackboard_key_count(NULL) == 0);
    CHECK(shmbus_keyed_blackboard_capacity(NULL) == 0);

    /* Each key its own value and version, 0 and nothing before its first write. */
    char buf[16];
    size_t len = 99;
    uint64_t version = 99;
    OK(shmbus_keyed_blackboard_read(r, "pose", buf, sizeof buf, &len, &version));
    CHECK(len == 0 && version == 0);
    OK(shmbus_keyed_blackboard_write(b, "battery", "87%", 3));
    OK(shmbus_keyed_blackboard_write(b, "battery", "86%", 3));
    OK(shmbus_keyed_blackboard_write(b, "pose", "x=1", 3));
    OK(shmbus_keyed_blackboard_read(r, "battery", buf, sizeof buf, &len, &version));
    CHECK(len == 3 && version == 2 && memcmp(buf, "86%", 3) == 0);
    OK(shmbus_keyed_blackboard_read(r, "pose", buf, sizeof buf, &len, NULL));
    CHECK(len == 3 && memcmp(buf, "x=1", 3) == 0);
    OK(shmbus_keyed_blackboard_version(r, "pose", &version));
    CHECK(version == 1);
    OK(shmbus_keyed_blackboard_version(r, "mode", &version));
    CHECK(version == 0);
    OK(shmbus_keyed_blackboard_write(b, "mode", NULL, 0)); /* an empty value */
    OK(shmbus_keyed_blackboard_read(r, "mode", NULL, 0, &len, &version));
    CHECK(len == 0 && version == 1);

    /* A key the board lacks: SHMBUS_ERR_UNKNOWN_KEY, with a message naming it, from every
     * call that takes a key; keys are case-sensitive. */
    shmbus_handler *h = NULL;
    uint64_t newer = 0;
    EXPECT(SHMBUS_ERR_UNKNOWN_KEY, shmbus_keyed_blackboard_write(b, "speed", "1", 1));
    MESSAGE_HAS("\"speed\"");
    MESSAGE_HAS("c.keyed");
    EXPECT(SHMBUS_ERR_UNKNOWN_KEY, shmbus_keyed_blackboard_read(r, "Pose", buf, sizeof buf, &len, NULL));
    MESSAGE_HAS("\"Pose\"");
    EXPECT(SHMBUS_ERR_UNKNOWN_KEY, shmbus_keyed_blackboard_version(r, "speed", &version));
    MESSAGE_HAS("\"speed\"");
    EXPECT(SHMBUS_ERR_UNKNOWN_KEY, shmbus_keyed_blackboard_wait_newer(r, "speed", 0, 0, &newer));
    MESSAGE_HAS("\"speed\"");
    EXPECT(SHMBUS_ERR_UNKNOWN_KEY, shmbus_keyed_blackboard_on_update(r, "speed", 0, on_update, NULL, &h));
    MESSAGE_HAS("\"speed\"");
    CHECK(h == NULL);

    /* Too large; too small, with the size needed and the value left as it was. */
    char big[17] = {0};
    EXPECT(SHMBUS_ERR_TOO_LARGE, shmbus_keyed_blackboard_write(b, "pose", big, sizeof big));
    OK(shmbus_keyed_blackboard_write(b, "pose", big, 16));
    len = 0;
    EXPECT(SHMBUS_ERR_TOO_SMALL, shmbus_keyed_blackboard_read(r, "battery", buf, 2, &len, &version));
    CHECK(len == 3);
    EXPECT(SHMBUS_ERR_TOO_SMALL, shmbus_keyed_blackboard_read(r, "battery", NULL, 0, &len, NULL));
    CHECK(len == 3);

    /* NULL or non-UTF-8 keys, NULL handles and out-parameters: SHMBUS_ERR_INVALID. */
    EXPECT(SHMBUS_ERR_INVALID, shmbus_keyed_blackboard_write(b, NULL, "x", 1));
    MESSAGE_HAS("key is NULL");
    EXPECT(SHMBUS_ERR_INVALID, shmbus_keyed_blackboard_read(r, NULL, buf, sizeof buf, &len, NULL));
    EXPECT(SHMBUS_ERR_INVALID, shmbus_keyed_blackboard_read(r, "\xff", buf, sizeof buf, &len, NULL));
    MESSAGE_HAS("UTF-8");
    EXPECT(SHMBUS_ERR_INVALID, shmbus_keyed_blackboard_version(r, NULL, &version));
    EXPECT(SHMBUS_ERR_INVALID, shmbus_keyed_blackboard_version(r, "pose", NULL));
    EXPECT(SHMBUS_ERR_INVALID, shmbus_keyed_blackboard_wait_newer(r, NULL, 0, 0, &newer));
    EXPECT(SHMBUS_ERR_INVALID, shmbus_keyed_blackboard_on_update(r, NULL, 0, on_update, NULL, &h));
    EXPECT(SHMBUS_ERR_INVALID, shmbus_keyed_blackboard_on_update(r, "pose", 0, NULL, NULL, &h));
    EXPECT(SHMBUS_ERR_INVALID, shmbus_keyed_blackboard_on_update(r, "pose", 0, on_update, NULL, NULL));
    EXPECT(SHMBUS_ERR_INVALID, shmbus_keyed_blackboard_write(NULL, "pose", "x", 1));
    EXPECT(SHMBUS_ERR_INVALID, shmbus_keyed_blackboard_write(b, "pose", NULL, 1));
    EXPECT(SHMBUS_ERR_INVALID, shmbus_keyed_blackboard_read(r, "pose", NULL, 8, &len, NULL));
    EXPECT(SHMBUS_ERR_INVALID, shmbus_keyed_blackboard_read(r, "pose", buf, sizeof buf, NULL, NULL));

    /* Waits: a timeout, a version already newer, and writes of other keys do not count. */
    OK(shmbus_keyed_blackboard_version(r, "battery", &version));
    EXPECT(SHMBUS_ERR_TIMEOUT, shmbus_keyed_blackboard_wait_newer(r, "battery", version, 0, &newer));
    EXPECT(SHMBUS_ERR_TIMEOUT, shmbus_keyed_blackboard_wait_newer(r, "battery", version, 1000000, &newer));
    OK(shmbus_keyed_blackboard_write(b, "pose", "x=2", 3));
    OK(shmbus_keyed_blackboard_write(b, "mode", "auto", 4));
    EXPECT(SHMBUS_ERR_TIMEOUT, shmbus_keyed_blackboard_wait_newer(r, "battery", version, 1000000, &newer));
    OK(shmbus_keyed_blackboard_wait_newer(r, "battery", 0, -1, &newer));
    CHECK(newer == version);
    OK(shmbus_keyed_blackboard_wait_newer(r, "battery", 0, 0, NULL));

    /* The wrong kind either way, and handles of the other type. */
    shmbus_blackboard *plain = NULL;
    OK(shmbus_blackboard_create("c.keyed.plain", 16, &plain));
    shmbus_keyed_blackboard *k = NULL;
    EXPECT(SHMBUS_ERR_MISMATCH, shmbus_keyed_blackboard_open("c.keyed.plain", &k));
    EXPECT(SHMBUS_ERR_MISMATCH, shmbus_keyed_blackboard_create_or_open("c.keyed.plain", keys, 3, 16, NULL, &k));
    shmbus_blackboard *as_plain = NULL;
    EXPECT(SHMBUS_ERR_MISMATCH, shmbus_blackboard_open("c.keyed", &as_plain));
    CHECK(as_plain == NULL);
    EXPECT(SHMBUS_ERR_INVALID, shmbus_keyed_blackboard_write((shmbus_keyed_blackboard *)plain, "pose", "x", 1));
    MESSAGE_HAS("not a keyed blackboard");
    EXPECT(SHMBUS_ERR_INVALID, shmbus_blackboard_write((shmbus_blackboard *)b, "x", 1));
    MESSAGE_HAS("not a blackboard");
    CHECK(shmbus_keyed_blackboard_key_count((shmbus_keyed_blackboard *)plain) == 0);
    shmbus_keyed_blackboard_close((shmbus_keyed_blackboard *)plain); /* refused: it lives on */
    OK(shmbus_blackboard_write(plain, "x", 1));
    shmbus_blackboard_close(plain);

    /* create_or_open: an existing board keeps its keys and capacity; a new one is made with
     * those given; options are honoured. */
    const char *other_keys[] = {"other"};
    OK(shmbus_keyed_blackboard_create_or_open("c.keyed", other_keys, 1, 64, NULL, &k));
    CHECK(shmbus_keyed_blackboard_key_count(k) == 3 && shmbus_keyed_blackboard_capacity(k) == 16);
    OK(shmbus_keyed_blackboard_version(k, "battery", &version));
    CHECK(version == 2);
    shmbus_keyed_blackboard_close(k);
    shmbus_options *o = NULL;
    OK(shmbus_options_create(&o));
    OK(shmbus_options_set_persistent(o, 1));
    OK(shmbus_keyed_blackboard_create_or_open("c.keyed.kept", other_keys, 1, 8, o, &k));
    CHECK(shmbus_keyed_blackboard_key_count(k) == 1 && strcmp(shmbus_keyed_blackboard_key(k, 0), "other") == 0);
    OK(shmbus_keyed_blackboard_write(k, "other", "v", 1));
    shmbus_keyed_blackboard_close(k);
    OK(shmbus_keyed_blackboard_open_with("c.keyed.kept", o, &k)); /* outlived its creator */
    OK(shmbus_keyed_blackboard_read(k, "other", buf, sizeof buf, &len, &version));
    CHECK(len == 1 && version == 1);
    shmbus_keyed_blackboard_close(k);
    OK(shmbus_remove("c.keyed.kept", o));
    OK(shmbus_keyed_blackboard_create_with("c.keyed.with", keys, 1, 8, o, &k));
    CHECK(shmbus_keyed_blackboard_key_count(k) == 1);
    shmbus_keyed_blackboard_close(k);
    OK(shmbus_remove("c.keyed.with", o));
    shmbus_options_close(o);

    /* Invalid key sets, refused before anything is created: no keys, a NULL array, a NULL
     * or non-UTF-8 entry, an empty, too long or control-character key, duplicates, too many. */
    EXPECT(SHMBUS_ERR_INVALID, shmbus_keyed_blackboard_create("c.bad", keys, 0, 8, &k));
    MESSAGE_HAS("0 keys");
    EXPECT(SHMBUS_ERR_INVALID, shmbus_keyed_blackboard_create("c.bad", NULL, 0, 8, &k));
    EXPECT(SHMBUS_ERR_INVALID, shmbus_keyed_blackboard_create("c.bad", NULL, 2, 8, &k));
    MESSAGE_HAS("NULL");
    const char *null_entry[] = {"a", NULL};
    EXPECT(SHMBUS_ERR_INVALID, shmbus_keyed_blackboard_create("c.bad", null_entry, 2, 8, &k));
    MESSAGE_HAS("key 1 of 2 is NULL");
    const char *not_utf8[] = {"a", "b\xff"};
    EXPECT(SHMBUS_ERR_INVALID, shmbus_keyed_blackboard_create("c.bad", not_utf8, 2, 8, &k));
    MESSAGE_HAS("UTF-8");
    const char *empty[] = {""};
    EXPECT(SHMBUS_ERR_INVALID, shmbus_keyed_blackboard_create("c.bad", empty, 1, 8, &k));
    const char *too_long[] = {"k123456789012345678901234567890123456789012345678901234567890"};
    EXPECT(SHMBUS_ERR_INVALID, shmbus_keyed_blackboard_create("c.bad", too_long, 1, 8, &k));
    const char *control[] = {"tab\there"};
    EXPECT(SHMBUS_ERR_INVALID, shmbus_keyed_blackboard_create("c.bad", control, 1, 8, &k));
    const char *twice[] = {"pose", "mode", "pose"};
    EXPECT(SHMBUS_ERR_INVALID, shmbus_keyed_blackboard_create("c.bad", twice, 3, 8, &k));
    MESSAGE_HAS("\"pose\" is given twice");
    EXPECT(SHMBUS_ERR_INVALID, shmbus_keyed_blackboard_create_or_open("c.keyed", twice, 3, 8, NULL, &k));
    enum { TOO_MANY = 4097 };
    const char **many = malloc(TOO_MANY * sizeof *many);
    for (int i = 0; i < TOO_MANY; i++) many[i] = "k";
    EXPECT(SHMBUS_ERR_INVALID, shmbus_keyed_blackboard_create("c.bad", many, TOO_MANY, 8, &k));
    MESSAGE_HAS("4097 keys");
    free(many);
    EXPECT(SHMBUS_ERR_INVALID, shmbus_keyed_blackboard_create(NULL, keys, 3, 8, &k));
    EXPECT(SHMBUS_ERR_INVALID, shmbus_keyed_blackboard_create("c.bad", keys, 3, 8, NULL));
    EXPECT(SHMBUS_ERR_INVALID, shmbus_keyed_blackboard_create("bad name!", keys, 3, 8, &k));
    EXPECT(SHMBUS_ERR_NOT_FOUND, shmbus_keyed_blackboard_open("c.bad", &k));

    /* The key strings stay valid until the handle is closed. */
    CHECK(strcmp(first, "pose") == 0 && first == shmbus_keyed_blackboard_key(r, 0));
    shmbus_keyed_blackboard_close(r);
    shmbus_keyed_blackboard_close(b);
    EXPECT(SHMBUS_ERR_NOT_FOUND, shmbus_keyed_blackboard_open("c.keyed", &r));
}

/* Two threads write their own key through one shared handle while a third reads both. */
struct keyed_writer {
    shmbus_keyed_blackboard *board;
    const char *key;
    int failed;
};

enum { KEYED_WRITES = 500 };

static void *write_key(void *arg) {
    struct keyed_writer *w = arg;
    char value[32];
    for (int i = 1; i <= KEYED_WRITES; i++) {
        int n = snprintf(value, sizeof value, "%s-%d", w->key, i);
        if (shmbus_keyed_blackboard_write(w->board, w->key, value, (size_t)n) != SHMBUS_OK) w->failed = 1;
    }
    return NULL;
}

static void test_keyed_blackboard_threads(void) {
    const char *keys[] = {"left", "right"};
    shmbus_keyed_blackboard *b = NULL;
    OK(shmbus_keyed_blackboard_create("c.keyed.threads", keys, 2, 32, &b));
    struct keyed_writer left = {b, "left", 0}, right = {b, "right", 0};
    pthread_t tl, tr;
    pthread_create(&tl, NULL, write_key, &left);
    pthread_create(&tr, NULL, write_key, &right);
    /* Whatever a reader sees of a key is a whole value of that key, of its version. */
    for (int i = 0; i < 200; i++) {
        for (int k = 0; k < 2; k++) {
            char buf[33], want[32];
            size_t len;
            uint64_t version;
            OK(shmbus_keyed_blackboard_read(b, keys[k], buf, 32, &len, &version));
            buf[len] = '\0';
            if (version > 0) {
                snprintf(want, sizeof want, "%s-%llu", keys[k], (unsigned long long)version);
                CHECK(strcmp(buf, want) == 0);
            } else {
                CHECK(len == 0);
            }
        }
    }
    pthread_join(tl, NULL);
    pthread_join(tr, NULL);
    CHECK(!left.failed && !right.failed);
    uint64_t version = 0;
    OK(shmbus_keyed_blackboard_version(b, "left", &version));
    CHECK(version == KEYED_WRITES);
    OK(shmbus_keyed_blackboard_version(b, "right", &version));
    CHECK(version == KEYED_WRITES);
    shmbus_keyed_blackboard_close(b);
}

static void *echo_server(void *arg) {
    shmbus_duplex *server = arg;
    char buf[64];
    size_t len;
    uint64_t request;
    /* One plain message, then one request, answered reversed. */
    for (int i = 0; i < 2; i++) {
        if (shmbus_duplex_recv(server, buf, sizeof buf, &len, &request, -1) != SHMBUS_OK) return NULL;
        if (request != 0) {
            char out[64];
            for (size_t j = 0; j < len; j++) out[j] = buf[len - 1 - j];
            shmbus_duplex_reply(server, request, out, len);
        }
    }
    return NULL;
}

static void test_duplex(void) {
    shmbus_duplex *server = NULL, *client = NULL;
    EXPECT(SHMBUS_ERR_NOT_FOUND, shmbus_duplex_connect("c.link", NULL, &client));
    OK(shmbus_duplex_listen("c.link", NULL, &server));
    OK(shmbus_duplex_connect("c.link", NULL, &client));
    EXPECT(SHMBUS_ERR_WRONG_MODE, shmbus_duplex_reply(server, 0, "x", 1));
    {
        char b[8];
        size_t l;
        EXPECT(SHMBUS_ERR_EMPTY, shmbus_duplex_recv(server, b, sizeof b, &l, NULL, 0));
        EXPECT(SHMBUS_ERR_TIMEOUT, shmbus_duplex_recv(server, b, sizeof b, &l, NULL, 1000000));
    }
    pthread_t t;
    pthread_create(&t, NULL, echo_server, server);
    OK(shmbus_duplex_send(client, "note", 4));
    char reply[64];
    size_t len = 0;
    EXPECT(SHMBUS_ERR_TOO_SMALL, shmbus_duplex_request(client, "abc", 3, reply, 1, &len, 5000000000LL));
    CHECK(len == 3);
    OK(shmbus_duplex_take_reply(client, reply, sizeof reply, &len));
    CHECK(len == 3 && memcmp(reply, "cba", 3) == 0);
    EXPECT(SHMBUS_ERR_NO_LOAN, shmbus_duplex_take_reply(client, reply, sizeof reply, &len));
    pthread_join(t, NULL);
    EXPECT(SHMBUS_ERR_TIMEOUT, shmbus_duplex_request(client, "x", 1, reply, sizeof reply, &len, 1000000));
    shmbus_duplex_close(client);
    shmbus_duplex_close(server);
}

/* A thread that creates the objects the waits below wait for, a moment later. */
static void *late_objects(void *arg) {
    (void)arg;
    usleep(50000);
    shmbus_blackboard *b = NULL;
    shmbus_subscriber *s = NULL;
    shmbus_duplex *server = NULL;
    if (shmbus_blackboard_create("c.late", 16, &b) != SHMBUS_OK) return (void *)1;
    shmbus_blackboard_write(b, "late", 4);
    if (shmbus_subscriber_open("c.waited", &s) != SHMBUS_OK) return (void *)2;
    if (shmbus_duplex_listen("c.late.link", NULL, &server) != SHMBUS_OK) return (void *)3;
    char buf[16];
    size_t len = 0;
    uint64_t request = 0;
    if (shmbus_duplex_recv(server, buf, sizeof buf, &len, &request, 5000000000LL) == SHMBUS_OK)
        shmbus_duplex_reply(server, request, buf, len);
    usleep(50000); /* let the opener read the board first */
    shmbus_duplex_close(server);
    shmbus_subscriber_close(s);
    shmbus_blackboard_close(b);
    return NULL;
}

static void test_waiting_for_others(void) {
    shmbus_options *o = NULL;
    OK(shmbus_options_create(&o));
    OK(shmbus_options_set_wait_for_creation(o, 0));
    shmbus_blackboard *b = NULL;
    EXPECT(SHMBUS_ERR_NOT_FOUND, shmbus_blackboard_open_with("c.late", o, &b));
    OK(shmbus_options_set_wait_for_creation(o, 1000000)); /* 1 ms, then not found */
    EXPECT(SHMBUS_ERR_NOT_FOUND, shmbus_blackboard_open_with("c.late", o, &b));
    shmbus_channel_config cfg;
    shmbus_channel_config_default(&cfg);
    shmbus_publisher *p = NULL;
    OK(shmbus_publisher_create("c.waited", &cfg, &p));
    EXPECT(SHMBUS_ERR_TIMEOUT, shmbus_publisher_wait_subscribers(p, 1, 0));
    EXPECT(SHMBUS_ERR_TIMEOUT, shmbus_publisher_wait_subscribers(p, 1, 1000000));
    shmbus_duplex *client = NULL;
    EXPECT(SHMBUS_ERR_NOT_FOUND, shmbus_duplex_connect_timeout("c.late.link", NULL, 1000000, &client));
    pthread_t t;
    pthread_create(&t, NULL, late_objects, NULL);
    OK(shmbus_options_set_wait_for_creation(o, -1)); /* as long as it takes */
    OK(shmbus_blackboard_open_with("c.late", o, &b));
    OK(shmbus_publisher_wait_subscribers(p, 1, 10000000000LL));
    CHECK(shmbus_publisher_subscriber_count(p) == 1);
    OK(shmbus_duplex_connect_timeout("c.late.link", NULL, 10000000000LL, &client));
    char reply[16];
    size_t len = 0;
    OK(shmbus_duplex_request(client, "hi", 2, reply, sizeof reply, &len, 5000000000LL));
    CHECK(len == 2 && memcmp(reply, "hi", 2) == 0);
    EXPECT(SHMBUS_ERR_INVALID, shmbus_publisher_wait_subscribers(NULL, 1, 0));
    void *thread_rc = NULL;
    pthread_join(t, &thread_rc);
    CHECK(thread_rc == NULL);
    shmbus_duplex_close(client);
    shmbus_blackboard_close(b);
    shmbus_publisher_close(p);
    shmbus_options_close(o);
}

/* Feeds the wait set test: a message, a board write, an event, a key, 20 ms apart. */
static void *feed_waitset(void *arg) {
    shmbus_publisher *p = arg; /* handed over: only this thread uses it now */
    usleep(20000);
    shmbus_publisher_send(p, "m", 1);
    usleep(20000);
    shmbus_blackboard *b = NULL;
    if (shmbus_blackboard_open("c.ws.board", &b) != SHMBUS_OK) return (void *)2;
    shmbus_blackboard_write(b, "v", 1);
    usleep(20000);
    shmbus_event *e = NULL;
    if (shmbus_event_open("c.ws.go", &e) != SHMBUS_OK) return (void *)3;
    shmbus_event_set(e);
    shmbus_blackboard *late = NULL;
    if (shmbus_blackboard_create("c.ws.late", 8, &late) != SHMBUS_OK) return (void *)4;
    usleep(200000); /* keep it while the waiter sees it */
    shmbus_blackboard_close(late);
    shmbus_event_close(e);
    shmbus_blackboard_close(b);
    return NULL;
}

static void test_waitset(void) {
    shmbus_waitset *ws = NULL;
    OK(shmbus_waitset_create(&ws));
    uint64_t k_sub, k_board, k_go, k_key, k_other, k_timer, k_late, spare;
    shmbus_channel_config cfg;
    shmbus_channel_config_default(&cfg);
    shmbus_subscriber *s = NULL;
    shmbus_blackboard *b = NULL;
    shmbus_event *go = NULL;
    shmbus_keyed_blackboard *kb = NULL;
    shmbus_publisher *holder = NULL;
    OK(shmbus_publisher_create("c.ws.chan", &cfg, &holder));
    OK(shmbus_subscriber_open("c.ws.chan", &s));
    OK(shmbus_blackboard_create("c.ws.board", 8, &b));
    OK(shmbus_event_create("c.ws.go", 1, &go));
    const char *keys[] = {"k", "other"};
    OK(shmbus_keyed_blackboard_create("c.ws.keyed", keys, 2, 8, &kb));
    OK(shmbus_waitset_attach_subscriber(ws, s, &k_sub));
    OK(shmbus_waitset_attach_blackboard(ws, b, &k_board));
    OK(shmbus_waitset_attach_event(ws, go, &k_go));
    OK(shmbus_waitset_attach_keyed_key(ws, kb, "k", &k_key));
    OK(shmbus_waitset_attach_keyed_key(ws, kb, "other", &k_other));
    OK(shmbus_waitset_attach_timer(ws, 3600000000000LL, &k_timer));
    OK(shmbus_waitset_attach_appearance(ws, "c.ws.late", NULL, &k_late));
    EXPECT(SHMBUS_ERR_UNKNOWN_KEY, shmbus_waitset_attach_keyed_key(ws, kb, "nope", &spare));
    EXPECT(SHMBUS_ERR_INVALID, shmbus_waitset_attach_timer(ws, 0, &spare));
    EXPECT(SHMBUS_ERR_INVALID, shmbus_waitset_attach_subscriber(ws, NULL, &spare));
    EXPECT(SHMBUS_ERR_INVALID, shmbus_waitset_attach_event(ws, (shmbus_event *)b, &spare));
    uint64_t ready[8];
    size_t n = 0;
    EXPECT(SHMBUS_ERR_TIMEOUT, shmbus_waitset_wait(ws, 0, ready, 8, &n));
    CHECK(n == 0);
    EXPECT(SHMBUS_ERR_INVALID, shmbus_waitset_wait(ws, 0, ready, 0, &n));
    OK(shmbus_keyed_blackboard_write(kb, "k", "x", 1));
    pthread_t t;
    pthread_create(&t, NULL, feed_waitset, holder);
    int seen_sub = 0, seen_board = 0, seen_go = 0, seen_key = 0, seen_late = 0, seen_wrong = 0;
    for (int round = 0; round < 100 && !(seen_sub && seen_board && seen_go && seen_key && seen_late); round++) {
        /* Room for one key at a time: the others wait for the next call. */
        if (shmbus_waitset_wait(ws, 10000000000LL, ready, 1, &n) != SHMBUS_OK) break;
        CHECK(n == 1);
        if (ready[0] == k_sub) seen_sub = 1;
        else if (ready[0] == k_board) seen_board = 1;
        else if (ready[0] == k_go) seen_go = 1;
        else if (ready[0] == k_key) seen_key = 1;
        else if (ready[0] == k_late) seen_late = 1;
        else seen_wrong = 1;
        if (ready[0] == k_sub) {
            char buf[8];
            size_t len = 0;
            OK(shmbus_subscriber_recv(s, buf, sizeof buf, &len, 0));
            CHECK(len == 1 && buf[0] == 'm');
        }
    }
    CHECK(seen_sub && seen_board && seen_go && seen_key && seen_late && !seen_wrong);
    void *rc = NULL;
    pthread_join(t, &rc);
    CHECK(rc == NULL);
    OK(shmbus_waitset_detach(ws, k_go));
    EXPECT(SHMBUS_ERR_INVALID, shmbus_waitset_detach(ws, k_go));
    (void)k_other;
    (void)k_timer;
    shmbus_waitset_close(ws);
    shmbus_waitset_close(NULL);
    shmbus_keyed_blackboard_close(kb);
    shmbus_event_close(go);
    shmbus_blackboard_close(b);
    shmbus_subscriber_close(s);
    shmbus_publisher_close(holder);
}

static void test_segments_and_options(void) {
    shmbus_options *o = NULL;
    OK(shmbus_options_create(&o));
    EXPECT(SHMBUS_ERR_INVALID, shmbus_options_set_namespace(o, "bad namespace"));
    EXPECT(SHMBUS_ERR_INVALID, shmbus_options_set_mode(o, 01000));
    EXPECT(SHMBUS_ERR_INVALID, shmbus_options_set_spin(o, -1));
    /* A failed setter leaves the options as they were. */
    OK(shmbus_options_set_mode(o, 0640));
    EXPECT(SHMBUS_ERR_INVALID, shmbus_options_set_mode(o, 07777));
    OK(shmbus_options_set_spin(o, 0));
    OK(shmbus_options_set_open_timeout(o, 100000000));
    OK(shmbus_options_allow_owner(o, 65534));
    char ns[64];
    snprintf(ns, sizeof ns, "%s-opts", getenv("SHMBUS_NAMESPACE") ? getenv("SHMBUS_NAMESPACE") : "c");
    OK(shmbus_options_set_namespace(o, ns));
    shmbus_segment *seg = NULL, *other = NULL;
    OK(shmbus_segment_create("c.seg", 100, o, &seg));
    /* Another namespace: not found without the options. */
    EXPECT(SHMBUS_ERR_NOT_FOUND, shmbus_segment_open("c.seg", NULL, &other));
    EXPECT(SHMBUS_ERR_INVALID, shmbus_options_set_namespace(o, "bad ns!"));
    OK(shmbus_segment_open("c.seg", o, &other)); /* still in the namespace set before */
    CHECK(shmbus_segment_size(other) == 100);
    OK(shmbus_segment_write(seg, 10, "bytes", 5));
    char buf[8] = {0};
    OK(shmbus_segment_read(other, 10, buf, 5));
    CHECK(memcmp(buf, "bytes", 5) == 0);
    EXPECT(SHMBUS_ERR_INVALID, shmbus_segment_read(other, 98, buf, 5));
    EXPECT(SHMBUS_ERR_INVALID, shmbus_segment_write(seg, SIZE_MAX, "x", 1));
    shmbus_segment_close(other);
    OK(shmbus_options_set_persistent(o, 1));
    shmbus_segment *kept = NULL;
    OK(shmbus_segment_create("c.kept", 8, o, &kept));
    shmbus_segment_close(kept);
    OK(shmbus_segment_open("c.kept", o, &kept)); /* outlived its creator */
    shmbus_segment_close(kept);
    OK(shmbus_remove("c.kept", o));
    EXPECT(SHMBUS_ERR_NOT_FOUND, shmbus_remove("c.kept", o));
    shmbus_segment_close(seg);
    shmbus_options_close(o);
}

int main(void) {
    if (!getenv("SHMBUS_NAMESPACE")) {
        fprintf(stderr, "set SHMBUS_NAMESPACE to a namespace of the test's own\n");
        return 2;
    }
    test_version_and_errors();
    test_channel();
    test_lossy_counts_every_loss();
    test_backpressure_and_borrow();
    test_null_and_bad_handles();
    test_blackboard();
    test_keyed_blackboard();
    test_keyed_blackboard_threads();
    test_events();
    test_handlers();
    test_duplex();
    test_waiting_for_others();
    test_waitset();
    test_segments_and_options();
    if (failures) {
        fprintf(stderr, "%d failures\n", failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
