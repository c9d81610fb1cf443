/* log_kafka.c - the Kafka log: an idempotent librdkafka producer whose
 * delivery reports acknowledge appends, group consumers, lag, mock cluster. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include "log/log_int.h"

#define COMP      "log.kafka"
#define CT_HEADER "content-type"
#define CT_VALUE  "application/cloudevents+json"
/* struct oh_log_meta as headers: CloudEvents binary-mode attribute names
 * (type, subject, time; seq, authorkind and internal as extensions), beside
 * the structured-mode value that stays the contract. */
#define H_TYPE     "ce_type"
#define H_SUBJECT  "ce_subject"
#define H_SEQ      "ce_seq"
#define H_AUTHOR   "ce_authorkind"
#define H_TIME     "ce_time"
#define H_INTERNAL "ce_internal" /* "true" on a private note; absent otherwise */
#define META_MS    5000
#define NO_OFFSET  (-1000) /* want[p]: no seek requested */
#define MAX_TOPICS 8

struct oh_log {
    struct oh_log_base base;
    rd_kafka_t *producer;
    rd_kafka_t *mock_rk; /* owns the mock cluster, when kafka.mock_brokers > 0 */
    rd_kafka_mock_cluster_t *mock;
    char *bootstrap;
    char *prefix;
    pthread_t poller;
    volatile int stop;
    bool polling;
    pthread_mutex_t mu; /* guards the partition cache */
    struct {
        char *topic;
        int n;
    } parts[MAX_TOPICS];
};

struct oh_log_consumer {
    struct oh_log_base base;
    oh_log *log;
    rd_kafka_t *rk;
    char *topic;  /* without prefix */
    char *ktopic; /* with prefix */
    bool group, started, in_rebalance, seek_end_pending;
    bool revoked; /* partitions were revoked inside the current poll */
    struct oh_log_rebalance reb;
    int nparts;
    int64_t *want;  /* per partition: offset to start at, NO_OFFSET none */
    bool *assigned; /* per partition: in the current assignment */
    bool *at_end;   /* per partition: read to its end since assigned or sought */
    char *buf;
    size_t cap;
    size_t *offs;
    int noffs;
};

/* The per-append state handed to librdkafka as the message opaque. */
struct kdone {
    oh_log_done_fn done;
    void *opaque;
};

static int map_err(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR: return 0;
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT: return OH_ETIMEOUT;
    case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
    case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT: return OH_ECLOSED;
    case RD_KAFKA_RESP_ERR__QUEUE_FULL: return OH_ERETRY;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE: return OH_ETOOBIG; /* never taken: not retried */
    default: return OH_EIO;
    }
}

static void k_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    oh_slog(level <= 3   ? OH_LVL_ERROR
            : level == 4 ? OH_LVL_WARN
                         : OH_LVL_DEBUG,
            COMP, "%s: %s", fac, buf);
}

static void k_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    OH_WARN(COMP, "%s: %s", rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
}

/* Runs on the poller thread (or the closer, after it stopped). */
static void k_delivered(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct kdone *d = m->_private;
    if (!d) return;
    if (m->err)
        OH_WARN(COMP, "delivery to %s failed: %s", rd_kafka_topic_name(m->rkt),
                rd_kafka_err2str(m->err));
    if (d->done) d->done(d->opaque, map_err(m->err), m->partition, m->err ? -1 : m->offset);
    free(d);
}

static void *poller_main(void *arg)
{
    oh_log *log = arg;
    while (!__atomic_load_n(&log->stop, __ATOMIC_ACQUIRE))
        rd_kafka_poll(log->producer, 100);
    return NULL;
}

/* A configuration with the bootstrap list and our log callbacks. */
static rd_kafka_conf_t *base_conf(const oh_log *log, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (log && log->bootstrap &&
        rd_kafka_conf_set(conf, "bootstrap.servers", log->bootstrap, err, errlen)) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_conf_set(conf, "client.id", "omnihub", NULL, 0);
    rd_kafka_conf_set_log_cb(conf, k_log);
    rd_kafka_conf_set_error_cb(conf, k_error);
    return conf;
}

static int conf_set(rd_kafka_conf_t *conf, const char *const *kv, char *err, size_t errlen)
{
    for (; kv[0]; kv += 2)
        if (rd_kafka_conf_set(conf, kv[0], kv[1], err, errlen) != RD_KAFKA_CONF_OK)
            return OH_EINVAL;
    return 0;
}

static char *full_name(const oh_log *log, const char *topic)
{
    size_t n = strlen(log->prefix) + strlen(topic) + 1;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s%s", log->prefix, topic);
    return s;
}

