/* store_pg_route.c - the PostgreSQL store's statements and where they
 * run: the SQL of the prepared statements (oh_pg_sql, prepared by
 * store_pg_pool.c), and the routing of a call to a conversation's shard,
 * to every shard, or to the read replica. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store/store_pg_int.h"

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
static const char materialize_sql[] =
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
    [P_MATERIALIZE] = materialize_sql,
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
    [P_OPEN_ASSIGNEES] = "SELECT assignee, count(*) FROM conversations WHERE status = 'open' "
                         "AND assignee <> '' GROUP BY assignee",
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

/* The shards known now, without a refresh: for indices handed out before. */
int pg_known(struct pg_store *s)
{
    return atomic_load_explicit(&s->dir.n, memory_order_acquire);
}

/* The shards a read across all of them asks (after a refresh when due). */
int pg_nshards(struct pg_store *s)
{
    return oh_pg_shard_count(&s->dir);
}

/* *P = the pool of CONV's shard (placement directory, see store_pg_shards.c). */
int pg_conv_pool(struct pg_store *s, const char *conv, struct oh_pg_pool **p)
{
    int sh;
    int rc = oh_pg_shard_of(&s->dir, conv, &sh);
    if (rc == 0) *p = s->dir.at[sh].pool;
    return rc;
}

/* Runs ID on CONV's shard (see oh_pg_exec; repeated on a broken connection). */
int pg_conv_exec(struct pg_store *s, const char *conv, enum pg_stmt id, int n, const char *const *vals,
              PGresult **r)
{
    struct oh_pg_pool *p;
    *r = NULL;
    int rc = pg_conv_pool(s, conv, &p);
    return rc != 0 ? rc : oh_pg_exec(p, id, n, vals, r, true);
}

int pg_conv_void(struct pg_store *s, const char *conv, enum pg_stmt id, int n, const char *const *vals)
{
    PGresult *r;
    int rc = pg_conv_exec(s, conv, id, n, vals, &r);
    PQclear(r);
    return rc;
}

/* History and lists go to the replica when there is one; if it cannot be
 * reached the primary answers. */
int pg_read_exec(struct pg_store *s, struct oh_pg_pool *primary, enum pg_stmt id, int n,
              const char *const *vals, PGresult **r)
{
    if (s->replica && primary == s->dir.at[0].pool) { /* it mirrors shard 0 */
        int rc = oh_pg_exec(s->replica, id, n, vals, r, true);
        if (rc != OH_EUNAVAIL && rc != OH_ETIMEOUT) return rc;
    }
    return oh_pg_exec(primary, id, n, vals, r, true);
}

/* Runs ID with VALS on every shard; RES[i] holds shard i's rows. */
int pg_all_shards(struct pg_store *s, int nsh, enum pg_stmt id, int n, const char *const *vals,
               PGresult **res)
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

void pg_i64s(char *buf, size_t len, int64_t v)
{
    snprintf(buf, len, "%lld", (long long)v);
}
