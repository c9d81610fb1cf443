/* store_pg_shards.c - the PostgreSQL store's shards and placement directory:
 * which server holds a conversation, shards added while the store runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "store/store_pg_int.h"

#define REFRESH_MS 1000 /* how old the shard list may get before a call rereads it */

uint64_t oh_pg_fnv1a(const char *s)
{
    uint64_t h = 14695981039346656037ULL; /* FNV-1a offset basis */
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return h;
}

int oh_pg_migrate_wait(const char *dsn, char *err, size_t errlen)
{
    int rc = OH_EUNAVAIL;
    for (int attempt = 0, delay = 100; attempt < 7; attempt++, delay *= 2) {
        rc = oh_pg_migrate(dsn, err, errlen);
        if (rc != OH_EUNAVAIL) break;
        usleep((useconds_t)delay * 1000);
    }
    return rc;
}

bool oh_pg_shard_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n < 1 || n > 31) return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
            return false;
    return true;
}

int oh_pg_shard_count(struct oh_pg_shards *d)
{
    oh_pg_shards_refresh(d, false);
    return atomic_load_explicit(&d->n, memory_order_acquire);
}

static int ring_of(const struct oh_pg_shards *d, const char *conv)
{
    return (int)(oh_pg_fnv1a(conv) % (uint64_t)d->ring);
}

static int index_of(const struct oh_pg_shards *d, const char *name)
{
    int n = atomic_load_explicit(&d->n, memory_order_acquire);
    for (int i = 0; i < n; i++)
        if (strcmp(d->at[i].name, name) == 0) return i;
    return -1;
}

/* ---- the cache: direct-mapped, a colliding entry replaces the older one ---- */

static int cache_get(struct oh_pg_shards *d, const char *conv, uint64_t h)
{
    int sh = -1;
    struct oh_pg_dir_slot *slot = &d->cache[h & (d->cache_cap - 1)];
    pthread_mutex_lock(&d->cache_mu);
    if (slot->conv && slot->h == h && strcmp(slot->conv, conv) == 0) sh = slot->shard;
    pthread_mutex_unlock(&d->cache_mu);
    return sh;
}

static void cache_put(struct oh_pg_shards *d, const char *conv, int shard)
{
    uint64_t h = oh_pg_fnv1a(conv);
    char *copy = strdup(conv);
    if (!copy) return; /* only a cache */
    struct oh_pg_dir_slot *slot = &d->cache[h & (d->cache_cap - 1)];
    pthread_mutex_lock(&d->cache_mu);
    char *old = slot->conv;
    *slot = (struct oh_pg_dir_slot){.h = h, .conv = copy, .shard = shard};
    pthread_mutex_unlock(&d->cache_mu);
    free(old);
}

/* ---- the shard list ---- */

/* The rows of the shards table in index order: the ring first, by ring
 * position, then the added shards as they were added. */
#define SHARDS_SQL                                                                                 \
    "SELECT name, ring, coalesce(dsn, ''), ring IS NOT NULL OR added_at <= now() - "               \
    "make_interval(secs => " OH_PG_PLACING_AFTER_S ") FROM shards "                                \
    "ORDER BY ring IS NULL, ring, ord"

/* Opens and publishes the shards of R (SHARDS_SQL rows) that are not known
 * yet. Runs under refresh_mu. */
