/* store_pg.c - the PostgreSQL store: conversations live on one of several
 * shards (store_pg_shards.c says which), each batch is materialized by one
 * statement per shard. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/json_dump.h"
#include "core/crypto.h"
#include "store/store_pg_int.h"

/* The columns a new conversation is created with; CONV_COLS are all that
 * are read back. */
#define CONV_NEW_COLS                                                                              \
    "id, channel, account, contact_id, contact_name, head, created_ms, updated_ms, "               \
    "last_inbound_ms"
#define CONV_COLS                                                                                  \
    CONV_NEW_COLS ", status, assignee, team, priority, labels, snoozed_until_ms, episode, "        \
                  "state_seq, last_seq, last_direction, last_kind, last_text, last_ms, rev, contact_ref"

#define STATE_COLS "status, assignee, team, priority, labels, snoozed_until_ms, episode, state_seq"
/* a state column keeps its value unless the batch holds a conversation.updated */
#define STATE_SET(col)                                                                             \
    " " col " = CASE WHEN EXCLUDED.state_seq > 0 THEN EXCLUDED." col " ELSE c." col " END"

/* One statement, hence one transaction, per shard and batch: $1 the items
 * (a JSON array built by pg_materialize), $2 the group, $3 the positions,
 * $4 the epoch, $5 the broker's clock (created/updated times; the event's
 * own time only goes to last_inbound_ms). Duplicates (already stored, or
 * earlier in the batch) get seq 0, or their stored seq when stored from the
 * same source record (the final join sees the history as it was before the
 * statement). The conversation row is locked by the upsert that advances
 * its head, so seqs stay dense under concurrent writers. The stored text is
 * the client's compact serialization with "seq" and "epoch" appended, byte
 * for byte what the client gets by setting them on its json_t. */
/* one statement is one transaction: longer than the 4095 characters C99
 * promises, which GCC and Clang both take */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverlength-strings"
static const char pg_materialize_sql[] =
    "WITH raw AS ("
    " SELECT * FROM json_to_recordset($1::json) AS x(ord int, eid text, conv text, typ text,"
    " part int, off bigint, ts bigint, ch text, acct text, cid text, cname text, mid text,"
    " pmid text, smid text, state text, rank int, inb boolean, j text, crc bigint,"
    " hs boolean, sst text, sas text, stm text, spr text, slb text, ssn bigint, sep bigint,"
    " dir text, kind text, ltxt text, ftxt text)),"
    " fresh AS (SELECT DISTINCT ON (eid) * FROM raw WHERE NOT EXISTS"
    " (SELECT 1 FROM history h WHERE h.event_id = raw.eid) ORDER BY eid, ord),"
    /* RN counts from the batch's last row of the conversation backwards
     * (the last message, DIR set, has the smallest: its seq is the new head
     * - (RN - 1)); RNA forwards (the latest conversation.updated, HS, has
     * the largest: its seq is the old head + RNA) */
    " fr AS (SELECT f.*, row_number() OVER (PARTITION BY conv ORDER BY ord DESC) AS rn,"
    " row_number() OVER (PARTITION BY conv ORDER BY ord) AS rna FROM fresh f),"
    /* the state of the conversation.updated latest in the batch; the upsert
     * below projects it, as a second UPDATE of the same row in this
     * statement would be ignored */
    " agg AS (SELECT conv, count(*) AS n, coalesce(max(rna) FILTER (WHERE hs), 0) AS spos,"
    " (array_agg(sst ORDER BY ord DESC) FILTER (WHERE hs))[1] AS sst,"
    " (array_agg(sas ORDER BY ord DESC) FILTER (WHERE hs))[1] AS sas,"
    " (array_agg(stm ORDER BY ord DESC) FILTER (WHERE hs))[1] AS stm,"
    " (array_agg(spr ORDER BY ord DESC) FILTER (WHERE hs))[1] AS spr,"
    " (array_agg(slb ORDER BY ord DESC) FILTER (WHERE hs))[1] AS slb,"
    " (array_agg(ssn ORDER BY ord DESC) FILTER (WHERE hs))[1] AS ssn,"
    " (array_agg(sep ORDER BY ord DESC) FILTER (WHERE hs))[1] AS sep,"
    " coalesce(max(ts) FILTER (WHERE inb), 0) AS last_in,"
    " (array_agg(ch ORDER BY ord))[1] AS ch, (array_agg(acct ORDER BY ord))[1] AS acct,"
    " (array_agg(cid ORDER BY ord))[1] AS cid,"
    " coalesce((array_agg(cname ORDER BY ord DESC) FILTER (WHERE cname <> ''))[1], '') AS cname,"
    " min(rn) FILTER (WHERE dir <> '') AS lrn"
    " FROM fr GROUP BY conv),"
    /* the shard's change numbers: a block of one per conversation; the
     * counter row stays locked until the commit, so rev order is commit
     * order (a reader that sees a rev sees every smaller one) */
    " ctr AS (UPDATE revs SET rev = rev + (SELECT count(*) FROM agg)"
    " WHERE id = 1 AND EXISTS (SELECT 1 FROM agg) RETURNING rev),"
    " lastm AS (SELECT a.*, coalesce(l.dir, '') AS ldir, coalesce(l.kind, '') AS lkind,"
    " coalesce(l.ltxt, '') AS ltxt, coalesce(l.ts, 0) AS lts,"
    " CASE WHEN a.lrn IS NULL THEN 0 ELSE a.n - a.lrn + 1 END AS lseq,"
    " row_number() OVER (ORDER BY a.conv) AS k"
    " FROM agg a LEFT JOIN fr l ON l.conv = a.conv AND l.rn = a.lrn),"
    " conv AS (INSERT INTO conversations AS c (" CONV_NEW_COLS ", " STATE_COLS ", last_seq,"
    " last_direction, last_kind, last_text, last_ms, rev)"
    " SELECT conv, ch, acct, cid, cname, n, $5::bigint, $5::bigint, last_in,"
    " coalesce(sst, 'open'), coalesce(sas, ''), coalesce(stm, ''), coalesce(spr, 'normal'),"
    " coalesce(slb, '[]')::jsonb, coalesce(ssn, 0), coalesce(sep, 1), spos,"
    " lseq, ldir, lkind, ltxt, lts, (SELECT rev FROM ctr) - (SELECT count(*) FROM agg) + k"
    " FROM lastm ORDER BY conv"
    " ON CONFLICT (id) DO UPDATE SET head = c.head + EXCLUDED.head,"
    " updated_ms = greatest(c.updated_ms, EXCLUDED.updated_ms),"
    " last_inbound_ms = greatest(c.last_inbound_ms, EXCLUDED.last_inbound_ms),"
    " contact_name = CASE WHEN EXCLUDED.contact_name <> '' THEN EXCLUDED.contact_name"
    " ELSE c.contact_name END,"
    /* erased (contacts), then written to again: the channel's id comes back */
    " contact_id = CASE WHEN c.contact_id = '' THEN EXCLUDED.contact_id ELSE c.contact_id END," STATE_SET("status") "," STATE_SET("assignee") "," STATE_SET("team") "," STATE_SET("priority") "," STATE_SET(
        "labels") "," STATE_SET("snoozed_until_ms") "," STATE_SET("episode") ","
                                                                             " state_seq = CASE "
                                                                             "WHEN "
                                                                             "EXCLUDED.state_seq > "
                                                                             "0 THEN c.head + "
                                                                             "EXCLUDED.state_seq"
                                                                             " ELSE c.state_seq "
                                                                             "END,"
                                                                             /* EXCLUDED.last_seq
                                                                                counts from the
                                                                                batch's start:
                                                                                relative to the old
                                                                                head */
                                                                             " last_seq = CASE "
                                                                             "WHEN "
                                                                             "EXCLUDED.last_"
                                                                             "direction <> '' THEN "
                                                                             "c.head + "
                                                                             "EXCLUDED.last_seq"
                                                                             " ELSE c.last_seq END,"
                                                                             " last_direction = "
                                                                             "CASE WHEN "
                                                                             "EXCLUDED.last_"
                                                                             "direction <> '' THEN "
                                                                             "EXCLUDED.last_"
                                                                             "direction"
                                                                             " ELSE "
                                                                             "c.last_direction END,"
                                                                             " last_kind = CASE "
                                                                             "WHEN "
                                                                             "EXCLUDED.last_"
                                                                             "direction <> '' THEN "
                                                                             "EXCLUDED.last_kind"
                                                                             " ELSE c.last_kind "
                                                                             "END,"
                                                                             " last_text = CASE "
                                                                             "WHEN "
                                                                             "EXCLUDED.last_"
                                                                             "direction <> '' THEN "
                                                                             "EXCLUDED.last_text"
                                                                             " ELSE c.last_text "
                                                                             "END,"
                                                                             " last_ms = CASE WHEN "
                                                                             "EXCLUDED.last_"
                                                                             "direction <> '' THEN "
                                                                             "EXCLUDED.last_ms"
                                                                             " ELSE c.last_ms END, "
                                                                             "rev = EXCLUDED.rev"
                                                                             " RETURNING c.id, "
                                                                             "c.head),"
                                                                             /* The new heads as one
                                                                              * map, looked up once
                                                                              * per row (an
                                                                              * InitPlan): the
                                                                              * planner would join
                                                                              * the two CTEs with a
                                                                              * nested loop,
                                                                              * quadratic in the
                                                                              * number of
                                                                              * conversations of the
                                                                              * batch. */
                                                                             " heads AS "
                                                                             "MATERIALIZED (SELECT "
                                                                             "jsonb_object_agg(id, "
                                                                             "head) AS m FROM "
                                                                             "conv),"
                                                                             " numbered AS (SELECT "
                                                                             "b.*, b.head - "
                                                                             "count(*) OVER "
                                                                             "(PARTITION BY b.conv)"
                                                                             " + row_number() OVER "
                                                                             "(PARTITION BY b.conv "
                                                                             "ORDER BY b.ord) AS "
                                                                             "seq"
                                                                             " FROM (SELECT f.*, "
                                                                             "((SELECT m FROM "
                                                                             "heads) ->> "
                                                                             "f.conv)::bigint AS "
                                                                             "head FROM fresh f) "
                                                                             "b),"
                                                                             " search_ins AS "
                                                                             "(INSERT INTO search "
                                                                             "(conversation_id, "
                                                                             "seq, tsv)"
                                                                             " SELECT conv, seq, "
                                                                             "to_tsvector('simple',"
                                                                             " ftxt) FROM numbered "
                                                                             "WHERE ftxt <> ''),"
                                                                             " hist AS (INSERT "
                                                                             "INTO history "
                                                                             "(conversation_id, "
                                                                             "seq, event_id, type, "
                                                                             "src_partition,"
                                                                             " src_offset, ts_ms, "
                                                                             "json, crc) SELECT "
                                                                             "conv, seq, eid, typ, "
                                                                             "part, off, ts,"
                                                                             " left(j, -1) || "
                                                                             "',\"seq\":' || seq "
                                                                             "|| ',\"epoch\":\"' "
                                                                             "|| $4::text || "
                                                                             "'\"}', crc"
                                                                             " FROM numbered),"
                                                                             " refs_ins AS (INSERT "
                                                                             "INTO refs (channel, "
                                                                             "account, ref, "
                                                                             "conversation_id, "
                                                                             "message_id)"
                                                                             " SELECT ch, acct, "
                                                                             "mid, conv, mid FROM "
                                                                             "numbered WHERE mid "
                                                                             "<> ''"
                                                                             " UNION ALL SELECT "
                                                                             "ch, acct, pmid, "
                                                                             "conv, smid FROM "
                                                                             "numbered"
                                                                             " WHERE typ = "
                                                                             "'" OH_EV_STATUS
                                                                             "' AND pmid <> '' AND "
                                                                             "smid <> ''"
                                                                             " ON CONFLICT DO "
                                                                             "NOTHING),"
                                                                             " state_ins AS "
                                                                             "(INSERT INTO "
                                                                             "msg_state AS m "
                                                                             "(conversation_id, "
                                                                             "message_id, state, "
                                                                             "rank)"
                                                                             " SELECT DISTINCT ON "
                                                                             "(conv, smid) conv, "
                                                                             "smid, state, rank "
                                                                             "FROM numbered"
                                                                             " WHERE typ = "
                                                                             "'" OH_EV_STATUS
                                                                             "' AND state <> '' "
                                                                             "AND smid <> ''"
                                                                             " ORDER BY conv, "
                                                                             "smid, rank DESC, ord"
                                                                             " ON CONFLICT "
                                                                             "(conversation_id, "
                                                                             "message_id) DO "
                                                                             "UPDATE SET state = "
                                                                             "EXCLUDED.state,"
                                                                             " rank = "
                                                                             "EXCLUDED.rank WHERE "
                                                                             "EXCLUDED.rank > "
                                                                             "m.rank),"
                                                                             " pos_ins AS (INSERT "
                                                                             "INTO positions AS p "
                                                                             "(grp, topic, part, "
                                                                             "next)"
                                                                             " SELECT $2::text, "
                                                                             "topic, part, next "
                                                                             "FROM "
                                                                             "json_to_recordset($3:"
                                                                             ":json)"
                                                                             " AS y(topic text, "
                                                                             "part int, next "
                                                                             "bigint)"
                                                                             " ON CONFLICT (grp, "
                                                                             "topic, part) DO "
                                                                             "UPDATE SET next = "
                                                                             "EXCLUDED.next),"
                                                                             /* the outcomes of
                                                                                state commands ($6):
                                                                                the first one of an
                                                                                id stays */
                                                                             " out_ins AS (INSERT "
                                                                             "INTO command_results "
                                                                             "(id, "
                                                                             "conversation_id, "
                                                                             "code, body, "
                                                                             "created_ms)"
                                                                             " SELECT id, conv, "
                                                                             "code, body, "
                                                                             "$5::bigint FROM "
                                                                             "json_to_recordset($6:"
                                                                             ":json)"
                                                                             " AS o(id text, conv "
                                                                             "text, code int, body "
                                                                             "text) ON CONFLICT "
                                                                             "(id) DO NOTHING)"
                                                                             " SELECT r.ord, "
                                                                             "coalesce(n.seq, "
                                                                             "h.seq, 0) FROM raw r "
                                                                             "LEFT JOIN numbered n "
                                                                             "ON n.ord = r.ord"
                                                                             " LEFT JOIN history h "
                                                                             "ON h.event_id = "
                                                                             "r.eid AND "
                                                                             "h.src_partition = "
                                                                             "r.part"
                                                                             " AND h.src_offset = "
                                                                             "r.off ORDER BY r.ord";
