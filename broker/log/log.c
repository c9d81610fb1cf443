/* log.c - the log front: picks the backend named by log.backend and
 * forwards every call of log.h to that backend's ops (log_int.h). */
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "oh_build_config.h"
#include "core/event.h"
#include "log/log_int.h"

#define OPS(h) (((const struct oh_log_base *)(const void *)(h))->ops)

const struct oh_config_key oh_log_keys[] = {
    {"log.backend", OH_CFG_STR, "local", "conversation stream: local|kafka"},
    {"log.local.path", OH_CFG_STR, NULL, "local log file (default <data_dir>/log.db)"},
    {"log.local.create", OH_CFG_BOOL, "true",
     "create the log when missing (omnihubctl reads only an existing one)"},
    {"log.local.max_batch", OH_CFG_INT, "1024", "appends sharing one commit, at most"},
    {"kafka.brokers", OH_CFG_STR, NULL, "bootstrap servers, host:port,..."},
    {"kafka.topic_prefix", OH_CFG_STR, "omnihub.", "prefix of the events and timeline topics"},
    {"kafka.mock_brokers", OH_CFG_INT, "0", "N > 0: start an in-process mock cluster of N"},
    {"kafka.partitions", OH_CFG_INT, "6", "partitions of topics created at start-up"},
    {"kafka.replication", OH_CFG_INT, "1", "replication factor of topics created at start-up"},
    {"kafka.message_timeout_ms", OH_CFG_INT, "60000",
     "an append not delivered within this fails (the request gets 503)"},
    {"kafka.message_max_bytes", OH_CFG_INT, "1000000",
     "largest record the producer sends (librdkafka message.max.bytes; match the brokers')"},
    {NULL, 0, NULL, NULL},
};

int oh_log_check(const oh_config *cfg, char *err, size_t errlen)
{
    const char *name = oh_config_str(cfg, "log.backend");
    if (!name || !strcmp(name, "local")) return OH_OK;
    if (strcmp(name, "kafka") != 0) {
        oh_errf(err, errlen, "log.backend: unknown backend \"%s\" (local|kafka)", name);
        return OH_EINVAL;
    }
#ifdef OH_HAVE_KAFKA
    if (oh_config_int(cfg, "kafka.message_max_bytes") < OH_LOG_KAFKA_MESSAGE_MIN) {
        oh_errf(err, errlen,
                "kafka.message_max_bytes: at least %d (an event's record may have that less %d "
                "bytes, the room its timeline copy needs)",
                OH_LOG_KAFKA_MESSAGE_MIN, OH_LOG_TIMELINE_ROOM);
        return OH_EINVAL;
    }
    if (oh_config_int(cfg, "kafka.mock_brokers") > 0) return OH_OK;
    return oh_config_require(cfg, "kafka.brokers",
                             "with log.backend kafka (or kafka.mock_brokers: N)", err, errlen);
#else
    oh_errf(err, errlen, "log.backend: kafka: omnihub was built without librdkafka");
    return OH_EINVAL;
#endif
}

oh_log *oh_log_open(const oh_config *cfg, char *err, size_t errlen)
{
    if (oh_log_check(cfg, err, errlen)) return NULL;
    const char *name = oh_config_str(cfg, "log.backend");
#ifdef OH_HAVE_KAFKA
    if (name && !strcmp(name, "kafka")) return oh_log_kafka_ops.open(cfg, err, errlen);
#endif
    return oh_log_local_ops.open(cfg, err, errlen);
}

void oh_log_close(oh_log *log)
{
    if (log) OPS(log)->close(log);
}

const char *oh_log_backend(const oh_log *log)
{
    return OPS(log)->name;
}

const char *oh_log_bootstrap(const oh_log *log)
{
    return OPS(log)->bootstrap(log);
}

int oh_log_identity(oh_log *log, char *out, size_t outlen)
{
    if (!log || !out || !outlen) return OH_EINVAL;
    return OPS(log)->identity(log, out, outlen);
}

int oh_log_ping(oh_log *log)
{
    return OPS(log)->ping(log);
}

int oh_log_append(oh_log *log, const char *topic, const char *key, const void *value, size_t len,
                  oh_log_done_fn done, void *opaque)
{
    return oh_log_append_meta(log, topic, key, NULL, value, len, done, opaque);
}

int oh_log_append_meta(oh_log *log, const char *topic, const char *key,
                       const struct oh_log_meta *meta, const void *value, size_t len,
                       oh_log_done_fn done, void *opaque)
{
    if (!log || !topic || !value) return OH_EINVAL;
    static const struct oh_log_meta none = {0};
    return OPS(log)->append(log, topic, key, meta ? meta : &none, value, len, done, opaque);
}

