/* store.h - the materialized history: sequenced events per conversation, the
 * conversation directory, message references, read cursors, consumer
 * positions and a small key/value space for connectors. Backends: "sqlite"
 * (embedded) and "postgres" (libpq). All functions are thread-safe and may
 * block: never call them from the HTTP service thread. */
#ifndef OH_STORE_H
#define OH_STORE_H

#include <jansson.h>
#include "core/oh.h"
#include "core/config.h"
#include "core/event.h"
#include "core/contacts.h"

typedef struct oh_store oh_store;

/* Opens the backend chosen by store.backend, creating or migrating its
 * schema; a new store gets a fresh random epoch. Returns NULL and fills
 * ERR. Caller frees with oh_store_close(). */
oh_store *oh_store_open(const oh_config *cfg, char *err, size_t errlen);

/* The checks of oh_store_open() that need no network and create nothing
 * (the backend's name, required keys, DSN syntax): 0, or OH_EINVAL with
 * ERR. */
int oh_store_check(const oh_config *cfg, char *err, size_t errlen);
void oh_store_close(oh_store *st);

const char *oh_store_backend(const oh_store *st); /* "sqlite" | "postgres" */
const char *oh_store_epoch(const oh_store *st);   /* borrowed, stable */
int oh_store_ping(oh_store *st);                  /* 0 when the backend answers */

/* ---- materialization (the sync service) ---- */

/* One event to materialize, or a command's outcome, or both. */
struct oh_store_item {
    json_t *event;         /* in: borrowed normalized event, or NULL for an item that
                              only records an outcome; out: "seq" and "epoch"
                              attributes added when it was stored */
    int32_t src_partition; /* in: where it was read from the events topic */
    int64_t src_offset;
    int64_t seq;    /* out: assigned seq, 0 when dropped as a duplicate */
    bool want_text; /* in: hand back the stored text in JSON/LEN */
    /* in, optional: EVENT's compact text exactly as oh_json_dump gives it,
     * without seq and epoch (the log record it was handed over with, when
     * nothing changed it since): the stored text is this with seq and
     * epoch appended, not a second dump. Borrowed for the call. */
    const char *raw;
    size_t raw_len;
    char *json;     /* out: when WANT_TEXT and the backend has it at hand, the
                       stored text of the sequenced event (what json_dumps of
                       EVENT, compact, writes), else NULL; the caller frees it */
    size_t len;
    /* in: the outcome of a state command (core/convstate.h) to record in
     * command_results in the same transaction, keyed by the command's id;
     * the first outcome recorded for an id stays (a repeated command is
     * answered as the first time). OUTCOME_ID NULL: none. Borrowed. */
    const char *outcome_id;
    const char *outcome_conv; /* the command's conversation (the PostgreSQL shard) */
    int outcome_code;         /* HTTP status: 200, 400, 404, 409, 412 */
    const char *outcome_body; /* JSON text: the new state (200) or the error object */
};

/* A consumer position to store in the same transaction. */
struct oh_store_pos {
    const char *topic;
    int32_t partition;
    int64_t next; /* next offset to consume */
};

/* In ONE transaction, for each item in order: drop it when an event with
 * the same id is already stored (seq = 0); otherwise give it the
 * conversation's next seq, insert it into the history, create or update the
 * conversation directory entry (channel, account, contact, updated_at, and
 * last_inbound_at for inbound messages), record the reference
 * (channel, account, data.message_id) -> (conversation, message_id) and,
 * for a status event carrying status.provider_message_id, also
 * (channel, account, provider_message_id) -> (conversation,
 * status.message_id); for status events keep the message's shown state,
 * which never moves backwards (sent < failed < delivered < read); for an
 * omnihub.conversation.updated, project its data.state into the
 * conversation's state columns (status, assignee, team, priority, labels,
 * snoozed_until_ms, episode; state_seq = its seq). Record each item's
 * outcome (above). Then store POS for GROUP. Either everything is committed or nothing is.
 * A duplicate that was stored from the very same source record (same
 * src_partition and src_offset: a retry after a commit whose answer was
 * lost, or a replay after a crash between shard commits) gets its stored
 * seq and "seq"/"epoch" back instead of 0, so the caller forwards it again. */
