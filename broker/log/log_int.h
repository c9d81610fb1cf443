/* log_int.h - what a log backend implements. oh_log and oh_log_consumer
 * begin with a pointer to the backend's ops; log.c forwards to them. */
#ifndef OH_LOG_INT_H
#define OH_LOG_INT_H

#include "log/log.h"

struct oh_log_ops {
    const char *name;
    oh_log *(*open)(const oh_config *cfg, char *err, size_t errlen);
    void (*close)(oh_log *log);
    const char *(*bootstrap)(const oh_log *log);
    int (*identity)(oh_log *log, char *out, size_t outlen);
    int (*ping)(oh_log *log);
    int (*append)(oh_log *log, const char *topic, const char *key, const struct oh_log_meta *meta,
                  const void *value, size_t len, oh_log_done_fn done, void *opaque);
    oh_log_consumer *(*consumer_new)(oh_log *log, const char *group, const char *topic,
                                     const struct oh_log_rebalance *reb, char *err, size_t errlen);
    void (*consumer_close)(oh_log_consumer *c);
    int (*poll)(oh_log_consumer *c, struct oh_log_record *recs, int max, int timeout_ms);
    int (*seek)(oh_log_consumer *c, int32_t partition, int64_t offset);
    int (*seek_end)(oh_log_consumer *c);
    bool (*caught_up)(const oh_log_consumer *c);
    int (*commit)(oh_log_consumer *c, int32_t partition, int64_t next);
    int (*lag)(oh_log *log, const char *group, const char *topic, struct oh_log_lag *out, int max);
    int (*partitions)(oh_log *log, const char *topic);
};

/* Every backend's oh_log / oh_log_consumer struct starts with this. */
struct oh_log_base {
    const struct oh_log_ops *ops;
};

extern const struct oh_log_ops oh_log_local_ops;
extern const struct oh_log_ops oh_log_kafka_ops;

/* The strings of one polled record, copied into a consumer's buffer. */
enum {
    OH_LOG_KEY,
    OH_LOG_VALUE,
    OH_LOG_TYPE,
    OH_LOG_SUBJECT,
    OH_LOG_AUTHOR,
    OH_LOG_TIME,
    OH_LOG_NSTR
};
struct oh_log_strs {
    const char *s[OH_LOG_NSTR]; /* NULL: absent */
    size_t len[OH_LOG_NSTR];
};
/* Copies IN behind the first *USED bytes of *BUF (each string NUL-ended),
 * noting where in OFFS (OH_LOG_NSTR of them) and the lengths in R. */
int oh_log_keep(char **buf, size_t *cap, size_t *used, size_t *offs, const struct oh_log_strs *in,
                struct oh_log_record *r);
/* Points R's strings into BUF once the poll is complete (BUF may move while
 * it grows). */
void oh_log_resolve(const char *buf, const size_t *offs, struct oh_log_record *r);

#endif