#pragma GCC diagnostic pop

const char *const oh_pg_sql[P_COUNT] = {
    [P_MATERIALIZE] = pg_materialize_sql,
    [P_POS_GET] = "SELECT next, published FROM positions WHERE grp = $1 AND topic = $2 "
                  "AND part = $3",
    [P_POS_PUBLISHED] = "INSERT INTO positions (grp, topic, part, published) "
                        "VALUES ($1, $2, $3, $4) ON CONFLICT (grp, topic, part) "
                        "DO UPDATE SET published = EXCLUDED.published",
    [P_SINCE] = "SELECT src_offset, conversation_id, seq, json, crc FROM history "
                "WHERE src_partition = $1 AND src_offset >= $2 "
                "ORDER BY src_offset, conversation_id, seq",
    [P_CONV_EXISTS] = "SELECT 1 FROM conversations WHERE id = $1",
    [P_HISTORY] = "SELECT seq, json, crc FROM history WHERE conversation_id = $1 AND seq > $2 "
                  "ORDER BY seq LIMIT $3",
    [P_EVENT_GET] =
        "SELECT seq, json, crc FROM history WHERE event_id = $1 AND conversation_id = $2",
    [P_CONV_GET] = "SELECT " CONV_COLS " FROM conversations WHERE id = $1",
    [P_CONV_LIST] = "SELECT " CONV_COLS " FROM conversations WHERE updated_ms > $1 "
                    "ORDER BY updated_ms DESC, id DESC LIMIT $2",
    [P_REF_GET] = "SELECT conversation_id, message_id FROM refs WHERE channel = $1 "
                  "AND account = $2 AND ref = $3",
    [P_REF_PUT] = "INSERT INTO refs (channel, account, ref, conversation_id, message_id) "
                  "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (channel, account, ref) DO UPDATE "
                  "SET conversation_id = EXCLUDED.conversation_id, "
                  "message_id = EXCLUDED.message_id",
    [P_STATE_GET] = "SELECT state FROM msg_state WHERE conversation_id = $1 AND message_id = $2",
    [P_CURSOR_SET] = "INSERT INTO cursors AS k (conversation_id, user_id, role, device, seq) "
                     "VALUES ($1, $2, $3, $4, $5) "
                     "ON CONFLICT (conversation_id, user_id, role, device) "
                     "DO UPDATE SET seq = EXCLUDED.seq WHERE EXCLUDED.seq > k.seq",
    [P_CURSORS] = "SELECT device, max(seq) FROM cursors WHERE conversation_id = $1 "
                  "AND user_id = $2 AND role IN ($3, '') GROUP BY device ORDER BY device",
    [P_ART_PUT] = "INSERT INTO kb_articles (id, title, body, locale, tags, updated_ms, version) "
                  "VALUES ($1, $2, $3, $4, $5, $6, 1) ON CONFLICT (id) DO UPDATE SET "
                  "title = excluded.title, body = excluded.body, locale = excluded.locale, "
                  "tags = excluded.tags, updated_ms = excluded.updated_ms, "
                  "version = kb_articles.version + 1 RETURNING version",
    [P_ART_GET] = "SELECT id, title, body, locale, tags, version, updated_ms FROM kb_articles "
                  "WHERE id = $1",
    [P_ART_DEL] = "DELETE FROM kb_articles WHERE id = $1 RETURNING id",
    [P_ART_ALL] = "SELECT id, title, body, locale, tags, version, updated_ms FROM kb_articles "
                  "ORDER BY id",
    [P_KV_PUT] = "INSERT INTO kv (ns, key, value) VALUES ($1, $2, $3) ON CONFLICT (ns, key) "
                 "DO UPDATE SET value = EXCLUDED.value",
    [P_KV_GET] = "SELECT value FROM kv WHERE ns = $1 AND key = $2",
    [P_KV_DEL] = "DELETE FROM kv WHERE ns = $1 AND key = $2",
    [P_KV_SCAN] = "SELECT key, value FROM kv WHERE ns = $1 ORDER BY key",
    [P_EPOCH_PUT] = "INSERT INTO meta (key, value) VALUES ('epoch', $1) ON CONFLICT DO NOTHING",
    [P_EPOCH_GET] = "SELECT value FROM meta WHERE key = 'epoch'",
    [P_VERIFY] = "SELECT conversation_id, seq, json, crc FROM history "
                 "WHERE (conversation_id, seq) > ($1, $2) ORDER BY conversation_id, seq LIMIT 1000",
    [P_PING] = "SELECT 1",
    [P_REV_GET] = "SELECT rev FROM revs WHERE id = 1",
    [P_CHANGES] = "SELECT " CONV_COLS " FROM conversations WHERE rev > $1 ORDER BY rev LIMIT $2",
    [P_OPEN_ASSIGNED] = "SELECT count(*) FROM conversations WHERE status = 'open' "
                        "AND assignee = $1",
    [P_SNOOZED_DUE] = "SELECT " CONV_COLS " FROM conversations WHERE status = 'snoozed' "
                      "AND snoozed_until_ms <= $1 ORDER BY snoozed_until_ms LIMIT $2",
    [P_OUTCOME_GET] = "SELECT code, body FROM command_results WHERE id = $1 "
                      "AND conversation_id = $2",
    [P_PLACE_GET] = "SELECT conversation_id, shard FROM placements WHERE conversation_id IN "
                    "(SELECT json_array_elements_text($1::json))",
    [P_PLACE_PUT] = "INSERT INTO placements (conversation_id, shard) SELECT c, s FROM "
                    "json_to_recordset($1::json) AS x(c text, s text) ON CONFLICT DO NOTHING",
    [P_CONV_MANY] = "SELECT id FROM conversations WHERE id IN "
                    "(SELECT json_array_elements_text($1::json))",
};

struct pg_store {
    struct oh_store_base base;
    char epoch[48];
    struct oh_pg_shards dir; /* shard 0 also holds positions, kv, the epoch and the directory */
    struct oh_pg_pool *replica; /* store.postgres.read_dsn (mirrors shard 0), or NULL */
};

#define SHARD0(st) (((struct pg_store *)(st))->dir.at[0].pool)

/* The shards known now, without a refresh: for indices handed out before. */
static int known(struct pg_store *s)
{
    return atomic_load_explicit(&s->dir.n, memory_order_acquire);
}

/* The shards a read across all of them asks (after a refresh when due). */
static int nshards(struct pg_store *s)
{
    return oh_pg_shard_count(&s->dir);
}

/* *P = the pool of CONV's shard (placement directory, see store_pg_shards.c). */
static int conv_pool(struct pg_store *s, const char *conv, struct oh_pg_pool **p)
{
    int sh;
    int rc = oh_pg_shard_of(&s->dir, conv, &sh);
    if (rc == 0) *p = s->dir.at[sh].pool;
    return rc;
}

/* Runs ID on CONV's shard (see oh_pg_exec; repeated on a broken connection). */
static int conv_exec(struct pg_store *s, const char *conv, enum pg_stmt id, int n,
                     const char *const *vals, PGresult **r)
{
    struct oh_pg_pool *p;
    *r = NULL;
    int rc = conv_pool(s, conv, &p);
    return rc != 0 ? rc : oh_pg_exec(p, id, n, vals, r, true);
}