static int take_rows(struct oh_pg_shards *d, PGresult *r, char *err, size_t errlen)
{
    int n = atomic_load_explicit(&d->n, memory_order_relaxed);
    int rows = PQntuples(r);
    if (rows > OH_PG_SHARDS_MAX) rows = OH_PG_SHARDS_MAX;
    uint64_t placing = 0;
    for (int i = 0; i < rows; i++) {
        const char *name = PQgetvalue(r, i, 0);
        if (i < n && strcmp(d->at[i].name, name) != 0) {
            oh_errf(err, errlen, "shard %d is \"%s\" here but \"%s\" in the shards table", i,
                    d->at[i].name, name);
            return OH_EIO;
        }
        if (i >= n) {
            const char *dsn = PQgetvalue(r, i, 2);
            if (!PQgetisnull(r, i, 1) || !*dsn || !oh_pg_shard_name_ok(name)) {
                oh_errf(err, errlen, "shards table: row \"%s\" is not an added shard", name);
                return OH_EIO;
            }
            /* an upgraded daemon brings every shard's schema up to date */
            char merr[256];
            if (oh_pg_migrate(dsn, merr, sizeof merr) != 0) {
                oh_errf(err, errlen, "shard %s: %s", name, merr);
                return OH_EUNAVAIL;
            }
            struct oh_pg_pool *p = oh_pg_pool_new(dsn, name, d->pool_size);
            if (!p) return OH_ENOMEM;
            snprintf(d->at[i].name, sizeof d->at[i].name, "%s", name);
            d->at[i].pool = p;
            atomic_store_explicit(&d->n, i + 1, memory_order_release);
            n = i + 1;
            OH_INFO("store", "postgres: shard %s (%d) joined", name, i);
        }
        if (strcmp(PQgetvalue(r, i, 3), "t") == 0) placing |= UINT64_C(1) << i;
    }
    atomic_store_explicit(&d->placing, placing, memory_order_release);
    return 0;
}

int oh_pg_shards_refresh(struct oh_pg_shards *d, bool force)
{
    int64_t now = oh_mono_ms();
    if (!force && now - atomic_load_explicit(&d->refreshed_ms, memory_order_relaxed) < REFRESH_MS)
        return 0;
    if (force)
        pthread_mutex_lock(&d->refresh_mu);
    else if (pthread_mutex_trylock(&d->refresh_mu) != 0)
        return 0; /* another thread is at it */
    PGresult *r;
    int rc = oh_pg_exec_sql(d->at[0].pool, SHARDS_SQL, 0, NULL, &r, true);
    if (rc == 0) {
        char err[256] = "";
        rc = take_rows(d, r, err, sizeof err);
        if (rc != 0) OH_WARN("store", "postgres: shard list: %s", err);
        PQclear(r);
    }
    /* a failure waits for the next interval too: the caller's own statement
     * will report an unreachable shard 0 */
    atomic_store_explicit(&d->refreshed_ms, oh_mono_ms(), memory_order_relaxed);
    pthread_mutex_unlock(&d->refresh_mu);
    return rc;
}

/* Marks the database behind P as shard NAME, or checks that it is (two
 * statements: the read sees a name another process wrote meanwhile). */
static int claim(struct oh_pg_pool *p, const char *name, char *err, size_t errlen)
{
    const char *vals[] = {name};
    PGresult *r;
    int rc = oh_pg_exec_sql(p,
                            "INSERT INTO meta (key, value) VALUES ('shard', $1) "
                            "ON CONFLICT DO NOTHING",
                            1, vals, &r, true);
    if (rc == 0) {
        PQclear(r);
        rc = oh_pg_exec_sql(p, "SELECT value FROM meta WHERE key = 'shard'", 0, NULL, &r, true);
    }
    if (rc != 0) {
        oh_errf(err, errlen, "shard %s: cannot read its name: %s", name, oh_strerror(rc));
        return rc;
    }
    if (PQntuples(r) < 1 || strcmp(PQgetvalue(r, 0, 0), name) != 0) {
        oh_errf(err, errlen,
                "this database is shard \"%s\", not \"%s\" (a reordered store.postgres.shards, "
                "or a database given twice?)",
                PQntuples(r) ? PQgetvalue(r, 0, 0) : "?", name);
        rc = OH_EINVAL;
    }
    PQclear(r);
    return rc;
}