int oh_store_materialize(oh_store *st, const char *group, struct oh_store_item *items, size_t n,
                         const struct oh_store_pos *pos, size_t npos);

/* Writes of the contact directory and contact_refs (as
 * oh_store_contact_write), handed to an oh_store_then. */
typedef int (*oh_store_contact_write_fn)(void *wctx, const char *const *keys,
                                         const char *const *values, size_t n,
                                         const struct oh_contact_seen *seen,
                                         const char *const *convs, const char *const *contacts,
                                         size_t k);
/* What follows a materialization (sync: linking the new conversations):
 * FN with the items, their seqs known, and WRITE/WCTX for its writes.
 * SQLite: inside the batch's transaction, before the commit (one commit
 * for both; FN failing rolls the batch back). PostgreSQL: after the
 * commit (WRITE is oh_store_contact_write; FN failing fails the call, and
 * the retried batch gets its seqs back). */
struct oh_store_then {
    int (*fn)(void *opaque, const struct oh_store_item *items, size_t n,
              oh_store_contact_write_fn write, void *wctx);
    void *opaque;
};
/* oh_store_materialize, then THEN (NULL: nothing). */
int oh_store_materialize_then(oh_store *st, const char *group, struct oh_store_item *items,
                              size_t n, const struct oh_store_pos *pos, size_t npos,
                              const struct oh_store_then *then);

/* The stored position of GROUP on TOPIC/PARTITION: NEXT is the next offset
 * to consume (0 when none), PUBLISHED the offset up to which (exclusive)
 * the materialized events were forwarded to the timeline. */
int oh_store_position_get(oh_store *st, const char *group, const char *topic, int32_t partition,
                          int64_t *next, int64_t *published);
int oh_store_position_published(oh_store *st, const char *group, const char *topic,
                                int32_t partition, int64_t published);

/* Calls FN for each history row whose source is PARTITION with offset >=
 * FROM, in source order (republishing after a crash). */
typedef int (*oh_store_row_fn)(void *opaque, const char *conversation_id, int64_t seq,
                               const char *json, size_t len);
int oh_store_since_source(oh_store *st, int32_t partition, int64_t from, oh_store_row_fn fn,
                          void *opaque);

/* ---- reads ---- */

/* Calls FN with each event of CONV with seq > AFTER, ascending, at most
 * LIMIT rows; FN returning non-zero stops the walk. JSON is borrowed for the
 * call. OH_ENOTFOUND when the conversation does not exist. */
int oh_store_history(oh_store *st, const char *conv, int64_t after, int limit, oh_store_row_fn fn,
                     void *opaque);

/* Calls FN once with the stored event EVENT_ID of CONV (its seq and text,
 * borrowed for the call; FN NULL: only whether it is stored). OH_ENOTFOUND
 * when CONV holds no such event. Reads the primary: callers decide on it
 * (idempotency of a client's send). */
int oh_store_event_get(oh_store *st, const char *conv, const char *event_id, oh_store_row_fn fn,
                       void *opaque);
/* Every stored event carries a checksum (CRC-32C), checked by
 * oh_store_history and oh_store_since_source before a row is handed out:
 * history fails with OH_EDAMAGED at a damaged event (the page is never
 * served with it); since_source passes over it. Either way the event is
 * logged (ERROR, conversation and seq) and counted in
 * omnihub_store_damaged_events_total. */

/* What oh_store_verify found. */
struct oh_store_verify {
    int64_t checked;
    int64_t damaged;    /* each also logged and counted as above */
    int64_t unverified; /* stored before checksums existed */
};
/* Checks the checksum of every stored event (store.verify_on_start). V is
 * zeroed first. Returns 0 once the whole history was read. */
int oh_store_verify(oh_store *st, struct oh_store_verify *v);