static int conv_void(struct pg_store *s, const char *conv, enum pg_stmt id, int n,
                     const char *const *vals)
{
    PGresult *r;
    int rc = conv_exec(s, conv, id, n, vals, &r);
    PQclear(r);
    return rc;
}

static void pg_close(oh_store *st)
{
    struct pg_store *s = (struct pg_store *)st;
    if (!s) return;
    oh_pg_shards_close(&s->dir);
    oh_pg_pool_free(s->replica);
    free(s);
}

static int load_epoch(struct pg_store *s)
{
    uint8_t rnd[16];
    char fresh[32];
    if (oh_random(rnd, sizeof rnd) != 0) return OH_EIO;
    oh_base64url(rnd, sizeof rnd, fresh);
    const char *vals[] = {fresh};
    PGresult *r;
    int rc = oh_pg_exec(s->dir.at[0].pool, P_EPOCH_PUT, 1, vals, &r, true);
    if (rc != 0) return rc;
    PQclear(r);
    rc = oh_pg_exec(s->dir.at[0].pool, P_EPOCH_GET, 0, NULL, &r, true);
    if (rc != 0) return rc;
    if (PQntuples(r) == 1)
        snprintf(s->epoch, sizeof s->epoch, "%s", PQgetvalue(r, 0, 0));
    else
        rc = OH_EIO;
    PQclear(r);
    return rc;
}

static int dsn_check(const char *key, const char *dsn, char *err, size_t errlen)
{
    char *why = NULL;
    PQconninfoOption *opts = PQconninfoParse(dsn, &why);
    PQfreemem(why); /* may quote the DSN */
    if (opts) {
        PQconninfoFree(opts);
        return OH_OK;
    }
    oh_errf(err, errlen,
            "%s: not a libpq connection string (\"host=... dbname=...\" or a "
            "postgresql:// URI)",
            key);
    return OH_EINVAL;
}

int oh_store_pg_check(const oh_config *cfg, char *err, size_t errlen)
{
    const char *dsn = oh_config_str(cfg, "store.postgres.dsn");
    const char *read_dsn = oh_config_str(cfg, "store.postgres.read_dsn");
    const char *const *list = NULL;
    size_t nlist = oh_config_list(cfg, "store.postgres.shards", &list);
    if (nlist == 0 && (!dsn || !*dsn)) {
        oh_errf(err, errlen, "store.postgres.dsn is required with store.backend=postgres");
        return OH_EINVAL;
    }
    if (dsn && *dsn && dsn_check("store.postgres.dsn", dsn, err, errlen)) return OH_EINVAL;
    if (read_dsn && *read_dsn && dsn_check("store.postgres.read_dsn", read_dsn, err, errlen))
        return OH_EINVAL;
    for (size_t i = 0; i < nlist; i++)
        if (dsn_check("store.postgres.shards", list[i], err, errlen)) return OH_EINVAL;
    return OH_OK;
}

static oh_store *pg_open(const oh_config *cfg, char *err, size_t errlen)
{
    const char *dsn = oh_config_str(cfg, "store.postgres.dsn");
    const char *read_dsn = oh_config_str(cfg, "store.postgres.read_dsn");
    const char *const *list = NULL;
    size_t nlist = oh_config_list(cfg, "store.postgres.shards", &list);
    int pool_size = (int)oh_config_int(cfg, "store.postgres.pool_size");
    if (pool_size < 1 || pool_size > 64) pool_size = pool_size < 1 ? 1 : 64;
    int64_t cache = oh_config_int(cfg, "store.postgres.placement_cache");
    struct pg_store *s = calloc(1, sizeof *s);
    if (!s) {
        oh_errf(err, errlen, "out of memory");
        return NULL;
    }
    s->base.ops = &oh_store_pg_ops;
    if (nlist && dsn && *dsn)
        OH_WARN("store", "store.postgres.shards is set: store.postgres.dsn is not used");
    const char *one[] = {dsn};
    if (oh_pg_shards_open(&s->dir, nlist ? list : one, nlist ? (int)nlist : 1, pool_size,
                          cache > 0 ? (size_t)cache : 64, err, errlen) != 0)
        goto fail;
    if (read_dsn && *read_dsn) {
        if (nlist)
            OH_WARN("store", "store.postgres.read_dsn is ignored when shards are configured");
        else if (!(s->replica = oh_pg_pool_new(read_dsn, "replica", pool_size))) {
            oh_errf(err, errlen, "out of memory");
            goto fail;
        }
    }
    int rc = load_epoch(s);
    if (rc != 0) {
        oh_errf(err, errlen, "store: cannot read the epoch: %s", oh_strerror(rc));
        goto fail;
    }
    OH_INFO("store", "postgres store, %d shard(s) (a ring of %d)%s, epoch %s", known(s),
            s->dir.ring, s->replica ? " and a read replica" : "", s->epoch);
    return (oh_store *)s;
fail:
    pg_close((oh_store *)s);
    return NULL;
}

static const char *pg_epoch(const oh_store *st)
{
    return ((const struct pg_store *)st)->epoch;
}

static int pg_ping(oh_store *st)
{
    struct pg_store *s = (struct pg_store *)st;
    for (int i = 0, n = nshards(s); i < n; i++) {
        PGresult *r;
        int rc = oh_pg_exec(s->dir.at[i].pool, P_PING, 0, NULL, &r, true);
        if (rc != 0) return rc;
        PQclear(r);
    }
    return 0;
}

/* ---- materialization ---- */

static json_t *item_row(size_t ord, const struct oh_store_item *it, const struct oh_store_fields *f,
                        const char *text)
{
    json_t *o = json_object();
    if (!o) return NULL;
    json_object_set_new(o, "ord", json_integer((json_int_t)ord));
    json_object_set_new(o, "eid", json_string(f->id));
    json_object_set_new(o, "conv", json_string(f->conv));
    json_object_set_new(o, "typ", json_string(f->type));
    json_object_set_new(o, "part", json_integer(it->src_partition));
    json_object_set_new(o, "off", json_integer(it->src_offset));
    json_object_set_new(o, "ts", json_integer(f->ts_ms));
    json_object_set_new(o, "ch", json_string(f->channel));
    json_object_set_new(o, "acct", json_string(f->account));
    json_object_set_new(o, "cid", json_string(f->contact_id));
    json_object_set_new(o, "cname", json_string(f->contact_name));
    json_object_set_new(o, "mid", json_string(f->message_id));
    json_object_set_new(o, "pmid", json_string(f->provider_id));
    json_object_set_new(o, "smid", json_string(f->status_mid));
    json_object_set_new(o, "state", json_string(f->state));
    json_object_set_new(o, "rank", json_integer(f->rank));
    json_object_set_new(o, "inb", json_boolean(f->inbound));
    json_object_set_new(o, "j", json_string(text));
    /* the inbox: the last message's preview, the full-text index's text */
    char preview[4 * OH_STORE_PREVIEW_CHARS + 4];
    oh_store_preview(f->text, preview);
    char *body = oh_store_search_text(f);
    json_object_set_new(o, "dir", json_string(f->preview ? f->direction : ""));
    json_object_set_new(o, "kind", json_string(f->kind));
    json_object_set_new(o, "ltxt", json_string(preview));
    json_object_set_new(o, "ftxt", json_string(body ? body : ""));
    free(body);
    /* the checksum of the text before SQL appends seq and epoch to it */
    json_object_set_new(o, "crc", json_integer(oh_crc32c(0, text, strlen(text))));
    struct oh_store_state st;
    oh_store_state_get(it->event, &st);
    json_object_set_new(o, "hs", json_boolean(st.set));
    if (st.set) {
        json_object_set_new(o, "sst", json_string(*st.status ? st.status : "open"));
        json_object_set_new(o, "sas", json_string(st.assignee));
        json_object_set_new(o, "stm", json_string(st.team));
        json_object_set_new(o, "spr", json_string(*st.priority ? st.priority : "normal"));
        json_object_set_new(o, "slb", json_string(st.labels));
        json_object_set_new(o, "ssn", json_integer(st.snoozed_until_ms));
        json_object_set_new(o, "sep", json_integer(st.episode));
    }
    return o;
}

/* Runs the materialize statement on shard SH with ROWS (and POS when
 * non-NULL); fills the items' seqs from the answer. */
static int materialize_shard(struct pg_store *s, int sh, const char *group, json_t *rows,
                             json_t *outs, const char *pos, struct oh_store_item *items, size_t n)
{
    char *j = oh_json_dump(rows, NULL), *o = oh_json_dump(outs, NULL);
    if (!j || !o) {
        free(j);
        free(o);
        return OH_ENOMEM;
    }
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)oh_now_ms());
    const char *vals[] = {j, group ? group : "", pos ? pos : "[]", s->epoch, now, o};
    PGresult *r;
    int rc = oh_pg_exec(s->dir.at[sh].pool, P_MATERIALIZE, 6, vals, &r, false);
    free(j);
    free(o);
    if (rc != 0) return rc;
    for (int i = 0; i < PQntuples(r); i++) {
        size_t ord = (size_t)strtoull(PQgetvalue(r, i, 0), NULL, 10);
        int64_t seq = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        if (ord < n && seq > 0) {
            items[ord].seq = seq;
            oh_store_set_seq(items[ord].event, seq, s->epoch);
        }
    }
    PQclear(r);
    return 0;
}

/* The shard of each item's conversation (EV, placed when new) and of its
 * outcome's (OUT, never placed: a command's conversation exists, or its
 * outcome reads back from the same fallback shard). */
static int batch_shards(struct pg_store *s, struct oh_store_item *items, size_t n, int *ev,
                        int *out)
{
    const char **convs = calloc(n ? n : 1, sizeof *convs);
    if (!convs) return OH_ENOMEM;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct oh_store_fields f;
        convs[i] = "";
        if (items[i].event && oh_store_fields_get(items[i].event, &f) != 0) rc = OH_EINVAL;
        if (items[i].event && rc == 0) convs[i] = f.conv; /* borrowed from the event */
    }
    if (rc == 0) rc = oh_pg_shards_resolve(&s->dir, convs, n, true, ev);
    for (size_t i = 0; i < n && rc == 0; i++)
        convs[i] = items[i].outcome_conv ? items[i].outcome_conv : "";
    if (rc == 0) rc = oh_pg_shards_resolve(&s->dir, convs, n, false, out);
    free(convs);
    return rc;
}

/* Shards other than 0 commit first, shard 0 last together with the
 * positions: a crash in between replays the batch, and the replay finds
 * the events already stored on the other shards (dedup by event id; a
 * conversation's placement never changes, so the replay goes to the same
 * shard). */