/* Partition count of the prefixed topic NAME from a metadata request,
 * or a negative code. */
static int meta_parts(rd_kafka_t *rk, const char *name, int timeout_ms)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, name, NULL);
    const struct rd_kafka_metadata *md = NULL;
    int n = OH_EUNAVAIL;
    if (rkt && !rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms)) {
        if (md->topic_cnt == 1 && !md->topics[0].err && md->topics[0].partition_cnt > 0)
            n = md->topics[0].partition_cnt;
        else if (md->topic_cnt == 1)
            n = OH_ENOTFOUND;
        rd_kafka_metadata_destroy(md);
    }
    if (rkt) rd_kafka_topic_destroy(rkt);
    return n;
}

/* retention of the signals topic (ms): ten minutes, as text for the Admin API */
#define SIGNALS_RETENTION_MS "600000"
/* how long a signals reader's empty fetch may be held (ms) */
#define SIGNALS_FETCH_WAIT_MS "20"

/* Creates NAME with the Admin API unless it exists; BRIEF: with the short
 * retention of the signals topic. */
static int create_topic(oh_log *log, const char *name, int parts, int repl, bool brief, char *err,
                        size_t errlen)
{
    char es[256];
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(name, parts, repl, es, sizeof es);
    if (!nt) {
        oh_errf(err, errlen, "topic %s: %s", name, es);
        return OH_EINVAL;
    }
    /* signals are stale in seconds: nobody reads them back, keep little */
    if (brief && (rd_kafka_NewTopic_set_config(nt, "retention.ms", SIGNALS_RETENTION_MS) ||
                  rd_kafka_NewTopic_set_config(nt, "segment.ms", SIGNALS_RETENTION_MS))) {
        oh_errf(err, errlen, "topic %s: cannot set its retention", name);
        rd_kafka_NewTopic_destroy(nt);
        return OH_EINVAL;
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(log->producer);
    rd_kafka_CreateTopics(log->producer, &nt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 15000);
    int rc = OH_ETIMEOUT;
    const rd_kafka_CreateTopics_result_t *res = ev ? rd_kafka_event_CreateTopics_result(ev) : NULL;
    if (res) {
        size_t n = 0;
        const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &n);
        rd_kafka_resp_err_t e = rd_kafka_event_error(ev);
        if (!e && n == 1) e = rd_kafka_topic_result_error(tr[0]);
        rc = 0;
        if (e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) e = RD_KAFKA_RESP_ERR_NO_ERROR;
        if (e) {
            oh_errf(err, errlen, "creating topic %s: %s", name,
                    n == 1 && rd_kafka_topic_result_error_string(tr[0])
                        ? rd_kafka_topic_result_error_string(tr[0])
                        : rd_kafka_err2str(e));
            rc = OH_EIO;
        }
    } else {
        oh_errf(err, errlen, "creating topic %s: no answer from %s", name, log->bootstrap);
    }
    if (ev) rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
    return rc;
}

static int ensure_topics(oh_log *log, const oh_config *cfg, char *err, size_t errlen)
{
    int parts = (int)oh_config_int(cfg, "kafka.partitions");
    int repl = (int)oh_config_int(cfg, "kafka.replication");
    static const char *const topics[] = {OH_TOPIC_EVENTS, OH_TOPIC_TIMELINE, OH_TOPIC_SIGNALS};
    for (size_t i = 0; i < OH_ARRAY_SIZE(topics); i++) {
        char *name = full_name(log, topics[i]);
        if (!name) return OH_ENOMEM;
        int rc = 0;
        if (log->mock) {
            rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(log->mock, name, parts, repl);
            if (e) {
                oh_errf(err, errlen, "mock topic %s: %s", name, rd_kafka_err2str(e));
                rc = OH_EIO;
            }
        } else if (meta_parts(log->producer, name, META_MS) < 0) {
            rc = create_topic(log, name, parts, repl, strcmp(topics[i], OH_TOPIC_SIGNALS) == 0, err,
                              errlen);
        }
        /* The topic must be visible before anyone appends to it. */
        int n = OH_EUNAVAIL;
        for (int tries = 0; !rc && tries < 30 && (n = meta_parts(log->producer, name, 2000)) < 0;
             tries++)
            usleep(200000);
        if (!rc && n < 0) {
            oh_errf(err, errlen, "topic %s is not available on %s: %s", name, log->bootstrap,
                    oh_strerror(n));
            rc = OH_EUNAVAIL;
        }
        if (!rc) OH_INFO(COMP, "topic %s: %d partitions", name, n);
        free(name);
        if (rc) return rc;
    }
    return 0;
}

