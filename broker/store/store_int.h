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
    int (*kv_scan)(oh_store *st, const char *ns, oh_store_kv_fn fn, void *opaque);
    /* optional: store.c falls back to kv_get per key */
    int (*kv_get_many)(oh_store *st, const char *ns, const char *const *keys, size_t n,
                       oh_store_kv_fn fn, void *opaque);
    int (*open_assigned)(oh_store *st, const char *agent, int64_t *count);
    int (*article_put)(oh_store *st, const struct oh_store_article *a, int64_t *version);
    int (*article_get)(oh_store *st, const char *id, oh_store_article_fn fn, void *opaque);
    int (*article_del)(oh_store *st, const char *id);
    int (*articles)(oh_store *st, oh_store_article_fn fn, void *opaque);
    int (*kpi_put)(oh_store *st, const char *group, const struct oh_store_episode *eps, size_t n,
                   const struct oh_store_pos *pos, size_t npos);
    int (*kpi_report)(oh_store *st, const struct oh_store_kpi_query *q, oh_store_kpi_fn fn,
                      void *opaque);
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

/* The SQL of a KPI report grouped by GROUP_BY ("agent", "team",
 * "channel", "none"), with placeholders PH ('$' PostgreSQL; the query uses
 * percentile_disc, which SQLite lacks)
 * 1 from_ms, 2 to_ms, 3 agent (NULL: all), 4 reopen window ms. Columns: key,
 * episodes, frt_n, frt_sum, p50, p90, nrt_n, nrt_sum, aht_n, aht_sum,
 * res_sum, met, bot_involved, bot_resolved. OH_EINVAL for another
 * GROUP_BY. */
int oh_store_kpi_sql(char *out, size_t len, const char *group_by, char ph);

/* store_kpi.c: a report's rows from streamed episodes (SQLite). */
struct oh_kpi_acc;
struct oh_kpi_acc_ep {
    int64_t frt_ms; /* -1 none */
    int64_t nrt_sum_ms, nrt_count;
    int64_t aht_ms; /* -1 none */
    int64_t resolution_ms;
    bool breached, bot_involved, bot_resolved;
};
/* NULL when out of memory; free with oh_kpi_acc_free() (NULL is fine). */
struct oh_kpi_acc *oh_kpi_acc_new(void);
void oh_kpi_acc_free(struct oh_kpi_acc *k);
/* Counts episode E under KEY (NULL: the null key; copied). */
int oh_kpi_acc_add(struct oh_kpi_acc *k, const char *key, const struct oh_kpi_acc_ep *e);
/* Adds SRC's counts to DST (SRC is left unusable but still to be freed). */
int oh_kpi_acc_merge(struct oh_kpi_acc *dst, struct oh_kpi_acc *src);
/* Calls FN with each key's row, NULL key first, then by strcmp. */
int oh_kpi_acc_emit(struct oh_kpi_acc *k, oh_store_kpi_fn fn, void *opaque);

/* Store positions of oh_store_changes: "r" and one change number per
 * shard, joined by '.'. Parse: OH_EINVAL unless S holds exactly N. */
int oh_store_pos_parse(const char *s, int64_t *revs, int n);
void oh_store_pos_format(const int64_t *revs, int n, char out[OH_STORE_POS_MAX]);

#endif