static int pg_materialize(oh_store *st, const char *group, struct oh_store_item *items, size_t n,
                          const struct oh_store_pos *pos, size_t npos)
{
    struct pg_store *s = (struct pg_store *)st;
    int *ev = calloc(n ? n : 1, sizeof *ev), *oc = calloc(n ? n : 1, sizeof *oc);
    int rc = ev && oc ? batch_shards(s, items, n, ev, oc) : OH_ENOMEM;
    int nsh = known(s); /* after the placement: every index handed out is below it */
    json_t **rows = calloc((size_t)nsh, sizeof *rows);
    json_t **outs = calloc((size_t)nsh, sizeof *outs);
    json_t *jpos = json_array();
    char *pos_text = NULL;
    if (rc != 0) goto out;
    if (!rows || !outs || !jpos) {
        rc = OH_ENOMEM;
        goto out;
    }
    for (int i = 0; i < nsh; i++)
        if (!(rows[i] = json_array()) || !(outs[i] = json_array())) {
            rc = OH_ENOMEM;
            goto out;
        }
    for (size_t i = 0; i < n; i++) {
        struct oh_store_fields f;
        const struct oh_store_item *it = &items[i];
        const char *oconv = it->outcome_conv ? it->outcome_conv : "";
        if (it->outcome_id &&
            json_array_append_new(outs[oc[i]],
                                  json_pack("{s:s, s:s, s:i, s:s}", "id", it->outcome_id, "conv",
                                            oconv, "code", it->outcome_code, "body",
                                            it->outcome_body ? it->outcome_body : "{}")) != 0) {
            rc = OH_ENOMEM;
            goto out;
        }
        if (!it->event) continue;
        if (oh_store_fields_get(items[i].event, &f) != 0) {
            rc = OH_EINVAL;
            goto out;
        }
        char *text = oh_store_dump_unsequenced(items[i].event);
        if (!text || strlen(text) < 2 || text[strlen(text) - 1] != '}') {
            free(text);
            rc = text ? OH_EINVAL : OH_ENOMEM;
            goto out;
        }
        json_t *row = item_row(i, &items[i], &f, text);
        free(text);
        if (!row || json_array_append_new(rows[ev[i]], row) != 0) {
            rc = OH_ENOMEM;
            goto out;
        }
    }
    for (size_t i = 0; i < npos; i++)
        json_array_append_new(jpos,
                              json_pack("{s:s,s:i,s:I}", "topic", pos[i].topic, "part",
                                        (int)pos[i].partition, "next", (json_int_t)pos[i].next));
    if (!(pos_text = json_dumps(jpos, JSON_COMPACT))) {
        rc = OH_ENOMEM;
        goto out;
    }
    for (int sh = nsh - 1; sh >= 0 && rc == 0; sh--) {
        if (sh > 0 && json_array_size(rows[sh]) == 0 && json_array_size(outs[sh]) == 0) continue;
        rc = materialize_shard(s, sh, group, rows[sh], outs[sh], sh == 0 ? pos_text : NULL, items,
                               n);
    }
out:
    for (int i = 0; i < nsh; i++) {
        if (rows) json_decref(rows[i]);
        if (outs) json_decref(outs[i]);
    }
    free(rows);
    free(outs);
    free(ev);
    free(oc);
    json_decref(jpos);
    free(pos_text);
    if (rc != 0) OH_WARN("store", "materialize of %zu events failed: %s", n, oh_strerror(rc));
    return rc;
}

/* ---- positions and replay ---- */

static void i64s(char *buf, size_t len, int64_t v)
{
    snprintf(buf, len, "%lld", (long long)v);
}

static int pg_position_get(oh_store *st, const char *group, const char *topic, int32_t partition,
                           int64_t *next, int64_t *published)
{
    struct pg_store *s = (struct pg_store *)st;
    char part[24];
    i64s(part, sizeof part, partition);
    const char *vals[] = {group, topic, part};
    PGresult *r;
    *next = *published = 0;
    int rc = oh_pg_exec(s->dir.at[0].pool, P_POS_GET, 3, vals, &r, true);
    if (rc != 0) return rc;
    if (PQntuples(r) == 1) {
        *next = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        *published = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    }
    PQclear(r);
    return 0;
}

static int pg_position_published(oh_store *st, const char *group, const char *topic,
                                 int32_t partition, int64_t published)
{
    struct pg_store *s = (struct pg_store *)st;
    char part[24], pub[24];
    i64s(part, sizeof part, partition);
    i64s(pub, sizeof pub, published);
    const char *vals[] = {group, topic, part, pub};
    PGresult *r;
    int rc = oh_pg_exec(s->dir.at[0].pool, P_POS_PUBLISHED, 4, vals, &r, true);
    PQclear(r);
    return rc;
}

/* Runs ID with VALS on every shard; RES[i] holds shard i's rows. */
static int all_shards(struct pg_store *s, int nsh, enum pg_stmt id, int n,
                      const char *const *vals, PGresult **res)
{
    for (int i = 0; i < nsh; i++) {
        int rc = oh_pg_exec(s->dir.at[i].pool, id, n, vals, &res[i], true);
        if (rc != 0) {
            for (int k = 0; k < i; k++)
                PQclear(res[k]);
            return rc;
        }
    }
    return 0;
}

static int cmp_source(PGresult *a, int ra, PGresult *b, int rb)
{
    long long oa = strtoll(PQgetvalue(a, ra, 0), NULL, 10);
    long long ob = strtoll(PQgetvalue(b, rb, 0), NULL, 10);
    if (oa != ob) return oa < ob ? -1 : 1;
    int c = strcmp(PQgetvalue(a, ra, 1), PQgetvalue(b, rb, 1));
    if (c) return c;
    return strtoll(PQgetvalue(a, ra, 2), NULL, 10) < strtoll(PQgetvalue(b, rb, 2), NULL, 10) ? -1
                                                                                             : 1;
}

/* oh_store_row_check of row I of R: conversation id in column CONV (-1:
 * the conversation CONVID), the text in column JSON, the crc after it. */
static int row_check_of(const struct pg_store *s, PGresult *r, int i, const char *conv, int64_t seq,
                        int json)
{
    int64_t crc = PQgetisnull(r, i, json + 1) ? -1 : strtoll(PQgetvalue(r, i, json + 1), NULL, 10);
    return oh_store_row_check(conv, seq, PQgetvalue(r, i, json), (size_t)PQgetlength(r, i, json),
                              crc, s->epoch);
}

static int row_check(const struct pg_store *s, PGresult *r, int i, int conv, int64_t seq, int json)
{
    return row_check_of(s, r, i, PQgetvalue(r, i, conv), seq, json);
}

static int pg_since_source(oh_store *st, int32_t partition, int64_t from, oh_store_row_fn fn,
                           void *opaque)
{
    struct pg_store *s = (struct pg_store *)st;
    int nsh = nshards(s);
    char part[24], off[24];
    i64s(part, sizeof part, partition);
    i64s(off, sizeof off, from);
    const char *vals[] = {part, off};
    PGresult **res = calloc((size_t)nsh, sizeof *res);
    int *at = calloc((size_t)nsh, sizeof *at);
    int rc = !res || !at ? OH_ENOMEM : all_shards(s, nsh, P_SINCE, 2, vals, res);
    if (rc != 0) goto out;
    for (;;) { /* k-way merge in source order */
        int best = -1;
        for (int i = 0; i < nsh; i++)
            if (at[i] < PQntuples(res[i]) &&
                (best < 0 || cmp_source(res[i], at[i], res[best], at[best]) < 0))
                best = i;
        if (best < 0) break;
        PGresult *r = res[best];
        int row = at[best]++;
        int64_t seq = strtoll(PQgetvalue(r, row, 2), NULL, 10);
        /* republishing: a damaged row is reported and not forwarded */
        if (row_check(s, r, row, 1, seq, 3)) continue;
        int stop = fn(opaque, PQgetvalue(r, row, 1), seq, PQgetvalue(r, row, 3),
                      (size_t)PQgetlength(r, row, 3));
        if (stop) {
            rc = stop < 0 ? stop : 0;
            break;
        }
    }
    for (int i = 0; i < nsh; i++)
        PQclear(res[i]);
out:
    free(res);
    free(at);
    return rc;
}

/* ---- reads ---- */

/* History and lists go to the replica when there is one; if it cannot be
 * reached the primary answers. */
static int read_exec(struct pg_store *s, struct oh_pg_pool *primary, enum pg_stmt id, int n,
                     const char *const *vals, PGresult **r)
{
    if (s->replica && primary == s->dir.at[0].pool) { /* it mirrors shard 0 */
        int rc = oh_pg_exec(s->replica, id, n, vals, r, true);
        if (rc != OH_EUNAVAIL && rc != OH_ETIMEOUT) return rc;
    }
    return oh_pg_exec(primary, id, n, vals, r, true);
}

static int pg_history(oh_store *st, const char *conv, int64_t after, int limit, oh_store_row_fn fn,
                      void *opaque)
{
    struct pg_store *s = (struct pg_store *)st;
    struct oh_pg_pool *p;
    int rc = conv_pool(s, conv, &p);
    if (rc != 0) return rc;
    char a[24], l[24];
    i64s(a, sizeof a, after);
    i64s(l, sizeof l, limit);
    const char *vals[] = {conv, a, limit > 0 ? l : NULL};
    PGresult *r;
    rc = read_exec(s, p, P_HISTORY, 3, vals, &r);
    if (rc != 0) return rc;
    int rows = PQntuples(r);
    for (int i = 0; i < rows; i++) {
        int64_t seq = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        int stop = row_check_of(s, r, i, conv, seq, 1);
        if (!stop) stop = fn(opaque, conv, seq, PQgetvalue(r, i, 1), (size_t)PQgetlength(r, i, 1));
        if (stop) {
            rc = stop < 0 ? stop : 0;
            break;
        }
    }
    PQclear(r);
    if (rc == 0 && rows == 0) { /* empty page or no such conversation? */
        rc = read_exec(s, p, P_CONV_EXISTS, 1, vals, &r);
        if (rc == 0) {
            rc = PQntuples(r) ? 0 : OH_ENOTFOUND;
            PQclear(r);
        }
    }
    return rc;
}

static int pg_event_get(oh_store *st, const char *conv, const char *event_id, oh_store_row_fn fn,
                        void *opaque)
{
    struct pg_store *s = (struct pg_store *)st;
    const char *vals[] = {event_id, conv};
    PGresult *r;
    /* the primary: a replica may not have it yet */
    int rc = conv_exec(s, conv, P_EVENT_GET, 2, vals, &r);
    if (rc != 0) return rc;
    if (PQntuples(r) == 1) {
        int64_t seq = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        int stop = row_check_of(s, r, 0, conv, seq, 1); /* damaged: never handed out */
        if (!stop) stop = fn(opaque, conv, seq, PQgetvalue(r, 0, 1), (size_t)PQgetlength(r, 0, 1));
        rc = stop < 0 ? stop : 0;
    } else {
        rc = OH_ENOTFOUND;
    }
    PQclear(r);
    return rc;
}