static void kafka_close(oh_log *log)
{
    if (!log) return;
    if (log->producer) {
        /* Deliver what is queued (callbacks fire), then fail the rest. */
        rd_kafka_flush(log->producer, 10000);
        if (log->polling) {
            __atomic_store_n(&log->stop, 1, __ATOMIC_RELEASE);
            pthread_join(log->poller, NULL);
        }
        rd_kafka_purge(log->producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(log->producer, 1000);
        rd_kafka_poll(log->producer, 0);
        rd_kafka_destroy(log->producer);
    }
    if (log->mock) rd_kafka_mock_cluster_destroy(log->mock);
    if (log->mock_rk) rd_kafka_destroy(log->mock_rk);
    for (int i = 0; i < MAX_TOPICS; i++)
        free(log->parts[i].topic);
    pthread_mutex_destroy(&log->mu);
    free(log->bootstrap);
    free(log->prefix);
    free(log);
}

static oh_log *kafka_open(const oh_config *cfg, char *err, size_t errlen)
{
    oh_log *log = calloc(1, sizeof *log);
    if (!log) {
        oh_errf(err, errlen, "out of memory");
        return NULL;
    }
    log->base.ops = &oh_log_kafka_ops;
    pthread_mutex_init(&log->mu, NULL);
    const char *prefix = oh_config_str(cfg, "kafka.topic_prefix");
    log->prefix = strdup(prefix ? prefix : "");
    int64_t mock_n = oh_config_int(cfg, "kafka.mock_brokers");
    char es[512];
    if (mock_n > 0) {
        rd_kafka_conf_t *mc = base_conf(NULL, es, sizeof es);
        log->mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, mc, es, sizeof es);
        if (!log->mock_rk || !(log->mock = rd_kafka_mock_cluster_new(log->mock_rk, (int)mock_n))) {
            oh_errf(err, errlen, "kafka.mock_brokers: cannot start the mock cluster: %s",
                    log->mock_rk ? "mock cluster failed" : es);
            goto fail;
        }
        log->bootstrap = strdup(rd_kafka_mock_cluster_bootstraps(log->mock));
        OH_INFO(COMP, "mock Kafka cluster of %d brokers at %s", (int)mock_n, log->bootstrap);
    } else {
        /* present: oh_log_check() ran before */
        log->bootstrap = strdup(oh_config_str(cfg, "kafka.brokers"));
    }
    if (!log->prefix || !log->bootstrap) {
        oh_errf(err, errlen, "out of memory");
        goto fail;
    }
    rd_kafka_conf_t *conf = base_conf(log, es, sizeof es);
    static const char *const pconf[] = {
        "enable.idempotence",
        "true",
        "acks",
        "all",
        "linger.ms",
        "5",
        "partitioner",
        "murmur2_random",
        "queue.buffering.max.messages",
        "1000000",
        /* else our metadata probe makes a broker with auto.create.topics.enable
         * create the topic with its own partition count before we do */
        "allow.auto.create.topics",
        "false",
        NULL,
    };
    if (!conf || conf_set(conf, pconf, es, sizeof es)) {
        if (conf) rd_kafka_conf_destroy(conf);
        oh_errf(err, errlen, "kafka producer: %s", es);
        goto fail;
    }
    char tmo[32];
    snprintf(tmo, sizeof tmo, "%lld", (long long)oh_config_int(cfg, "kafka.message_timeout_ms"));
    if (rd_kafka_conf_set(conf, "message.timeout.ms", tmo, es, sizeof es) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        oh_errf(err, errlen, "kafka.message_timeout_ms: %s", es);
        goto fail;
    }
    snprintf(tmo, sizeof tmo, "%lld", (long long)oh_config_int(cfg, "kafka.message_max_bytes"));
    if (rd_kafka_conf_set(conf, "message.max.bytes", tmo, es, sizeof es) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        oh_errf(err, errlen, "kafka.message_max_bytes: %s", es);
        goto fail;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, k_delivered);
    if (!(log->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, es, sizeof es))) {
        oh_errf(err, errlen, "kafka producer: %s", es);
        goto fail;
    }
    if (ensure_topics(log, cfg, err, errlen)) goto fail;
    if (pthread_create(&log->poller, NULL, poller_main, log)) {
        oh_errf(err, errlen, "cannot start the delivery report thread");
        goto fail;
    }
    log->polling = true;
    return log;
fail:
    kafka_close(log);
    return NULL;
}

static const char *kafka_bootstrap(const oh_log *log)
{
    return log->bootstrap;
}

static int kafka_identity(oh_log *log, char *out, size_t outlen)
{
    char *id = rd_kafka_clusterid(log->producer, 10000);
    if (!id) return OH_EUNAVAIL;
    snprintf(out, outlen, "kafka:%s/%s%s", id, log->prefix, OH_TOPIC_EVENTS);
    rd_kafka_mem_free(log->producer, id);
    return 0;
}