int oh_pg_shards_open(struct oh_pg_shards *d, const char *const *ring, int nring, int pool_size,
                      size_t cache, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    pthread_mutex_init(&d->refresh_mu, NULL);
    pthread_mutex_init(&d->cache_mu, NULL);
    d->pool_size = pool_size;
    for (d->cache_cap = 64; d->cache_cap < cache && d->cache_cap < (1u << 24);)
        d->cache_cap *= 2;
    if (!(d->cache = calloc(d->cache_cap, sizeof *d->cache))) goto nomem;
    if (nring < 1 || nring > OH_PG_SHARDS_MAX) {
        oh_errf(err, errlen, "store.postgres.shards: 1 to %d servers", OH_PG_SHARDS_MAX);
        return OH_EINVAL;
    }
    d->ring = nring;
    char merr[256];
    for (int i = 0; i < nring; i++) {
        snprintf(d->at[i].name, sizeof d->at[i].name, "s%d", i);
        if (oh_pg_migrate_wait(ring[i], merr, sizeof merr) != 0) {
            oh_errf(err, errlen, "store shard %d: %s", i, merr);
            return OH_EUNAVAIL;
        }
        if (!(d->at[i].pool = oh_pg_pool_new(ring[i], d->at[i].name, pool_size))) goto nomem;
        atomic_store(&d->n, i + 1);
        int rc = claim(d->at[i].pool, d->at[i].name, merr, sizeof merr);
        if (rc != 0) {
            oh_errf(err, errlen, "store shard %d: %s", i, merr);
            return rc;
        }
    }
    /* the ring, recorded once: the first start of a store writes it, later
     * starts compare */
    json_t *rows = json_array();
    for (int i = 0; rows && i < nring; i++)
        json_array_append_new(rows, json_pack("{s:s, s:i}", "n", d->at[i].name, "r", i));
    char *j = rows ? json_dumps(rows, JSON_COMPACT) : NULL;
    json_decref(rows);
    if (!j) goto nomem;
    const char *vals[] = {j};
    PGresult *r;
    int rc = oh_pg_exec_sql(d->at[0].pool,
                            "INSERT INTO shards (name, ring) SELECT n, r FROM "
                            "json_to_recordset($1::json) AS x(n text, r int) ORDER BY r "
                            "ON CONFLICT DO NOTHING",
                            1, vals, &r, true);
    free(j);
    if (rc == 0) {
        PQclear(r);
        rc = oh_pg_exec_sql(d->at[0].pool, "SELECT count(*) FROM shards WHERE ring IS NOT NULL", 0,
                            NULL, &r, true);
    }
    if (rc != 0) {
        oh_errf(err, errlen, "store: cannot record the shard ring: %s", oh_strerror(rc));
        return rc;
    }
    long recorded = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    if (recorded != nring) {
        oh_errf(err, errlen,
                "store.postgres.shards lists %d server(s) but this store's ring has %ld: the "
                "list never changes; add a shard with `omnihubctl shard add NAME DSN`",
                nring, recorded);
        return OH_EINVAL;
    }
    rc = oh_pg_exec_sql(d->at[0].pool, SHARDS_SQL, 0, NULL, &r, true);
    if (rc == 0) {
        pthread_mutex_lock(&d->refresh_mu);
        rc = take_rows(d, r, merr, sizeof merr);
        pthread_mutex_unlock(&d->refresh_mu);
        PQclear(r);
        if (rc != 0) oh_errf(err, errlen, "store: %s", merr);
    } else {
        oh_errf(err, errlen, "store: cannot read the shard list: %s", oh_strerror(rc));
    }
    atomic_store(&d->refreshed_ms, oh_mono_ms());
    return rc;
nomem:
    oh_errf(err, errlen, "out of memory");
    return OH_ENOMEM;
}

void oh_pg_shards_close(struct oh_pg_shards *d)
{
    int n = atomic_load(&d->n);
    for (int i = 0; i < n; i++)
        oh_pg_pool_free(d->at[i].pool);
    for (size_t i = 0; d->cache && i < d->cache_cap; i++)
        free(d->cache[i].conv);
    free(d->cache);
    pthread_mutex_destroy(&d->refresh_mu);
    pthread_mutex_destroy(&d->cache_mu);
}

/* ---- placement ---- */