/* Every shard, a page of 1000 rows at a time (keyset), on the primary. */
static int pg_verify(oh_store *st, struct oh_store_verify *v)
{
    struct pg_store *s = (struct pg_store *)st;
    int nsh = nshards(s);
    for (int sh = 0; sh < nsh; sh++) {
        char conv[OH_ID_MAX] = "", seq[24] = "0";
        for (;;) {
            const char *vals[] = {conv, seq};
            PGresult *r;
            int rc = oh_pg_exec(s->dir.at[sh].pool, P_VERIFY, 2, vals, &r, true);
            if (rc) return rc;
            int rows = PQntuples(r);
            for (int i = 0; i < rows; i++) {
                v->checked++;
                v->unverified += PQgetisnull(r, i, 3);
                v->damaged += row_check(s, r, i, 0, strtoll(PQgetvalue(r, i, 1), NULL, 10), 2) != 0;
            }
            if (rows) {
                snprintf(conv, sizeof conv, "%s", PQgetvalue(r, rows - 1, 0));
                snprintf(seq, sizeof seq, "%s", PQgetvalue(r, rows - 1, 1));
            }
            PQclear(r);
            if (rows < 1000) break;
        }
    }
    return 0;
}

static void conv_row(PGresult *r, int i, struct oh_conversation *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->id, sizeof c->id, "%s", PQgetvalue(r, i, 0));
    snprintf(c->channel, sizeof c->channel, "%s", PQgetvalue(r, i, 1));
    snprintf(c->account, sizeof c->account, "%s", PQgetvalue(r, i, 2));
    snprintf(c->contact_id, sizeof c->contact_id, "%s", PQgetvalue(r, i, 3));
    snprintf(c->contact_name, sizeof c->contact_name, "%s", PQgetvalue(r, i, 4));
    c->head = strtoll(PQgetvalue(r, i, 5), NULL, 10);
    c->created_ms = strtoll(PQgetvalue(r, i, 6), NULL, 10);
    c->updated_ms = strtoll(PQgetvalue(r, i, 7), NULL, 10);
    c->last_inbound_ms = strtoll(PQgetvalue(r, i, 8), NULL, 10);
    snprintf(c->status, sizeof c->status, "%s", PQgetvalue(r, i, 9));
    snprintf(c->assignee, sizeof c->assignee, "%s", PQgetvalue(r, i, 10));
    snprintf(c->team, sizeof c->team, "%s", PQgetvalue(r, i, 11));
    snprintf(c->priority, sizeof c->priority, "%s", PQgetvalue(r, i, 12));
    snprintf(c->labels, sizeof c->labels, "%s", PQgetvalue(r, i, 13));
    c->snoozed_until_ms = strtoll(PQgetvalue(r, i, 14), NULL, 10);
    c->episode = strtoll(PQgetvalue(r, i, 15), NULL, 10);
    c->state_seq = strtoll(PQgetvalue(r, i, 16), NULL, 10);
    c->last_seq = strtoll(PQgetvalue(r, i, 17), NULL, 10);
    snprintf(c->last_direction, sizeof c->last_direction, "%s", PQgetvalue(r, i, 18));
    snprintf(c->last_kind, sizeof c->last_kind, "%s", PQgetvalue(r, i, 19));
    snprintf(c->last_text, sizeof c->last_text, "%s", PQgetvalue(r, i, 20));
    c->last_ms = strtoll(PQgetvalue(r, i, 21), NULL, 10);
    c->rev = strtoll(PQgetvalue(r, i, 22), NULL, 10);
    snprintf(c->contact_ref, sizeof c->contact_ref, "%s", PQgetvalue(r, i, 23));
}

static int pg_conversation_get(oh_store *st, const char *conv, struct oh_conversation *out)
{
    struct pg_store *s = (struct pg_store *)st;
    const char *vals[] = {conv};
    PGresult *r;
    int rc = conv_exec(s, conv, P_CONV_GET, 1, vals, &r);
    if (rc != 0) return rc;
    rc = PQntuples(r) == 1 ? 0 : OH_ENOTFOUND;
    if (rc == 0) conv_row(r, 0, out);
    PQclear(r);
    return rc;
}

/* Most recently updated first, ties by id descending (as each shard sorts). */
static bool conv_before(PGresult *a, int ra, PGresult *b, int rb)
{
    long long ua = strtoll(PQgetvalue(a, ra, 7), NULL, 10);
    long long ub = strtoll(PQgetvalue(b, rb, 7), NULL, 10);
    if (ua != ub) return ua > ub;
    return strcmp(PQgetvalue(a, ra, 0), PQgetvalue(b, rb, 0)) > 0;
}

static int pg_conversations(oh_store *st, int64_t updated_after_ms, int limit, oh_store_conv_fn fn,
                            void *opaque)
{
    struct pg_store *s = (struct pg_store *)st;
    int nsh = nshards(s);
    char u[24], l[24];
    i64s(u, sizeof u, updated_after_ms);
    i64s(l, sizeof l, limit);
    const char *vals[] = {u, limit > 0 ? l : NULL};
    PGresult **res = calloc((size_t)nsh, sizeof *res);
    int *at = calloc((size_t)nsh, sizeof *at);
    int rc = !res || !at ? OH_ENOMEM : 0;
    if (rc == 0 && nsh == 1)
        rc = read_exec(s, s->dir.at[0].pool, P_CONV_LIST, 2, vals, &res[0]);
    else if (rc == 0)
        rc = all_shards(s, nsh, P_CONV_LIST, 2, vals, res);
    if (rc != 0) goto out;
    for (int emitted = 0; limit <= 0 || emitted < limit; emitted++) {
        int best = -1;
        for (int i = 0; i < nsh; i++)
            if (at[i] < PQntuples(res[i]) &&
                (best < 0 || conv_before(res[i], at[i], res[best], at[best])))
                best = i;
        if (best < 0) break;
        struct oh_conversation c;
        conv_row(res[best], at[best]++, &c);
        int stop = fn(opaque, &c);
        if (stop) {
            rc = stop < 0 ? stop : 0;
            break;
        }
    }
    for (int i = 0; i < nsh; i++)
        PQclear(res[i]);
out:
    free(res);
    free(at);
    return rc;
}

/* Each shard's due rows on its primary (a replica's lag would
 * only delay the wake). */
static int pg_snoozed_due(oh_store *st, int64_t now_ms, int limit, oh_store_conv_fn fn,
                          void *opaque)
{
    struct pg_store *s = (struct pg_store *)st;
    int nsh = nshards(s);
    char u[24], l[24];
    i64s(u, sizeof u, now_ms);
    i64s(l, sizeof l, limit);
    const char *vals[] = {u, limit > 0 ? l : NULL};
    int rc = 0;
    for (int sh = 0; sh < nsh && rc == 0; sh++) {
        PGresult *r;
        if ((rc = oh_pg_exec(s->dir.at[sh].pool, P_SNOOZED_DUE, 2, vals, &r, true)) != 0) break;
        for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
            struct oh_conversation c;
            conv_row(r, i, &c);
            int stop = fn(opaque, &c);
            if (stop) rc = stop < 0 ? stop : 0;
            if (stop) break;
        }
        PQclear(r);
    }
    return rc;
}

static int pg_command_result(oh_store *st, const char *conv, const char *id, int *code, char *body,
                             size_t len)
{
    struct pg_store *s = (struct pg_store *)st;
    const char *vals[] = {id, conv};
    PGresult *r;
    int rc = conv_exec(s, conv, P_OUTCOME_GET, 2, vals, &r);
    if (rc != 0) return rc;
    rc = PQntuples(r) == 1 ? 0 : OH_ENOTFOUND;
    if (rc == 0) {
        *code = (int)strtol(PQgetvalue(r, 0, 0), NULL, 10);
        snprintf(body, len, "%s", PQgetvalue(r, 0, 1));
    }
    PQclear(r);
    return rc;
}

/* ---- the inbox ---- */

/* A query built clause by clause: its text and parameters ($1, $2, ...). */
struct pg_query {
    char sql[6144];
    size_t len;
    int n;
    const char *vals[48]; /* q: the filters three times (list_sql) */
    char nums[48][24];
};

/* Appends FMT, in which every "%d" is the number of the next parameter,
 * bound to TEXT (or to NUM when TEXT is NULL). */
static void qadd(struct pg_query *q, const char *fmt, const char *text, int64_t num)
{
    if (q->n >= (int)OH_ARRAY_SIZE(q->vals) || q->len >= sizeof q->sql) {
        q->len = sizeof q->sql; /* too long: the caller refuses it */
        return;
    }
    int k = ++q->n;
    if (!text) {
        i64s(q->nums[k - 1], sizeof q->nums[k - 1], num);
        text = q->nums[k - 1];
    }
    q->vals[k - 1] = text;
    int w = snprintf(q->sql + q->len, sizeof q->sql - q->len, fmt, k, k, k);
    if (w > 0) q->len += (size_t)w;
}

static void qraw(struct pg_query *q, const char *sql)
{
    if (q->len >= sizeof q->sql) return;
    int w = snprintf(q->sql + q->len, sizeof q->sql - q->len, "%s", sql);
    if (w > 0) q->len += (size_t)w;
}

/* Newest created first, ties by id descending (as each shard sorts). */
static bool list_before(PGresult *a, int ra, PGresult *b, int rb)
{
    long long ca = strtoll(PQgetvalue(a, ra, 6), NULL, 10);
    long long cb = strtoll(PQgetvalue(b, rb, 6), NULL, 10);
    if (ca != cb) return ca > cb;
    return strcmp(PQgetvalue(a, ra, 0), PQgetvalue(b, rb, 0)) > 0;
}

/* How q is matched, in one query whose parts run lazily (each CTE is
 * read, and each branch of the UNION ALL runs, only when its one-time
 * filter holds):
 * - w: the newest Q_WALK x limit conversations (after the other filters)
 *   are checked against their own messages (search's primary key); a full
 *   page there is the answer, a common word's usual case.
 * - m: otherwise up to Q_RARE of the word's messages from the GIN index.
 *   Fewer than that, a rare word: its conversations are looked up by id
 *   and sorted (about a hundred at a million conversations).
 * - Otherwise a word common in older conversations only: the walk, without
 *   the bound.
 * Either plan alone takes seconds at a million conversations on the other
 * kind of word, and the planner cannot choose by itself: it estimates any
 * word outside its most common ones at 0.5 % of the messages
 * (docs/performance.md, the desk). */
#define Q_RARE "2000"
#define Q_WALK 4