static int kafka_ping(oh_log *log)
{
    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(log->producer, 0, NULL, &md, 2000)) return OH_EUNAVAIL;
    int brokers = md->broker_cnt;
    rd_kafka_metadata_destroy(md);
    return brokers > 0 ? 0 : OH_EUNAVAIL;
}

static int kafka_append(oh_log *log, const char *topic, const char *key,
                        const struct oh_log_meta *meta, const void *value, size_t len,
                        oh_log_done_fn done, void *opaque)
{
    struct kdone *d = malloc(sizeof *d);
    if (!d) return OH_ENOMEM;
    d->done = done;
    d->opaque = opaque;
    char name[256];
    snprintf(name, sizeof name, "%s%s", log->prefix, topic);
    rd_kafka_resp_err_t e;
    char seq[24];
    snprintf(seq, sizeof seq, "%lld", (long long)meta->seq);
    rd_kafka_headers_t *h = rd_kafka_headers_new(7);
    rd_kafka_header_add(h, CT_HEADER, -1, CT_VALUE, -1);
    if (meta->type) rd_kafka_header_add(h, H_TYPE, -1, meta->type, -1);
    if (meta->subject) rd_kafka_header_add(h, H_SUBJECT, -1, meta->subject, -1);
    if (meta->seq) rd_kafka_header_add(h, H_SEQ, -1, seq, -1);
    if (meta->author) rd_kafka_header_add(h, H_AUTHOR, -1, meta->author, -1);
    if (meta->time) rd_kafka_header_add(h, H_TIME, -1, meta->time, -1);
    if (meta->internal) rd_kafka_header_add(h, H_INTERNAL, -1, "true", 4);
    /* A full queue drains as deliveries complete; wait a little for room. */
    for (int tries = 0;; tries++) {
        e = rd_kafka_producev(
            log->producer, RD_KAFKA_V_TOPIC(name), RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
            RD_KAFKA_V_VALUE((void *)value, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(d), RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || tries >= 5000) break;
        usleep(1000);
    }
    if (e) {
        rd_kafka_headers_destroy(h); /* producev owns them only on success */
        free(d);
        OH_WARN(COMP, "append to %s: %s", name, rd_kafka_err2str(e));
        return map_err(e);
    }
    return 0;
}

static int kafka_partitions(oh_log *log, const char *topic)
{
    pthread_mutex_lock(&log->mu);
    int slot = -1;
    for (int i = 0; i < MAX_TOPICS; i++) {
        if (log->parts[i].topic && !strcmp(log->parts[i].topic, topic)) {
            int n = log->parts[i].n;
            pthread_mutex_unlock(&log->mu);
            return n;
        }
        if (!log->parts[i].topic && slot < 0) slot = i;
    }
    pthread_mutex_unlock(&log->mu);
    char *name = full_name(log, topic);
    if (!name) return OH_ENOMEM;
    int n = meta_parts(log->producer, name, META_MS);
    free(name);
    if (n > 0 && slot >= 0) {
        pthread_mutex_lock(&log->mu);
        if (!log->parts[slot].topic && (log->parts[slot].topic = strdup(topic)))
            log->parts[slot].n = n;
        pthread_mutex_unlock(&log->mu);
    }
    return n;
}

/* ---- consumers ---------------------------------------------------------- */

static rd_kafka_topic_partition_list_t *part_list(const oh_log_consumer *c, const int32_t *ids,
                                                  int n, int64_t offset)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n > 0 ? n : 1);
    for (int i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(l, c->ktopic, ids ? ids[i] : i)->offset = offset;
    return l;
}

/* Where an assigned partition starts: the owner's seek, the end for
 * live-only readers, else the group's committed offset (or the start). */
static int64_t start_of(oh_log_consumer *c, int32_t p)
{
    int64_t off = RD_KAFKA_OFFSET_INVALID;
    if (p < c->nparts && c->want[p] != NO_OFFSET) {
        off = c->want[p];
        c->want[p] = NO_OFFSET;
    } else if (c->seek_end_pending) {
        off = RD_KAFKA_OFFSET_END;
    } else if (!c->group) {
        off = RD_KAFKA_OFFSET_BEGINNING;
    }
    return off;
}