/* Among the shards that take new conversations, the one CONV hashes to. */
static const char *choose(struct oh_pg_shards *d, const char *conv)
{
    uint64_t mask = atomic_load_explicit(&d->placing, memory_order_acquire);
    int n = atomic_load_explicit(&d->n, memory_order_acquire), k = 0;
    int cand[OH_PG_SHARDS_MAX];
    for (int i = 0; i < n; i++)
        if (mask & (UINT64_C(1) << i)) cand[k++] = i;
    if (k == 0) return d->at[ring_of(d, conv)].name;
    return d->at[cand[oh_pg_fnv1a(conv) % (uint64_t)k]].name;
}

/* The placements of the conversations in IDS (a JSON array text) into
 * FOUND (conversation -> shard index); caches them. */
static int read_placements(struct oh_pg_shards *d, const char *ids, json_t *found)
{
    const char *vals[] = {ids};
    PGresult *r;
    int rc = oh_pg_exec(d->at[0].pool, P_PLACE_GET, 1, vals, &r, true);
    if (rc != 0) return rc;
    for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
        const char *conv = PQgetvalue(r, i, 0), *name = PQgetvalue(r, i, 1);
        int sh = index_of(d, name);
        if (sh < 0) { /* placed on a shard added since the last refresh */
            oh_pg_shards_refresh(d, true);
            sh = index_of(d, name);
        }
        if (sh < 0) {
            OH_WARN("store", "postgres: conversation %s is placed on unknown shard %s", conv, name);
            rc = OH_EUNAVAIL;
            break;
        }
        json_object_set_new(found, conv, json_integer(sh));
        cache_put(d, conv, sh);
    }
    PQclear(r);
    return rc;
}

/* The keys of MISS whose value is null, as a JSON array text (NULL: none). */
static char *unresolved(json_t *miss)
{
    json_t *a = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(miss, k, v)
    {
        if (json_is_null(v)) json_array_append_new(a, json_string(k));
    }
    char *text = a && json_array_size(a) ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    return text;
}

/* Conversations without a placement that already exist on their ring shard
 * (stored before the directory, or before this shard list) stay there. */
static int find_on_ring(struct oh_pg_shards *d, json_t *miss)
{
    int rc = 0;
    json_t **per = calloc((size_t)d->ring, sizeof *per);
    if (!per) return OH_ENOMEM;
    const char *k;
    json_t *v;
    json_object_foreach(miss, k, v)
    {
        if (!json_is_null(v)) continue;
        int r = ring_of(d, k);
        if (!per[r] && !(per[r] = json_array())) rc = OH_ENOMEM;
        if (per[r]) json_array_append_new(per[r], json_string(k));
    }
    for (int r = 0; r < d->ring && rc == 0; r++) {
        if (!per[r]) continue;
        char *ids = json_dumps(per[r], JSON_COMPACT);
        if (!ids) {
            rc = OH_ENOMEM;
            break;
        }
        const char *vals[] = {ids};
        PGresult *res;
        rc = oh_pg_exec(d->at[r].pool, P_CONV_MANY, 1, vals, &res, true);
        free(ids);
        if (rc != 0) break;
        for (int i = 0; i < PQntuples(res); i++) {
            json_object_set_new(miss, PQgetvalue(res, i, 0), json_integer(r));
            cache_put(d, PQgetvalue(res, i, 0), r);
        }
        PQclear(res);
    }
    for (int r = 0; r < d->ring; r++)
        json_decref(per[r]);
    free(per);
    return rc;
}

/* Writes a placement for each still unresolved conversation of MISS (a
 * conversation placed meanwhile by another process keeps its row) and reads
 * them back: whoever wrote first, every process then agrees. */
static int place_new(struct oh_pg_shards *d, json_t *miss)
{
    oh_pg_shards_refresh(d, false);
    json_t *rows = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(miss, k, v)
    {
        if (json_is_null(v))
            json_array_append_new(rows, json_pack("{s:s, s:s}", "c", k, "s", choose(d, k)));
    }
    char *j = rows ? json_dumps(rows, JSON_COMPACT) : NULL;
    json_decref(rows);
    if (!j) return OH_ENOMEM;
    const char *vals[] = {j};
    PGresult *r;
    int rc = oh_pg_exec(d->at[0].pool, P_PLACE_PUT, 1, vals, &r, true);
    free(j);
    if (rc != 0) return rc;
    PQclear(r);
    char *ids = unresolved(miss);
    if (ids) rc = read_placements(d, ids, miss);
    free(ids);
    return rc;
}