/* The filters other than q, and the page cursor, as " AND ..." into Q. */
static void list_filters(struct pg_query *q, const struct oh_store_filter *f)
{
    const struct {
        const char *v, *sql;
    } eq[] = {{f->status, " AND c.status = $%d"},
              {f->assignee, " AND c.assignee = $%d"},
              {f->team, " AND c.team = $%d"},
              {f->priority, " AND c.priority = $%d"},
              {f->channel, " AND c.channel = $%d"},
              {f->contact_id, " AND c.contact_id = $%d"},
              {f->contact_ref, " AND c.contact_ref = $%d"},
              {f->label, " AND c.labels @> jsonb_build_array($%d::text)"}};
    for (size_t i = 0; i < OH_ARRAY_SIZE(eq); i++)
        if (eq[i].v) qadd(q, eq[i].sql, eq[i].v, 0);
    if (f->updated_after_ms) qadd(q, " AND c.updated_ms > $%d", NULL, f->updated_after_ms);
    if (f->before_id) {
        qadd(q, " AND (c.created_ms, c.id) < ($%d::bigint, ", NULL, f->before_created_ms);
        qadd(q, "$%d::text COLLATE \"C\")", f->before_id, 0);
    }
}

/* One page of conversations, newest created first, into Q. Without q,
 * BRANCH is 0; with q (parameter QP, the page's limit parameter LP), 'r'
 * matches it as a rare word, 'c' as a common one (above). */
static void list_inner(struct pg_query *q, const struct oh_store_filter *f, int qp, int lp,
                       char branch)
{
    char sql[400];
    qraw(q, "(SELECT " CONV_COLS " FROM conversations c WHERE true");
    list_filters(q, f);
    if (branch) {
        snprintf(sql, sizeof sql, " AND (SELECT count(*) FROM w) < $%d", lp);
        qraw(q, sql);
    }
    if (branch == 'r') {
        qraw(q, " AND (SELECT count(*) FROM m) < " Q_RARE
                " AND c.id = ANY (ARRAY(SELECT conversation_id FROM m))");
    } else if (branch == 'c') {
        snprintf(sql, sizeof sql,
                 " AND (SELECT count(*) FROM m) >= " Q_RARE " AND c.id IN (SELECT "
                 "conversation_id FROM search WHERE tsv @@ plainto_tsquery('simple', $%d))",
                 qp);
        qraw(q, sql);
    }
    qadd(q, " ORDER BY c.created_ms DESC, c.id DESC LIMIT $%d)", NULL, f->limit);
}

/* The list's SQL into Q. */
static void list_sql(struct pg_query *q, const struct oh_store_filter *f)
{
    *q = (struct pg_query){.len = 0};
    int qp = 0, lp = 0;
    if (f->q) {
        char sql[400];
        qraw(q, "WITH w AS MATERIALIZED (SELECT b.* FROM (SELECT " CONV_COLS
                " FROM conversations c WHERE true");
        list_filters(q, f);
        qadd(q, " ORDER BY c.created_ms DESC, c.id DESC LIMIT $%d) b", NULL,
             (int64_t)f->limit * Q_WALK);
        qadd(q,
             " WHERE b.id IN (SELECT conversation_id FROM search WHERE tsv @@ "
             "plainto_tsquery('simple', $%d))",
             f->q, 0);
        qp = q->n;
        qadd(q, " ORDER BY b.created_ms DESC, b.id DESC LIMIT $%d), ", NULL, f->limit);
        lp = q->n;
        snprintf(sql, sizeof sql,
                 "m AS MATERIALIZED (SELECT conversation_id FROM search WHERE tsv @@ "
                 "plainto_tsquery('simple', $%d) LIMIT " Q_RARE ") ",
                 qp);
        qraw(q, sql);
    }
    /* the reader's cursors are looked up for the page only, outside the
     * inner query (inside, PostgreSQL evaluates them for every match before
     * the sort) */
    qraw(q, "SELECT x.*, ");
    if (f->reader) {
        qadd(q,
             "coalesce((SELECT max(seq) FROM cursors k WHERE k.conversation_id = x.id "
             "AND k.user_id = $%d ",
             f->reader, 0);
        qadd(q, "AND k.role IN ($%d, '')), 0)", f->reader_role ? f->reader_role : "", 0);
    } else {
        qraw(q, "0");
    }
    qraw(q, " FROM (");
    if (f->q) {
        char sql[200];
        snprintf(sql, sizeof sql, "(SELECT * FROM w WHERE (SELECT count(*) FROM w) >= $%d)", lp);
        qraw(q, sql);
        qraw(q, " UNION ALL ");
        list_inner(q, f, qp, lp, 'r');
        qraw(q, " UNION ALL ");
        list_inner(q, f, qp, lp, 'c');
    } else {
        list_inner(q, f, 0, 0, 0);
    }
    qraw(q, ") x ORDER BY x.created_ms DESC, x.id DESC");
}

/* Runs SQL on shard I (its replica when there is one and it answers). */
static int list_exec(struct pg_store *s, int i, const char *sql, int n, const char *const *vals,
                     PGresult **res)
{
    if (s->replica && i == 0) { /* it mirrors shard 0 */
        int rc = oh_pg_exec_sql(s->replica, sql, n, vals, res, true);
        if (rc != OH_EUNAVAIL && rc != OH_ETIMEOUT) return rc;
    }
    return oh_pg_exec_sql(s->dir.at[i].pool, sql, n, vals, res, true);
}

static int pg_list(oh_store *st, const struct oh_store_filter *f, oh_store_list_fn fn, void *opaque)
{
    struct pg_store *s = (struct pg_store *)st;
    int nsh = nshards(s);
    struct pg_query q;
    PGresult **res = calloc((size_t)nsh, sizeof *res);
    int *at = calloc((size_t)nsh, sizeof *at);
    int rc = !res || !at ? OH_ENOMEM : 0;
    if (rc == 0) list_sql(&q, f);
    if (rc == 0 && q.len >= sizeof q.sql - 1) rc = OH_EIO;
    for (int i = 0; rc == 0 && i < nsh; i++)
        rc = list_exec(s, i, q.sql, q.n, q.vals, &res[i]);
    for (int emitted = 0; rc == 0 && emitted < f->limit; emitted++) {
        int best = -1;
        for (int i = 0; i < nsh; i++)
            if (at[i] < PQntuples(res[i]) &&
                (best < 0 || list_before(res[i], at[i], res[best], at[best])))
                best = i;
        if (best < 0) break;
        struct oh_conversation c;
        int row = at[best]++;
        conv_row(res[best], row, &c);
        int stop = fn(opaque, &c, strtoll(PQgetvalue(res[best], row, 24), NULL, 10));
        if (stop) {
            rc = stop < 0 ? stop : 0;
            break;
        }
    }
    for (int i = 0; res && i < nsh; i++)
        PQclear(res[i]);
    free(res);
    free(at);
    return rc;
}

/* Per shard: the rows after its own position; handed out in turns, one
 * shard's row after another's, up to LIMIT, so each shard's position is
 * its last row handed out. The primary answers: a replica behind it could
 * miss a change that the live stream delivered before the snapshot. */
static int pg_changes(oh_store *st, const char *after, int limit, oh_store_conv_fn fn, void *opaque,
                      char *next)
{
    struct pg_store *s = (struct pg_store *)st;
    int n = nshards(s), rc = 0;
    int listed = 1; /* a position from a process that knows a shard not known here yet */
    for (const char *p = after; *p; p++)
        listed += *p == '.';
    if (listed > n) {
        oh_pg_shards_refresh(&s->dir, true);
        n = known(s);
    }
    int64_t *revs = calloc((size_t)n, sizeof *revs);
    PGresult **res = calloc((size_t)n, sizeof *res);
    int *at = calloc((size_t)n, sizeof *at);
    if (!revs || !res || !at) {
        rc = OH_ENOMEM;
        goto out;
    }
    if (!*after) { /* now: each counter as committed */
        for (int i = 0; rc == 0 && i < n; i++) {
            rc = oh_pg_exec(s->dir.at[i].pool, P_REV_GET, 0, NULL, &res[i], true);
            if (rc == 0 && PQntuples(res[i]) == 1)
                revs[i] = strtoll(PQgetvalue(res[i], 0, 0), NULL, 10);
        }
        if (rc == 0) oh_store_pos_format(revs, n, next);
        goto out;
    }
    if (oh_store_pos_parse(after, revs, n) != 0) {
        rc = OH_EINVAL;
        goto out;
    }
    char lim[24];
    i64s(lim, sizeof lim, limit > 0 ? limit : 1);
    for (int i = 0; rc == 0 && i < n; i++) {
        char r[24];
        i64s(r, sizeof r, revs[i]);
        const char *vals[] = {r, lim};
        rc = oh_pg_exec(s->dir.at[i].pool, P_CHANGES, 2, vals, &res[i], true);
    }
    for (int emitted = 0, more = 1; rc == 0 && more && emitted < limit;) {
        more = 0;
        for (int i = 0; i < n && emitted < limit; i++) {
            if (at[i] >= PQntuples(res[i])) continue;
            more = 1;
            struct oh_conversation c;
            conv_row(res[i], at[i]++, &c);
            revs[i] = c.rev;
            emitted++;
            int stop = fn(opaque, &c);
            if (stop) {
                rc = stop < 0 ? stop : 0;
                more = 0;
                break;
            }
        }
    }
    if (rc == 0) oh_store_pos_format(revs, n, next);
out:
    for (int i = 0; res && i < n; i++)
        PQclear(res[i]);
    free(res);
    free(at);
    free(revs);
    return rc;
}

/* ---- references, states, cursors ---- */

/* A reference lives on the shard of the conversation it points to; a
 * lookup asks the shards in order. */
static int pg_ref_get(oh_store *st, const char *channel, const char *account, const char *ref,
                      struct oh_store_ref *out)
{
    struct pg_store *s = (struct pg_store *)st;
    int nsh = nshards(s);
    const char *vals[] = {channel, account, ref};
    for (int i = 0; i < nsh; i++) {
        PGresult *r;
        int rc = oh_pg_exec(s->dir.at[i].pool, P_REF_GET, 3, vals, &r, true);
        if (rc != 0) return rc;
        bool found = PQntuples(r) == 1;
        if (found) {
            snprintf(out->conversation_id, sizeof out->conversation_id, "%s", PQgetvalue(r, 0, 0));
            snprintf(out->message_id, sizeof out->message_id, "%s", PQgetvalue(r, 0, 1));
        }
        PQclear(r);
        if (found) return 0;
    }
    return OH_ENOTFOUND;
}

static int exec_void(struct oh_pg_pool *p, enum pg_stmt id, int n, const char *const *vals)
{
    PGresult *r;
    int rc = oh_pg_exec(p, id, n, vals, &r, true);
    PQclear(r);
    return rc;
}

static int pg_ref_put(oh_store *st, const char *channel, const char *account, const char *ref,
                      const char *conv, const char *message_id)
{
    struct pg_store *s = (struct pg_store *)st;
    const char *vals[] = {channel, account, ref, conv, message_id};
    return conv_void(s, conv, P_REF_PUT, 5, vals);
}