/* Eager rebalancing. Runs on the consumer's thread inside oh_log_poll(). */
static void k_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                        rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    oh_log_consumer *c = opaque;
    int n = parts->cnt;
    int32_t *ids = calloc((size_t)(n > 0 ? n : 1), sizeof *ids);
    for (int i = 0; ids && i < n; i++)
        ids[i] = parts->elems[i].partition;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        c->in_rebalance = true;
        if (c->reb.assigned && ids) c->reb.assigned(c->reb.opaque, c, ids, n);
        c->in_rebalance = false;
        for (int i = 0; i < n; i++) {
            int32_t p = parts->elems[i].partition;
            parts->elems[i].offset = start_of(c, p);
            if (p < c->nparts) c->assigned[p] = true, c->at_end[p] = false;
        }
        rd_kafka_assign(rk, parts);
    } else {
        c->revoked = true;
        if (c->reb.revoked && ids && n > 0) c->reb.revoked(c->reb.opaque, c, ids, n);
        for (int i = 0; i < c->nparts; i++)
            c->assigned[i] = c->at_end[i] = false;
        rd_kafka_assign(rk, NULL);
    }
    free(ids);
}

static void kafka_consumer_close(oh_log_consumer *c)
{
    if (!c) return;
    if (c->rk) {
        rd_kafka_consumer_close(c->rk); /* revokes through k_rebalance */
        rd_kafka_destroy(c->rk);
    }
    free(c->topic);
    free(c->ktopic);
    free(c->want);
    free(c->assigned);
    free(c->at_end);
    free(c->buf);
    free(c->offs);
    free(c);
}