struct oh_conversation {
    char id[OH_ID_MAX];
    char channel[64];
    char account[256];
    char contact_id[256]; /* the channel's id of the customer */
    char contact_name[256];
    char contact_ref[OH_ID_MAX]; /* the contact (core/contacts.h) it belongs to, "" none */
    int64_t head; /* highest seq */
    int64_t created_ms;
    int64_t updated_ms;      /* time of the last materialized event */
    int64_t last_inbound_ms; /* time of the last inbound message, 0 none */
    /* the desk's state, as the latest omnihub.conversation.updated left it */
    char status[16];          /* bot | open | pending | snoozed | resolved */
    char assignee[256];       /* agent id, "" none */
    char team[128];           /* team id, "" none */
    char priority[8];         /* urgent | high | normal | low */
    char labels[2304];        /* JSON array of strings, sorted (<= 32 x 64 bytes) */
    int64_t snoozed_until_ms; /* 0 none */
    int64_t episode;          /* 1, then +1 each time a resolved conversation re-opens */
    int64_t state_seq;        /* seq of the latest conversation.updated, 0 none */
    /* the last message (inbound or outbound), for previews */
    int64_t last_seq;
    char last_direction[9]; /* inbound | outbound | "" */
    char last_kind[16];
    char last_text[804]; /* at most 200 characters of UTF-8 */
    int64_t last_ms;
    int64_t rev; /* store-wide change number of the row's last change (per shard) */
};

/* OH_ENOTFOUND when absent. */
int oh_store_conversation_get(oh_store *st, const char *conv, struct oh_conversation *out);

/* FN once for each agent who holds open conversations, with how many (the
 * desk's load of an agent: GET /v1/agents). A sharded store calls FN once
 * per shard holding some: the caller sums. A non-zero return of FN stops
 * the scan and is returned. */
typedef int (*oh_store_assignee_fn)(void *opaque, const char *agent, int64_t open);
int oh_store_open_assignees(oh_store *st, oh_store_assignee_fn fn, void *opaque);

/* Conversations updated after UPDATED_AFTER_MS (exclusive), most recently
 * updated first, at most LIMIT. */
typedef int (*oh_store_conv_fn)(void *opaque, const struct oh_conversation *c);
int oh_store_conversations(oh_store *st, int64_t updated_after_ms, int limit, oh_store_conv_fn fn,
                           void *opaque);

/* Calls FN for each conversation whose status is snoozed and whose
 * snoozed_until_ms <= NOW_MS, at most LIMIT, earliest first. */
int oh_store_snoozed_due(oh_store *st, int64_t now_ms, int limit, oh_store_conv_fn fn,
                         void *opaque);

/* The recorded outcome of state command ID of CONV: its HTTP status in
 * *CODE and its body (JSON text) copied into BODY (truncated to LEN).
 * OH_ENOTFOUND while sync has not decided it. Reads the primary. */
int oh_store_command_result(oh_store *st, const char *conv, const char *id, int *code, char *body,
                            size_t len);

/* ---- the inbox (CONTRACT part 2, the list and "*" resumption) ---- */

/* What oh_store_list selects. Strings NULL = any; ASSIGNEE and TEAM ""
 * select the conversations without one. All borrowed for the call. */
struct oh_store_filter {
    const char *status, *assignee, *team, *priority, *label, *channel, *contact_id;
    const char *contact_ref;  /* the contact (conversations.contact_ref) */
    const char *q;            /* full text: every word in a message text or subject */
    int64_t updated_after_ms; /* 0 any */
    /* keyset: only conversations after (before_created_ms, before_id) in
     * the list's order; BEFORE_ID NULL = from the start */
    int64_t before_created_ms;
    const char *before_id;
    /* whose read cursors give READ_SEQ (the reader's role and sub); NULL
     * none (READ_SEQ 0) */
    const char *reader_role, *reader;
    int limit; /* rows, >= 1 */
};
/* Called with each conversation and the reader's highest read cursor in
 * it (any device); non-zero stops the walk. C is borrowed for the call. */
typedef int (*oh_store_list_fn)(void *opaque, const struct oh_conversation *c, int64_t read_seq);
/* The conversations F selects, newest created first: by created_ms
 * descending, then id descending (an order no change of a conversation
 * moves, so keyset paging on it returns each conversation once). With
 * several PostgreSQL shards, their pages are merged in the same order. */