struct oh_log_meta oh_log_meta_of(const json_t *ev, int64_t seq)
{
    return oh_log_meta_known(ev, seq, NULL, NULL);
}

struct oh_log_meta oh_log_meta_known(const json_t *ev, int64_t seq, const char *type,
                                     const char *subject)
{
    const json_t *data = oh_event_data(ev);
    return (struct oh_log_meta){
        .type = type ? type : oh_event_get_type(ev),
        .subject = subject ? subject : oh_event_subject(ev),
        .seq = seq,
        .author = oh_event_author_kind(ev),
        .time = json_string_value(json_object_get(ev, "time")),
        .internal = json_is_true(json_object_get(data, "internal")),
    };
}

oh_log_consumer *oh_log_consumer_new(oh_log *log, const char *group, const char *topic,
                                     const struct oh_log_rebalance *reb, char *err, size_t errlen)
{
    if (!log || !topic) {
        oh_errf(err, errlen, "log consumer: no log or topic");
        return NULL;
    }
    return OPS(log)->consumer_new(log, group, topic, reb, err, errlen);
}

void oh_log_consumer_close(oh_log_consumer *c)
{
    if (c) OPS(c)->consumer_close(c);
}

int oh_log_poll(oh_log_consumer *c, struct oh_log_record *recs, int max, int timeout_ms)
{
    if (!c || !recs || max <= 0) return OH_EINVAL;
    return OPS(c)->poll(c, recs, max, timeout_ms);
}

int oh_log_seek(oh_log_consumer *c, int32_t partition, int64_t offset)
{
    if (!c || partition < 0 || offset < 0) return OH_EINVAL;
    return OPS(c)->seek(c, partition, offset);
}

int oh_log_seek_end(oh_log_consumer *c)
{
    if (!c) return OH_EINVAL;
    return OPS(c)->seek_end(c);
}

bool oh_log_caught_up(const oh_log_consumer *c)
{
    return c && OPS(c)->caught_up(c);
}

int oh_log_commit(oh_log_consumer *c, int32_t partition, int64_t next)
{
    if (!c || partition < 0 || next < 0) return OH_EINVAL;
    return OPS(c)->commit(c, partition, next);
}

int oh_log_lag(oh_log *log, const char *group, const char *topic, struct oh_log_lag *out, int max)
{
    if (!log || !group || !topic || !out || max <= 0) return OH_EINVAL;
    return OPS(log)->lag(log, group, topic, out, max);
}

int oh_log_partitions(oh_log *log, const char *topic)
{
    if (!log || !topic) return OH_EINVAL;
    return OPS(log)->partitions(log, topic);
}

#ifndef OH_HAVE_KAFKA
int oh_log_kafka_mock_broker(oh_log *log, int broker_id, bool up)
{
    return OH_EINVAL;
}

int oh_log_kafka_mock_leader(oh_log *log, const char *topic, int partition, int broker_id)
{
    return OH_EINVAL;
}
#endif

int oh_log_keep(char **buf, size_t *cap, size_t *used, size_t *offs, const struct oh_log_strs *in,
                struct oh_log_record *r)
{
    size_t need = *used;
    for (int i = 0; i < OH_LOG_NSTR; i++)
        need += (in->s[i] ? in->len[i] : 0) + 1;
    if (oh_grow(buf, cap, need, 1, 65536)) return OH_ENOMEM;
    for (int i = 0; i < OH_LOG_NSTR; i++) {
        size_t n = in->s[i] ? in->len[i] : 0;
        offs[i] = in->s[i] ? *used : (size_t)-1;
        if (n) memcpy(*buf + *used, in->s[i], n);
        (*buf)[*used + n] = '\0';
        *used += n + 1;
    }
    r->key_len = in->s[OH_LOG_KEY] ? in->len[OH_LOG_KEY] : 0;
    r->len = in->s[OH_LOG_VALUE] ? in->len[OH_LOG_VALUE] : 0;
    return 0;
}

void oh_log_resolve(const char *buf, const size_t *offs, struct oh_log_record *r)
{
    const char *at[OH_LOG_NSTR];
    for (int i = 0; i < OH_LOG_NSTR; i++)
        at[i] = offs[i] == (size_t)-1 ? NULL : buf + offs[i];
    r->key = at[OH_LOG_KEY];
    r->value = at[OH_LOG_VALUE] ? at[OH_LOG_VALUE] : "";
    r->meta.type = at[OH_LOG_TYPE];
    r->meta.subject = at[OH_LOG_SUBJECT];
    r->meta.author = at[OH_LOG_AUTHOR];
    r->meta.time = at[OH_LOG_TIME];
}