/* A consumer handle of GROUP (NULL: a private, never-joined group id). */
static rd_kafka_t *new_consumer(oh_log *log, const char *group, const char *topic, void *opaque,
                                char *err, size_t errlen)
{
    char es[512], anon[96];
    if (!group) {
        static int seq;
        snprintf(anon, sizeof anon, "omnihub-reader-%d-%d", (int)getpid(),
                 __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
        group = anon;
    }
    rd_kafka_conf_t *conf = base_conf(log, es, sizeof es);
    const char *const kv[] = {"group.id",
                              group,
                              "enable.auto.commit",
                              "false",
                              "enable.auto.offset.store",
                              "false",
                              "auto.offset.reset",
                              "earliest",
                              "enable.partition.eof",
                              "true", /* oh_log_caught_up() */
                              "session.timeout.ms",
                              "10000",
                              NULL};
    if (!conf || conf_set(conf, kv, es, sizeof es)) {
        if (conf) rd_kafka_conf_destroy(conf);
        oh_errf(err, errlen, "kafka consumer: %s", es);
        return NULL;
    }
    /* A lag probe reads one record per partition: fetch little. */
    const char *const probe[] = {"max.partition.fetch.bytes", "1024", "queued.min.messages", "1",
                                 NULL};
    if (!opaque && conf_set(conf, probe, es, sizeof es)) {
        rd_kafka_conf_destroy(conf);
        oh_errf(err, errlen, "kafka consumer: %s", es);
        return NULL;
    }
    /* Signals are worth little late: a fetch that finds nothing is asked
     * again soon rather than held up to the default half second (a broker
     * answers a held fetch as data arrives; the mock cluster does not) */
    const char *const quick[] = {"fetch.wait.max.ms", SIGNALS_FETCH_WAIT_MS, NULL};
    if (topic && strcmp(topic, OH_TOPIC_SIGNALS) == 0 && conf_set(conf, quick, es, sizeof es)) {
        rd_kafka_conf_destroy(conf);
        oh_errf(err, errlen, "kafka consumer: %s", es);
        return NULL;
    }
    if (opaque) {
        rd_kafka_conf_set_opaque(conf, opaque);
        rd_kafka_conf_set_rebalance_cb(conf, k_rebalance);
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, es, sizeof es);
    if (!rk) {
        oh_errf(err, errlen, "kafka consumer: %s", es);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

static oh_log_consumer *kafka_consumer_new(oh_log *log, const char *group, const char *topic,
                                           const struct oh_log_rebalance *reb, char *err,
                                           size_t errlen)
{
    oh_log_consumer *c = calloc(1, sizeof *c);
    if (!c) {
        oh_errf(err, errlen, "out of memory");
        return NULL;
    }
    c->base.ops = &oh_log_kafka_ops;
    c->log = log;
    c->group = group != NULL;
    if (reb) c->reb = *reb;
    c->topic = strdup(topic);
    c->ktopic = full_name(log, topic);
    c->nparts = kafka_partitions(log, topic);
    if (c->nparts <= 0) {
        oh_errf(err, errlen, "topic %s%s: %s", log->prefix, topic, oh_strerror(c->nparts));
        goto fail;
    }
    c->want = malloc(sizeof *c->want * (size_t)c->nparts);
    c->assigned = calloc((size_t)c->nparts, sizeof *c->assigned);
    c->at_end = calloc((size_t)c->nparts, sizeof *c->at_end);
    if (!c->topic || !c->ktopic || !c->want || !c->assigned || !c->at_end) {
        oh_errf(err, errlen, "out of memory");
        goto fail;
    }
    for (int i = 0; i < c->nparts; i++)
        c->want[i] = NO_OFFSET;
    if (!(c->rk = new_consumer(log, group, topic, c, err, errlen))) goto fail;
    if (group) {
        rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(sub, c->ktopic, RD_KAFKA_PARTITION_UA);
        rd_kafka_resp_err_t e = rd_kafka_subscribe(c->rk, sub);
        rd_kafka_topic_partition_list_destroy(sub);
        if (e) {
            oh_errf(err, errlen, "subscribe %s: %s", c->ktopic, rd_kafka_err2str(e));
            goto fail;
        }
    }
    return c;
fail:
    kafka_consumer_close(c);
    return NULL;
}

/* Header NAME of H into IN's slot I, when present. */
static void header(rd_kafka_headers_t *h, const char *name, struct oh_log_strs *in, int i)
{
    const void *v = NULL;
    size_t n = 0;
    if (h && rd_kafka_header_get_last(h, name, &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR && v) {
        in->s[i] = v;
        in->len[i] = n;
    }
}

/* Copies M into C's buffer as record R (strings NUL-terminated). */
static int keep(oh_log_consumer *c, const rd_kafka_message_t *m, struct oh_log_record *r,
                size_t *used, int i)
{
    r->topic = c->topic;
    r->partition = m->partition;
    r->offset = m->offset;
    r->timestamp_ms = rd_kafka_message_timestamp(m, NULL);
    struct oh_log_strs in = {{m->key, m->payload ? m->payload : ""}, {m->key_len, m->len}};
    rd_kafka_headers_t *h = NULL;
    if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR) h = NULL;
    header(h, H_TYPE, &in, OH_LOG_TYPE);
    header(h, H_SUBJECT, &in, OH_LOG_SUBJECT);
    header(h, H_AUTHOR, &in, OH_LOG_AUTHOR);
    header(h, H_TIME, &in, OH_LOG_TIME);
    const void *v = NULL;
    size_t n = 0;
    r->meta.internal =
        h && rd_kafka_header_get_last(h, H_INTERNAL, &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR && v &&
        n == 4 && memcmp(v, "true", 4) == 0;
    char seq[24];
    r->meta.seq = 0;
    if (h && rd_kafka_header_get_last(h, H_SEQ, &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR && v &&
        n < sizeof seq) {
        memcpy(seq, v, n);
        seq[n] = '\0';
        r->meta.seq = strtoll(seq, NULL, 10);
    }
    return oh_log_keep(&c->buf, &c->cap, used, c->offs + (size_t)i * OH_LOG_NSTR, &in, r);
}

/* Runs on the consumer's thread; rebalance callbacks run inside it. */
static int kafka_poll(oh_log_consumer *c, struct oh_log_record *recs, int max, int timeout_ms)
{
    if (!c->started) {
        c->started = true;
        if (!c->group) {
            rd_kafka_topic_partition_list_t *l = part_list(c, NULL, c->nparts, 0);
            for (int i = 0; i < c->nparts; i++) {
                l->elems[i].offset = start_of(c, i);
                c->assigned[i] = true;
            }
            rd_kafka_resp_err_t e = rd_kafka_assign(c->rk, l);
            rd_kafka_topic_partition_list_destroy(l);
            if (e) return OH_EIO;
        }
    }
    if (c->noffs < max) {
        size_t *o = realloc(c->offs, sizeof *o * OH_LOG_NSTR * (size_t)max);
        if (!o) return OH_ENOMEM;
        c->offs = o;
        c->noffs = max;
    }
    int64_t deadline = oh_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    size_t used = 0;
    int n = 0, rc = 0;
    while (n < max) {
        int64_t left = n ? 0 : deadline - oh_mono_ms();
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, left > 0 ? (int)left : 0);
        if (c->revoked) {
            /* What this call collected came from partitions the owner no
             * longer holds (eager rebalancing revokes all): the new owner
             * reads it again from the position it stored. */
            c->revoked = false;
            n = 0;
            used = 0;
        }
        if (!m) {
            if (n || left <= 0) break;
            continue;
        }
        if (m->err) {
            if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
                OH_ERROR(COMP, "consumer of %s: %s", c->ktopic, rd_kafka_message_errstr(m));
                rc = OH_EIO;
            } else if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                if (m->partition >= 0 && m->partition < c->nparts && c->assigned[m->partition])
                    c->at_end[m->partition] = true;
            } else {
                OH_WARN(COMP, "consumer of %s: %s", c->ktopic, rd_kafka_message_errstr(m));
            }
        } else {
            rc = keep(c, m, &recs[n], &used, n);
            if (!rc) n++;
        }
        rd_kafka_message_destroy(m);
        if (rc) return rc;
        if (!n && oh_mono_ms() >= deadline) break;
    }
    for (int i = 0; i < n; i++)
        oh_log_resolve(c->buf, c->offs + (size_t)i * OH_LOG_NSTR, &recs[i]);
    return n;
}

static int seek_to(oh_log_consumer *c, int32_t partition, int64_t offset)
{
    if (partition >= c->nparts) return OH_EINVAL;
    c->at_end[partition] = false;
    if (c->in_rebalance || !c->assigned[partition] || !c->started) {
        c->want[partition] = offset; /* applied when assigned */
        return 0;
    }
    rd_kafka_topic_partition_list_t *l = part_list(c, &partition, 1, offset);
    rd_kafka_error_t *e = rd_kafka_seek_partitions(c->rk, l, 5000);
    int rc = 0;
    if (e || l->elems[0].err) {
        OH_WARN(COMP, "seek %s[%d] to %ld: %s", c->ktopic, (int)partition, (long)offset,
                e ? rd_kafka_error_string(e) : rd_kafka_err2str(l->elems[0].err));
        rc = OH_EIO;
    }
    if (e) rd_kafka_error_destroy(e);
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

static int kafka_seek(oh_log_consumer *c, int32_t partition, int64_t offset)
{
    return seek_to(c, partition, offset);
}

/* The end is read now, as offsets: a reader that takes a snapshot next
 * (the router's open conversations from the store) misses nothing published
 * between the two. The logical end librdkafka resolves only when fetching
 * starts, which can be after the snapshot; it stays the fallback when the
 * broker cannot say. */
static int kafka_seek_end(oh_log_consumer *c)
{
    c->seek_end_pending = true;
    int rc = 0;
    for (int32_t p = 0; p < c->nparts; p++) {
        int64_t lo = 0, hi = RD_KAFKA_OFFSET_END;
        rd_kafka_resp_err_t e =
            rd_kafka_query_watermark_offsets(c->rk, c->ktopic, p, &lo, &hi, META_MS);
        if (e) {
            OH_WARN(COMP, "end of %s[%d]: %s; reading from where fetching starts", c->ktopic,
                    (int)p, rd_kafka_err2str(e));
            hi = RD_KAFKA_OFFSET_END;
        }
        if (c->started && c->assigned[p] && !c->in_rebalance) {
            if (seek_to(c, p, hi)) rc = OH_EIO;
        } else {
            c->want[p] = hi; /* applied when assigned */
        }
    }
    return rc;
}

/* Every assigned partition has reported its end (librdkafka's partition
 * EOF event) since it was assigned or sought. */
static bool kafka_caught_up(const oh_log_consumer *c)
{
    int n = 0;
    for (int p = 0; p < c->nparts; p++) {
        if (!c->assigned[p]) continue;
        if (!c->at_end[p]) return false;
        n++;
    }
    return n > 0;
}

static int kafka_commit(oh_log_consumer *c, int32_t partition, int64_t next)
{
    if (!c->group) return OH_EINVAL;
    rd_kafka_topic_partition_list_t *l = part_list(c, &partition, 1, next);
    rd_kafka_resp_err_t e = rd_kafka_commit(c->rk, l, 0);
    if (!e) e = l->elems[0].err;
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        OH_WARN(COMP, "commit %s[%d]=%ld: %s", c->ktopic, (int)partition, (long)next,
                rd_kafka_err2str(e));
        return map_err(e);
    }
    return 0;
}

/* ---- lag ---------------------------------------------------------------- */

/* Timestamps of the records at AT[p] (skipped when < 0) into TS[p], by
 * assigning RK to those offsets; -1 stays where nothing arrives in time. */
static void fetch_ts(rd_kafka_t *rk, const char *ktopic, const int64_t *at, int64_t *ts, int n)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    int want = 0;
    for (int p = 0; p < n; p++) {
        ts[p] = -1;
        if (at[p] >= 0) {
            rd_kafka_topic_partition_list_add(l, ktopic, p)->offset = at[p];
            want++;
        }
    }
    if (want && !rd_kafka_assign(rk, l)) {
        int64_t deadline = oh_mono_ms() + 3000;
        while (want > 0 && oh_mono_ms() < deadline) {
            rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
            if (!m) continue;
            if (!m->err && m->partition < n && ts[m->partition] < 0 &&
                m->offset == at[m->partition]) {
                ts[m->partition] = rd_kafka_message_timestamp(m, NULL);
                want--;
            }
            rd_kafka_message_destroy(m);
        }
        rd_kafka_assign(rk, NULL);
    }
    rd_kafka_topic_partition_list_destroy(l);
}

static int kafka_lag(oh_log *log, const char *group, const char *topic, struct oh_log_lag *out,
                     int max)
{
    int n = kafka_partitions(log, topic);
    if (n <= 0) return n ? n : OH_ENOTFOUND;
    if (n > max) n = max;
    char err[256];
    char *ktopic = full_name(log, topic);
    /* A member of GROUP that never joins: it only reads committed offsets. */
    rd_kafka_t *rk = ktopic ? new_consumer(log, group, NULL, NULL, err, sizeof err) : NULL;
    int64_t *at = calloc((size_t)n * 3, sizeof *at), *ts = at ? at + n : NULL;
    int64_t *low = at ? at + 2 * n : NULL;
    int rc = OH_ENOMEM;
    if (!rk || !at) goto out;
    oh_log_consumer tmp = {.ktopic = ktopic};
    rd_kafka_topic_partition_list_t *l = part_list(&tmp, NULL, n, RD_KAFKA_OFFSET_INVALID);
    rd_kafka_resp_err_t e = rd_kafka_committed(rk, l, META_MS);
    for (int p = 0; !e && p < n; p++) {
        int64_t lo = 0, hi = 0;
        e = rd_kafka_query_watermark_offsets(rk, ktopic, p, &lo, &hi, META_MS);
        int64_t comm = l->elems[p].offset;
        out[p] = (struct oh_log_lag){p, comm >= 0 ? comm : -1, hi, -1, -1};
        at[p] = hi > lo ? hi - 1 : -1;
        low[p] = lo;
    }
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        OH_WARN(COMP, "lag of %s on %s: %s", group, ktopic, rd_kafka_err2str(e));
        rc = OH_EUNAVAIL;
        goto out;
    }
    fetch_ts(rk, ktopic, at, ts, n);
    for (int p = 0; p < n; p++) {
        out[p].end_ts = ts[p];
        /* the oldest record not consumed: at committed, or the partition's
         * first when the group never committed */
        int64_t next = out[p].committed >= 0 ? out[p].committed : low[p];
        at[p] = next < out[p].end ? next : -1;
    }
    fetch_ts(rk, ktopic, at, ts, n);
    for (int p = 0; p < n; p++)
        out[p].oldest_ts = ts[p];
    rc = n;
out:
    if (rk) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    free(at);
    free(ktopic);
    return rc;
}