int oh_store_list(oh_store *st, const struct oh_store_filter *f, oh_store_list_fn fn, void *opaque);

/* Conversations changed after the store position AFTER (a string this
 * function handed out as NEXT; "" = now: nothing is returned; "r0" = the
 * beginning), in change
 * order, at most LIMIT per call; NEXT (>= OH_STORE_POS_MAX bytes) gets the
 * position after the last one returned (AFTER itself when none). Call
 * again with NEXT until fewer than LIMIT come. A change committed later
 * always lies after NEXT. OH_EINVAL when AFTER is not a position of this
 * store. */
#define OH_STORE_POS_MAX 512
int oh_store_changes(oh_store *st, const char *after, int limit, oh_store_conv_fn fn, void *opaque,
                     char *next);

/* ---- message references ---- */

struct oh_store_ref {
    char conversation_id[OH_ID_MAX];
    char message_id[512];
};
/* OH_ENOTFOUND when REF (a channel's message id) is unknown. */
int oh_store_ref_get(oh_store *st, const char *channel, const char *account, const char *ref,
                     struct oh_store_ref *out);
/* Records REF outside materialization (e.g. the ids of messages a connector sent itself). */
int oh_store_ref_put(oh_store *st, const char *channel, const char *account, const char *ref,
                     const char *conv, const char *message_id);
/* The shown delivery state of MESSAGE_ID ("sent", "delivered", ...);
 * OH_ENOTFOUND when no status was recorded. OUT >= 16 bytes. */
int oh_store_message_state(oh_store *st, const char *conv, const char *message_id, char out[16]);

/* ---- read cursors ---- */

/* A user is ROLE ("agent", "customer") and USER (the token's sub): an
 * agent and a customer may share a sub. */
/* Stores DEVICE's read cursor of the user in CONV (never moves backwards). */
int oh_store_cursor_set(oh_store *st, const char *conv, const char *role, const char *user,
                        const char *device, int64_t seq);
typedef int (*oh_store_cursor_fn)(void *opaque, const char *device, int64_t seq);
/* Calls FN for each device's cursor of the user, by device; cursors stored
 * before roles were (role '') count for either role. */
int oh_store_cursors(oh_store *st, const char *conv, const char *role, const char *user,
                     oh_store_cursor_fn fn, void *opaque);

/* ---- connector key/value space ---- */

/* NS is the connector's name. VALUE up to 64 KiB. Get copies into OUT
 * (NUL-terminated, OH_ETOOBIG if it does not fit; OH_ENOTFOUND). */
int oh_store_kv_put(oh_store *st, const char *ns, const char *key, const char *value);
int oh_store_kv_get(oh_store *st, const char *ns, const char *key, char *out, size_t outlen);
int oh_store_kv_del(oh_store *st, const char *ns, const char *key);
/* Writes VALUE at KEY of NS only if KEY holds EXPECTED now (NULL: only if
 * KEY is absent), else OH_ERETRY and nothing written: a read-modify-write
 * that several processes may run on one key (read, decide, swap; on
 * OH_ERETRY read again). */
int oh_store_kv_swap(oh_store *st, const char *ns, const char *key, const char *expected,
                     const char *value);
/* The N writes of KEYS (VALUES[i] NULL: delete) in NS in one transaction. */
int oh_store_kv_write(oh_store *st, const char *ns, const char *const *keys,
                      const char *const *values, size_t n);
/* Reads the N KEYS of NS at once (SQLite: one read transaction; PostgreSQL:
 * one statement): FN(CTX, i, value) for each KEYS[i] present. */
int oh_store_kv_get_many(oh_store *st, const char *ns, const char *const *keys, size_t n,
                         void (*fn)(void *ctx, size_t i, const char *value), void *ctx);
typedef int (*oh_store_kv_fn)(void *opaque, const char *key, const char *value);
int oh_store_kv_scan(oh_store *st, const char *ns, oh_store_kv_fn fn, void *opaque);

/* ---- contacts (CONTRACT part 2; core/contacts.h) ---- */

/* The kv namespace the contact directory lives in (shard 0 on PostgreSQL). */
#define OH_STORE_CONTACTS_NS "omnihub.contacts"