/* Copies column 0 of the single row of R into OUT. */
static int copy_value(PGresult *r, char *out, size_t outlen)
{
    if (PQntuples(r) != 1) return OH_ENOTFOUND;
    size_t len = (size_t)PQgetlength(r, 0, 0);
    if (len + 1 > outlen) return OH_ETOOBIG;
    memcpy(out, PQgetvalue(r, 0, 0), len + 1);
    return 0;
}

static int pg_message_state(oh_store *st, const char *conv, const char *message_id, char out[16])
{
    struct pg_store *s = (struct pg_store *)st;
    const char *vals[] = {conv, message_id};
    PGresult *r;
    int rc = conv_exec(s, conv, P_STATE_GET, 2, vals, &r);
    if (rc != 0) return rc;
    rc = copy_value(r, out, 16);
    PQclear(r);
    return rc;
}

static int pg_cursor_set(oh_store *st, const char *conv, const char *role, const char *user,
                         const char *device, int64_t seq)
{
    struct pg_store *s = (struct pg_store *)st;
    char q[24];
    i64s(q, sizeof q, seq);
    const char *vals[] = {conv, user, role, device, q};
    return conv_void(s, conv, P_CURSOR_SET, 5, vals);
}

static int pg_cursors(oh_store *st, const char *conv, const char *role, const char *user,
                      oh_store_cursor_fn fn, void *opaque)
{
    struct pg_store *s = (struct pg_store *)st;
    const char *vals[] = {conv, user, role};
    PGresult *r;
    int rc = conv_exec(s, conv, P_CURSORS, 3, vals, &r);
    if (rc != 0) return rc;
    for (int i = 0; i < PQntuples(r); i++) {
        int stop = fn(opaque, PQgetvalue(r, i, 0), strtoll(PQgetvalue(r, i, 1), NULL, 10));
        if (stop) {
            rc = stop < 0 ? stop : 0;
            break;
        }
    }
    PQclear(r);
    return rc;
}

/* ---- key/value (shard 0) ---- */

static int pg_kv_put(oh_store *st, const char *ns, const char *key, const char *value)
{
    const char *vals[] = {ns, key, value};
    return exec_void(SHARD0(st), P_KV_PUT, 3, vals);
}

static int pg_kv_get(oh_store *st, const char *ns, const char *key, char *out, size_t outlen)
{
    const char *vals[] = {ns, key};
    PGresult *r;
    int rc = oh_pg_exec(SHARD0(st), P_KV_GET, 2, vals, &r, true);
    if (rc != 0) return rc;
    rc = copy_value(r, out, outlen);
    PQclear(r);
    return rc;
}

/* One statement: the keys as a JSON array. */
static int pg_kv_get_many(oh_store *st, const char *ns, const char *const *keys, size_t n,
                          void (*fn)(void *ctx, size_t i, const char *value), void *ctx)
{
    json_t *arr = json_array(), *idx = json_object();
    for (size_t i = 0; arr && idx && i < n; i++) {
        json_array_append_new(arr, json_string(keys[i]));
        json_object_set_new(idx, keys[i], json_integer((json_int_t)i));
    }
    char *j = arr && idx ? json_dumps(arr, JSON_COMPACT) : NULL;
    json_decref(arr);
    if (!j) {
        json_decref(idx);
        return OH_ENOMEM;
    }
    const char *vals[] = {ns, j};
    PGresult *r;
    int rc = oh_pg_exec_sql(SHARD0(st),
                            "SELECT key, value FROM kv WHERE ns = $1 AND key IN "
                            "(SELECT jsonb_array_elements_text($2::jsonb))",
                            2, vals, &r, true);
    free(j);
    if (rc == 0) {
        for (int i = 0; i < PQntuples(r); i++) {
            json_t *at = json_object_get(idx, PQgetvalue(r, i, 0));
            if (at) fn(ctx, (size_t)json_integer_value(at), PQgetvalue(r, i, 1));
        }
        PQclear(r);
    }
    json_decref(idx);
    return rc;
}

static int pg_kv_del(oh_store *st, const char *ns, const char *key)
{
    const char *vals[] = {ns, key};
    return exec_void(SHARD0(st), P_KV_DEL, 2, vals);
}

static int pg_kv_scan(oh_store *st, const char *ns, oh_store_kv_fn fn, void *opaque)
{
    const char *vals[] = {ns};
    PGresult *r;
    int rc = oh_pg_exec(SHARD0(st), P_KV_SCAN, 1, vals, &r, true);
    if (rc != 0) return rc;
    for (int i = 0; i < PQntuples(r); i++) {
        int stop = fn(opaque, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
        if (stop) {
            rc = stop < 0 ? stop : 0;
            break;
        }
    }
    PQclear(r);
    return rc;
}

/* ---- knowledge-base articles (shard 0) ---- */

static int pg_article_put(oh_store *st, const struct oh_store_article *a, int64_t *version)
{
    char ms[24];
    i64s(ms, sizeof ms, a->updated_ms);
    const char *vals[] = {a->id, a->title, a->body, a->locale, a->tags, ms};
    PGresult *r;
    int rc = oh_pg_exec(SHARD0(st), P_ART_PUT, 6, vals, &r, true);
    if (rc != 0) return rc;
    if (PQntuples(r) == 1)
        *version = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    else
        rc = OH_EIO;
    PQclear(r);
    return rc;
}

static int pg_article_rows(PGresult *r, oh_store_article_fn fn, void *opaque)
{
    for (int i = 0; i < PQntuples(r); i++) {
        struct oh_store_article a = {
            .id = PQgetvalue(r, i, 0),
            .title = PQgetvalue(r, i, 1),
            .body = PQgetvalue(r, i, 2),
            .locale = PQgetvalue(r, i, 3),
            .tags = PQgetvalue(r, i, 4),
            .version = strtoll(PQgetvalue(r, i, 5), NULL, 10),
            .updated_ms = strtoll(PQgetvalue(r, i, 6), NULL, 10),
        };
        int stop = fn(opaque, &a);
        if (stop) return stop < 0 ? stop : 0;
    }
    return 0;
}

static int pg_article_get(oh_store *st, const char *id, oh_store_article_fn fn, void *opaque)
{
    const char *vals[] = {id};
    PGresult *r;
    int rc = oh_pg_exec(SHARD0(st), P_ART_GET, 1, vals, &r, true);
    if (rc != 0) return rc;
    rc = PQntuples(r) == 1 ? pg_article_rows(r, fn, opaque) : OH_ENOTFOUND;
    PQclear(r);
    return rc;
}

static int pg_article_del(oh_store *st, const char *id)
{
    const char *vals[] = {id};
    PGresult *r;
    int rc = oh_pg_exec(SHARD0(st), P_ART_DEL, 1, vals, &r, true);
    if (rc != 0) return rc;
    rc = PQntuples(r) == 1 ? 0 : OH_ENOTFOUND;
    PQclear(r);
    return rc;
}

static int pg_articles(oh_store *st, oh_store_article_fn fn, void *opaque)
{
    PGresult *r;
    int rc = oh_pg_exec(SHARD0(st), P_ART_ALL, 0, NULL, &r, true);
    if (rc != 0) return rc;
    rc = pg_article_rows(r, fn, opaque);
    PQclear(r);
    return rc;
}

/* Conversations live on their shards: the sum of every shard's count. */
static int pg_open_assigned(oh_store *st, const char *agent, int64_t *count)
{
    struct pg_store *s = (struct pg_store *)st;
    int nsh = nshards(s);
    const char *vals[] = {agent};
    for (int i = 0; i < nsh; i++) {
        PGresult *r;
        /* (the replica, when there is one, mirrors a single shard) */
        int rc = nsh == 1 ? read_exec(s, s->dir.at[0].pool, P_OPEN_ASSIGNED, 1, vals, &r)
                                 : oh_pg_exec(s->dir.at[i].pool, P_OPEN_ASSIGNED, 1, vals, &r, true);
        if (rc != 0) return rc;
        *count += PQntuples(r) == 1 ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
        PQclear(r);
    }
    return OH_OK;
}

/* ---- KPIs (shard 0, like positions) ---- */

/* One statement: the episodes ($1, a JSON array) inserted or replaced and
 * the group's ($2) positions ($3) stored, all or nothing. */
static const char pg_kpi_put_sql[] =
    "WITH x AS (SELECT * FROM json_to_recordset($1::json) AS x(conversation_id text, "
    "episode bigint, channel text, agent text, team text, start_ms bigint, resolved_ms bigint, "
    "frt_ms bigint, bot_frt_ms bigint, nrt_sum_ms bigint, nrt_count bigint, aht_ms bigint, "
    "reopened_ms bigint, breached boolean, bot_involved boolean, agent_replied boolean)), "
    "ins AS (INSERT INTO kpi_episodes SELECT conversation_id, episode, channel, agent, team, "
    "start_ms, resolved_ms, frt_ms, bot_frt_ms, nrt_sum_ms, nrt_count, aht_ms, reopened_ms, "
    "breached, bot_involved, agent_replied FROM x ON CONFLICT (conversation_id, episode) DO "
    "UPDATE SET channel = EXCLUDED.channel, agent = EXCLUDED.agent, team = EXCLUDED.team, "
    "start_ms = EXCLUDED.start_ms, resolved_ms = EXCLUDED.resolved_ms, frt_ms = EXCLUDED.frt_ms, "
    "bot_frt_ms = EXCLUDED.bot_frt_ms, nrt_sum_ms = EXCLUDED.nrt_sum_ms, "
    "nrt_count = EXCLUDED.nrt_count, aht_ms = EXCLUDED.aht_ms, "
    "reopened_ms = EXCLUDED.reopened_ms, breached = EXCLUDED.breached, "
    "bot_involved = EXCLUDED.bot_involved, agent_replied = EXCLUDED.agent_replied) "
    "INSERT INTO positions (grp, topic, part, next) SELECT $2::text, topic, part, next "
    "FROM json_to_recordset($3::json) AS y(topic text, part int, next bigint) "
    "ON CONFLICT (grp, topic, part) DO UPDATE SET next = EXCLUDED.next";

static json_t *opt_int(int64_t v)
{
    return v < 0 ? json_null() : json_integer(v);
}

static json_t *opt_text(const char *v)
{
    return v[0] ? json_string(v) : json_null();
}

static int pg_kpi_put(oh_store *st, const char *group, const struct oh_store_episode *eps, size_t n,
                      const struct oh_store_pos *pos, size_t npos)
{
    struct pg_store *s = (struct pg_store *)st;
    json_t *rows = json_array(), *jpos = json_array();
    for (size_t i = 0; rows && i < n; i++) {
        const struct oh_store_episode *e = &eps[i];
        json_t *o = json_pack(
            "{s:s, s:I, s:s, s:o, s:o, s:I, s:I, s:o, s:o, s:I, s:I, s:o, s:o, s:b, s:b, s:b}",
            "conversation_id", e->conversation_id, "episode", (json_int_t)e->episode, "channel",
            e->channel, "agent", opt_text(e->agent), "team", opt_text(e->team), "start_ms",
            (json_int_t)e->start_ms, "resolved_ms", (json_int_t)e->resolved_ms, "frt_ms",
            opt_int(e->frt_ms), "bot_frt_ms", opt_int(e->bot_frt_ms), "nrt_sum_ms",
            (json_int_t)e->nrt_sum_ms, "nrt_count", (json_int_t)e->nrt_count, "aht_ms",
            opt_int(e->aht_ms), "reopened_ms", opt_int(e->reopened_ms), "breached", e->breached,
            "bot_involved", e->bot_involved, "agent_replied", e->agent_replied);
        if (!o || json_array_append_new(rows, o)) {
            json_decref(rows);
            rows = NULL;
        }
    }
    for (size_t i = 0; jpos && i < npos; i++)
        json_array_append_new(jpos,
                              json_pack("{s:s, s:i, s:I}", "topic", pos[i].topic, "part",
                                        (int)pos[i].partition, "next", (json_int_t)pos[i].next));
    char *rtext = rows ? json_dumps(rows, JSON_COMPACT) : NULL;
    char *ptext = jpos ? json_dumps(jpos, JSON_COMPACT) : NULL;
    int rc = OH_ENOMEM;
    if (rtext && ptext) {
        const char *vals[] = {rtext, group, ptext};
        PGresult *r;
        rc = oh_pg_exec_sql(s->dir.at[0].pool, pg_kpi_put_sql, 3, vals, &r, true);
        if (rc == 0) PQclear(r);
    }
    free(rtext);
    free(ptext);
    json_decref(rows);
    json_decref(jpos);
    return rc;
}

static int pg_kpi_report(oh_store *st, const struct oh_store_kpi_query *q, oh_store_kpi_fn fn,
                         void *opaque)
{
    struct pg_store *s = (struct pg_store *)st;
    char sql[4096], from[24], to[24], win[24];
    int rc = oh_store_kpi_sql(sql, sizeof sql, q->group_by, '$');
    if (rc) return rc;
    i64s(from, sizeof from, q->from_ms);
    i64s(to, sizeof to, q->to_ms);
    i64s(win, sizeof win, q->reopen_window_ms);
    const char *vals[] = {from, to, q->agent, win};
    PGresult *r;
    if ((rc = oh_pg_exec_sql(s->dir.at[0].pool, sql, 4, vals, &r, true))) return rc;
    for (int i = 0; i < PQntuples(r); i++) {
        struct oh_store_kpi_row row = {.key_null = PQgetisnull(r, i, 0)};
        snprintf(row.key, sizeof row.key, "%s", PQgetvalue(r, i, 0));
        int64_t *v[] = {&row.episodes,          &row.frt_n,      &row.frt_sum_ms,
                        &row.frt_p50_ms,        &row.frt_p90_ms, &row.nrt_n,
                        &row.nrt_sum_ms,        &row.aht_n,      &row.aht_sum_ms,
                        &row.resolution_sum_ms, &row.sla_met,    &row.bot_involved,
                        &row.bot_resolved};
        for (int k = 0; k < (int)OH_ARRAY_SIZE(v); k++)
            *v[k] = PQgetisnull(r, i, k + 1) ? -1 : strtoll(PQgetvalue(r, i, k + 1), NULL, 10);
        int stop = fn(opaque, &row);
        if (stop) {
            rc = stop < 0 ? stop : 0;
            break;
        }
    }
    PQclear(r);
    return rc;
}

/* One statement on shard 0 (the kv's), hence one transaction. */
static int pg_kv_write(oh_store *st, const char *ns, const char *const *keys,
                       const char *const *values, size_t n)
{
    json_t *rows = json_array();
    for (size_t i = 0; rows && i < n; i++)
        json_array_append_new(rows, json_pack("{s:s, s:o}", "key", keys[i], "value",
                                              values[i] ? json_string(values[i]) : json_null()));
    char *j = rows ? json_dumps(rows, JSON_COMPACT) : NULL;
    json_decref(rows);
    if (!j) return OH_ENOMEM;
    const char *vals[] = {ns, j};
    PGresult *r;
    int rc = oh_pg_exec_sql(
        SHARD0(st),
        "WITH w AS (SELECT * FROM jsonb_to_recordset($2::jsonb) AS w(key text, value text)), "
        "d AS (DELETE FROM kv WHERE ns = $1 AND key IN (SELECT key FROM w WHERE value IS NULL)) "
        "INSERT INTO kv (ns, key, value) SELECT $1, key, value FROM w WHERE value IS NOT NULL "
        "ON CONFLICT (ns, key) DO UPDATE SET value = EXCLUDED.value",
        2, vals, &r, true);
    if (rc == 0) PQclear(r);
    free(j);
    return rc;
}

static int pg_contact_refs(oh_store *st, const char *const *convs, const char *const *contacts,
                           size_t n)
{
    struct pg_store *s = (struct pg_store *)st;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *vals[] = {convs[i], contacts[i]};
        PGresult *r;
        struct oh_pg_pool *p;
        rc = conv_pool(s, convs[i], &p);
        if (rc == 0)
            rc = oh_pg_exec_sql(p, "UPDATE conversations SET contact_ref = $2 WHERE id = $1", 2,
                                vals, &r, true);
        if (rc == 0) PQclear(r);
    }
    return rc;
}