int oh_log_kafka_mock_broker(oh_log *log, int broker_id, bool up)
{
    if (!log || ((struct oh_log_base *)(void *)log)->ops != &oh_log_kafka_ops || !log->mock)
        return OH_EINVAL;
    rd_kafka_resp_err_t e = up ? rd_kafka_mock_broker_set_up(log->mock, broker_id)
                               : rd_kafka_mock_broker_set_down(log->mock, broker_id);
    return e ? OH_EINVAL : 0;
}

int oh_log_kafka_mock_leader(oh_log *log, const char *topic, int partition, int broker_id)
{
    if (!log || ((struct oh_log_base *)(void *)log)->ops != &oh_log_kafka_ops || !log->mock ||
        !topic || partition < 0 || broker_id < 1)
        return OH_EINVAL;
    return rd_kafka_mock_partition_set_leader(log->mock, topic, partition, broker_id) ? OH_EINVAL
                                                                                      : 0;
}

int oh_log_kafka_mock_rtt(oh_log *log, int broker_id, int rtt_ms)
{
    if (!log || ((struct oh_log_base *)(void *)log)->ops != &oh_log_kafka_ops || !log->mock ||
        broker_id < 1 || rtt_ms < 0)
        return OH_EINVAL;
    return rd_kafka_mock_broker_set_rtt(log->mock, broker_id, rtt_ms) ? OH_EINVAL : 0;
}

const struct oh_log_ops oh_log_kafka_ops = {
    .name = "kafka",
    .open = kafka_open,
    .close = kafka_close,
    .bootstrap = kafka_bootstrap,
    .identity = kafka_identity,
    .ping = kafka_ping,
    .append = kafka_append,
    .consumer_new = kafka_consumer_new,
    .consumer_close = kafka_consumer_close,
    .poll = kafka_poll,
    .seek = kafka_seek,
    .seek_end = kafka_seek_end,
    .caught_up = kafka_caught_up,
    .commit = kafka_commit,
    .lag = kafka_lag,
    .partitions = kafka_partitions,
};