/* The contact directory over this store's kv space (OUT borrows ST). */
void oh_store_contact_dir(oh_store *st, struct oh_contact_dir *out);

/* Points each conversation CONVS[i] at contact CONTACTS[i] (its
 * contact_ref, which the list's contact_id filter and the conversation
 * object use); unknown conversations are passed over. SQLite: one
 * transaction; PostgreSQL: one statement per conversation (their shards). */
int oh_store_contact_refs(oh_store *st, const char *const *convs, const char *const *contacts,
                          size_t n);
/* Gives each of the N conversations CONVS the store's next change number
 * (its rev), so an inbox resuming from an earlier cursor is told of them
 * again: after a merge or an unmerge re-pointed their contact_ref (unknown
 * conversations are passed over). SQLite: one transaction; PostgreSQL: one
 * statement per conversation, on its shard, as an erasure's last step. */
int oh_store_conversations_touch(oh_store *st, const char *const *convs, size_t n);
/* The directory's N writes (KEYS, VALUES[i] NULL: delete, in
 * OH_STORE_CONTACTS_NS) and then the K contact_refs as above, the writes
 * checked against SEEN (core/contacts.h; NULL: unchecked). SQLite: one
 * transaction for both, unchecked (the process's sync thread is the
 * directory's only writer). PostgreSQL, where several sync members write
 * one directory: one transaction on shard 0 takes transaction advisory
 * locks on the keys of SEEN and of the writes (in one order), locks SEEN's rows
 * and compares them with SEEN; when one differs nothing is written and the
 * answer is OH_ERETRY; else the writes, the refs (one statement per
 * conversation, on its shard, while the locks are held) and the commit (a
 * crash after the refs links again on the replay, to the same contacts). */
int oh_store_contact_write(oh_store *st, const char *const *keys, const char *const *values,
                           size_t n, const struct oh_contact_seen *seen, const char *const *convs,
                           const char *const *contacts, size_t k);

/* Called with each message or status event of a conversation being
 * erased, before its text is gone (borrowed): to drop its media from caches. */
typedef void (*oh_store_erase_fn)(void *opaque, const json_t *event);
/* Erasure of a person's content from the N conversations CONVS: in each,
 * the stored event of every inbound and outbound message and of every
 * status (a status names the contact too) becomes a tombstone of type
 * OH_EV_ERASED (same id, seq and time, no text, no contact, no
 * attachments; checksummed like any event) so seq stays dense, its
 * full-text entry is dropped, and the conversation's contact id, name and
 * preview are cleared. SQLite: one transaction for all of them, whose
 * full-text index is merged once (the terms of deleted rows gone from its
 * older segments too), then its WAL checkpointed (secure_delete zeroes
 * freed content). PostgreSQL: one transaction per conversation, which
 * locks the conversation's row first (a batch of it being stored meanwhile
 * is erased whole or kept whole, as on SQLite); the old row versions are
 * left to VACUUM (docs/operations.md). *COUNT gets the number of events
 * erased (also when it fails part way on PostgreSQL). */
int oh_store_erase(oh_store *st, const char *const *convs, size_t n, oh_store_erase_fn fn,
                   void *opaque, int64_t *count);

/* ---- knowledge-base articles (CONTRACT part 2) ---- */

/* One stored article; strings borrowed for the callback. */
struct oh_store_article {
    const char *id, *title, *body;
    const char *locale; /* BCP 47 */
    const char *tags;   /* JSON array of strings */
    int64_t version;    /* 1, 2, ...: one more each put */
    int64_t updated_ms;
};
typedef int (*oh_store_article_fn)(void *opaque, const struct oh_store_article *a);
/* Creates article A->id (version 1) or replaces it (version + 1); A's
 * version is ignored, *VERSION receives the stored one. */
