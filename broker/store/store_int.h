/* store_int.h - what a store backend implements. oh_store begins with a
 * pointer to the backend's ops; store.c forwards to them. */
#ifndef OH_STORE_INT_H
#define OH_STORE_INT_H

#include "store/store.h"

struct oh_store_ops {
    const char *name;
    oh_store *(*open)(const oh_config *cfg, char *err, size_t errlen);
    void (*close)(oh_store *st);
    const char *(*epoch)(const oh_store *st);
    int (*ping)(oh_store *st);
    int (*materialize)(oh_store *st, const char *group, struct oh_store_item *items, size_t n,
                       const struct oh_store_pos *pos, size_t npos);
    int (*position_get)(oh_store *st, const char *group, const char *topic, int32_t partition,
                        int64_t *next, int64_t *published);
    int (*position_published)(oh_store *st, const char *group, const char *topic, int32_t partition,
                              int64_t published);
    int (*since_source)(oh_store *st, int32_t partition, int64_t from, oh_store_row_fn fn,
                        void *opaque);
    int (*history)(oh_store *st, const char *conv, int64_t after, int limit, oh_store_row_fn fn,
                   void *opaque);
    int (*event_get)(oh_store *st, const char *conv, const char *event_id, oh_store_row_fn fn,
                     void *opaque);
    int (*verify)(oh_store *st, struct oh_store_verify *v);
    int (*conversation_get)(oh_store *st, const char *conv, struct oh_conversation *out);
    int (*conversations)(oh_store *st, int64_t updated_after_ms, int limit, oh_store_conv_fn fn,
                         void *opaque);
    int (*snoozed_due)(oh_store *st, int64_t now_ms, int limit, oh_store_conv_fn fn, void *opaque);
    int (*command_result)(oh_store *st, const char *conv, const char *id, int *code, char *body,
                          size_t len);

    int (*list)(oh_store *st, const struct oh_store_filter *f, oh_store_list_fn fn, void *opaque);
    int (*changes)(oh_store *st, const char *after, int limit, oh_store_conv_fn fn, void *opaque,
                   char *next);
    int (*ref_get)(oh_store *st, const char *channel, const char *account, const char *ref,
                   struct oh_store_ref *out);
    int (*ref_put)(oh_store *st, const char *channel, const char *account, const char *ref,
                   const char *conv, const char *message_id);
    int (*message_state)(oh_store *st, const char *conv, const char *message_id, char out[16]);
    int (*cursor_set)(oh_store *st, const char *conv, const char *role, const char *user,
                      const char *device, int64_t seq);
    int (*cursors)(oh_store *st, const char *conv, const char *role, const char *user,
                   oh_store_cursor_fn fn, void *opaque);
    int (*kv_put)(oh_store *st, const char *ns, const char *key, const char *value);
    int (*kv_get)(oh_store *st, const char *ns, const char *key, char *out, size_t outlen);
    int (*kv_del)(oh_store *st, const char *ns, const char *key);
    int (*kv_write)(oh_store *st, const char *ns, const char *const *keys,
                    const char *const *values, size_t n);
    int (*kv_scan)(oh_store *st, const char *ns, oh_store_kv_fn fn, void *opaque);
    int (*open_assigned)(oh_store *st, const char *agent, int64_t *count);
    int (*contact_refs)(oh_store *st, const char *const *convs, const char *const *contacts,
                        size_t n);
    int (*erase)(oh_store *st, const char *conv, oh_store_erase_fn fn, void *opaque,
                 int64_t *count);
    int (*article_put)(oh_store *st, const struct oh_store_article *a, int64_t *version);
    int (*article_get)(oh_store *st, const char *id, oh_store_article_fn fn, void *opaque);
    int (*article_del)(oh_store *st, const char *id);
    int (*articles)(oh_store *st, oh_store_article_fn fn, void *opaque);
};

/* Every backend's oh_store struct starts with this. */
struct oh_store_base {
    const struct oh_store_ops *ops;
};

extern const struct oh_store_ops oh_store_sqlite_ops;
extern const struct oh_store_ops oh_store_pg_ops;

/* store.postgres.*: a DSN (or shards) given, each one a connection string
 * libpq can parse; ERR never quotes a DSN (it may hold a password). */
int oh_store_pg_check(const oh_config *cfg, char *err, size_t errlen);

/* Shared by both backends: rank of a delivery state for "never backwards"
 * (sent 1 < failed 2 < delivered 3 < read 4; unknown 0). */
int oh_store_state_rank(const char *state);

/* Store positions of oh_store_changes: "r" and one change number per
 * shard, joined by '.'. Parse: OH_EINVAL unless S holds exactly N. */
int oh_store_pos_parse(const char *s, int64_t *revs, int n);
void oh_store_pos_format(const int64_t *revs, int n, char out[OH_STORE_POS_MAX]);

/* The tombstone of stored event EV (parsed) at SEQ: its compact text with
 * "seq"/"epoch" last (caller frees) and checksum; NULL when out of memory. */
char *oh_store_tombstone(const json_t *ev, int64_t seq, const char *epoch, size_t *len,
                         uint32_t *crc);

#endif