int oh_pg_shards_resolve(struct oh_pg_shards *d, const char *const *convs, size_t n, bool place,
                         int *sh)
{
    json_t *miss = NULL;
    for (size_t i = 0; i < n; i++) {
        sh[i] = -1;
        if (!*convs[i]) { /* no conversation (an outcome without one): a fixed shard */
            sh[i] = ring_of(d, convs[i]);
            continue;
        }
        if ((sh[i] = cache_get(d, convs[i], oh_pg_fnv1a(convs[i]))) >= 0) continue;
        if (!miss && !(miss = json_object())) return OH_ENOMEM;
        json_object_set_new(miss, convs[i], json_null());
    }
    if (!miss) return 0;
    char *ids = unresolved(miss);
    int rc = ids ? read_placements(d, ids, miss) : OH_ENOMEM;
    free(ids);
    if (rc == 0) rc = find_on_ring(d, miss);
    if (rc == 0 && place && (ids = unresolved(miss))) {
        free(ids);
        rc = place_new(d, miss);
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (sh[i] >= 0) continue;
        json_t *v = json_object_get(miss, convs[i]);
        if (json_is_integer(v))
            sh[i] = (int)json_integer_value(v);
        else if (!place) /* nowhere yet: reads find nothing on its ring shard */
            sh[i] = ring_of(d, convs[i]);
        else
            rc = OH_EIO;
    }
    json_decref(miss);
    return rc;
}

int oh_pg_shard_of(struct oh_pg_shards *d, const char *conv, int *sh)
{
    return oh_pg_shards_resolve(d, &conv, 1, false, sh);
}

/* ---- operations ---- */

int oh_pg_shards_add(struct oh_pg_shards *d, const char *name, const char *dsn, char *err,
                     size_t errlen)
{
    if (!oh_pg_shard_name_ok(name)) {
        oh_errf(err, errlen, "shard name \"%s\": 1 to 31 of a-z, 0-9, _ and -", name);
        return OH_EINVAL;
    }
    oh_pg_shards_refresh(d, true);
    if (atomic_load(&d->n) >= OH_PG_SHARDS_MAX) {
        oh_errf(err, errlen, "the store has %d shards, the most it takes", OH_PG_SHARDS_MAX);
        return OH_ETOOBIG;
    }
    char merr[256];
    int rc = oh_pg_migrate_wait(dsn, merr, sizeof merr);
    if (rc != 0) {
        oh_errf(err, errlen, "shard %s: %s", name, merr);
        return rc;
    }
    struct oh_pg_pool *p = oh_pg_pool_new(dsn, name, 1);
    if (!p) return OH_ENOMEM;
    rc = claim(p, name, err, errlen);
    oh_pg_pool_free(p);
    if (rc != 0) return rc;
    const char *vals[] = {name, dsn};
    PGresult *r;
    rc = oh_pg_exec_sql(d->at[0].pool,
                        "INSERT INTO shards (name, dsn) VALUES ($1, $2) ON CONFLICT DO NOTHING", 2,
                        vals, &r, true);
    if (rc == 0) {
        PQclear(r);
        rc = oh_pg_exec_sql(d->at[0].pool,
                            "SELECT coalesce(dsn, '') = $2 FROM shards WHERE name = $1", 2, vals,
                            &r, true);
    }
    if (rc != 0) {
        oh_errf(err, errlen, "cannot record shard %s on shard 0: %s", name, oh_strerror(rc));
        return rc;
    }
    if (PQntuples(r) < 1 || strcmp(PQgetvalue(r, 0, 0), "t") != 0) {
        oh_errf(err, errlen, "a shard named %s already exists with another DSN", name);
        rc = OH_EDUP;
    }
    PQclear(r);
    if (rc == 0) oh_pg_shards_refresh(d, true);
    return rc;
}
