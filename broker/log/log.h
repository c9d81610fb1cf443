/* log.h - the conversation stream: an append-only, partitioned log with
 * consumer groups. Backends: "local" (SQLite WAL, group commit) and
 * "kafka" (librdkafka). Nothing outside broker/log*.c sees either API. */
#ifndef OH_LOG_H
#define OH_LOG_H

#include "core/oh.h"
#include "core/config.h"

/* Topic names without the prefix; the backend adds kafka.topic_prefix. */
#define OH_TOPIC_EVENTS   "events"
#define OH_TOPIC_TIMELINE "timeline"
/* what gateways tell each other and never store (typing, read receipts,
 * presence; services/signals.c): Kafka only, short retention */
#define OH_TOPIC_SIGNALS "signals"

#define OH_GROUP_SYNC     "omnihub-sync"
#define OH_GROUP_DISPATCH "omnihub-dispatch"
#define OH_GROUP_ENRICH   "omnihub-enrich" /* triage (services/enrich.c) */
#define OH_GROUP_SLA      "omnihub-sla"    /* SLA clocks (services/sla.c) */
#define OH_GROUP_KPI      "omnihub-kpi"

typedef struct oh_log oh_log;
typedef struct oh_log_consumer oh_log_consumer;

/* Called exactly once per append, on the backend's own thread, after the
 * record is durable (err == 0) or has definitely failed (err < 0). Must not
 * block; hand work to another thread. */
typedef void (*oh_log_done_fn)(void *opaque, int err, int32_t partition, int64_t offset);

/* Opens the backend chosen by log.backend. Returns NULL and fills ERR.
 * Caller frees with oh_log_close(). */
oh_log *oh_log_open(const oh_config *cfg, char *err, size_t errlen);

/* The checks of oh_log_open() that need no network and create nothing
 * (the backend's name, its required keys): 0, or OH_EINVAL with ERR. */
int oh_log_check(const oh_config *cfg, char *err, size_t errlen);
/* Flushes pending appends (their callbacks fire) and frees. NULL is fine. */
void oh_log_close(oh_log *log);

/* "local" or "kafka"; the bootstrap list in use (mock cluster too), or the
 * local log file path. Borrowed for the log's lifetime. */
const char *oh_log_backend(const oh_log *log);
const char *oh_log_bootstrap(const oh_log *log);
/* Which log this is, as "backend:id" in OUT: local, a random id created
 * with the log file and kept in it; Kafka, the cluster id and the events
 * topic (librdkafka 2.0 has no topic ids, so a topic deleted and created
 * again in the same cluster keeps its identity: only its offsets going
 * backwards tell). The store keeps it beside its positions (sync.c). */
int oh_log_identity(oh_log *log, char *out, size_t outlen);
/* 0 when the backend answers (Kafka: metadata reachable), else OH_EUNAVAIL. */
int oh_log_ping(oh_log *log);

/* What the timeline's copy of an event adds to its record at most (seq,
 * epoch, the metadata's headers), with room to spare: the hub keeps every
 * event's record that much under the log's limit (oh_hub_record_max). */
#define OH_LOG_TIMELINE_ROOM 40000
/* The smallest kafka.message_max_bytes omnihub starts with (oh_log_check). */
#define OH_LOG_KAFKA_MESSAGE_MIN 100000

/* What consumers route on, carried beside a record's value so that none
 * has to parse a body to decide whether it wants it: Kafka headers ce_type,
 * ce_subject, ce_seq, ce_authorkind, ce_time, ce_internal (CloudEvents
 * binary-mode names, next to the structured-mode value), columns of the
 * local log's records table. Strings NULL when absent (records written
 * before metadata existed), SEQ 0 when not sequenced (the events topic).
 * TIME and INTERNAL are written on the timeline only (sync, with
 * oh_log_meta_of); a record with TIME NULL may lack INTERNAL too. */
struct oh_log_meta {
    const char *type;    /* the event's type, "omnihub.message.outbound" */
    const char *subject; /* its conversation id */
    int64_t seq;         /* its seq on the timeline */
    const char *author;  /* data.author.kind: "agent", "customer", "system" */
    const char *time;    /* the event's time (RFC 3339, as in the body) */
    bool internal;       /* data.internal is true: an agent's private note */
};

/* The timeline metadata of sequenced event EV (borrowed) with SEQ: every
 * field above from EV; the strings are borrowed from EV. */
struct json_t;
struct oh_log_meta oh_log_meta_of(const struct json_t *ev, int64_t seq);
/* The same with TYPE and SUBJECT already known (each NULL: read from EV),
 * e.g. from the record EV was appended as (borrowed too). */
struct oh_log_meta oh_log_meta_known(const struct json_t *ev, int64_t seq, const char *type,
                                     const char *subject);

