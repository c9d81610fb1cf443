/* store_pg_route.c - the PostgreSQL store's statements and where they
 * run: the SQL of the prepared statements (oh_pg_sql, prepared by
 * store_pg_pool.c), and the routing of a call to a conversation's shard,
 * to every shard, or to the read replica. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "store/store_pg_int.h"

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
