/* store_int.h - what a store backend implements. oh_store begins with a
 * pointer to the backend's ops; store.c forwards to them. */
#ifndef OH_STORE_INT_H
#define OH_STORE_INT_H

#include "store/store.h"

/* The shard operations of a sharded backend. */
struct oh_store_shard_ops {
    int (*add)(oh_store *st, const char *name, const char *dsn, char *err, size_t errlen);
    int (*list)(oh_store *st, oh_store_shard_fn fn, void *opaque);
};

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
    int (*kv_swap)(oh_store *st, const char *ns, const char *key, const char *expected,
                   const char *value);
    int (*kv_write)(oh_store *st, const char *ns, const char *const *keys,
                    const char *const *values, size_t n);
    int (*kv_scan)(oh_store *st, const char *ns, oh_store_kv_fn fn, void *opaque);
    /* optional (else one kv_get per key) */
    int (*kv_get_many)(oh_store *st, const char *ns, const char *const *keys, size_t n,
                       void (*fn)(void *ctx, size_t i, const char *value), void *ctx);
    int (*open_assignees)(oh_store *st, oh_store_assignee_fn fn, void *opaque);
    int (*contact_refs)(oh_store *st, const char *const *convs, const char *const *contacts,
                        size_t n);
    /* optional (else materialize, then THEN's FN after the commit): THEN's
     * FN inside the transaction (store.h, oh_store_materialize_then) */
    int (*materialize_then)(oh_store *st, const char *group, struct oh_store_item *items,
                            size_t n, const struct oh_store_pos *pos, size_t npos,
                            const struct oh_store_then *then);
    /* optional (else kv_write, then contact_refs, unchecked): both in one
     * transaction, the writes checked against SEEN (store.h) */
    int (*contact_write)(oh_store *st, const char *const *keys, const char *const *values, size_t n,
                         const struct oh_contact_seen *seen, const char *const *convs,
                         const char *const *contacts, size_t k);
    int (*conversations_touch)(oh_store *st, const char *const *convs, size_t n);
    int (*erase)(oh_store *st, const char *const *convs, size_t n, oh_store_erase_fn fn,
                 void *opaque, int64_t *count);
    int (*article_put)(oh_store *st, const struct oh_store_article *a, int64_t *version);
    int (*article_get)(oh_store *st, const char *id, oh_store_article_fn fn, void *opaque);
    int (*article_del)(oh_store *st, const char *id);
    int (*articles)(oh_store *st, oh_store_article_fn fn, void *opaque);
    int (*kpi_put)(oh_store *st, const char *group, const struct oh_store_episode *eps, size_t n,
                   const struct oh_store_pos *pos, size_t npos);
    int (*kpi_report)(oh_store *st, const struct oh_store_kpi_query *q, oh_store_kpi_fn fn,
                      void *opaque);
    const struct oh_store_shard_ops *shards; /* NULL: not sharded */
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

/* Daily aggregates (migration 8, kpi_days): per UTC day and group key
 * (dim "none", "channel", "team", "agent"; key "" is the null agent or
 * team) the sums and counts of the episodes resolved that day and a
 * histogram of their first response times in whole seconds (FRTs of
 * OH_KPI_HIST_CAP s or more share the last bucket). A report reads whole
 * days from here and the rest from the rows; the exact percentiles come
 * from the histogram's bucket plus that bucket's rows. */
#define OH_KPI_DAY_MS   86400000LL
#define OH_KPI_HIST_CAP 14400
enum {
    OH_KPI_EPISODES,
    OH_KPI_FRT_N,
    OH_KPI_FRT_SUM,
    OH_KPI_NRT_N,
    OH_KPI_NRT_SUM,
    OH_KPI_AHT_N,
    OH_KPI_AHT_SUM,
    OH_KPI_RES_SUM,
    OH_KPI_SLA_MET,
    OH_KPI_BOT,
    OH_KPI_BOT_OPEN, /* bot involved, no agent message, never reopened */
    OH_KPI_SUMS
};
extern const char *const oh_kpi_dims[4];
int64_t oh_kpi_day_of(int64_t ms);
int oh_kpi_bucket(int64_t frt_ms);
/* The changes a batch of episode writes makes to kpi_days. */
struct oh_kpi_delta;
struct oh_kpi_delta *oh_kpi_delta_new(void);
void oh_kpi_delta_free(struct oh_kpi_delta *d);
/* Adds (SIGN 1) or takes away (SIGN -1) episode E's contribution. */
int oh_kpi_delta_add(struct oh_kpi_delta *d, const struct oh_store_episode *e, int sign);
/* Calls FN with each changed (dim, day, key): SUMS to add and HIST[0..N)
 * (bucket, count to add) pairs by bucket. FN non-zero stops. */
typedef int (*oh_kpi_delta_fn)(void *opaque, const char *dim, int64_t day, const char *key,
                               const int64_t *sums, const int64_t (*hist)[2], size_t n);
int oh_kpi_delta_each(struct oh_kpi_delta *d, oh_kpi_delta_fn fn, void *opaque);
/* A stored histogram BLOB (LEN bytes; pairs of little-endian uint32 bucket,
 * count by bucket) plus the changes HIST[0..N): the new BLOB in *OUT
 * (malloc'ed, *OUTLEN bytes), OH_EDAMAGED when a count goes below 0. */
int oh_kpi_hist_apply(const void *blob, size_t len, const int64_t (*hist)[2], size_t n,
                      uint8_t **out, size_t *outlen);
/* Adds a kpi_days row to KEY's counts (NULL: the null key). */
int oh_kpi_acc_add_day(struct oh_kpi_acc *k, const char *key, const int64_t *sums, const void *blob,
                       size_t len);
/* Adds N to KEY's bot_resolved (a bot-only episode reopened after the
 * window, which kpi_days does not count). */
int oh_kpi_acc_add_bot(struct oh_kpi_acc *k, const char *key, int64_t n);
/* The first response times of the whole days under KEY in [LO, HI) ms,
 * sorted, exactly N of them into OUT (else an error). */
typedef int (*oh_kpi_frt_fn)(void *opaque, const char *key, int64_t lo, int64_t hi, int64_t *out,
                             size_t n);
/* oh_kpi_acc_emit() for an ACC with kpi_days rows: FRT locates the values
 * of the bucket holding a percentile. */
int oh_kpi_acc_emit_days(struct oh_kpi_acc *k, oh_store_kpi_fn fn, void *opaque, oh_kpi_frt_fn frt,
                         void *frt_opaque);

/* Store positions of oh_store_changes: "r" and one change number per
 * shard (by shard index), joined by '.'. Parse: OH_EINVAL unless S holds
 * 1 to N; shards past its end start at 0 (added after S was handed out). */
int oh_store_pos_parse(const char *s, int64_t *revs, int n);
void oh_store_pos_format(const int64_t *revs, int n, char out[OH_STORE_POS_MAX]);

/* The tombstone of stored event EV (parsed) at SEQ: its compact text with
 * "seq"/"epoch" last (caller frees) and checksum; NULL when out of memory. */
char *oh_store_tombstone(const json_t *ev, int64_t seq, const char *epoch, size_t *len,
                         uint32_t *crc);

#endif