/* The messages' rows are read, their tombstones made here, and one
 * statement (one transaction) on the conversation's shard replaces them,
 * drops their search rows and clears the conversation's contact and
 * preview. Sync is the only writer of the history: nothing is sequenced
 * in between. */
static int pg_erase(oh_store *st, const char *conv, oh_store_erase_fn fn, void *opaque,
                    int64_t *count)
{
    struct pg_store *s = (struct pg_store *)st;
    struct oh_pg_pool *p;
    int rc = conv_pool(s, conv, &p);
    if (rc != 0) return rc;
    const char *vals[3] = {conv};
    PGresult *r;
    rc = oh_pg_exec_sql(p,
                            "SELECT seq, json FROM history WHERE conversation_id = $1 AND type IN "
                            "('" OH_EV_INBOUND "', '" OH_EV_OUTBOUND "') ORDER BY seq",
                            1, vals, &r, true);
    if (rc) return rc;
    json_t *rows = json_array();
    for (int i = 0; rows && i < PQntuples(r); i++) {
        int64_t seq = strtoll(PQgetvalue(r, i, 0), NULL, 10);
        json_t *ev = json_loads(PQgetvalue(r, i, 1), 0, NULL);
        size_t len;
        uint32_t crc;
        if (!ev) continue;
        if (fn) fn(opaque, ev);
        char *text = oh_store_tombstone(ev, seq, s->epoch, &len, &crc);
        json_decref(ev);
        if (!text) {
            rc = OH_ENOMEM;
            break;
        }
        json_array_append_new(rows, json_pack("{s:I, s:s, s:I}", "seq", (json_int_t)seq, "json",
                                              text, "crc", (json_int_t)crc));
        free(text);
    }
    PQclear(r);
    char *j = rows && rc == 0 ? json_dumps(rows, JSON_COMPACT) : NULL;
    if (rc == 0 && !j) rc = OH_ENOMEM;
    if (rc == 0) {
        vals[1] = j;
        vals[2] = OH_EV_ERASED;
        rc = oh_pg_exec_sql(
            p,
            "WITH u AS (SELECT * FROM jsonb_to_recordset($2::jsonb) AS u(seq bigint, json text, "
            "crc bigint)), h AS (UPDATE history h SET type = $3, json = u.json, crc = u.crc "
            "FROM u WHERE h.conversation_id = $1 AND h.seq = u.seq RETURNING h.seq), "
            "d AS (DELETE FROM search WHERE conversation_id = $1 AND seq IN (SELECT seq FROM u) "
            "RETURNING 1) UPDATE conversations SET contact_id = '', contact_name = '', "
            "last_text = '' WHERE id = $1",
            3, vals, &r, false);
        if (rc == 0) PQclear(r);
    }
    if (rc == 0) *count = (int64_t)json_array_size(rows);
    free(j);
    json_decref(rows);
    return rc;
}

/* ---- shards ---- */

static int pg_shard_add(oh_store *st, const char *name, const char *dsn, char *err, size_t errlen)
{
    return oh_pg_shards_add(&((struct pg_store *)st)->dir, name, dsn, err, errlen);
}

static int pg_shard_list(oh_store *st, oh_store_shard_fn fn, void *opaque)
{
    struct pg_store *s = (struct pg_store *)st;
    int rc = oh_pg_shards_refresh(&s->dir, true);
    uint64_t placing = atomic_load(&s->dir.placing);
    for (int i = 0, n = known(s); i < n && rc == 0; i++) {
        struct oh_store_shard sh = {.name = s->dir.at[i].name,
                                    .index = i,
                                    .ring = i < s->dir.ring ? i : -1,
                                    .placing = (placing >> i) & 1};
        rc = fn(opaque, &sh);
    }
    return rc < 0 ? rc : 0;
}

static const struct oh_store_shard_ops pg_shard_ops = {.add = pg_shard_add, .list = pg_shard_list};

const struct oh_store_ops oh_store_pg_ops = {
    .name = "postgres",
    .open = pg_open,
    .close = pg_close,
    .epoch = pg_epoch,
    .ping = pg_ping,
    .materialize = pg_materialize,
    .snoozed_due = pg_snoozed_due,
    .command_result = pg_command_result,
    .position_get = pg_position_get,
    .position_published = pg_position_published,
    .since_source = pg_since_source,
    .history = pg_history,
    .event_get = pg_event_get,
    .verify = pg_verify,
    .conversation_get = pg_conversation_get,
    .conversations = pg_conversations,
    .list = pg_list,
    .changes = pg_changes,
    .ref_get = pg_ref_get,
    .ref_put = pg_ref_put,
    .message_state = pg_message_state,
    .cursor_set = pg_cursor_set,
    .cursors = pg_cursors,
    .kv_put = pg_kv_put,
    .kv_get = pg_kv_get,
    .kv_get_many = pg_kv_get_many,
    .kv_del = pg_kv_del,
    .kv_write = pg_kv_write,
    .kv_scan = pg_kv_scan,
    .open_assigned = pg_open_assigned,
    .contact_refs = pg_contact_refs,
    .erase = pg_erase,
    .article_put = pg_article_put,
    .article_get = pg_article_get,
    .article_del = pg_article_del,
    .articles = pg_articles,
    .kpi_put = pg_kpi_put,
    .kpi_report = pg_kpi_report,
    .shards = &pg_shard_ops,
};