int oh_store_article_put(oh_store *st, const struct oh_store_article *a, int64_t *version);
/* Calls FN once with article ID; OH_ENOTFOUND when there is none. */
int oh_store_article_get(oh_store *st, const char *id, oh_store_article_fn fn, void *opaque);
/* OH_ENOTFOUND when there was no article ID. */
int oh_store_article_del(oh_store *st, const char *id);
/* Calls FN with every article, by id; FN returning non-zero stops. */
int oh_store_articles(oh_store *st, oh_store_article_fn fn, void *opaque);
/* ---- KPIs (the kpi service; CONTRACT part 2, SLA and KPIs) ---- */

/* One finished episode of a conversation: from the inbound message that
 * opened it (or its first event) to resolved. Times in ms; -1 = none. */
struct oh_store_episode {
    char conversation_id[OH_ID_MAX];
    int64_t episode;
    char channel[64];
    char agent[128]; /* the assignee when resolved, else the last one; "" none */
    char team[128];  /* "" none */
    int64_t start_ms, resolved_ms;
    int64_t frt_ms;     /* first inbound -> first agent message; -1 none */
    int64_t bot_frt_ms; /* first inbound -> first bot message; -1 none */
    int64_t nrt_sum_ms, nrt_count;
    int64_t aht_ms;      /* time open and assigned; -1 never assigned while open */
    int64_t reopened_ms; /* start of the next episode; -1 not (yet) */
    bool breached;       /* an sla_breach:* conversation.updated happened */
    bool bot_involved;   /* a message authored {kind: bot} */
    bool agent_replied;  /* a message authored {kind: agent} */
};

/* In ONE transaction: inserts or replaces each episode (keyed by
 * conversation and episode: a replay writes the same rows again, never
 * twice) and stores POS for GROUP. All or nothing. */
int oh_store_kpi_put(oh_store *st, const char *group, const struct oh_store_episode *eps, size_t n,
                     const struct oh_store_pos *pos, size_t npos);

/* A report's selection. GROUP_BY: "agent", "team", "channel" or "none". */
struct oh_store_kpi_query {
    int64_t from_ms, to_ms; /* episodes resolved in [from, to) */
    const char *group_by;
    const char *agent;        /* NULL: every episode; else only this agent's */
    int64_t reopen_window_ms; /* bot_resolved: not reopened within this */
};

/* One row: sums and counts (the caller divides), exact percentiles. */
struct oh_store_kpi_row {
    char key[256];
    bool key_null; /* the episodes without an agent (team) */
    int64_t episodes;
    int64_t frt_n, frt_sum_ms, frt_p50_ms, frt_p90_ms; /* nearest rank; -1 when FRT_N 0 */
    int64_t nrt_n, nrt_sum_ms;
    int64_t aht_n, aht_sum_ms;
    int64_t resolution_sum_ms;
    int64_t sla_met, bot_involved, bot_resolved;
};
typedef int (*oh_store_kpi_fn)(void *opaque, const struct oh_store_kpi_row *row);
/* Calls FN with each group's row, by key (NULL key first). */
int oh_store_kpi_report(oh_store *st, const struct oh_store_kpi_query *q, oh_store_kpi_fn fn,
                        void *opaque);

/* ---- shards (PostgreSQL; SQLite answers OH_EINVAL with ERR) ---- */

/* Adds the PostgreSQL database at DSN as shard NAME ([a-z0-9_-]{1,31}):
 * applies the migrations to it, marks it as NAME and records it on shard 0,
 * where every process reads the shard list; new conversations are placed on
 * it a few seconds later, existing ones stay where they are. Again with the
 * same NAME and DSN: nothing to do, 0. ERR may not quote the DSN. */
int oh_store_shard_add(oh_store *st, const char *name, const char *dsn, char *err, size_t errlen);

struct oh_store_shard {
    const char *name; /* borrowed for the call */
    int index;        /* its place in the shard order (the changes feed's positions) */
    int ring;         /* its ring position, -1 for an added shard */
    bool placing;     /* takes new conversations */
};
typedef int (*oh_store_shard_fn)(void *opaque, const struct oh_store_shard *sh);
/* FN with each shard in order (the list read afresh). */
int oh_store_shards(oh_store *st, oh_store_shard_fn fn, void *opaque);

/* The keys of this part, for oh_config_load(). */
extern const struct oh_config_key oh_store_keys[];

#endif
