/* The C API exactly as issue 7 wrote it: each declaration is repeated after the header, so
 * the compiler refuses the build if the header ever declares one differently. */
#include <stddef.h>
#include <stdint.h>
#include "shmbus.h"

typedef struct shmbus_publisher shmbus_publisher;
typedef struct shmbus_subscriber shmbus_subscriber;
typedef struct shmbus_blackboard shmbus_blackboard;
typedef struct shmbus_event shmbus_event;
/* The struct cannot be defined twice: check its members instead. */
_Static_assert(sizeof(shmbus_channel_config) == 4 * sizeof(size_t), "four words");
_Static_assert(offsetof(shmbus_channel_config, capacity) == 0, "capacity first");
_Static_assert(offsetof(shmbus_channel_config, max_message) == sizeof(size_t), "then max_message");
_Static_assert(offsetof(shmbus_channel_config, mode) == 2 * sizeof(size_t), "then mode");
_Static_assert(offsetof(shmbus_channel_config, max_subscribers) == 3 * sizeof(size_t), "then max_subscribers");
static int mode_is_int(shmbus_channel_config *c) { int *m = &c->mode; return *m; }
static size_t *cap_is_size_t(shmbus_channel_config *c) { return &c->capacity; }
static size_t *max_is_size_t(shmbus_channel_config *c) { return &c->max_message; }
static size_t *subs_is_size_t(shmbus_channel_config *c) { return &c->max_subscribers; }
void shmbus_channel_config_default(shmbus_channel_config *cfg);
int  shmbus_publisher_create(const char *name, const shmbus_channel_config *cfg, shmbus_publisher **out);
int  shmbus_publisher_send(shmbus_publisher *p, const void *data, size_t len);      /* waits in back-pressure */
int  shmbus_publisher_loan(shmbus_publisher *p, size_t len, void **buf);            /* zero-copy */
int  shmbus_publisher_commit(shmbus_publisher *p);
void shmbus_publisher_close(shmbus_publisher *p);                                   /* end of stream */
int  shmbus_subscriber_open(const char *name, shmbus_subscriber **out);
int  shmbus_subscriber_recv(shmbus_subscriber *s, void *buf, size_t cap, size_t *len, int64_t timeout_ns);
uint64_t shmbus_subscriber_lost(const shmbus_subscriber *s);  /* messages lost so far (lossy) */
void shmbus_subscriber_close(shmbus_subscriber *s);
int  shmbus_blackboard_create(const char *name, size_t capacity, shmbus_blackboard **out);
int  shmbus_blackboard_open(const char *name, shmbus_blackboard **out);
int  shmbus_blackboard_write(shmbus_blackboard *b, const void *data, size_t len);
int  shmbus_blackboard_read(shmbus_blackboard *b, void *buf, size_t cap, size_t *len, uint64_t *version);
void shmbus_blackboard_close(shmbus_blackboard *b);
int  shmbus_event_create(const char *name, int manual_reset, shmbus_event **out);
int  shmbus_event_open(const char *name, shmbus_event **out);
int  shmbus_event_set(shmbus_event *e);
int  shmbus_event_wait(shmbus_event *e, int64_t timeout_ns);   /* SHMBUS_ERR_TIMEOUT on timeout */
void shmbus_event_close(shmbus_event *e);
const char *shmbus_last_error(void);   /* this thread's last error message, "" if none */
const char *shmbus_version(void);

/* Not in issue 7: the keyed blackboard (issue 17), repeated here the same way, so that a
 * change to one of its declarations cannot slip through unnoticed. */
typedef struct shmbus_keyed_blackboard shmbus_keyed_blackboard;
int  shmbus_keyed_blackboard_create(const char *name, const char *const *keys, size_t key_count,
                                    size_t capacity, shmbus_keyed_blackboard **out);
int  shmbus_keyed_blackboard_create_with(const char *name, const char *const *keys, size_t key_count,
                                         size_t capacity, const shmbus_options *opts,
                                         shmbus_keyed_blackboard **out);
int  shmbus_keyed_blackboard_open(const char *name, shmbus_keyed_blackboard **out);
int  shmbus_keyed_blackboard_open_with(const char *name, const shmbus_options *opts,
                                       shmbus_keyed_blackboard **out);
int  shmbus_keyed_blackboard_create_or_open(const char *name, const char *const *keys, size_t key_count,
                                            size_t capacity, const shmbus_options *opts,
                                            shmbus_keyed_blackboard **out);
size_t shmbus_keyed_blackboard_capacity(const shmbus_keyed_blackboard *b);
size_t shmbus_keyed_blackboard_key_count(const shmbus_keyed_blackboard *b);
const char *shmbus_keyed_blackboard_key(const shmbus_keyed_blackboard *b, size_t index); /* NULL out of range */
int  shmbus_keyed_blackboard_write(shmbus_keyed_blackboard *b, const char *key, const void *data, size_t len);
int  shmbus_keyed_blackboard_read(shmbus_keyed_blackboard *b, const char *key, void *buf, size_t cap,
                                  size_t *len, uint64_t *version);
int  shmbus_keyed_blackboard_version(const shmbus_keyed_blackboard *b, const char *key, uint64_t *version);
int  shmbus_keyed_blackboard_wait_newer(const shmbus_keyed_blackboard *b, const char *key, uint64_t version,
                                        int64_t timeout_ns, uint64_t *newer);
int  shmbus_keyed_blackboard_on_update(const shmbus_keyed_blackboard *b, const char *key, uint64_t version,
                                       shmbus_update_fn cb, void *user, shmbus_handler **out);
void shmbus_keyed_blackboard_close(shmbus_keyed_blackboard *b);

int spec_decls_ok(void);
int spec_decls_ok(void) {
    shmbus_channel_config c;
    shmbus_channel_config_default(&c);
    int codes[] = {SHMBUS_OK, SHMBUS_LOSSY, SHMBUS_BACKPRESSURE, SHMBUS_ERR_TIMEOUT,
                   SHMBUS_ERR_EMPTY, SHMBUS_ERR_FULL, SHMBUS_ERR_LAGGED, SHMBUS_ERR_DISCONNECTED,
                   SHMBUS_ERR_PUBLISHER_GONE, SHMBUS_ERR_NOT_FOUND, SHMBUS_ERR_EXISTS,
                   SHMBUS_ERR_PERMISSION, SHMBUS_ERR_INVALID, SHMBUS_ERR_CORRUPT,
                   SHMBUS_ERR_TOO_SMALL, SHMBUS_ERR_UNKNOWN_KEY};
    (void)codes;
    return mode_is_int(&c) == SHMBUS_LOSSY && *cap_is_size_t(&c) > 0 && *max_is_size_t(&c) > 0 &&
           *subs_is_size_t(&c) > 0;
}