/* Appends VALUE under KEY (the conversation id; it picks the partition).
 * Copies KEY and VALUE; thread-safe; DONE is called as described above.
 * Returns 0 if queued; on a negative return DONE is not called. */
int oh_log_append(oh_log *log, const char *topic, const char *key, const void *value, size_t len,
                  oh_log_done_fn done, void *opaque);
/* The same with META (copied; NULL: none) beside the value. */
int oh_log_append_meta(oh_log *log, const char *topic, const char *key,
                       const struct oh_log_meta *meta, const void *value, size_t len,
                       oh_log_done_fn done, void *opaque);

/* One record as delivered by oh_log_poll(). Pointers are borrowed until the
 * next poll on the same consumer. */
struct oh_log_record {
    const char *topic; /* without prefix */
    int32_t partition;
    int64_t offset;
    int64_t timestamp_ms;
    const char *key;
    size_t key_len;
    const char *value;
    size_t len;
    struct oh_log_meta meta; /* borrowed like the value */
};

/* Partition assignment notifications (on the consumer's polling thread,
 * from inside oh_log_poll). On ASSIGNED the owner may oh_log_seek() each
 * partition to the position it stored itself; otherwise consumption starts
 * at the group's committed offset, or the beginning. On REVOKED the owner
 * must finish and persist what it consumed from those partitions before
 * returning. */
struct oh_log_rebalance {
    void (*assigned)(void *opaque, oh_log_consumer *c, const int32_t *parts, int n);
    void (*revoked)(void *opaque, oh_log_consumer *c, const int32_t *parts, int n);
    void *opaque;
};

/* A member of consumer GROUP on TOPIC. REB may be NULL. GROUP NULL: no
 * group, read every partition from the start (or seek). Use from one thread.
 * Caller frees with oh_log_consumer_close(). */
oh_log_consumer *oh_log_consumer_new(oh_log *log, const char *group, const char *topic,
                                     const struct oh_log_rebalance *reb, char *err, size_t errlen);
void oh_log_consumer_close(oh_log_consumer *c);

/* Fills up to MAX records, waiting up to TIMEOUT_MS for the first one.
 * Returns the count (0 on timeout) or a negative OH_E* code. */
int oh_log_poll(oh_log_consumer *c, struct oh_log_record *recs, int max, int timeout_ms);
/* Next poll of PARTITION starts at OFFSET. */
int oh_log_seek(oh_log_consumer *c, int32_t partition, int64_t offset);
/* Seeks every assigned partition to its end (live-only readers). */
int oh_log_seek_end(oh_log_consumer *c);
/* Whether C has read every partition assigned to it to its end at least once
 * since it was assigned (or sought): a poll that finds nothing while this is
 * false may only be waiting for its first fetch (Kafka, after joining its
 * group), not idle. Local log: a poll since the last seek found nothing. */
bool oh_log_caught_up(const oh_log_consumer *c);
/* Records the group's committed position: NEXT is the next offset to read. */
int oh_log_commit(oh_log_consumer *c, int32_t partition, int64_t next);

/* Lag information for one partition of TOPIC as seen by GROUP. */
struct oh_log_lag {
    int32_t partition;
    int64_t committed; /* next offset the group will read; -1 none */
    int64_t end;       /* log-end offset (next offset to be written) */
    int64_t oldest_ts; /* timestamp of the oldest record not consumed (the one at
                        * committed, or the first one when the group never
                        * committed), ms; -1 none */
    int64_t end_ts;    /* timestamp of the last record, ms; -1 none */
};
/* Fills up to MAX entries; returns the count or a negative code. Works from
 * another process (omnihubctl lag) as well as inside the daemon. */
int oh_log_lag(oh_log *log, const char *group, const char *topic, struct oh_log_lag *out, int max);

/* Number of partitions of TOPIC (local: always 1). */
int oh_log_partitions(oh_log *log, const char *topic);

/* Tests: takes mock broker BROKER_ID (1..N) of kafka.mock_brokers down or
 * back up. OH_EINVAL when LOG is not running a mock cluster. */
int oh_log_kafka_mock_broker(oh_log *log, int broker_id, bool up);

/* Tests: makes mock broker BROKER_ID the leader of PARTITION of TOPIC (the
 * name on the brokers, kafka.topic_prefix included).
 * OH_EINVAL when LOG is not running a mock cluster or the partition or
 * broker is unknown (the mock creates a topic it does not know). */
int oh_log_kafka_mock_leader(oh_log *log, const char *topic, int partition, int broker_id);

/* Tests: delays every answer of mock broker BROKER_ID by RTT_MS (0: none),
 * so a client waits on the broker as on a far or slow one. OH_EINVAL when
 * LOG is not running a mock cluster or RTT_MS is negative. */
int oh_log_kafka_mock_rtt(oh_log *log, int broker_id, int rtt_ms);

/* The keys of this part, for oh_config_load(). */
extern const struct oh_config_key oh_log_keys[];

#endif
